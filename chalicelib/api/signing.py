"""Signing route."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib.api.http import endpoint, json_body, principal, source_ip
from chalicelib.errors import RotasignError
from chalicelib.services.registry import get_services

bp = Blueprint(__name__)


@bp.route("/keypairs/{keypair}/sign", methods=["POST"])
@endpoint(None)  # the service checks `sign` itself, so that a refusal is logged like any other attempt
def sign(keypair: str) -> dict[str, Any]:
    """Sign a digest (or a short message) with the keypair's current key."""
    request = bp.current_request
    body: Any = None
    body_error: RotasignError | None = None
    try:
        body = json_body(request)
    except RotasignError as exc:
        body_error = exc
    return get_services().signing.sign(principal(), keypair, body, source_ip(request), body_error=body_error)
