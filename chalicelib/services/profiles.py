"""Keypair profiles: presets of keypair parameters, allocated to teams (how a request uses one:
services/keypair_requests.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Principal
from chalicelib.domain.profiles import PROFILE_FIELDS, KeypairProfile, ProfileMode
from chalicelib.errors import Conflict, NotFound, ValidationError
from chalicelib.ids import looks_like_id, new_id
from chalicelib.services.audited import AuditedChange, changes, plain, require_known
from chalicelib.services.pagination import Page, Pager, PageRequest

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

LIST_ROUTE = "keypair-profiles"
_FIELDS = ("name", "mode", *PROFILE_FIELDS, "team_ids")


@dataclass(frozen=True)
class ProfileValues:
    """A validated POST or PATCH /keypair-profiles body: the fields in `sent` (a PATCH may null a value)."""

    sent: frozenset[str]
    values: dict[str, Any] = field(default_factory=dict)


class ProfileService:
    """/keypair-profiles: every change with its audit entry, in one transaction."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def find(self, account: str, profile_id: str) -> KeypairProfile | None:
        """A profile of the account, or None."""
        return self.deps.store.profiles.get(account, profile_id) if looks_like_id(profile_id, "prof") else None

    def get(self, principal: Principal, profile_id: str) -> KeypairProfile:
        """GET /keypair-profiles/{id}; raises NotFound."""
        profile = self.find(principal.account, profile_id)
        if profile is None:
            raise NotFound("No such keypair profile.")
        return profile

    def list(self, principal: Principal, request: PageRequest) -> Page[KeypairProfile]:
        """GET /keypair-profiles: newest first, with sealed `next` tokens."""
        pager = Pager(self.deps.token_key(), principal.account, LIST_ROUTE, {})
        items, position = self.deps.store.profiles.page(principal.account, request.limit, pager.start(request))
        return pager.page(items, position)

    def create(self, principal: Principal, req: ProfileValues, source_ip: str | None) -> KeypairProfile:
        """POST /keypair-profiles; raises ValidationError (bad combination, unknown team)."""
        if "name" not in req.values:
            raise ValidationError("name is required.", details={"field": "name"})
        change = AuditedChange(self.deps, principal, source_ip)
        values = {"mode": ProfileMode.FIXED, **req.values}
        profile = KeypairProfile(account=principal.account, id=new_id("prof"), created_at=rfc3339(change.at),
                                 **values)
        self._check_teams(principal, profile.team_ids)
        profile = self.deps.store.profiles.stage_create(change.tx, profile)
        change.commit(type="profile", action="create", resource_id=profile.id, name=profile.name,
                      details={name: plain(getattr(profile, name)) for name in _FIELDS if name != "name"})
        return profile

    def update(self, principal: Principal, profile_id: str, req: ProfileValues, source_ip: str | None
               ) -> KeypairProfile:
        """PATCH /keypair-profiles/{id}: keypairs made with it keep their parameters."""
        profile = self.get(principal, profile_id)
        changed = replace(profile, **req.values)  # validated again: a key size must still fit the algorithm
        diff = changes(profile, changed, _FIELDS)
        if not diff:
            return profile
        self._check_teams(principal, tuple(t for t in changed.team_ids if t not in profile.team_ids))
        change = AuditedChange(self.deps, principal, source_ip)
        updated = self.deps.store.profiles.stage_update(change.tx, profile, changed, on_fail=Conflict)
        change.commit(type="profile", action="update", resource_id=profile.id, name=changed.name,
                      details={"changes": diff})
        return updated

    def delete(self, principal: Principal, profile_id: str, source_ip: str | None) -> None:
        """DELETE /keypair-profiles/{id}: keypairs made with it keep their parameters and its id."""
        profile = self.get(principal, profile_id)
        change = AuditedChange(self.deps, principal, source_ip)
        self.deps.store.profiles.stage_delete(change.tx, profile, on_fail=Conflict)
        change.commit(type="profile", action="delete", resource_id=profile.id, name=profile.name,
                      details={"team_ids": list(profile.team_ids)})

    def _check_teams(self, principal: Principal, team_ids: tuple[str, ...]) -> None:
        if team_ids:
            require_known(team_ids, self.deps.store.teams.existing(principal.account, team_ids), "team", "team_ids")
