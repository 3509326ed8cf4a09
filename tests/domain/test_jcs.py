"""RFC 8785 canonical JSON: the number vectors of its appendix, member order by UTF-16, string escaping."""

from __future__ import annotations

import json
import random
import struct

import pytest

from chalicelib.domain.jcs import canonical, number
from tests.support import tlog
from tests.support.tlog import RFC8785_NUMBERS


@pytest.mark.parametrize(("bits", "text"), sorted(RFC8785_NUMBERS.items()))
def test_numbers_are_written_as_ecmascript_writes_them(bits: str, text: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert number(value) == text
    assert canonical(value) == text.encode()


def test_members_sort_by_utf16_code_units_and_nothing_is_escaped_but_json_needs() -> None:
    # RFC 8785 3.2.3's example: by UTF-16 the emoji (D83D...) sorts before U+FB33, unlike by code point.
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
             "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O"}
    names = [json.loads(b"[" + part + b"]")[0] for part in canonical(value)[1:-1].split(b",")
             for part in [part.split(b":")[0]]]
    assert names == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical("\u2028</\x7f\"\\\b\x1f") == '"\u2028</\x7f\\"\\\\\\b\\u001f"'.encode()
    assert canonical([None, True, False, [], {}]) == b"[null,true,false,[],{}]"


def test_what_json_cannot_carry_is_refused() -> None:
    for bad in (float("nan"), float("inf"), "\ud800", b"bytes", {1: "x"}):
        with pytest.raises((ValueError, TypeError)):
            canonical(bad)


def test_entries_agree_with_a_plain_sorted_dump() -> None:
    """For ASCII names and no floats (every log entry), JCS is a sorted compact dump: an outside check."""
    rng = random.Random(7)
    for _ in range(200):
        entry = {f"k{rng.randint(0, 99)}": rng.choice([None, True, rng.randint(-2**53, 2**53), "é\n\"", [1, {"z": 0}]])
                 for _ in range(rng.randint(0, 8))}
        assert canonical(entry) == tlog.jcs(entry)
