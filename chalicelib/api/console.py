"""The web console: its static files (HTML, CSS, JavaScript modules) under /console/, public, with a strict CSP.

The console is a client of the HTTP API like the CLI: the files carry no data and no secret, so they
are served without authentication; the browser signs in with an API key and calls /api/v1 itself.
Chalice routes match one path segment per parameter (no greedy `{proxy+}`), so the files sit in one
flat folder and two routes serve them: `/console` (the page) and `/console/{asset}` (everything else).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from chalice import Blueprint, Response

from chalicelib.errors import NotFound

bp = Blueprint(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "console"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only plain file names of the served kinds: nothing with a slash, a dot prefix or another extension.
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\.(?:html|js|css|svg)")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # The sign-in form is handled by script; were it ever submitted, the key must go nowhere.
        "form-action 'none'",
        "frame-ancestors 'none'",
        # No string may reach an HTML or script sink (innerHTML, eval): text goes in as text only.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidate every time (the ETag makes that a 304), so a deployment is seen at the next load.
    "Cache-Control": "no-cache",
}


def _headers(**extra: str) -> dict[str, str | list[str]]:
    headers: dict[str, str | list[str]] = dict(SECURITY_HEADERS)
    headers.update({name.replace("_", "-"): value for name, value in extra.items()})
    return headers


def serve(name: str, if_none_match: str | None = None) -> Response:
    """One console file with its content type and the security headers; a 404 in the docs/api.md shape otherwise."""
    path = STATIC_DIR / name
    if not _ASSET_NAME.fullmatch(name) or not path.is_file():
        body = NotFound("No such console file.").body()
        return Response(body=body, status_code=404, headers=_headers(Content_Type="application/json"))
    data = path.read_bytes()
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    content_type = CONTENT_TYPES[path.suffix]
    if if_none_match == etag:
        return Response(body="", status_code=304, headers=_headers(ETag=etag, Content_Type=content_type))
    return Response(body=data.decode("utf-8"), status_code=200, headers=_headers(Content_Type=content_type, ETag=etag))


@bp.route("/", methods=["GET"])
def console_page() -> Response:
    """The console page; `/console` without the slash redirects so that relative asset URLs resolve."""
    request = bp.current_request
    raw_path = str((request.context or {}).get("path", ""))
    if not raw_path.endswith("/"):
        # Relative to the request URL: works under any API Gateway stage or base path.
        return Response(body="", status_code=302, headers=_headers(Location="console/", Content_Type="text/plain"))
    return serve(INDEX, request.headers.get("if-none-match"))


@bp.route("/{asset}", methods=["GET"])
def console_asset(asset: str) -> Response:
    """A stylesheet, script module, icon or the page itself by file name."""
    return serve(asset, bp.current_request.headers.get("if-none-match"))
