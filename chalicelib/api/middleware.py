"""HTTP middleware: body size, authentication, Chalice's own errors in the shape of docs/api.md, one log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chalice import Response
from chalice.app import Request

from chalicelib.api.http import MAX_BODY, current_principal, error_response, internal_error, source_ip
from chalicelib.errors import (
    InvalidJson,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RotasignError,
    UnsupportedMediaType,
    ValidationError,
)
from chalicelib.services.container import get_services
from chalicelib.structured_logging import begin_request, end_request

log = logging.getLogger("rotasign.http")
# The console's static files are public: the page signs in with an API key and then calls the API.
# An account's trust material is public: third parties verify its signatures with it.
PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/openapi.json", "/console", "/console/{asset}",
                          "/api/v1/trust/{account_id}", "/api/v1/trust/{account_id}/{certificate}"})
# Routes that authenticate themselves (the public TSA decides per account).
SELF_AUTHENTICATED = frozenset({"/api/v1/timestamp"})

_CHALICE_ERRORS: dict[str, type[RotasignError]] = {
    "MethodNotAllowedError": MethodNotAllowed,
    "UnsupportedMediaType": UnsupportedMediaType,
    "NotFoundError": NotFound,
}


def _rewrite(response: Response) -> Response:
    """Chalice answers some errors itself ({"Code", "Message"}); give them the error shape of docs/api.md."""
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or "Code" not in body:
        return response
    code = str(body.get("Code"))
    if response.status_code >= 500:
        return internal_error()
    error_cls = _CHALICE_ERRORS.get(code)
    if error_cls is not None:
        rewritten = error_response(error_cls())
    elif response.status_code == 400 and "json" in str(body.get("Message", "")).lower():
        rewritten = error_response(InvalidJson())
    else:
        rewritten = error_response(ValidationError("The request is not valid."))
    for name, value in response.headers.items():
        if name.lower() == "allow":
            rewritten.headers["Allow"] = value
    return rewritten


def http_middleware(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Runs around every route."""
    started = time.monotonic()
    path = (event.context or {}).get("resourcePath", "")
    token = current_principal.set(None)
    fields = begin_request()
    account = None
    try:
        raw = event.raw_body or b""
        if len(raw) > MAX_BODY:
            response = error_response(PayloadTooLarge())
        else:
            self_authenticated = path in SELF_AUTHENTICATED and "account" in (event.query_params or {})
            if path not in PUBLIC_PATHS and not self_authenticated:
                principal = get_services().auth.authenticate(event.headers.get("x-api-key"), source_ip(event))
                current_principal.set(principal)
                account = principal.account
            response = _rewrite(get_response(event))
    except RotasignError as exc:
        response = error_response(exc)
    except Exception:
        log.error("unhandled error", exc_info=True, extra={"event": "unhandled", "path": path})
        response = internal_error()
    finally:
        current_principal.reset(token)
        annotated = end_request(fields)
    # One line per request: what the service did (keypair, generation, outcome, ...) rides on it.
    log.info(
        "request",
        extra={
            **annotated,
            "event": "request",
            "request_id": (event.context or {}).get("requestId"),
            "method": event.method,
            "path": path,
            "status": response.status_code,
            "account": account,
            "duration_ms": round((time.monotonic() - started) * 1000, 2),
        },
    )
    return response
