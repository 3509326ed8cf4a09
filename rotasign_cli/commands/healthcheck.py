"""`rotasign healthcheck`: is the service reachable, is the key good, what may it do."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rotasign_cli import config
from rotasign_cli.arguments import add_connection_options, add_json_option, example
from rotasign_cli.context import Context
from rotasign_cli.errors import CliError
from rotasign_cli.output import print_json, render_fields


def register(sub: Any) -> None:
    """Add `healthcheck`."""
    parser = sub.add_parser(
        "healthcheck",
        help="check the endpoint, the API key and its permissions",
        description=(
            "Check that the service answers, that the API key is accepted, and list the caller's "
            "permissions. The key is shown masked. Exit 5 when the service is unreachable, 3 when the "
            "key is missing or refused."
        ),
        epilog=example("rotasign healthcheck --profile prod"),
    )
    add_connection_options(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Print what holds; raise the first failure after printing what was found so far."""
    settings = ctx.settings
    rows: list[tuple[str, Any]] = [
        ("endpoint", f"{settings.require_endpoint()} (from {settings.sources['endpoint']})"),
    ]
    report: dict[str, Any] = {"endpoint": settings.endpoint, "profile": settings.profile}
    failure: CliError | None = None
    try:
        started = time.monotonic()
        health = ctx.client(authenticated=False).call("GET", "/health", authenticated=False) or {}
        elapsed = (time.monotonic() - started) * 1000
        status, version = health.get("status", "?"), health.get("version", "?")
        rows.append(("service", f"{status}, version {version} ({elapsed:.0f} ms)"))
        report["service"] = health
        key = settings.require_api_key()
        report["api_key"] = config.mask_key(key)
        me = ctx.client().call("GET", "/me")
        user, account = me.get("user") or {}, me.get("account") or {}
        rows += [
            ("api key", f"{config.mask_key(key)} valid (from {settings.sources['api_key']})"),
            ("user", f"{user.get('name')} ({user.get('id')}), roles {', '.join(user.get('roles') or []) or '-'}"),
            ("account", f"{account.get('name')} ({account.get('id')})"),
            ("permissions", ", ".join(me.get("permissions") or []) or "-"),
        ]
        report.update(user=user, account=account, permissions=me.get("permissions") or [])
    except CliError as exc:
        failure = exc
        report["error"] = exc.message
    if ctx.json:
        print_json(report)
    else:
        print(render_fields(rows))
    if failure is not None:
        raise failure
    return 0
