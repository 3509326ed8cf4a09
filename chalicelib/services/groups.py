"""User groups: named sets of users that a restricted keypair or a team can name at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Group, Principal
from chalicelib.errors import Conflict, NotFound
from chalicelib.ids import looks_like_id, new_id
from chalicelib.services.audited import MAX_TRANSACTION_ITEMS, AuditedChange, changes, require_known
from chalicelib.services.pagination import Page, Pager, PageRequest
from chalicelib.services.users import ChangeTooLarge, check_users

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

LIST_ROUTE = "groups"


@dataclass(frozen=True)
class NewGroup:
    """A validated POST /groups body."""

    name: str
    member_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupChange:
    """A validated PATCH /groups/{id} body (None: leave as is; member_ids replaces the list)."""

    name: str | None = None
    member_ids: tuple[str, ...] | None = None


def check_groups(deps: Deps, account: str, group_ids: tuple[str, ...], field: str) -> None:
    """Raise a 400 naming `field` unless every id is a group of the account."""
    if group_ids:
        require_known(group_ids, deps.store.groups.existing(account, group_ids), "group", field)


class GroupService:
    """/groups: every change with its audit entry, in one transaction."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def get(self, principal: Principal, group_id: str) -> Group:
        """GET /groups/{id}; raises NotFound."""
        group = self.deps.store.groups.get(principal.account, group_id) if looks_like_id(group_id, "grp") else None
        if group is None:
            raise NotFound("No such group.")
        return group

    def list(self, principal: Principal, request: PageRequest) -> Page[Group]:
        """GET /groups: newest first, with sealed `next` tokens."""
        pager = Pager(self.deps.token_key(), principal.account, LIST_ROUTE, {})
        items, position = self.deps.store.groups.page(principal.account, request.limit, pager.start(request))
        return pager.page(items, position)

    def create(self, principal: Principal, req: NewGroup, source_ip: str | None) -> Group:
        """POST /groups; raises ValidationError for a member that is not a user of the account."""
        check_users(self.deps, principal.account, req.member_ids, "member_ids")
        change = AuditedChange(self.deps, principal, source_ip)
        group = Group(principal.account, new_id("grp"), req.name, rfc3339(change.at), req.member_ids)
        group = self.deps.store.groups.stage_create(change.tx, group)
        change.commit(type="group", action="create", resource_id=group.id, name=group.name,
                      details={"member_ids": list(group.member_ids)})
        return group

    def update(self, principal: Principal, group_id: str, req: GroupChange, source_ip: str | None) -> Group:
        """PATCH /groups/{id}: a removed member loses what the group gave within the principal cache bound."""
        group = self.get(principal, group_id)
        changed = replace(group, name=req.name if req.name is not None else group.name,
                          member_ids=req.member_ids if req.member_ids is not None else group.member_ids)
        diff = changes(group, changed, ("name", "member_ids"))
        if not diff:
            return group
        added = tuple(m for m in changed.member_ids if m not in group.member_ids)
        check_users(self.deps, principal.account, added, "member_ids")
        change = AuditedChange(self.deps, principal, source_ip)
        updated = self.deps.store.groups.stage_update(change.tx, group, changed, on_fail=Conflict)
        change.commit(type="group", action="update", resource_id=group.id, name=changed.name,
                      details={"changes": diff})
        return updated

    def delete(self, principal: Principal, group_id: str, source_ip: str | None) -> None:
        """DELETE /groups/{id}: also leaves every team it was in, in the same transaction."""
        store = self.deps.store
        group = self.get(principal, group_id)
        teams = store.teams.containing(principal.account, "group_ids", group.id)
        if 2 + len(teams) > MAX_TRANSACTION_ITEMS:
            raise ChangeTooLarge("This group is in too many teams to delete at once; remove it from some first.")
        change = AuditedChange(self.deps, principal, source_ip)
        store.groups.stage_delete(change.tx, group, on_fail=Conflict)
        for team in teams:
            store.teams.stage_update(change.tx, team, replace(
                team, group_ids=tuple(g for g in team.group_ids if g != group.id)), on_fail=Conflict)
        change.commit(type="group", action="delete", resource_id=group.id, name=group.name,
                      details={"member_ids": list(group.member_ids), "removed_from_teams": [t.id for t in teams]})
