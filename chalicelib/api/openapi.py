"""GET /api/v1/openapi.json: the API's OpenAPI 3.1 document, built on the first request that asks for it.

The document's tables (`openapi_spec.py`) import much of the package and take a while to build, so no
other request, and no cold start, pays for them.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import endpoint

bp = Blueprint(__name__)


@bp.route("/openapi.json", methods=["GET"])
@endpoint(None)
def openapi_document() -> Response:
    """This API's OpenAPI 3.1 document; public, like the contract it describes."""
    from chalicelib.api.openapi_spec import built

    headers: dict[str, str | list[str]] = {"Content-Type": "application/json", "Cache-Control": "public, max-age=300"}
    return Response(body=built(), headers=headers)
