"""`rotasign group ...` and `rotasign team ...`: user groups, and teams that own keypairs."""

from __future__ import annotations

import argparse
from typing import Any

from rotasign_cli.arguments import add_paging_options, comma_list
from rotasign_cli.client import segment
from rotasign_cli.commands import common
from rotasign_cli.context import Context
from rotasign_cli.output import Column, field

GROUP_COLUMNS = (
    Column("NAME", field("name"), max_width=32),
    Column("ID", field("id")),
    Column("MEMBERS", lambda g: len(g.get("member_ids") or [])),
    Column("CREATED", field("created_at")),
)
TEAM_COLUMNS = (
    Column("NAME", field("name"), max_width=32),
    Column("ID", field("id")),
    Column("MEMBERS", lambda t: len(t.get("member_ids") or [])),
    Column("GROUPS", field("group_ids")),
    Column("PROFILES", field("profile_ids")),
    Column("CREATED", field("created_at")),
)


def register(sub: Any) -> None:
    """Add `group` and `team`."""
    _groups(sub)
    _teams(sub)


def _groups(sub: Any) -> None:
    verbs = common.noun(
        sub, "group", "user groups (managed with manage_users)",
        "User groups name several users at once: for restricted keypairs (--allowed-groups) and teams.",
        "rotasign group create releasers --members usr_01A...,usr_01B...",
    )
    create = common.leaf(verbs, "create", "create a group", "Create a user group.",
                         "rotasign group create releasers --members usr_01A...", run_create_group)
    create.add_argument("name", help="1 to 100 characters")
    create.add_argument("--members", type=comma_list, metavar="USR,...", help="user ids")
    ls = common.leaf(verbs, "ls", "list groups", "The account's groups, newest first.", "rotasign group ls",
                     lambda args, ctx: common.ls(args, ctx, "/groups", GROUP_COLUMNS, "groups"))
    add_paging_options(ls)
    desc = common.leaf(verbs, "desc", "describe a group", "A group and its members.", "rotasign group desc grp_01...",
                       lambda args, ctx: common.desc(ctx, "/groups", args.ident, _group_pairs))
    desc.add_argument("ident", metavar="GROUP_ID")
    update = common.leaf(verbs, "update", "rename a group or replace its members",
                         "Change a group: --members replaces the members (--members '' empties it).",
                         "rotasign group update grp_01... --members usr_01A...,usr_01C...", run_update_group)
    update.add_argument("ident", metavar="GROUP_ID")
    update.add_argument("--name", help="1 to 100 characters")
    update.add_argument("--members", type=comma_list, metavar="USR,...", help="the new member list")
    delete = common.leaf(verbs, "delete", "delete a group",
                         "Delete a group (it also leaves its teams). Asks unless --yes.",
                         "rotasign group delete grp_01... --yes",
                         lambda args, ctx: common.delete(args, ctx, "group", "/groups", args.ident, ""))
    delete.add_argument("ident", metavar="GROUP_ID")
    common.add_yes(delete)


def _teams(sub: Any) -> None:
    verbs = common.noun(
        sub, "team", "teams (managed with manage_teams; the account needs teams enabled)",
        "Teams own keypairs (keypair create --team): their members see and use them. The account must have "
        "teams enabled (`rotasign account update --teams-enabled`). Profiles are allocated to teams on the "
        "profile (`keypair-profile update --teams`).",
        "rotasign team create payments --members usr_01A... --groups grp_01...",
    )
    create = common.leaf(verbs, "create", "create a team", "Create a team.",
                         "rotasign team create payments --groups grp_01...", run_create_team)
    create.add_argument("name", help="1 to 100 characters")
    _team_lists(create)
    ls = common.leaf(verbs, "ls", "list teams", "The account's teams, newest first.", "rotasign team ls",
                     lambda args, ctx: common.ls(args, ctx, "/teams", TEAM_COLUMNS, "teams"))
    add_paging_options(ls)
    desc = common.leaf(verbs, "desc", "describe a team", "A team: members, groups, profiles.",
                       "rotasign team desc team_01...",
                       lambda args, ctx: common.desc(ctx, "/teams", args.ident, _team_pairs))
    desc.add_argument("ident", metavar="TEAM_ID")
    update = common.leaf(verbs, "update", "rename a team or replace its members or groups",
                         "Change a team: a list replaces the list ('' empties it).",
                         "rotasign team update team_01... --members usr_01A...", run_update_team)
    update.add_argument("ident", metavar="TEAM_ID")
    update.add_argument("--name", help="1 to 100 characters")
    _team_lists(update)
    delete = common.leaf(verbs, "delete", "delete a team (its keypairs stay, visible to admins)",
                         "Delete a team: its keypairs stay, visible to admins only. Asks unless --yes.",
                         "rotasign team delete team_01... --yes",
                         lambda args, ctx: common.delete(args, ctx, "team", "/teams", args.ident,
                                                         "; its keypairs stay, visible to admins"))
    delete.add_argument("ident", metavar="TEAM_ID")
    common.add_yes(delete)


def _team_lists(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=comma_list, metavar="USR,...", help="member user ids")
    parser.add_argument("--groups", type=comma_list, metavar="GRP,...", help="member group ids")


def _group_pairs(group: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("name", group.get("name")), ("id", group.get("id")), ("members", group.get("member_ids")),
            ("created", group.get("created_at"))]


def _team_pairs(team: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("name", team.get("name")), ("id", team.get("id")), ("members", team.get("member_ids")),
            ("groups", team.get("group_ids")), ("profiles", team.get("profile_ids")),
            ("created", team.get("created_at"))]


def _line(verb: str, noun: str, item: dict[str, Any]) -> str:
    return f"{verb} {noun} {item.get('name')} ({item.get('id')}), {len(item.get('member_ids') or [])} members"


def run_create_group(args: argparse.Namespace, ctx: Context) -> int:
    """POST /groups."""
    group = ctx.client().call("POST", "/groups", common.body_of({"name": args.name, "member_ids": args.members}))
    common.show(ctx, group, _group_pairs(group), _line("Created", "group", group))
    return 0


def run_update_group(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH /groups/{id}."""
    body = common.require_change(common.body_of({"name": args.name, "member_ids": args.members}),
                                 "rotasign group update", "--name or --members")
    group = ctx.client().call("PATCH", f"/groups/{segment(args.ident)}", body)
    common.show(ctx, group, _group_pairs(group), _line("Updated", "group", group))
    return 0


def run_create_team(args: argparse.Namespace, ctx: Context) -> int:
    """POST /teams."""
    body = common.body_of({"name": args.name, "member_ids": args.members, "group_ids": args.groups})
    team = ctx.client().call("POST", "/teams", body)
    common.show(ctx, team, _team_pairs(team), _line("Created", "team", team))
    return 0


def run_update_team(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH /teams/{id}."""
    body = common.require_change(
        common.body_of({"name": args.name, "member_ids": args.members, "group_ids": args.groups}),
        "rotasign team update", "--name, --members or --groups",
    )
    team = ctx.client().call("PATCH", f"/teams/{segment(args.ident)}", body)
    common.show(ctx, team, _team_pairs(team), _line("Updated", "team", team))
    return 0
