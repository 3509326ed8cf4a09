"""Refresh routes: a manual refresh and the generation history of a keypair."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib.api.http import endpoint, principal, query, source_ip
from chalicelib.services.registry import get_services

bp = Blueprint(__name__)


@bp.route("/keypairs/{keypair}/refresh", methods=["POST"])
@endpoint("manage_keypair")
def refresh_keypair(keypair: str) -> dict[str, Any]:
    """Replace a dynamic keypair's key and certificate now; 409 not_dynamic for a static one."""
    request = bp.current_request
    return get_services().refresh.refresh_by_user(principal(), keypair, source_ip(request))


@bp.route("/keypairs/{keypair}/generations", methods=["GET"])
@endpoint("view_keypair")
def list_generations(keypair: str) -> dict[str, Any]:
    """Every generation of a keypair (public key and certificate), newest first."""
    return get_services().refresh.generations(principal(), keypair, query(bp.current_request))
