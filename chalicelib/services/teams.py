"""Teams (only while the account has `teams_enabled`): a team keypair is seen and used by its members only.

Members are users listed on the team or members of a group listed on it; admins see every team's
keypairs. A team's `profile_ids` are derived from the profiles allocated to it (the allocation is
stored on the profile). Turning teams off refuses these routes and new team keypairs, but existing
team keypairs stay visible to their team and admins only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Principal, Team
from chalicelib.errors import Conflict, NotFound
from chalicelib.ids import looks_like_id, new_id
from chalicelib.services.audited import MAX_TRANSACTION_ITEMS, AuditedChange, changes
from chalicelib.services.groups import check_groups
from chalicelib.services.pagination import Page, Pager, PageRequest
from chalicelib.services.users import ChangeTooLarge, check_users

if TYPE_CHECKING:
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.container import Deps

LIST_ROUTE = "teams"
_FIELDS = ("name", "member_ids", "group_ids")


class TeamsDisabled(Conflict):
    """The account has teams turned off."""

    code = "teams_disabled"
    default_message = "This account does not have teams enabled; an admin turns them on with PATCH /api/v1/account."


@dataclass(frozen=True)
class NewTeam:
    """A validated POST /teams body."""

    name: str
    member_ids: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TeamChange:
    """A validated PATCH /teams/{id} body (None: leave as is; a list replaces the list)."""

    name: str | None = None
    member_ids: tuple[str, ...] | None = None
    group_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TeamView:
    """A team with the ids of the profiles allocated to it."""

    team: Team
    profile_ids: tuple[str, ...] = ()


class TeamService:
    """/teams: every change with its audit entry, in one transaction."""

    def __init__(self, deps: Deps, accounts: AccountCache) -> None:
        self.deps = deps
        self.accounts = accounts

    def _enabled(self, principal: Principal) -> None:
        if not self.accounts.get(principal.account).teams_enabled:
            raise TeamsDisabled()

    def _team(self, principal: Principal, team_id: str) -> Team:
        self._enabled(principal)
        team = self.deps.store.teams.get(principal.account, team_id) if looks_like_id(team_id, "team") else None
        if team is None:
            raise NotFound("No such team.")
        return team

    def get(self, principal: Principal, team_id: str) -> TeamView:
        """GET /teams/{id}; raises TeamsDisabled, NotFound."""
        team = self._team(principal, team_id)
        profiles = self.deps.store.profiles.allocated_to(principal.account, team.id)
        return TeamView(team, tuple(sorted(p.id for p in profiles)))

    def list(self, principal: Principal, request: PageRequest) -> Page[TeamView]:
        """GET /teams: newest first, with sealed `next` tokens."""
        self._enabled(principal)
        pager = Pager(self.deps.token_key(), principal.account, LIST_ROUTE, {})
        teams, position = self.deps.store.teams.page(principal.account, request.limit, pager.start(request))
        allocated = self.deps.store.profiles.allocations(principal.account) if teams else {}
        return pager.page([TeamView(t, tuple(sorted(allocated.get(t.id, ())))) for t in teams], position)

    def create(self, principal: Principal, req: NewTeam, source_ip: str | None) -> TeamView:
        """POST /teams; raises TeamsDisabled, ValidationError (a member or group not in the account)."""
        self._enabled(principal)
        check_users(self.deps, principal.account, req.member_ids, "member_ids")
        check_groups(self.deps, principal.account, req.group_ids, "group_ids")
        change = AuditedChange(self.deps, principal, source_ip)
        team = Team(principal.account, new_id("team"), req.name, rfc3339(change.at), req.member_ids, req.group_ids)
        team = self.deps.store.teams.stage_create(change.tx, team)
        change.commit(type="team", action="create", resource_id=team.id, name=team.name,
                      details={"member_ids": list(team.member_ids), "group_ids": list(team.group_ids)})
        return TeamView(team)

    def update(self, principal: Principal, team_id: str, req: TeamChange, source_ip: str | None) -> TeamView:
        """PATCH /teams/{id}: a removed member loses sight of the team's keypairs within the cache bound."""
        view = self.get(principal, team_id)
        team = view.team
        changed = replace(team, **{name: getattr(req, name) for name in _FIELDS if getattr(req, name) is not None})
        diff = changes(team, changed, _FIELDS)
        if not diff:
            return view
        check_users(self.deps, principal.account, tuple(m for m in changed.member_ids if m not in team.member_ids),
                    "member_ids")
        check_groups(self.deps, principal.account, tuple(g for g in changed.group_ids if g not in team.group_ids),
                     "group_ids")
        change = AuditedChange(self.deps, principal, source_ip)
        updated = self.deps.store.teams.stage_update(change.tx, team, changed, on_fail=Conflict)
        change.commit(type="team", action="update", resource_id=team.id, name=changed.name,
                      details={"changes": diff})
        return TeamView(updated, view.profile_ids)

    def delete(self, principal: Principal, team_id: str, source_ip: str | None) -> None:
        """DELETE /teams/{id}: its profiles are deallocated in the same transaction; its keypairs stay, admin-only."""
        store = self.deps.store
        team = self._team(principal, team_id)
        profiles = store.profiles.allocated_to(principal.account, team.id)
        if 2 + len(profiles) > MAX_TRANSACTION_ITEMS:
            raise ChangeTooLarge("Too many profiles are allocated to this team to delete it at once.")
        change = AuditedChange(self.deps, principal, source_ip)
        store.teams.stage_delete(change.tx, team, on_fail=Conflict)
        for profile in profiles:
            store.profiles.stage_update(change.tx, profile, replace(
                profile, team_ids=tuple(t for t in profile.team_ids if t != team.id)), on_fail=Conflict)
        change.commit(type="team", action="delete", resource_id=team.id, name=team.name, details={
            "member_ids": list(team.member_ids), "group_ids": list(team.group_ids),
            "deallocated_profiles": [p.id for p in profiles],
        })
