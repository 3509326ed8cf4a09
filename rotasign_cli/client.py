"""The HTTP client of the rotasign API (standard library only).

It turns every way a request can fail into a `CliError` with one line to say: the API's error
bodies into `ApiError` (exit code by status), unreachable hosts, timeouts and TLS failures into
`UnavailableError`. Answers that say "try again" (429, 503) are retried a few times, as is a
lost race (409 `conflict`) on PATCH, DELETE and a sign request.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from rotasign_cli import __version__
from rotasign_cli.config import API_PREFIX
from rotasign_cli.errors import ApiError, AuthError, UnavailableError

USER_AGENT = f"rotasign-cli/{__version__}"
MAX_PAGE = 500
RETRY_STATUSES = frozenset({429, 503})
RETRY_DELAYS = (0.5, 1.0, 2.0)
MAX_RETRY_AFTER = 10.0


def _retries_conflicts(method: str, path: str) -> bool:
    """Whether a lost race (409 `conflict`) is worth another try: updates, deletions, and signatures.

    A sign request answered `conflict` raced a refresh of the keypair more often than the service
    retries it itself (a dynamic keypair refreshed while the service is busy); it signed nothing.
    """
    return method in ("PATCH", "DELETE") or (method == "POST" and path.endswith("/sign"))


def segment(value: str) -> str:
    """A path segment (an id or alias) escaped so that it cannot change the route."""
    return quote(value, safe="")


@dataclass
class Response:
    """A decoded answer: status, JSON body (None when empty) and headers."""

    status: int
    body: Any
    headers: Mapping[str, str]
    raw: bytes = b""


class Client:
    """Calls the API at `endpoint` (already normalized) with `api_key`."""

    def __init__(self, endpoint: str, api_key: str | None, timeout: float = 60.0) -> None:
        self.endpoint = endpoint
        self.api_key = api_key
        self.timeout = timeout
        self._opener = urllib.request.build_opener()

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL of an API path with its query string (None values left out)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return f"{self.endpoint}{API_PREFIX}{path}" + (f"?{urlencode(query)}" if query else "")

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        authenticated: bool = True,
    ) -> Any:
        """One request; the parsed JSON answer (None for 204); raises a CliError on failure."""
        response = self._request(method, path, body, params, authenticated)
        if response.body is not None and not isinstance(response.body, dict):
            raise UnavailableError(
                f"{self.endpoint} sent not a JSON answer (HTTP {response.status}); "
                "is the endpoint the rotasign service?"
            )
        return response.body

    def text(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """A GET whose answer is text (a signed checkpoint); raises a CliError on failure."""
        response = self._request("GET", path, None, params, True)
        try:
            return response.raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnavailableError(f"{self.endpoint} sent an answer that is not UTF-8 text.") from None

    def _request(
        self, method: str, path: str, body: Any, params: Mapping[str, Any] | None, authenticated: bool
    ) -> Response:
        if authenticated and not self.api_key:
            raise AuthError("No API key: pass --api-key, set ROTASIGN_API_KEY, or run `rotasign configure`.")
        delays = iter(RETRY_DELAYS)
        while True:
            response = self._send(method, self.url(path, params), body, authenticated)
            if response.status < 400:
                return response
            error = self._error(response)
            retry = response.status in RETRY_STATUSES or (
                response.status == 409 and error.code == "conflict" and _retries_conflicts(method, path)
            )
            delay = next(delays, None) if retry else None
            if delay is None:
                raise error
            time.sleep(min(MAX_RETRY_AFTER, _retry_after(response.headers) or delay))

    def pages(self, path: str, params: Mapping[str, Any], limit: int | None) -> Iterator[dict[str, Any]]:
        """Items of a paginated list, following `next`, at most `limit` of them (None: all)."""
        query = dict(params)
        remaining = limit
        while remaining is None or remaining > 0:
            query["limit"] = MAX_PAGE if remaining is None else min(MAX_PAGE, remaining)
            page = self.call("GET", path, params=query)
            items = page.get("items", []) if isinstance(page, dict) else []
            yield from items[:remaining] if remaining is not None else items
            if remaining is not None:
                remaining -= len(items)
            if not page.get("next"):
                return
            query["next"] = page["next"]

    def _send(self, method: str, url: str, body: Any, authenticated: bool) -> Response:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if authenticated and self.api_key:
            headers["X-API-Key"] = self.api_key
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http(s) only
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                raw = answer.read()
                return Response(int(answer.status), _decode(raw), dict(answer.headers), raw)
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(int(exc.code), _decode(exc.read()), dict(exc.headers or {}))
        except urllib.error.URLError as exc:
            raise UnavailableError(f"Cannot reach {self.endpoint}: {_reason(exc.reason)}.") from exc
        except TimeoutError as exc:
            raise UnavailableError(f"{self.endpoint} did not answer within {self.timeout:g} s.") from exc
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise UnavailableError(f"Cannot reach {self.endpoint}: {_reason(exc)}.") from exc

    def _error(self, response: Response) -> ApiError:
        body = response.body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            message = str(error.get("message") or "The service refused the request.").rstrip(".")
            details = error.get("details") if isinstance(error.get("details"), dict) else {}
            return ApiError(response.status, error["code"], message, details)
        # Not an API error body: a proxy, a gateway without the project's gateway responses, or
        # another service listening at that address.
        hint = "is the endpoint the rotasign service?"
        if response.status == 403 and isinstance(body, dict) and "Missing Authentication Token" in str(body):
            hint = "no such route: check the endpoint's path"
        return ApiError(response.status, ApiError.NOT_API, f"The endpoint answered HTTP {response.status}; {hint}.")


class _NotJson(str):
    """A body that was not JSON (kept as text so error messages can mention it)."""


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _NotJson(raw[:200].decode("utf-8", "replace"))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({reason.verify_message})"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason).rstrip(".")
