"""`rotasign user ...` and `rotasign api-key ...`: the account's users and their API keys."""

from __future__ import annotations

import argparse
from typing import Any

from rotasign_cli.arguments import add_paging_options, comma_list, confirm, moment_value
from rotasign_cli.client import segment
from rotasign_cli.commands import common
from rotasign_cli.context import Context
from rotasign_cli.errors import UsageError
from rotasign_cli.output import Column, field, note, print_json, render_table

ROLES = ("admin", "lead", "developer", "auditor")
PERMISSIONS = (
    "generate_keypair", "view_keypair", "manage_keypair", "sign", "view_audit_log", "manage_users",
    "manage_teams", "manage_profiles", "manage_releases", "manage_account",
)
COLUMNS = (
    Column("NAME", field("name"), max_width=32),
    Column("ID", field("id")),
    Column("EMAIL", field("email"), max_width=32),
    Column("ROLES", field("roles")),
    Column("EXTRA PERMISSIONS", field("permissions")),
    Column("GROUPS", field("group_ids")),
    Column("CREATED", field("created_at")),
)
KEY_COLUMNS = (
    Column("NAME", field("name"), max_width=32),
    Column("ID", field("id")),
    Column("PREFIX", field("prefix")),
    Column("CREATED", field("created_at")),
    Column("EXPIRES", field("expires_at")),
    Column("LAST USED", field("last_used_at")),
    Column("REVOKED", field("revoked_at")),
)


def roles(text: str) -> list[str]:
    """`developer,auditor`: roles of ROLES (empty: none)."""
    return _names(text, ROLES, "role")


def permissions(text: str) -> list[str]:
    """`manage_teams,...`: permissions of PERMISSIONS (empty: none)."""
    return _names(text, PERMISSIONS, "permission")


def _names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = comma_list(text)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown[0]!r} (choose from {', '.join(allowed)})")
    return names


def register(sub: Any) -> None:
    """Add `user` and `api-key`."""
    _users(sub)
    _api_keys(sub)


def _users(sub: Any) -> None:
    verbs = common.noun(
        sub, "user", "the account's users (permission manage_users)",
        "Create, list, describe, change and delete users. A user's permissions are those of its roles "
        f"({', '.join(ROLES)}) plus any given one by one. Give it a key with `rotasign api-key create`.",
        "rotasign user create 'CI release job' --roles developer",
    )
    create = common.leaf(verbs, "create", "create a user", "Create a user (it has no API key yet).",
                         "rotasign user create 'Ada Lovelace' --email ada@example.com --roles lead", run_create)
    create.add_argument("name", help="1 to 100 characters")
    _user_fields(create)
    ls = common.leaf(verbs, "ls", "list users", "The account's users, newest first.", "rotasign user ls --all",
                     lambda args, ctx: common.ls(args, ctx, "/users", COLUMNS, "users"))
    add_paging_options(ls)
    desc = common.leaf(verbs, "desc", "describe a user", "Every field of a user, with all it may do.",
                       "rotasign user desc usr_01JF...",
                       lambda args, ctx: common.desc(ctx, "/users", args.user, _pairs))
    desc.add_argument("user", metavar="USER_ID")
    update = common.leaf(
        verbs, "update", "change a user's name, email, roles or permissions",
        "Change a user. A list replaces the list; an empty one (--roles '') clears it; --email '' removes the email.",
        "rotasign user update usr_01JF... --roles developer,auditor", run_update,
    )
    update.add_argument("user", metavar="USER_ID")
    update.add_argument("--name", help="1 to 100 characters")
    _user_fields(update)
    delete = common.leaf(
        verbs, "delete", "delete a user (its API keys are revoked)",
        "Delete a user: its API keys are revoked and it leaves its groups and teams. Asks unless --yes.",
        "rotasign user delete usr_01JF... --yes",
        lambda args, ctx: common.delete(args, ctx, "user", "/users", args.user, "; its API keys are revoked"),
    )
    delete.add_argument("user", metavar="USER_ID")
    common.add_yes(delete)


def _user_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", metavar="ADDRESS", help="a label; never used to send anything")
    parser.add_argument("--roles", type=roles, metavar="ROLE,...", help="of " + ", ".join(ROLES))
    parser.add_argument("--permissions", type=permissions, metavar="PERM,...",
                        help="permissions beyond the roles': " + ", ".join(PERMISSIONS))


