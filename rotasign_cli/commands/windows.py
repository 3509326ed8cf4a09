"""`rotasign release-window ...`: when offline keypairs may sign, for whom, and how many times."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from rotasign_cli.arguments import add_paging_options, comma_list, moment_value, positive_int
from rotasign_cli.client import Client, segment
from rotasign_cli.commands import common
from rotasign_cli.context import Context
from rotasign_cli.errors import UsageError
from rotasign_cli.output import Column, field


def budget(window: Mapping[str, Any]) -> str:
    """`3/10` used of the budget, or `3/-` without one."""
    limit = window.get("max_signatures")
    return f"{window.get('signatures_used', 0)}/{limit if limit is not None else '-'}"


COLUMNS = (
    Column("NAME", field("name"), max_width=32),
    Column("ID", field("id")),
    Column("STARTS", field("starts_at")),
    Column("ENDS", field("ends_at")),
    Column("USED/BUDGET", budget),
    Column("KEYPAIRS", field("keypair_ids")),
    Column("USERS", field("user_ids")),
)


def register(sub: Any) -> None:
    """Add `release-window`."""
    verbs = common.noun(
        sub, "release-window", "release windows: when offline keypairs may sign (manage_releases)",
        "A release window lets offline keypairs sign between two times, optionally only for some users "
        "and at most --max-signatures times. Listing shows the budget used.",
        "rotasign release-window create v2.0 --keypairs release --starts now --ends +2h --max-signatures 20",
    )
    create = common.leaf(verbs, "create", "open a window", "Open a release window for offline keypairs.",
                         "rotasign release-window create v2.0 --keypairs release --starts now --ends +2h", run_create)
    create.add_argument("name", help="1 to 100 characters")
    _fields(create, required=True)
    ls = common.leaf(verbs, "ls", "list windows with the budget used", "Release windows, newest first.",
                     "rotasign release-window ls",
                     lambda args, ctx: common.ls(args, ctx, "/release-windows", COLUMNS, "release windows"))
    add_paging_options(ls)
    desc = common.leaf(verbs, "desc", "describe a window", "Every field of a release window and its budget used.",
                       "rotasign release-window desc rw_01...",
                       lambda args, ctx: common.desc(ctx, "/release-windows", args.window, _pairs))
    desc.add_argument("window", metavar="WINDOW_ID")
    update = common.leaf(
        verbs, "update", "change a window's keypairs, users, times or budget",
        "Change a window; a list replaces the list. The budget may not go below what is used; --no-budget "
        "removes it.", "rotasign release-window update rw_01... --ends +1h --max-signatures 40", run_update,
    )
    update.add_argument("window", metavar="WINDOW_ID")
    update.add_argument("--name", help="1 to 100 characters")
    _fields(update, required=False)
    update.add_argument("--no-budget", action="store_true", help="no limit on the number of signatures")
    delete = common.leaf(verbs, "delete", "close a window now", "Close a window now: signing in it stops at once. "
                         "Asks unless --yes.", "rotasign release-window delete rw_01... --yes",
                         lambda args, ctx: common.delete(args, ctx, "release window", "/release-windows",
                                                         args.window, "; signing in it has stopped"))
    delete.add_argument("window", metavar="WINDOW_ID")
    common.add_yes(delete)


def _fields(parser: argparse.ArgumentParser, *, required: bool) -> None:
    when = moment_value()
    parser.add_argument("--keypairs", type=comma_list, required=required, metavar="KEYPAIR,...",
                        help="aliases or ids (kp_...) of the offline keypairs it opens")
    parser.add_argument("--users", type=comma_list, metavar="USR,...", help="only these users may sign (default: all)")
    parser.add_argument("--starts", type=when, required=required, metavar="TIME",
                        help="RFC 3339, a date, now, +30m (from now) or -5m (ago: write --starts=-5m)")
    parser.add_argument("--ends", type=when, required=required, metavar="TIME", help="as --starts, e.g. +2h")
    parser.add_argument("--max-signatures", type=positive_int, metavar="N", help="the budget (default: none)")


def _keypair_ids(client: Client, refs: list[str] | None) -> list[str] | None:
    """Aliases resolved to ids (the API takes ids); ids kept as given."""
    if refs is None:
        return None
    return [ref if ref.startswith("kp_") else str(client.call("GET", f"/keypairs/{segment(ref)}")["id"])
            for ref in refs]


def _body(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    body = common.body_of({
        "name": args.name, "keypair_ids": _keypair_ids(client, args.keypairs), "user_ids": args.users,
        "starts_at": args.starts, "ends_at": args.ends, "max_signatures": args.max_signatures,
    })
    if getattr(args, "no_budget", False):
        if args.max_signatures is not None:
            raise UsageError("--no-budget and --max-signatures contradict each other.")
        body["max_signatures"] = None
    return body


def _pairs(window: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("name", window.get("name")), ("id", window.get("id")), ("starts", window.get("starts_at")),
            ("ends", window.get("ends_at")), ("used/budget", budget(window)),
            ("keypairs", window.get("keypair_ids")), ("users", window.get("user_ids") or "all"),
            ("created", f"{window.get('created_at')} by {window.get('created_by')}")]


def _line(verb: str, window: dict[str, Any]) -> str:
    return (f"{verb} release window {window.get('name')} ({window.get('id')}), {window.get('starts_at')} to "
            f"{window.get('ends_at')}, used {budget(window)}")


def run_create(args: argparse.Namespace, ctx: Context) -> int:
    """POST /release-windows (keypair aliases resolved first)."""
    client = ctx.client()
    window = client.call("POST", "/release-windows", _body(args, client))
    common.show(ctx, window, _pairs(window), _line("Opened", window))
    return 0


def run_update(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH /release-windows/{id}."""
    client = ctx.client()
    body = common.require_change(_body(args, client), "rotasign release-window update",
                                 "--name, --keypairs, --users, --starts, --ends, --max-signatures or --no-budget")
    window = client.call("PATCH", f"/release-windows/{segment(args.window)}", body)
    common.show(ctx, window, _pairs(window), _line("Updated", window))
    return 0
