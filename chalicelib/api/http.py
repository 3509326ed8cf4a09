"""HTTP plumbing shared by the blueprints: the error shape, JSON bodies, principals and permissions."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from chalice import Response
from chalice.app import Request
from pynamodb.exceptions import PynamoDBException

from chalicelib.errors import InvalidJson, RotasignError, Unauthenticated, ValidationError
from chalicelib.services.access import Principal
from chalicelib.storage.tx import storage_error

log = logging.getLogger("rotasign.http")
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
MAX_BODY = 64 * 1024


def error_response(error: RotasignError) -> Response:
    """The API.md error body with its status (and Retry-After for 429)."""
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    if error.status == 429:
        headers["Retry-After"] = "1"
    return Response(body=error.body(), status_code=error.status, headers=headers)


def internal_error() -> Response:
    """A 500 in the API.md shape, with nothing about the cause."""
    body = {"error": {"code": "internal_error", "message": "An internal error occurred.", "details": {}}}
    return Response(body=body, status_code=500, headers={"Content-Type": "application/json"})


def principal() -> Principal:
    """The caller authenticated by the middleware."""
    value = current_principal.get()
    if value is None:
        raise Unauthenticated()
    return value


def source_ip(request: Request) -> str | None:
    """The client address API Gateway saw."""
    ip = (request.context or {}).get("identity", {}).get("sourceIp")
    return str(ip) if ip else None


def json_body(request: Request) -> Any:
    """The parsed JSON body; raises InvalidJson (malformed) or ValidationError (missing)."""
    raw = request.raw_body
    if not raw:
        raise ValidationError("The request needs a JSON body.")
    try:
        return json.loads(raw)
    # RecursionError: a body of thousands of nested brackets fits in 64 KiB.
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidJson() from exc


def query(request: Request) -> dict[str, str]:
    """Query-string parameters as a plain dict (one value each)."""
    return dict(request.query_params or {})


def endpoint(permission: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a view: check the permission, turn domain and storage errors into API.md responses."""

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                if permission is not None:
                    principal().require(permission)
                return view(*args, **kwargs)
            except RotasignError as exc:
                return error_response(exc)
            except PynamoDBException as exc:
                return error_response(storage_error(exc))
            except Exception:
                log.error("unhandled error", exc_info=True, extra={"event": "unhandled", "view": view.__name__})
                return internal_error()

        return handler

    return wrap
