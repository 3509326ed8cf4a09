"""A small HTTP client for the rotasign API (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

Transport = Callable[[str, str, dict[str, str], bytes | None], tuple[int, bytes]]


class ApiError(Exception):
    """An API error body, with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def urllib_transport(timeout: float = 30.0) -> Transport:
    """Real HTTP through urllib."""

    def send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    return send


@dataclass
class Client:
    """Calls the API with an API key; raises ApiError for error bodies."""

    endpoint: str
    api_key: str
    transport: Transport = field(default_factory=urllib_transport)

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One request; the parsed JSON answer (None for 204)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = f"{self.endpoint.rstrip('/')}/api/v1{path}" + (f"?{urlencode(query)}" if query else "")
        headers = {"X-API-Key": self.api_key, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, raw = self.transport(method, url, headers, data)
        parsed = json.loads(raw) if raw else None
        if status >= 400:
            error = (parsed or {}).get("error", {}) if isinstance(parsed, dict) else {}
            raise ApiError(status, str(error.get("code", "error")), str(error.get("message", raw[:200])))
        return parsed

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following `next`."""
        params = dict(params)
        while True:
            page = self.call("GET", path, params=params)
            yield from page["items"]
            if not page.get("next"):
                return
            params["next"] = page["next"]
