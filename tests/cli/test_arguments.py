"""The grammar: value types, one-line parse errors, and `--help` with allowed values and an example everywhere."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from rotasign_cli.arguments import comma_list, digest_value, moment_value, time_value
from rotasign_cli.cli import build_parser
from rotasign_cli.errors import UsageError

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("30m", "2026-11-29T11:30:00Z"),
        ("2h", "2026-11-29T10:00:00Z"),
        ("7d", "2026-11-22T12:00:00Z"),
        ("1w", "2026-11-22T12:00:00Z"),
        ("2026-11-01", "2026-11-01T00:00:00Z"),
        ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z"),
        ("2026-11-01T10:00:00+02:00", "2026-11-01T08:00:00Z"),
    ],
)
def test_times_and_ages(given: str, expected: str) -> None:
    assert time_value(lambda: NOW)(given) == expected


def test_a_bad_time() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a time"):
        time_value(lambda: NOW)("yesterday")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("now", "2026-11-29T12:00:00Z"),
        ("+2h", "2026-11-29T14:00:00Z"),
        ("-30m", "2026-11-29T11:30:00Z"),
        ("+90d", "2027-02-27T12:00:00Z"),
        ("2027-06-30", "2027-06-30T00:00:00Z"),
    ],
)
def test_moments_ahead_or_behind(given: str, expected: str) -> None:
    assert moment_value(lambda: NOW)(given) == expected


def test_a_bare_age_is_ambiguous_for_a_moment() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"write \+2h \(from now\) or -2h \(ago\)"):
        moment_value(lambda: NOW)("2h")


def test_digests_in_hex_or_base64() -> None:
    assert digest_value("00ff" * 16) == bytes.fromhex("00ff" * 16)
    assert digest_value("AP8A/w==") == b"\x00\xff\x00\xff"
    with pytest.raises(argparse.ArgumentTypeError):
        digest_value("not a digest!")


def test_comma_lists() -> None:
    assert comma_list("a, b,,c") == ["a", "b", "c"] and comma_list("") == []


def test_a_parse_error_is_one_usage_error_naming_the_command() -> None:
    with pytest.raises(UsageError) as raised:
        build_parser().parse_command_line(["logs", "audit", "--status", "failed"])
    assert raised.value.message == (
        "rotasign logs audit: unrecognized arguments: --status failed (see `rotasign logs audit --help`)"
    )
    assert "\n" not in raised.value.message


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _parsers(child)
    return found


def test_every_command_has_help_with_an_example_and_its_allowed_values() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) >= 20
    for parser in parsers:
        text = parser.format_help()
        assert "example:\n  rotasign " in text, parser.prog
        for action in parser._actions:
            if action.choices and not isinstance(action, argparse._SubParsersAction):
                missing = [str(choice) for choice in action.choices if str(choice) not in text]
                assert not missing, (parser.prog, action.dest, missing)


def test_the_command_tree() -> None:
    names = sorted(p.prog for p in _parsers(build_parser()))
    assert names == sorted([
        "rotasign", "rotasign configure", "rotasign healthcheck", "rotasign keypair",
        *(f"rotasign keypair {verb}" for verb in (
            "create", "ls", "desc", "update", "suspend", "unsuspend", "refresh", "delete", "generations")),
        "rotasign sign", "rotasign sign-hash", "rotasign verify", "rotasign logs", "rotasign logs audit",
        "rotasign logs signatures", "rotasign logs checkpoint", "rotasign logs proof", "rotasign logs verify",
        "rotasign ca", "rotasign ca get", "rotasign trust", "rotasign trust get",
        "rotasign user", *(f"rotasign user {verb}" for verb in ("create", "ls", "desc", "update", "delete")),
        "rotasign api-key", *(f"rotasign api-key {verb}" for verb in ("create", "ls", "revoke")),
        *(f"rotasign {noun}" for noun in ("group", "team", "keypair-profile", "release-window")),
        *(f"rotasign {noun} {verb}" for noun in ("group", "team", "keypair-profile", "release-window")
          for verb in ("create", "ls", "desc", "update", "delete")),
        "rotasign account", "rotasign account desc", "rotasign account update",
    ])
