"""The `rotasign` command: its grammar and `main`, which turns every failure into one line and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from rotasign_cli import __version__
from rotasign_cli.arguments import Parser, add_connection_options, example, subcommands
from rotasign_cli.commands import (
    account,
    ca,
    configure,
    groups,
    healthcheck,
    keypair,
    logs,
    profiles,
    sign,
    trust,
    users,
    verify,
    windows,
)
from rotasign_cli.context import Context
from rotasign_cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, CliError

DESCRIPTION = """\
rotasign: sign release artifacts with keys kept by the rotasign service, and verify them offline.

Files are hashed here; the service only sees their digests. Exit codes: 0 ok, 1 verification failed,
2 usage (a bad command line, or a request the service refuses as invalid), 3 authentication or
permission, 4 not found, 5 service or network unavailable.
"""


def build_parser() -> Parser:
    """The whole command tree."""
    parser = Parser(
        prog="rotasign",
        description=DESCRIPTION,
        epilog=example(
            "rotasign configure --endpoint https://signing.example.com",
            "rotasign sign --keypair release dist/app.tar.gz && rotasign verify dist/app.tar.gz --ca ca.pem",
        ),
    )
    parser.add_argument("--version", action="version", version=f"rotasign {__version__}")
    add_connection_options(parser)
    commands = subcommands(parser, "commands")
    for module in (configure, healthcheck, keypair, sign, verify, logs, ca, trust, users, groups, profiles, windows,
                   account):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command line; returns the exit code (never raises, never prints a traceback)."""
    try:
        args = build_parser().parse_command_line(argv)
        return int(args.func(args, Context(args, os.environ if env is None else env)))
    except CliError as exc:
        _error(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: say so in one line; ROTASIGN_DEBUG=1 shows the traceback
        if (env or os.environ).get("ROTASIGN_DEBUG"):
            raise
        _error(f"internal error ({type(exc).__name__}: {exc}); set ROTASIGN_DEBUG=1 for details.")
        return EXIT_INTERNAL


def _error(message: str) -> None:
    print(f"rotasign: error: {message}", file=sys.stderr)
