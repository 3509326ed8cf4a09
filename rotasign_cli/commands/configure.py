"""`rotasign configure`: save an endpoint and API key as a profile of the config file."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from rotasign_cli import config
from rotasign_cli.arguments import add_connection_options, example
from rotasign_cli.client import Client
from rotasign_cli.context import Context
from rotasign_cli.errors import UsageError


def register(sub: Any) -> None:
    """Add `configure`."""
    parser = sub.add_parser(
        "configure",
        help="save the endpoint and API key (mode 0600) as a named profile",
        description=(
            "Save the endpoint and API key in the config file ($ROTASIGN_CONFIG, else "
            "~/.config/rotasign/config), mode 0600, under a profile (default: `default`). Values not "
            "given as flags are asked for on a terminal; the key is checked with the service unless --no-check."
        ),
        epilog=example(
            "rotasign configure --profile prod --endpoint https://signing.example.com --api-key-stdin < key.txt"
        ),
    )
    add_connection_options(parser)
    parser.add_argument("--api-key-stdin", action="store_true", help="read the API key from stdin (for scripts)")
    parser.add_argument("--no-check", action="store_true", help="save without asking the service about the key")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Ask for what is missing, check the key, write the profile."""
    name = config.check_profile_name(getattr(args, "profile", None) or ctx.env.get("ROTASIGN_PROFILE") or "default")
    path = config.config_path(ctx.env)
    stored = config.read_profiles(path).get(name, {})
    interactive = sys.stdin.isatty() and not args.api_key_stdin

    endpoint = getattr(args, "endpoint", None)
    if not endpoint and interactive:
        endpoint = _ask(f"Endpoint [{stored.get('endpoint', '')}]: ") or stored.get("endpoint")
    endpoint = endpoint or stored.get("endpoint")
    if not endpoint:
        raise UsageError("No endpoint: pass --endpoint URL (or run `rotasign configure` on a terminal).")
    endpoint = config.normalize_endpoint(endpoint)

    key = getattr(args, "api_key", None)
    if args.api_key_stdin:
        key = sys.stdin.readline().strip()
    elif not key and interactive:
        hint = config.mask_key(stored["api_key"]) if stored.get("api_key") else ""
        key = getpass.getpass(f"API key [{hint}]: ").strip() or stored.get("api_key")
    key = key or stored.get("api_key")
    if not key:
        raise UsageError("No API key: pass --api-key-stdin (or run `rotasign configure` on a terminal).")

    who = ""
    if not args.no_check:
        me = Client(endpoint, key).call("GET", "/me")
        who = f": {_user(me)} in account {_account(me)}"
    config.save_profile(path, name, {"endpoint": endpoint, "api_key": key})
    print(f"Saved profile {name!r} ({endpoint}) in {path}{who}")
    return 0


def _ask(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def _user(me: dict[str, Any]) -> str:
    user = me.get("user") or {}
    return f"{user.get('name') or '?'} ({user.get('id') or '?'})"


def _account(me: dict[str, Any]) -> str:
    account = me.get("account") or {}
    return f"{account.get('name') or '?'} ({account.get('id') or '?'})"
