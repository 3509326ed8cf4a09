"""The hand-written DER helpers give exactly the bytes asn1crypto gives for the same value."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from asn1crypto import core

from chalicelib.pki import der


class _OctetStrings(core.SetOf):  # type: ignore[misc]
    _child_spec = core.OctetString


@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 255, 256, 4095, 65535, 65536, 1 << 24])
def test_lengths_match_asn1crypto(size: int) -> None:
    content = bytes(size)
    assert der.octet_string(content) == core.OctetString(content).dump()
    assert der.sequence(content) == bytes([0x30]) + core.OctetString(content).dump()[1:]


def test_lengths_use_the_short_form_below_128_and_the_fewest_octets_above() -> None:
    assert der.length(0) == b"\x00"
    assert der.length(127) == b"\x7f"
    assert der.length(128) == b"\x81\x80"
    assert der.length(255) == b"\x81\xff"
    assert der.length(256) == b"\x82\x01\x00"
    assert der.length(65536) == b"\x83\x01\x00\x00"
    with pytest.raises(ValueError):
        der.length(-1)


EDGE_INTEGERS = [0, 1, 127, 128, 255, 256, 32767, 32768, -1, -127, -128, -129, -255, -256, -32768, -32769,
                 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**127, 2**128 - 1, -(2**63), -(2**63) - 1]


@pytest.mark.parametrize("value", EDGE_INTEGERS)
def test_integers_match_asn1crypto(value: int) -> None:
    encoded = der.integer(value)
    assert encoded == core.Integer(value).dump()
    assert core.Integer.load(encoded, strict=True).native == value


def test_random_integers_match_asn1crypto() -> None:
    rng = random.Random(3161)
    for _ in range(2000):
        value = rng.getrandbits(rng.randint(1, 160)) * rng.choice((1, -1))
        assert der.integer(value) == core.Integer(value).dump(), value


def test_integers_never_carry_a_redundant_leading_octet() -> None:
    # X.690 8.3.2: the first nine bits are never all zeros or all ones.
    for value in EDGE_INTEGERS:
        body = der.integer(value)[2:]
        if len(body) > 1:
            assert not (body[0] == 0x00 and body[1] < 0x80), value
            assert not (body[0] == 0xFF and body[1] >= 0x80), value


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 120000, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 1000, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 999000, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 100000, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2050, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 5, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 12, 31, 23, 0, 0, 500000, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_generalized_time_matches_asn1crypto(when: datetime) -> None:
    encoded = der.generalized_time(when)
    assert encoded == core.GeneralizedTime(when).dump()
    assert core.GeneralizedTime.load(encoded, strict=True).native == when


def test_generalized_time_is_utc_without_trailing_zeros() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert der.generalized_time(datetime(2026, 5, 1, 14, 0, 0, 120000, tzinfo=plus_two)) == b"\x18\x12" + (
        b"20260501120000.12Z"
    )
    assert der.generalized_time(datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)) == b"\x18\x0f20260501120000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        der.generalized_time(datetime(2026, 5, 1))


def test_set_of_sorts_like_asn1crypto() -> None:
    rng = random.Random(5652)
    for _ in range(200):
        values = [rng.randbytes(rng.choice((0, 1, 2, 5, 127, 128, 300))) for _ in range(rng.randint(1, 6))]
        expected = _OctetStrings(values).dump()
        assert der.set_of(*(der.octet_string(v) for v in values)) == expected
        # The order the elements come in does not matter.
        assert der.set_of(*(der.octet_string(v) for v in reversed(values))) == expected


def test_context_tags() -> None:
    assert der.context(0) == 0xA0
    assert der.context(1) == 0xA1
    with pytest.raises(ValueError):
        der.context(31)
