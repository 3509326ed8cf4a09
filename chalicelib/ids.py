"""Prefixed ULIDs: time-ordered identifiers, so "newest first" is a key order."""

from __future__ import annotations

import base64
import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIXES = ("kp", "usr", "grp", "team", "prof", "rw", "log", "acct", "key")
_ID_RE = re.compile(r"^(?P<prefix>[a-z]+)_[0-9A-HJKMNP-TV-Z]{26}$")


_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, 80 random bits, Crockford base32."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    # The 128-bit value as 20 bytes is 32 base32 characters whose first 6 encode only zero bits; the
    # last 26 are the ULID (in the RFC 4648 alphabet, translated to Crockford's).
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_FROM_RFC4648).decode()


def new_id(prefix: str) -> str:
    """A new identifier such as `kp_01J...`."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ulid()}"


def looks_like_id(value: str, prefix: str | None = None) -> bool:
    """Whether `value` has the shape of a prefixed ULID (optionally of one prefix)."""
    match = _ID_RE.fullmatch(value)
    return match is not None and (prefix is None or match.group("prefix") == prefix)
