"""Keypair routes."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.http import endpoint, json_body, principal, query, source_ip
from chalicelib.services.registry import get_services

bp = Blueprint(__name__)


@bp.route("/keypairs", methods=["POST"])
@endpoint("generate_keypair")
def create_keypair() -> Response:
    """Create a keypair."""
    request = bp.current_request
    body = get_services().keypairs.create(principal(), json_body(request), source_ip(request))
    return Response(body=body, status_code=201)


@bp.route("/keypairs", methods=["GET"])
@endpoint("view_keypair")
def list_keypairs() -> dict[str, Any]:
    """List keypairs, newest first."""
    return get_services().keypairs.list(principal(), query(bp.current_request))


@bp.route("/keypairs/{keypair}", methods=["GET"])
@endpoint("view_keypair")
def get_keypair(keypair: str) -> dict[str, Any]:
    """One keypair by id or alias."""
    return get_services().keypairs.get(principal(), keypair)


@bp.route("/keypairs/{keypair}", methods=["PATCH"])
@endpoint("manage_keypair")
def patch_keypair(keypair: str) -> dict[str, Any]:
    """Change alias, status, access or the allowed lists."""
    request = bp.current_request
    return get_services().keypairs.patch(principal(), keypair, json_body(request), source_ip(request))


@bp.route("/keypairs/{keypair}", methods=["DELETE"])
@endpoint("manage_keypair")
def delete_keypair(keypair: str) -> Response:
    """Delete a keypair: its key is destroyed, a tombstone stays."""
    request = bp.current_request
    get_services().keypairs.delete(principal(), keypair, source_ip(request))
    return Response(body="", status_code=204)
