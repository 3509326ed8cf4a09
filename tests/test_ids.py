"""Prefixed ULIDs: 48 bits of milliseconds and 80 random bits in Crockford's base32, time-ordered."""

from __future__ import annotations

import os

import pytest

from chalicelib import ids


def reference(ms: int, randomness: bytes) -> str:
    """The ULID spec's encoding, five bits at a time from the least significant end."""
    value, chars = (ms << 80) | int.from_bytes(randomness, "big"), []
    for _ in range(26):
        chars.append(ids._CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def test_the_encoding_is_the_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(500):
        randomness, ms = os.urandom(10), int.from_bytes(os.urandom(6), "big")
        monkeypatch.setattr(ids.os, "urandom", lambda n, r=randomness: r)
        assert ids.ulid(ms) == reference(ms, randomness)


def test_ids_sort_by_time_and_have_their_prefix() -> None:
    earlier, later = ids.ulid(1_700_000_000_000), ids.ulid(1_700_000_000_001)
    assert earlier < later
    assert ids.looks_like_id(ids.new_id("kp"), "kp") and not ids.looks_like_id(ids.new_id("usr"), "kp")
    with pytest.raises(ValueError):
        ids.new_id("nope")
