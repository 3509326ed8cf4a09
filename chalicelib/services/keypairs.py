"""Keypairs: create, read, list, change and delete, each change with its audit entry in one transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.clock import rfc3339
from chalicelib.domain.access import can_see
from chalicelib.domain.identity import Account, Principal
from chalicelib.domain.keypairs import Access, Keypair, KeypairType, Status, Storage
from chalicelib.domain.logs import Actor, AuditEntry
from chalicelib.domain.profiles import KeypairProfile
from chalicelib.errors import Conflict, Forbidden, HsmUnavailable, NotFound, ValidationError
from chalicelib.ids import looks_like_id, new_id
from chalicelib.services.groups import check_groups
from chalicelib.services.key_generation import KeyMaker
from chalicelib.services.keypair_requests import KeypairRequest, resolve
from chalicelib.services.pagination import Page, Pager, PageRequest
from chalicelib.services.users import check_users

if TYPE_CHECKING:
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.authorities import Authorities
    from chalicelib.services.container import Deps
    from chalicelib.services.sign_state import SignStates

log = logging.getLogger("rotasign.keypairs")
LIST_ROUTE = "keypairs"


@dataclass(frozen=True)
class KeypairChange:
    """A validated PATCH /keypairs/{keypair} body (None: leave as is)."""

    alias: str | None = None
    status: Status | None = None
    access: Access | None = None
    allowed_users: tuple[str, ...] | None = None
    allowed_groups: tuple[str, ...] | None = None


@dataclass(frozen=True)
class KeypairQuery:
    """GET /keypairs filters (field name → value) and paging."""

    filters: dict[str, str]
    page: PageRequest = field(default_factory=PageRequest)


class KeypairService:
    """The keypair rules; every outside capability comes in through `deps`."""

    def __init__(self, deps: Deps, accounts: AccountCache, authorities: Authorities, states: SignStates) -> None:
        self.deps = deps
        self.accounts = accounts
        self.keys = KeyMaker(deps, authorities)
        self.states = states

    # -- reading -----------------------------------------------------------------------------------

    def resolve(self, account: str, ref: str) -> Keypair:
        """The live keypair named by id or alias in `account`; raises NotFound."""
        repo = self.deps.store.keypairs
        keypair_id: str | None = ref
        if not looks_like_id(ref, "kp"):
            keypair_id = repo.resolve_alias(account, ref) if len(ref) <= 64 else None
        kp = repo.get(account, keypair_id) if keypair_id is not None else None
        if kp is None or kp.deleted_at:
            raise NotFound("No such keypair.")
        return kp

    def find(self, principal: Principal, ref: str) -> Keypair:
        """The live keypair named by id or alias, as the caller may see it: another team's keypair is
        NotFound, like one that does not exist (use this, not `resolve`, for anything a caller asks)."""
        kp = self.resolve(principal.account, ref)
        if not can_see(principal, kp):
            raise NotFound("No such keypair.")
        return kp

    def get(self, principal: Principal, ref: str) -> Keypair:
        """GET /keypairs/{keypair}."""
        return self.find(principal, ref)

    def list(self, principal: Principal, query: KeypairQuery) -> Page[Keypair]:
        """GET /keypairs: newest first, filtered, with sealed `next` tokens."""
        filters = query.filters
        pager = Pager(self.deps.token_key(), principal.account, LIST_ROUTE, filters)
        start = pager.start(query.page)
        if "alias" in filters:
            # An alias names at most one keypair: resolve it, then apply the other filters.
            try:
                # resolve() also takes ids; no alias looks like one, so an id matches nothing here.
                alias = filters["alias"]
                found = [] if looks_like_id(alias) else [self.find(principal, alias)]
            except NotFound:
                found = []
            rest = {k: v for k, v in filters.items() if k != "alias"}
            return Page([kp for kp in found if _matches(kp, rest)], None)
        teams = None if principal.is_admin else principal.team_ids
        items, position = self.deps.store.keypairs.page(principal.account, filters, query.page.limit, start,
                                                         teams=teams)
        return pager.page(items, position)

    # -- changes -------------------------------------------------------------------------------------

    def create(self, principal: Principal, sent: KeypairRequest, source_ip: str | None) -> Keypair:
        """POST /keypairs: apply the team and profile rules, generate, then commit keypair + alias claim +
        generation (+ material) + audit, with checks that the team and profile still exist."""
        account = self.accounts.get(principal.account)
        self._check_team(principal, account, sent.team_id)
        profile = self._profile(account, sent)
        req = resolve(sent, profile)
        check_users(self.deps, principal.account, req.allowed_users, "allowed_users")
        check_groups(self.deps, principal.account, req.allowed_groups, "allowed_groups")
        kp_id = new_id("kp")
        gen = self.keys.make(account, kp_id, 1, req.spec, storage=req.storage, alias=req.alias,
                             category=req.category, dynamic=req.type is KeypairType.DYNAMIC,
                             with_certificate=req.generate_certificate)
        kp = Keypair(
            account=principal.account, id=kp_id, alias=req.alias, type=req.type, spec=req.spec,
            category=req.category, storage=req.storage, status=req.status, access=req.access,
            key_id=gen.key_id, key_ref=gen.key_ref, generation=1, public_key=gen.public_key,
            certificate=gen.certificate, created_at=gen.created_at, created_by=principal.user_id,
            refreshed_at=gen.created_at, next_refresh_at=gen.next_refresh_at, allowed_users=req.allowed_users,
            allowed_groups=req.allowed_groups, team_id=req.team_id, profile_id=req.profile_id,
            generate_certificate=req.generate_certificate, refresh_after_sign=req.refresh_after_sign,
        )
        store = self.deps.store
        now = self.deps.clock()
        try:
            tx = store.transaction()
            kp = store.keypairs.stage_create(tx, kp)
            store.generations.stage_add(tx, principal.account, gen)
            if gen.sealed is not None:
                store.keypairs.stage_material(tx, kp_id, principal.account, gen.key_ref, gen.sealed, gen.created_at)
            if req.team_id is not None:
                store.teams.stage_exists(tx, principal.account, req.team_id, on_fail=lambda: ValidationError(
                    "The team was deleted meanwhile.", details={"field": "team_id"}))
            if req.profile_id is not None:
                store.profiles.stage_exists(tx, principal.account, req.profile_id, on_fail=lambda: ValidationError(
                    "The keypair profile was deleted meanwhile.", details={"field": "profile_id"}))
            store.audit.stage(tx, AuditEntry.new(
                Actor(principal.account, principal.user_id, source_ip), now, type=req.type.value, action="generate",
                resource_id=kp_id, resource_alias=req.alias, expires=self.deps.log_expiry(now),
                details={"key_id": gen.key_id, "generation": 1, "algorithm": req.spec.algorithm,
                         "key_size": req.spec.key_size, "curve": req.spec.curve, "storage": req.storage.value,
                         "category": req.category.value, "status": req.status.value, "access": req.access.value,
                         "allowed_users": list(req.allowed_users), "allowed_groups": list(req.allowed_groups),
                         "team_id": req.team_id, "profile_id": req.profile_id},
            ))
            tx.commit()
        except BaseException:
            self.keys.discard(req.storage, gen)
            raise
        log.info("keypair created", extra={"event": "keypair_generate", "account": principal.account,
                                           "keypair_id": kp_id, "outcome": "success"})
        return kp

    def update(self, principal: Principal, ref: str, change: KeypairChange, source_ip: str | None) -> Keypair:
        """PATCH /keypairs/{keypair}: alias, status, access, allowed lists; one transaction, one audit entry."""
        kp = self.find(principal, ref)
        changed = _apply(kp, change)
        if changed.access is Access.OPEN and (changed.allowed_users or changed.allowed_groups):
            if change.access is not None and change.allowed_users is None and change.allowed_groups is None:
                # Opening a keypair clears its lists: they mean nothing for an open keypair.
                changed = replace(changed, allowed_users=(), allowed_groups=())
            else:
                raise ValidationError("allowed_users and allowed_groups need access restricted.",
                                      details={"field": "access"})
        check_users(self.deps, principal.account, tuple(u for u in changed.allowed_users if u not in kp.allowed_users),
                    "allowed_users")
        check_groups(self.deps, principal.account,
                     tuple(g for g in changed.allowed_groups if g not in kp.allowed_groups), "allowed_groups")
        diff = {name: (_plain(getattr(kp, name)), _plain(getattr(changed, name))) for name in _CHANGEABLE
                if getattr(kp, name) != getattr(changed, name)}
        if not diff:
            return kp
        if set(diff) == {"status"}:
            action = "suspend" if changed.status is Status.OFFLINE else "unsuspend"
        else:
            action = "update"
        now = self.deps.clock()
        store = self.deps.store
        tx = store.transaction()
        updated = store.keypairs.stage_update(tx, kp, changed)
        store.audit.stage(tx, AuditEntry.new(
            Actor(principal.account, principal.user_id, source_ip), now, type=kp.type.value, action=action,
            resource_id=kp.id, resource_alias=changed.alias, expires=self.deps.log_expiry(now),
            details={"changes": {name: {"from": old, "to": new} for name, (old, new) in diff.items()}},
        ))
        tx.commit()
        self.states.forget(kp)
        return updated

    def delete(self, principal: Principal, ref: str, source_ip: str | None) -> None:
        """DELETE /keypairs/{keypair}: tombstone, free the alias, destroy the key at once.

        A refresh that commits between our read and our write moves the version on; the delete then
        reads again and retries once, so a dynamic keypair can be deleted while it is refreshed.
        """
        for attempt in (1, 2):
            kp = self.find(principal, ref)
            try:
                self._delete_once(principal, kp, source_ip)
                return
            except Conflict:
                if attempt == 2:
                    raise

    def _delete_once(self, principal: Principal, kp: Keypair, source_ip: str | None) -> None:
        if kp.storage is Storage.HSM:
            # An unreachable token refuses the delete before anything changes: committing first would
            # answer 503 for a keypair that is gone, with its key still on the token.
            self.deps.hsm().health()
        now = self.deps.clock()
        store = self.deps.store
        tx = store.transaction()
        store.keypairs.stage_delete(tx, kp, rfc3339(now))
        store.generations.stage_retire(tx, kp.id, kp.generation, retirement(self.deps, now))
        store.audit.stage(tx, AuditEntry.new(
            Actor(principal.account, principal.user_id, source_ip), now, type=kp.type.value, action="delete",
            resource_id=kp.id, resource_alias=kp.alias, expires=self.deps.log_expiry(now),
            details={"key_id": kp.key_id, "generation": kp.generation},
        ))
        tx.commit()
        self.states.forget(kp)
        # The row no longer references the key, so destroying it now cannot strand a live keypair.
        try:
            self.deps.backend(kp.storage.value).destroy(kp.key_ref)
        except HsmUnavailable:
            # The delete is committed (a 503 would claim nothing changed, and a retry would get 404); the
            # token went away after the check above, and the orphan sweep destroys the unreferenced key.
            log.error("key destroy deferred to the orphan sweep",
                      extra={"event": "keypair_delete", "keypair_id": kp.id, "key_ref": kp.key_ref,
                             "outcome": "destroy_deferred"})

    def _check_team(self, principal: Principal, account: Account, team_id: str | None) -> None:
        """A team keypair needs teams on, a team of the account, and a caller in it (or an admin)."""
        if team_id is None:
            return
        if not account.teams_enabled:
            raise ValidationError("This account does not have teams enabled.", details={"field": "team_id"})
        if self.deps.store.teams.get(account.id, team_id) is None:
            raise ValidationError("No such team in this account.", details={"field": "team_id"})
        if not (principal.is_admin or team_id in principal.team_ids):
            raise Forbidden("Only the team's members and admins can create the team's keypairs.",
                            details={"field": "team_id"})

    def _profile(self, account: Account, sent: KeypairRequest) -> KeypairProfile | None:
        """The request's profile; a team keypair's profile must be allocated to its team."""
        if sent.profile_id is None:
            if account.require_keypair_profile:
                raise ValidationError("This account requires a keypair profile.", details={"field": "profile_id"})
            return None
        profile = self.deps.store.profiles.get(account.id, sent.profile_id)
        if profile is None:
            raise ValidationError("No such keypair profile in this account.", details={"field": "profile_id"})
        if sent.team_id is not None and sent.team_id not in profile.team_ids:
            raise ValidationError("This keypair profile is not allocated to the keypair's team.",
                                  details={"field": "profile_id"})
        return profile


_CHANGEABLE = ("alias", "status", "access", "allowed_users", "allowed_groups")


def retirement(deps: Deps, committed_at: datetime) -> str:
    """`retired_at` of a generation replaced (or deleted) at `committed_at`: plus the retirement grace."""
    return rfc3339(committed_at + timedelta(seconds=deps.settings.retirement_grace_seconds))


def _apply(kp: Keypair, change: KeypairChange) -> Keypair:
    values = {name: getattr(change, name) for name in _CHANGEABLE if getattr(change, name) is not None}
    return replace(kp, **values)


def _plain(value: Any) -> Any:
    """A field's value as an audit entry records it."""
    if isinstance(value, tuple):
        return list(value)
    return value.value if hasattr(value, "value") else value


def _matches(kp: Keypair, filters: dict[str, str]) -> bool:
    values = {"type": kp.type.value, "status": kp.status.value, "storage": kp.storage.value,
              "category": kp.category.value, "algorithm": kp.spec.algorithm}
    return all(values.get(name) == value for name, value in filters.items())
