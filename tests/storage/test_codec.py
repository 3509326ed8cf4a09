"""The hot path's wire format: plain values to DynamoDB attribute values and back, losslessly."""

from __future__ import annotations

import pytest

from chalicelib.storage import codec


@pytest.mark.parametrize(
    "value",
    ["text", "", 0, 7, -12, 1.5, True, False, b"\x00\xff", {"a": 1, "b": ["x", 2]}, [1, "two", {"3": b"4"}]],
)
def test_values_round_trip(value: object) -> None:
    assert codec.decode(codec.encode(value)) == value


def test_none_means_absent() -> None:
    assert codec.encode_item({"a": "x", "b": None}) == {"a": {"S": "x"}}


def test_booleans_are_not_numbers() -> None:
    assert codec.encode(True) == {"BOOL": True} and codec.encode(1) == {"N": "1"}


def test_unknown_types_are_refused() -> None:
    with pytest.raises(TypeError):
        codec.encode(object())
