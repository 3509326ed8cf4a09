"""What a person reads (aligned tables, one line) and what a script reads (`--json`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

EMPTY = "-"


@dataclass(frozen=True)
class Column:
    """A table column: its heading and how to show a row's value."""

    heading: str
    value: Callable[[Mapping[str, Any]], Any]
    max_width: int | None = None


def field(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """A column value that is the row's `name` field."""
    return lambda row: row.get(name)


def cell(value: Any, max_width: int | None = None) -> str:
    """A value as table text: `-` for nothing, lists joined by commas, one line, cut to `max_width`."""
    if value is None or value == "" or value == []:
        text = EMPTY
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    text = " ".join(text.split())  # a newline in a value would break the row
    if max_width is not None and len(text) > max_width:
        text = text[: max_width - 1] + "…"
    return text


def render_table(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows under upper-case headings, columns padded to their widest cell, no trailing blanks."""
    body = [[cell(c.value(row), c.max_width) for c in columns] for row in rows]
    table = [[c.heading for c in columns], *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() for line in table]
    return "\n".join(lines)


def render_fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """A two-column table of `name  value` lines (for one object)."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}  {cell(value)}".rstrip() for name, value in pairs)


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Machine output: indented JSON with sorted keys."""
    print(json.dumps(value, indent=2, sort_keys=True), file=out or sys.stdout)


def short_id(value: str | None, length: int = 12) -> str | None:
    """A long hex identifier (a key_id) cut to its first characters, as git shows commits."""
    return value[:length] if value else value


def algorithm_label(item: Mapping[str, Any]) -> str:
    """`RSA-3072`, `ECDSA P-256`, `Ed25519` for a keypair or generation-like object."""
    algorithm = item.get("algorithm")
    if algorithm == "RSA":
        return f"RSA-{item.get('key_size')}"
    if algorithm == "ECDSA":
        return f"ECDSA {item.get('curve')}"
    if algorithm == "EdDSA":
        return "Ed25519"
    return str(algorithm or EMPTY)


def note(message: str) -> None:
    """One line for the person at the terminal, on stderr so that stdout stays parseable."""
    print(message, file=sys.stderr)
