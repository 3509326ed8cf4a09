"""Release-window routes: when offline keypairs may sign, for whom, and how many times."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, query, source_ip
from chalicelib.api.parsing import Fields, Params
from chalicelib.services.container import get_services
from chalicelib.services.release_windows import WindowValues

bp = Blueprint(__name__)

FIELDS = ("name", "keypair_ids", "user_ids", "starts_at", "ends_at", "max_signatures")
MAX_SIGNATURES = 1_000_000_000


def parse_window(body: Any, *, create: bool) -> WindowValues:
    """POST or PATCH /release-windows body → WindowValues (`max_signatures: null` means no budget)."""
    f = Fields(body, FIELDS)
    for name in ("name", "keypair_ids", "starts_at", "ends_at"):
        if (create or f.has(name)) and f.raw(name) is None:
            raise f.error(name, f"{name} is required." if not f.has(name) else f"{name} may not be null.")
    return WindowValues(
        sent=frozenset(n for n in FIELDS if f.has(n)),
        name=f.text("name", max_length=100),
        keypair_ids=f.ids("keypair_ids", "kp") or (),
        user_ids=f.ids("user_ids", "usr") or (),
        starts_at=f.time("starts_at"),
        ends_at=f.time("ends_at"),
        max_signatures=f.integer("max_signatures", minimum=1, maximum=MAX_SIGNATURES, nullable=True),
    )


@bp.route("/release-windows", methods=["POST"])
@endpoint("manage_releases")
def create_window() -> Response:
    """Open a release window for offline keypairs."""
    request = bp.current_request
    window = get_services().windows.create(principal(), parse_window(json_body(request), create=True),
                                           source_ip(request))
    return Response(body=render.release_window(window), status_code=201)


@bp.route("/release-windows", methods=["GET"])
@endpoint("view_keypair")
def list_windows() -> dict[str, Any]:
    """The account's release windows, newest first, with `signatures_used`."""
    page = Params(query(bp.current_request), ()).page()
    return render.page(get_services().windows.list(principal(), page), render.release_window)


@bp.route("/release-windows/{window_id}", methods=["GET"])
@endpoint("view_keypair")
def get_window(window_id: str) -> dict[str, Any]:
    """One release window."""
    return render.release_window(get_services().windows.get(principal(), window_id))


@bp.route("/release-windows/{window_id}", methods=["PATCH"])
@endpoint("manage_releases")
def patch_window(window_id: str) -> dict[str, Any]:
    """Change a window: its keypairs, users, times or budget (not below what is used)."""
    request = bp.current_request
    values = parse_window(json_body(request), create=False)
    return render.release_window(get_services().windows.update(principal(), window_id, values, source_ip(request)))


@bp.route("/release-windows/{window_id}", methods=["DELETE"])
@endpoint("manage_releases")
def delete_window(window_id: str) -> Response:
    """Close a window now (signing in it stops at once)."""
    request = bp.current_request
    get_services().windows.delete(principal(), window_id, source_ip(request))
    return Response(body="", status_code=204)
