"""RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of a JSON value, so that it can be hashed.

Objects have their members sorted by the UTF-16 code units of their names, there is no whitespace,
strings escape only what JSON requires (`"`, `\\` and the control characters, in their short forms or
as lowercase `\\u00xx`), and numbers are written as ECMAScript writes an IEEE 754 double.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_SAFE_INTEGER = 2**53


def canonical(value: Any) -> bytes:
    """The JCS bytes (UTF-8) of a JSON value; raises ValueError for what JSON cannot hold (NaN, lone surrogates)."""
    try:
        if _plain(value):
            # No floats, no integer beyond 2**53 and only ASCII member names: then JCS is exactly the standard
            # library's sorted compact dump (its C encoder escapes strings as JCS does), ~10x cheaper.
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return _text(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("a string holds a lone surrogate, which JSON text cannot carry") from exc


def _plain(value: Any) -> bool:
    """Whether a value holds only strings, booleans, null, safe integers, lists and ASCII-named objects."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_SAFE_INTEGER
    if isinstance(value, dict):
        return all(isinstance(name, str) and name.isascii() and _plain(item) for name, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return False


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        # Python's escaping with ensure_ascii=False is JCS's: short forms for \b \f \n \r \t, \u00xx in
        # lower case for the other control characters, everything else (U+2028, DEL, non-ASCII) as is.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        # JSON numbers are doubles: an integer beyond 2**53 is written as the double it becomes.
        return str(value) if abs(value) <= MAX_SAFE_INTEGER else number(float(value))
    if isinstance(value, float):
        return number(value)
    if isinstance(value, Mapping):
        if not all(isinstance(name, str) for name in value):
            raise TypeError("JSON object names must be strings")
        names = sorted(value, key=lambda name: name.encode("utf-16-be"))
        return "{" + ",".join(f"{_text(name)}:{_text(value[name])}" for name in names) + "}"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ",".join(_text(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def number(value: float) -> str:
    """ECMAScript's Number.prototype.toString of a finite double (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError("JSON has no NaN or Infinity")
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digit string that reads back as the same double, as ECMAScript requires.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    scale = int(exponent or 0) - len(fraction)  # value = int(whole + fraction) * 10**scale
    stripped = digits.rstrip("0")
    scale += len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = scale + k  # value = 0.digits * 10**n, ECMAScript's n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        exp = n - 1
        exp_text = f"e{'+' if exp >= 0 else '-'}{abs(exp)}"
        text = (digits if k == 1 else f"{digits[0]}.{digits[1:]}") + exp_text
    return sign + text
