"""HTTP plumbing shared by the blueprints: the error shape, JSON bodies, the caller, permissions."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.domain.identity import Principal
from chalicelib.errors import InvalidJson, RotasignError, Unauthenticated, UnsupportedMediaType, ValidationError

log = logging.getLogger("rotasign.http")
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
MAX_BODY = 64 * 1024
JSON_TYPES = frozenset({"application/json", "application/json;charset=utf-8"})


def error_response(error: RotasignError) -> Response:
    """The docs/api.md error body with its status (and Retry-After for 429)."""
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    if error.status == 429:
        headers["Retry-After"] = "1"
    return Response(body=error.body(), status_code=error.status, headers=headers)


def internal_error() -> Response:
    """A 500 in the docs/api.md shape, with nothing about the cause."""
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
    """The parsed body of a JSON route: UTF-8 JSON sent as `application/json` (optionally `charset=utf-8`).

    Raises UnsupportedMediaType (another content type or charset), InvalidJson (not strict UTF-8 JSON,
    a byte-order mark included) or ValidationError (no body).
    """
    content_type = "".join((request.headers.get("content-type") or "").lower().split())
    if content_type not in JSON_TYPES:
        raise UnsupportedMediaType("Send the body as application/json (UTF-8).")
    raw = request.raw_body
    if not raw:
        raise ValidationError("The request needs a JSON body.")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if text.startswith("\ufeff"):
            raise ValueError("byte-order mark")
        return json.loads(text)
    # RecursionError: a body of thousands of nested brackets fits in 64 KiB.
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidJson() from exc


def query(request: Request) -> dict[str, str]:
    """Query-string parameters as a plain dict (one value each)."""
    return dict(request.query_params or {})


def endpoint(permission: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a view: check the permission, turn domain errors into docs/api.md responses (never a trace)."""

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                if permission is not None:
                    principal().require(permission)
                return view(*args, **kwargs)
            except RotasignError as exc:
                return error_response(exc)
            except Exception:
                log.error("unhandled error", exc_info=True, extra={"event": "unhandled", "view": view.__name__})
                return internal_error()

        return handler

    return wrap
