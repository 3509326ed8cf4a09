"""`rotasign account ...`: the account's settings (permission manage_account)."""

from __future__ import annotations

import argparse
from typing import Any

from rotasign_cli.commands import common
from rotasign_cli.context import Context

SETTINGS = (
    ("teams_enabled", "teams own keypairs; members see and use their team's keypairs"),
    ("require_keypair_profile", "every new keypair must name a keypair profile"),
    ("public_tsa", "the account's time-stamping authority answers without an API key"),
)


def register(sub: Any) -> None:
    """Add `account desc` and `account update`."""
    verbs = common.noun(
        sub, "account", "the account's settings (manage_account)",
        "Show or change the account's settings: " + "; ".join(f"{n}: {h}" for n, h in SETTINGS) + ".",
        "rotasign account update --teams-enabled --no-public-tsa",
    )
    common.leaf(verbs, "desc", "show the settings", "The account's id, name and settings.",
                "rotasign account desc --json", run_desc)
    update = common.leaf(verbs, "update", "change settings", "Change the settings given; the others stay.",
                         "rotasign account update --require-keypair-profile", run_update)
    for name, help_text in SETTINGS:
        update.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction,
                            help=help_text)


def _pairs(account: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("name", account.get("name")), ("id", account.get("id")),
            *((name.replace("_", " "), account.get(name)) for name, _ in SETTINGS),
            ("created", account.get("created_at"))]


def run_desc(args: argparse.Namespace, ctx: Context) -> int:
    """GET /account."""
    account = ctx.client().call("GET", "/account")
    common.show(ctx, account, _pairs(account))
    return 0


def run_update(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH /account with the settings given."""
    body = common.require_change(common.body_of({name: getattr(args, name) for name, _ in SETTINGS}),
                                 "rotasign account update", "--[no-]teams-enabled, --[no-]require-keypair-profile "
                                 "or --[no-]public-tsa")
    account = ctx.client().call("PATCH", "/account", body)
    settings = ", ".join(f"{name} {'on' if account.get(name) else 'off'}" for name, _ in SETTINGS)
    common.show(ctx, account, _pairs(account), f"Updated account {account.get('name')} ({account.get('id')}): "
                                               f"{settings}")
    return 0
