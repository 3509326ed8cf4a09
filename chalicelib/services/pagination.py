"""Sealed pagination tokens: AES-GCM over account, route, filters, position and expiry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.errors import InvalidPaginationToken, ValidationError

TOKEN_LIFETIME_SECONDS = 3600
_AAD = b"rotasign-pagination-v1"
DEFAULT_LIMIT, MAX_LIMIT = 50, 500


def parse_limit(raw: str | None) -> int:
    """`?limit=`: 1..500, default 50; raises ValidationError."""
    if raw is None:
        return DEFAULT_LIMIT
    # isdigit() alone accepts "²" (int() then fails) and other scripts' digits.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationError("limit must be an integer from 1 to 500.", details={"field": "limit"})
    return int(raw)


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
    sealed = AESGCM(key).encrypt(nonce, json.dumps(payload, separators=(",", ":")).encode(), _AAD)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_token(key: bytes, token: str, account: str, route: str, filters: dict[str, Any]) -> Any:
    """The position sealed in a token; raises InvalidPaginationToken for anything else."""
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