def _pairs(user: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("name", user.get("name")), ("id", user.get("id")), ("email", user.get("email")),
        ("roles", user.get("roles")), ("extra permissions", user.get("permissions")),
        ("may", user.get("effective_permissions")), ("groups", user.get("group_ids")),
        ("created", user.get("created_at")),
    ]


def _line(verb: str, user: dict[str, Any]) -> str:
    return f"{verb} user {user.get('name')} ({user.get('id')}), roles {','.join(user.get('roles') or []) or '-'}"


def run_create(args: argparse.Namespace, ctx: Context) -> int:
    """POST /users."""
    body = common.body_of({"name": args.name, "email": args.email or None, "roles": args.roles,
                           "permissions": args.permissions})
    user = ctx.client().call("POST", "/users", body)
    common.show(ctx, user, _pairs(user), _line("Created", user))
    return 0


def run_update(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH /users/{id} with the fields given (`--email ''` sends null)."""
    body = common.body_of({"name": args.name, "roles": args.roles, "permissions": args.permissions})
    if args.email is not None:
        body["email"] = args.email or None
    common.require_change(body, "rotasign user update", "--name, --email, --roles or --permissions")
    user = ctx.client().call("PATCH", f"/users/{segment(args.user)}", body)
    common.show(ctx, user, _pairs(user), _line("Updated", user))
    return 0


def _api_keys(sub: Any) -> None:
    verbs = common.noun(
        sub, "api-key", "users' API keys (permission manage_users)",
        "Issue, list and revoke a user's API keys. A new key is printed once and never again.",
        "rotasign api-key create usr_01JF... --name ci --expires +90d > ci-key.txt",
    )
    create = common.leaf(
        verbs, "create", "issue an API key for a user (printed once)",
        "Issue an API key for a user. The key alone goes to stdout, so that a script can capture it; it is "
        "not shown again (the service keeps only its hash). A note on stderr names its id.",
        "rotasign api-key create usr_01JF... --name ci --expires 2027-06-30", run_create_key,
    )
    create.add_argument("user", metavar="USER_ID")
    create.add_argument("--name", help="a label, e.g. where the key is used")
    create.add_argument("--expires", type=moment_value(), metavar="TIME",
                        help="when it stops working: RFC 3339, a date, or +90d from now (default: never)")
    ls = common.leaf(verbs, "ls", "list a user's API keys (never the secrets)",
                     "A user's API keys: id, prefix, expiry, last use, revocation.",
                     "rotasign api-key ls usr_01JF...", run_ls_keys)
    ls.add_argument("user", metavar="USER_ID")
    revoke = common.leaf(verbs, "revoke", "revoke an API key (within 5 seconds)",
                         "Revoke an API key: it stops working within 5 seconds. Asks unless --yes.",
                         "rotasign api-key revoke usr_01JF... 01JF... --yes", run_revoke_key, aliases=("delete",))
    revoke.add_argument("user", metavar="USER_ID")
    revoke.add_argument("key", metavar="KEY_ID", help="the key's id (as `api-key ls` shows it)")
    common.add_yes(revoke)


def run_create_key(args: argparse.Namespace, ctx: Context) -> int:
    """POST /users/{id}/api-keys; the secret to stdout once."""
    body = common.body_of({"name": args.name, "expires_at": args.expires})
    issued = ctx.client().call("POST", f"/users/{segment(args.user)}/api-keys", body)
    if ctx.json:
        print_json(issued)
        return 0
    expiry = f", expires {issued['expires_at']}" if issued.get("expires_at") else ""
    note(f"Created API key {issued.get('id')} for {args.user}{expiry}; store it now, it is not shown again:")
    print(issued["key"])
    return 0


def run_ls_keys(args: argparse.Namespace, ctx: Context) -> int:
    """GET /users/{id}/api-keys."""
    items = ctx.client().call("GET", f"/users/{segment(args.user)}/api-keys").get("items") or []
    if ctx.json:
        print_json(items)
    elif items:
        print(render_table(KEY_COLUMNS, items))
    else:
        note("No API keys.")
    return 0


def run_revoke_key(args: argparse.Namespace, ctx: Context) -> int:
    """DELETE /users/{id}/api-keys/{key}, after confirmation."""
    if not confirm(f"Revoke API key {args.key} of {args.user}?", assume_yes=args.yes):
        raise UsageError("Not revoked.")
    ctx.client().call("DELETE", f"/users/{segment(args.user)}/api-keys/{segment(args.key)}")
    if ctx.json:
        print_json({"revoked": args.key, "user_id": args.user})
    else:
        print(f"Revoked API key {args.key} of {args.user}; it stops working within 5 seconds.")
    return 0
