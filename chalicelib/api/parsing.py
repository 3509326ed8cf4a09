"""Request bodies and query strings become typed values here, with one wording per kind of error.

Every error is a 400 whose `details.field` names the field (and `details.index` the item of a batch).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from chalicelib.clock import parse_rfc3339
from chalicelib.errors import RotasignError, UnsupportedAlgorithm, ValidationError
from chalicelib.ids import looks_like_id
from chalicelib.services.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest

E = TypeVar("E", bound=StrEnum)
MAX_IDS = 100
_ABSENT: Any = object()


class Fields:
    """A JSON object with a known set of fields; each getter validates one field."""

    def __init__(self, value: Any, allowed: Iterable[str], *, index: int | None = None) -> None:
        self.index = index
        if not isinstance(value, dict):
            raise self.error(None, "The body must be a JSON object." if index is None
                             else f"items[{index}] must be a JSON object.")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.error(unknown[0], f"Unknown field {unknown[0]!r}.")
        self.values: dict[str, Any] = value

    def error(self, field: str | None, message: str, cls: type[RotasignError] = ValidationError) -> RotasignError:
        """A 400 naming the field (and the batch item)."""
        details: dict[str, Any] = {}
        if field is not None:
            details["field"] = field
        if self.index is not None:
            details["index"] = self.index
        return cls(message, details=details)

    def has(self, name: str) -> bool:
        """Whether the field was sent."""
        return name in self.values

    def _get(self, name: str, required: bool, nullable: bool = False) -> Any:
        """The value as sent; `_ABSENT` when not sent (or null where null means "not given")."""
        if name not in self.values:
            if required:
                raise self.error(name, f"{name} is required.")
            return _ABSENT
        if self.values[name] is None and nullable and not required:
            return _ABSENT
        return self.values[name]

    def text(self, name: str, *, required: bool = False, nullable: bool = False, max_length: int = 256,
             pattern: re.Pattern[str] | None = None, what: str | None = None) -> str | None:
        """A string of 1..max_length characters (matching `pattern`, described as `what`)."""
        value = self._get(name, required, nullable)
        if value is _ABSENT:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= max_length:
            raise self.error(name, f"{name} must be a string of 1 to {max_length} characters.")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(name, f"{name} must be {what or 'well formed'}.")
        return value

    def choice(self, name: str, enum: type[E], default: E | None = None) -> E:
        """One of an enumeration's values (required when there is no default)."""
        value = self._get(name, default is None)
        if value is _ABSENT:
            assert default is not None
            return default
        if isinstance(value, str) and value in enum._value2member_map_:
            return enum(value)
        raise self.error(name, f"{name} must be one of {', '.join(e.value for e in enum)}.")

    def flag(self, name: str, default: bool) -> bool:
        """true or false."""
        value = self.values.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"{name} must be true or false.")
        return value

    def binary(self, name: str, *, required: bool = False) -> bytes | None:
        """Standard base64."""
        value = self._get(name, required)
        if value is _ABSENT:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"{name} must be a base64 string.")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise self.error(name, f"{name} is not valid base64.") from None

    def ids(self, name: str, prefix: str) -> tuple[str, ...] | None:
        """A list of distinct ids with `prefix` (at most 100)."""
        value = self._get(name, False)
        if value is _ABSENT:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"{name} must be a list of ids.")
        if len(value) > MAX_IDS:
            raise self.error(name, f"{name} holds at most {MAX_IDS} ids.")
        for v in value:
            if not looks_like_id(v, prefix):
                raise self.error(name, f"{name} must hold {prefix}_ ids; {v[:40]!r} is not one.")
        return tuple(dict.fromkeys(value))

    def names(self, name: str, allowed: Iterable[str]) -> tuple[str, ...] | None:
        """A list of distinct names, each one of `allowed`."""
        value = self._get(name, False)
        if value is _ABSENT:
            return None
        options = tuple(allowed)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"{name} must be a list of names.")
        for v in value:
            if v not in options:
                raise self.error(name, f"{name} may hold only {', '.join(options)}; {v[:40]!r} is not one.")
        return tuple(dict.fromkeys(value))

    def integer(self, name: str, *, minimum: int, maximum: int, nullable: bool = False) -> int | None:
        """A whole number from `minimum` to `maximum`."""
        value = self._get(name, False, nullable)
        if value is _ABSENT:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.error(name, f"{name} must be an integer from {minimum} to {maximum}.")
        return value

    def time(self, name: str, *, nullable: bool = False) -> datetime | None:
        """An RFC 3339 time."""
        value = self._get(name, False, nullable)
        if value is _ABSENT:
            return None
        try:
            if isinstance(value, str):
                return parse_rfc3339(value)
        except (ValueError, OverflowError):
            pass
        raise self.error(name, f"{name} must be an RFC 3339 time such as 2026-11-29T12:00:00Z.")

    def raw(self, name: str) -> Any:
        """The field as sent (None when absent)."""
        return self.values.get(name)

    def unsupported(self, name: str, message: str) -> RotasignError:
        """A 400 `unsupported_algorithm` naming the field."""
        return self.error(name, message, UnsupportedAlgorithm)


class Params:
    """A query string with a known set of parameters (`limit` and `next` are always allowed)."""

    def __init__(self, params: dict[str, str], allowed: Iterable[str]) -> None:
        known = {*allowed, "limit", "next"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise _bad(unknown[0], f"Unknown query parameter {unknown[0]!r}; use {', '.join(sorted(known))}.")
        for name, value in params.items():
            if not value and name != "next":
                raise _bad(name, f"{name} needs a value; leave it out to not filter on it.")
        self.values = params

    def get(self, name: str) -> str | None:
        """The value, or None when not given."""
        return self.values.get(name)

    def choice(self, name: str, choices: Iterable[str]) -> str | None:
        """One of `choices`."""
        value = self.values.get(name)
        options = tuple(choices)
        if value is not None and value not in options:
            raise _bad(name, f"{name} must be one of {', '.join(options)}.")
        return value

    def match(self, name: str, pattern: re.Pattern[str], what: str) -> str | None:
        """A value matching `pattern` (described as `what`)."""
        value = self.values.get(name)
        if value is not None and not pattern.fullmatch(value):
            raise _bad(name, f"{name} must be {what}.")
        return value

    def id(self, name: str, prefix: str, what: str) -> str | None:
        """An id with `prefix`."""
        value = self.values.get(name)
        if value is not None and not looks_like_id(value, prefix):
            raise _bad(name, f"{name} must be {what} ({prefix}_...).")
        return value

    def time(self, name: str) -> datetime | None:
        """An RFC 3339 time."""
        value = self.values.get(name)
        if value is None:
            return None
        try:
            return parse_rfc3339(value)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 pushed out of range by an offset
            raise _bad(name, f"{name} must be an RFC 3339 time such as 2026-11-29T12:00:00Z.") from None

    def count(self, name: str) -> int | None:
        """A non-negative decimal integer."""
        value = self.values.get(name)
        if value is None:
            return None
        if not (value.isascii() and value.isdigit()) or len(value) > 20:
            raise _bad(name, f"{name} must be a non-negative integer.")
        return int(value)

    def page(self) -> PageRequest:
        """`limit` (1..500, default 50) and `next`."""
        raw = self.values.get("limit")
        limit = DEFAULT_LIMIT
        if raw is not None:
            # isdigit() alone accepts "²" (int() then fails) and other scripts' digits.
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
                raise _bad("limit", f"limit must be an integer from 1 to {MAX_LIMIT}.")
            limit = int(raw)
        return PageRequest(limit, self.values.get("next") or None)


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(message, details={"field": field})
