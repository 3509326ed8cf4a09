"""The command-line grammar's building blocks: a parser whose errors are one line, and value types."""

from __future__ import annotations

import argparse
import base64
import binascii
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from rotasign_cli.errors import UsageError

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        # The deepest parser's default wins, so after parsing `command_parser` is the command's own.
        self.set_defaults(command_parser=self)

    def parse_command_line(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """Parse; report unknown flags against the command they were given to, not the root."""
        args, extras = self.parse_known_args(argv)
        if extras:
            parser: Parser = getattr(args, "command_parser", self)
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return args

    def error(self, message: str) -> NoReturn:
        """Raise the parse error as a UsageError that points at this command's --help."""
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """`--endpoint`, `--api-key`, `--profile`: accepted before or after the command's name.

    SUPPRESS keeps a leaf parser from overwriting a value given before the command with None.
    """
    group = parser.add_argument_group("connection (flags, then ROTASIGN_* variables, then the config file)")
    group.add_argument(
        "--endpoint", default=argparse.SUPPRESS, metavar="URL",
        help="the service's URL, e.g. https://signing.example.com (a trailing /api/v1 is fine)",
    )
    group.add_argument(
        "--api-key", default=argparse.SUPPRESS, metavar="KEY",
        help="an API key rsk_... (prefer ROTASIGN_API_KEY or `rotasign configure`: flags show in process lists)",
    )
    group.add_argument(
        "--profile", default=argparse.SUPPRESS, metavar="NAME",
        help="a profile of the config file (default: $ROTASIGN_PROFILE or `default`)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """`--json`: machine output on stdout instead of a table or line."""
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")


def add_paging_options(parser: argparse.ArgumentParser, default: int = 50) -> None:
    """`--limit N` (total across pages) or `--all`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--limit", type=positive_int, default=default, metavar="N",
        help=f"show at most N entries in total, following pages (default: {default})",
    )
    group.add_argument("--all", action="store_true", help="follow every page to the end")


def subcommands(parser: argparse.ArgumentParser, title: str) -> Any:
    """A required sub-command group whose parsers are `Parser`s."""
    return parser.add_subparsers(title=title, dest="subcommand", required=True, metavar="COMMAND", parser_class=Parser)


def example(*lines: str) -> str:
    """An epilog with one example (the `--help` convention of every command)."""
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def comma_list(text: str) -> list[str]:
    """`a,b,c` as a list without blanks (an empty string is the empty list)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def time_value(now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Callable[[str], str]:
    """A type for `--since` / `--until`: an RFC 3339 time, a date, or an age like `30m`, `2h`, `7d`."""

    def parse(text: str) -> str:
        value = text.strip()
        match = _DURATION.fullmatch(value)
        if match:
            amount, unit = int(match.group(1)), match.group(2)
            moment = now() - timedelta(**{_UNITS[unit]: amount})
            return _rfc3339(moment)
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a time: use 2026-11-29T12:00:00Z, 2026-11-29 or an age such as 30m, 2h, 7d"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return _rfc3339(moment)

    return parse


def moment_value(now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Callable[[str], str]:
    """A type for a time that may lie ahead (`--starts`, `--expires`): RFC 3339, a date, `now`, `+2h`, `-30m`."""
    absolute = time_value(now)

    def parse(text: str) -> str:
        value = text.strip()
        if value == "now":
            return _rfc3339(now())
        match = re.fullmatch(r"([+-])(\d+)([smhdw])", value)
        if match:
            sign = 1 if match.group(1) == "+" else -1
            delta = timedelta(**{_UNITS[match.group(3)]: int(match.group(2))})
            return _rfc3339(now() + sign * delta)
        if _DURATION.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{text!r} is ambiguous: write +{value} (from now) or -{value} (ago)")
        return absolute(value)

    return parse


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest_value(text: str) -> bytes:
    """A digest given as hex or standard base64."""
    value = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]+", value) and len(value) % 2 == 0:
        return bytes.fromhex(value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise argparse.ArgumentTypeError("the digest must be hex or base64") from None


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask on the terminal; with `assume_yes` answer yes; raises UsageError when nobody can answer."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: refusing without --yes (stdin is not a terminal).")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def reject_unless(present: Sequence[tuple[str, bool]], allowed_with: str) -> None:
    """Raise UsageError naming the first flag that is present although it needs `allowed_with`."""
    for flag, given in present:
        if given:
            raise UsageError(f"{flag} needs {allowed_with}.")
