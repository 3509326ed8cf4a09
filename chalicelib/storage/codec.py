"""Plain Python values to DynamoDB's wire format and back, for the paths where PynamoDB's models cost too much.

Strings, numbers, booleans, bytes, lists and string-keyed maps; None means "attribute absent".
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any


def encode(value: Any) -> dict[str, Any]:
    """One value as a DynamoDB AttributeValue."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, dict):
        return {"M": encode_item(value)}
    if isinstance(value, list | tuple):
        return {"L": [encode(v) for v in value]}
    raise TypeError(f"cannot store a {type(value).__name__}")


def encode_item(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A map of attributes (None values left out)."""
    return {name: encode(value) for name, value in values.items() if value is not None}


def decode(value: dict[str, Any]) -> Any:
    """One AttributeValue as a plain value (numbers as int when whole)."""
    kind, raw = next(iter(value.items()))
    if kind == "S":
        return raw
    if kind == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "BOOL":
        return bool(raw)
    if kind == "B":
        return raw if isinstance(raw, bytes) else base64.b64decode(raw)
    if kind == "M":
        return decode_item(raw)
    if kind == "L":
        return [decode(v) for v in raw]
    if kind == "NULL":
        return None
    if kind == "SS":
        return list(raw)
    raise TypeError(f"unsupported attribute type {kind}")


def decode_item(item: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A whole item as a dict of plain values."""
    return {name: decode(value) for name, value in item.items()}
