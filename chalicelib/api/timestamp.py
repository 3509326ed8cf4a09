"""The RFC 3161 time-stamping route, for tools that take a TSA URL (signtool /tr, jsign, osslsigncode, openssl ts).

The body is binary both ways (`app.api.binary_types` lists both media types). Chalice returns a
binary body only to a request whose `Accept` header matches a binary type, and counts `*/*` (what
curl and most HTTP libraries send) as a match; without an `Accept` header it answers 400. API Gateway
decides on the first `Accept` value alone and does not expand `*/*`: behind it, clients that send
`*/*` get base64 text unless the API's binary media types include `*/*`.
"""

from __future__ import annotations

from chalice.app import Blueprint, Request, Response

from chalicelib.api.http import current_principal, endpoint, query, source_ip
from chalicelib.errors import Unauthenticated
from chalicelib.services.container import Services, get_services

bp = Blueprint(__name__)

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


@bp.route("/timestamp", methods=["POST"], content_types=[QUERY_TYPE])
@endpoint(None)
def timestamp() -> Response:
    """Answer an RFC 3161 TimeStampReq; a malformed one gets a `rejection` reply with status 200."""
    request = bp.current_request
    services = get_services()
    raw = request.raw_body or b""
    query_der = raw.encode() if isinstance(raw, str) else raw
    reply = services.timestamps.respond(_account(request, services), query_der)
    return Response(body=reply, headers={"Content-Type": REPLY_TYPE}, status_code=200)


def _account(request: Request, services: Services) -> str:
    """The account whose TSA answers: the caller's, or with `?account=` a public TSA's; raises 401.

    The middleware skips authentication when `account` is in the query, so it is done here: an API key,
    when sent, must be valid and belong to that account; without a key the account must be public.
    """
    who = current_principal.get()
    if who is not None:
        return who.account
    requested = query(request).get("account", "")
    key = request.headers.get("x-api-key")
    if key:
        who = services.auth.authenticate(key, source_ip(request))
        if who.account != requested:
            raise Unauthenticated("The API key belongs to another account.")
        return who.account
    return services.timestamps.public_account(requested)
