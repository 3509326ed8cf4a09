"""Refresh routes: a manual refresh and the generation history of a keypair."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib.api import render
from chalicelib.api.http import endpoint, principal, query, source_ip
from chalicelib.api.parsing import Params
from chalicelib.errors import NotFound
from chalicelib.services.container import get_services

bp = Blueprint(__name__)


@bp.route("/keypairs/{keypair}/refresh", methods=["POST"])
@endpoint("manage_keypair")
def refresh_keypair(keypair: str) -> dict[str, Any]:
    """Replace a dynamic keypair's key and certificate now; 409 not_dynamic for a static one."""
    request = bp.current_request
    return render.keypair(get_services().refresh.refresh_by_user(principal(), keypair, source_ip(request)))


@bp.route("/keypairs/{keypair}/generations", methods=["GET"])
@endpoint("view_keypair")
def list_generations(keypair: str) -> dict[str, Any]:
    """Every generation of a keypair (public key and certificate), newest first; a deleted keypair's by id."""
    page = Params(query(bp.current_request), ()).page()
    return render.page(get_services().generations.list(principal(), keypair, page), render.generation)


@bp.route("/keypairs/{keypair}/generations/{generation}", methods=["GET"])
@endpoint("view_keypair")
def get_generation(keypair: str, generation: str) -> dict[str, Any]:
    """One generation of a keypair (a deleted keypair's too, by id)."""
    number = int(generation) if generation.isascii() and generation.isdigit() and len(generation) <= 12 else None
    if number is None:
        raise NotFound("No such generation.")
    return render.generation(get_services().generations.get(principal(), keypair, number))
