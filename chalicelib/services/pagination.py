"""Sealed pagination tokens: AES-GCM over account, route, filters, position and expiry; one list page."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chalicelib.errors import InvalidPaginationToken

TOKEN_LIFETIME_SECONDS = 3600
_AAD = b"rotasign-pagination-v1"
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """`?limit=` and `?next=` of a list route."""

    limit: int = DEFAULT_LIMIT
    next: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and the token of the next page (None at the end)."""

    items: list[T]
    next: str | None


def _filters_digest(filters: dict[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def seal(key: bytes, account: str, route: str, filters: dict[str, Any], position: Any) -> str:
    """A token that only this account, route and filter set can open, for an hour."""
    payload = {
        "a": account,
        "r": route,
        "f": _filters_digest(filters),
        "p": position,
        "e": int(time.time()) + TOKEN_LIFETIME_SECONDS,
    }
    nonce = os.urandom(12)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # only list routes seal tokens

    sealed = AESGCM(key).encrypt(nonce, json.dumps(payload, separators=(",", ":")).encode(), _AAD)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_token(key: bytes, token: str, account: str, route: str, filters: dict[str, Any]) -> Any:
    """The position sealed in a token; raises InvalidPaginationToken for anything else."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if len(raw) < 29:
            raise ValueError("short token")
        payload = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], _AAD))
    except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidPaginationToken() from exc
    if (
        payload.get("a") != account
        or payload.get("r") != route
        or payload.get("f") != _filters_digest(filters)
        or not isinstance(payload.get("e"), int)
        or payload["e"] < time.time()
    ):
        raise InvalidPaginationToken()
    return payload["p"]


class Pager:
    """Seals and opens the positions of one list route for one account and filter set."""

    def __init__(self, key: bytes, account: str, route: str, filters: dict[str, Any]) -> None:
        self._key, self._account, self._route, self._filters = key, account, route, filters

    def start(self, request: PageRequest) -> Any:
        """The position a request's `next` token holds (None for the first page); raises InvalidPaginationToken."""
        if not request.next:
            return None
        return open_token(self._key, request.next, self._account, self._route, self._filters)

    def page(self, items: list[T], position: Any) -> Page[T]:
        """A page with a sealed token for `position` (None when the list ended)."""
        token = seal(self._key, self._account, self._route, self._filters, position) if position else None
        return Page(items, token)
