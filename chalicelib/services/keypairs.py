"""Keypairs: create, read, list, change and delete, each change with its audit entry in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.expressions.condition import Condition

from chalicelib.clock import dynamic_validity, next_refresh_at, rfc3339
from chalicelib.errors import AliasTaken, Conflict, HsmUnavailable, NotFound, ValidationError
from chalicelib.ids import looks_like_id, new_id
from chalicelib.keys.algorithms import KeySpec, key_id_of, public_key_pem
from chalicelib.keys.backend import NewKey
from chalicelib.pki.certificates import STATIC_CERT_LIFETIME, CertificateInfo, issue_keypair_certificate
from chalicelib.services import pagination
from chalicelib.services.access import Principal
from chalicelib.services.accounts import AccountCache
from chalicelib.services.audit import Actor, audit_item
from chalicelib.services.authorities import Authorities, material_item
from chalicelib.services.deps import Deps
from chalicelib.services.keypair_rules import (
    ACCESSES,
    CATEGORIES,
    PATCH_FIELDS,
    STATUSES,
    STORAGES,
    TYPES,
    check_alias,
    check_fields,
    check_id_list,
    parse_create,
)
from chalicelib.storage.models import (
    AccountModel,
    AliasClaim,
    AuditLogModel,
    CertificateMap,
    GenerationModel,
    KeyMaterialModel,
    KeypairModel,
    UserModel,
)
from chalicelib.storage.paging import page
from chalicelib.storage.tx import cancellation_codes, storage_error, transaction

log = logging.getLogger("rotasign.keypairs")
DUE_SHARD = "due"
LIST_FILTERS = {"type": TYPES, "status": STATUSES, "storage": STORAGES, "category": CATEGORIES,
                "algorithm": ("RSA", "ECDSA", "EdDSA")}


def key_ref_for(keypair_id: str, generation: int, now: datetime) -> str:
    """`<keypair id>/<generation>/<unix time>`: the disk material id or the token label of one key."""
    return f"{keypair_id}/{generation}/{int(now.timestamp())}"


def parse_key_ref(ref: str) -> tuple[str, int, int] | None:
    """(keypair id, generation, created unix time) of a keypair key reference, or None."""
    parts = ref.split("/")
    if len(parts) != 3 or not looks_like_id(parts[0], "kp") or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return parts[0], int(parts[1]), int(parts[2])


def alias_key(alias: str) -> str:
    """Aliases are unique case-insensitively, so `Release` and `release` cannot both exist."""
    return alias.lower()


def cert_map(info: CertificateInfo | None) -> CertificateMap | None:
    """A certificate as stored."""
    return CertificateMap(**info.as_dict()) if info else None


def cert_dict(value: CertificateMap | None) -> dict[str, str] | None:
    """A stored certificate in API.md form."""
    if value is None:
        return None
    return {k: getattr(value, k) for k in ("serial", "pem", "not_before", "not_after", "issuer")}


def keypair_dict(kp: KeypairModel) -> dict[str, Any]:
    """The API.md Keypair object."""
    return {
        "id": kp.id,
        "alias": kp.alias,
        "type": kp.type,
        "algorithm": kp.algorithm,
        "key_size": int(kp.key_size) if kp.key_size is not None else None,
        "curve": kp.curve,
        "category": kp.category,
        "storage": kp.storage,
        "status": kp.status,
        "access": kp.access,
        "allowed_users": list(kp.allowed_users or []),
        "allowed_groups": list(kp.allowed_groups or []),
        "team_id": kp.team_id,
        "profile_id": kp.profile_id,
        "generate_certificate": bool(kp.generate_certificate),
        "refresh_after_sign": bool(kp.refresh_after_sign),
        "key_id": kp.key_id,
        "generation": int(kp.generation),
        "public_key": kp.public_key,
        "certificate": cert_dict(kp.certificate),
        "created_at": kp.created_at,
        "created_by": kp.created_by,
        "refreshed_at": kp.refreshed_at,
        "next_refresh_at": kp.next_refresh_at if kp.type == "dynamic" else None,
    }


def spec_of(kp: KeypairModel) -> KeySpec:
    """The key parameters of a stored keypair."""
    return KeySpec(kp.algorithm, int(kp.key_size) if kp.key_size is not None else None, kp.curve)


@dataclass(frozen=True)
class KeyGeneration:
    """A new key with its certificate, ready to be committed as a keypair generation."""

    new: NewKey
    key_id: str
    certificate: CertificateInfo | None
    created: datetime
    next_refresh_at: datetime | None


class KeypairService:
    """The keypair rules; every outside capability comes in through `deps`."""

    def __init__(self, deps: Deps, accounts: AccountCache, authorities: Authorities) -> None:
        self.deps = deps
        self.accounts = accounts
        self.authorities = authorities

    # -- reading -----------------------------------------------------------------------------

    def resolve(self, account: str, ref: str, *, consistent: bool = True) -> KeypairModel:
        """The live keypair named by id or alias in `account`; raises NotFound."""
        try:
            if not looks_like_id(ref, "kp"):
                if not isinstance(ref, str) or len(ref) > 64:
                    raise NotFound("No such keypair.")
                claim = AliasClaim.get(account, alias_key(ref), consistent_read=True)
                ref = claim.keypair_id
            kp = KeypairModel.get(account, ref, consistent_read=consistent)
        except DoesNotExist:
            raise NotFound("No such keypair.") from None
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        if kp.deleted_at:
            raise NotFound("No such keypair.")
        return kp

    def get(self, principal: Principal, ref: str) -> dict[str, Any]:
        """GET /keypairs/{keypair}."""
        return keypair_dict(self.resolve(principal.account, ref))

    def list(self, principal: Principal, params: dict[str, str]) -> dict[str, Any]:
        """GET /keypairs with filters, newest first, sealed `next` tokens."""
        allowed = {"alias", "limit", "next", *LIST_FILTERS}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValidationError(f"Unknown filter {unknown[0]!r}.", details={"field": unknown[0]})
        limit = pagination.parse_limit(params.get("limit"))
        filters = {k: params[k] for k in sorted(params) if k not in ("limit", "next")}
        for field, choices in LIST_FILTERS.items():
            if field in filters and filters[field] not in choices:
                raise ValidationError(f"{field} must be one of {', '.join(choices)}.", details={"field": field})
        key = self.deps.settings.token_key
        start = None
        if params.get("next"):
            start = pagination.open_token(key, params["next"], principal.account, "keypairs", filters)
        if "alias" in filters:
            try:
                # resolve() also takes ids; no alias looks like one, so an id matches nothing here.
                items = [] if looks_like_id(filters["alias"]) else [self.resolve(principal.account, filters["alias"])]
            except NotFound:
                items = []
            items = [kp for kp in items if all(getattr(kp, f) == v for f, v in filters.items() if f != "alias")]
            return {"items": [keypair_dict(kp) for kp in items], "next": None}
        condition: Condition = KeypairModel.deleted_at.does_not_exist()
        for field, value in filters.items():
            condition &= getattr(KeypairModel, field) == value

        def run(start_key: dict[str, Any] | None) -> Any:
            return KeypairModel.query(
                principal.account,
                filter_condition=condition,
                scan_index_forward=False,
                last_evaluated_key=start_key,
                page_size=min(limit + 1, 500),
            )

        try:
            items, position = page(run, limit, start, ("account", "id"))
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        token = pagination.seal(key, principal.account, "keypairs", filters, position) if position else None
        return {"items": [keypair_dict(kp) for kp in items], "next": token}

    # -- keys and certificates ---------------------------------------------------------------

    def make_generation(
        self,
        account: AccountModel,
        kp_id: str,
        generation: int,
        spec: KeySpec,
        *,
        storage: str,
        alias: str,
        category: str,
        kind: str,
        with_certificate: bool,
    ) -> KeyGeneration:
        """Generate a key in the keypair's backend and issue its certificate (nothing committed yet).

        If issuing fails the new key is destroyed, so a failure here leaves nothing behind.
        """
        now = self.deps.clock()
        interval = self.deps.settings.schedule_seconds
        backend = self.deps.backend(storage)
        new = backend.generate(account.id, key_ref_for(kp_id, generation, now), spec)
        try:
            certificate = None
            due = next_refresh_at(now, interval) if kind == "dynamic" else None
            if with_certificate:
                if kind == "dynamic":
                    not_before, not_after = dynamic_validity(now, interval)
                else:
                    not_before, not_after = now - timedelta(minutes=5), now + STATIC_CERT_LIFETIME
                issuer = self.authorities.get(account, category)
                cert = issue_keypair_certificate(
                    issuer.key, issuer.certificate, new.public_key, alias=alias,
                    account_name=account.name, category=category, not_before=not_before, not_after=not_after,
                )
                certificate = CertificateInfo.of(cert)
        except BaseException:
            backend.destroy(new.key_ref)
            raise
        return KeyGeneration(new, key_id_of(new.public_key), certificate, now, due)

    def generation_item(self, account: str, kp_id: str, generation: int, gen: KeyGeneration) -> GenerationModel:
        """The generations-table row of a new key."""
        return GenerationModel(
            kp_id,
            generation,
            account=account,
            key_id=gen.key_id,
            public_key=public_key_pem(gen.new.public_key),
            certificate=cert_map(gen.certificate),
            created_at=rfc3339(gen.created),
        )

    def discard(self, storage: str, gen: KeyGeneration) -> None:
        """Destroy a key whose transaction did not commit."""
        try:
            self.deps.backend(storage).destroy(gen.new.key_ref)
        except Exception:
            # The sweep removes an unreferenced key later; the caller's own error matters more.
            log.warning("could not destroy an uncommitted key", extra={"key_ref": gen.new.key_ref})

    def _retention(self) -> int:
        return self.deps.settings.log_retention_days

    # -- changes -------------------------------------------------------------------------------

    def create(self, principal: Principal, body: Any, source_ip: str | None) -> dict[str, Any]:
        """POST /keypairs: validate, generate, and commit keypair + alias claim + generation + audit."""
        account = self.accounts.get(principal.account)
        req = parse_create(
            body, teams_enabled=bool(account.teams_enabled), require_profile=bool(account.require_keypair_profile)
        )
        self._check_users_exist(principal.account, req.allowed_users)
        kp_id = new_id("kp")
        gen = self.make_generation(
            account, kp_id, 1, req.spec, storage=req.storage, alias=req.alias, category=req.category,
            kind=req.type, with_certificate=req.generate_certificate,
        )
        now_iso = rfc3339(gen.created)
        kp = KeypairModel(
            principal.account,
            kp_id,
            alias=req.alias,
            type=req.type,
            algorithm=req.spec.algorithm,
            key_size=req.spec.key_size,
            curve=req.spec.curve,
            category=req.category,
            storage=req.storage,
            status=req.status,
            access=req.access,
            allowed_users=req.allowed_users,
            allowed_groups=req.allowed_groups,
            team_id=req.team_id,
            profile_id=req.profile_id,
            generate_certificate=req.generate_certificate,
            refresh_after_sign=req.refresh_after_sign,
            key_id=gen.key_id,
            key_ref=gen.new.key_ref,
            generation=1,
            public_key=public_key_pem(gen.new.public_key),
            certificate=cert_map(gen.certificate),
            created_at=now_iso,
            created_by=principal.user_id,
            refreshed_at=now_iso,
            next_refresh_at=rfc3339(gen.next_refresh_at) if gen.next_refresh_at else None,
            due_shard=DUE_SHARD if req.type == "dynamic" else None,
        )
        who = Actor(principal.account, principal.user_id, source_ip)
        try:
            with transaction() as tx:
                tx.save(AliasClaim(principal.account, alias_key(req.alias), keypair_id=kp_id),
                        condition=AliasClaim.alias_key.does_not_exist())
                tx.save(kp, condition=KeypairModel.id.does_not_exist())
                tx.save(self.generation_item(principal.account, kp_id, 1, gen),
                        condition=GenerationModel.generation.does_not_exist())
                if gen.new.sealed is not None:
                    tx.save(material_item(principal.account, gen.new.key_ref, gen.new.sealed, now_iso),
                            condition=KeyMaterialModel.id.does_not_exist())
                tx.save(
                    audit_item(
                        who, gen.created, type=req.type, action="generate", resource_id=kp_id,
                        resource_alias=req.alias, retention_days=self._retention(),
                        details={"key_id": gen.key_id, "generation": 1, "algorithm": req.spec.algorithm,
                                 "key_size": req.spec.key_size, "curve": req.spec.curve,
                                 "storage": req.storage, "category": req.category},
                    ),
                    condition=AuditLogModel.sk.does_not_exist(),
                )
        except TransactWriteError as exc:
            self.discard(req.storage, gen)
            if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                raise AliasTaken(details={"alias": req.alias}) from exc
            raise storage_error(exc) from exc
        except BaseException:
            self.discard(req.storage, gen)
            raise
        kp.version = 1
        log.info("keypair created", extra={"event": "keypair_generate", "account": principal.account,
                                           "keypair_id": kp_id, "outcome": "success"})
        return keypair_dict(kp)

    def _check_users_exist(self, account: str, user_ids: Sequence[str]) -> None:
        if not user_ids:
            return
        try:
            found = {u.id for u in UserModel.batch_get([(account, uid) for uid in user_ids]) if not u.deleted_at}
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        missing = [uid for uid in user_ids if uid not in found]
        if missing:
            raise ValidationError(f"No such user {missing[0]} in this account.", details={"field": "allowed_users"})

    def patch(self, principal: Principal, ref: str, body: Any, source_ip: str | None) -> dict[str, Any]:
        """PATCH /keypairs/{keypair}: alias, status, access, allowed lists; one transaction, one audit entry."""
        body = check_fields(body, PATCH_FIELDS)
        kp = self.resolve(principal.account, ref)
        changes: dict[str, Any] = {}
        if "alias" in body:
            alias = check_alias(body["alias"])
            if alias != kp.alias:
                changes["alias"] = alias
        for field, choices in (("status", STATUSES), ("access", ACCESSES)):
            if field in body:
                value = body[field]
                if not isinstance(value, str) or value not in choices:
                    raise ValidationError(f"{field} must be one of {', '.join(choices)}.", details={"field": field})
                if value != getattr(kp, field):
                    changes[field] = value
        for field, prefix in (("allowed_users", "usr"), ("allowed_groups", "grp")):
            if field in body:
                ids = check_id_list(body[field], field, prefix)
                if ids != list(getattr(kp, field) or []):
                    changes[field] = ids
        access = changes.get("access", kp.access)
        users = changes.get("allowed_users", list(kp.allowed_users or []))
        groups = changes.get("allowed_groups", list(kp.allowed_groups or []))
        if access == "open" and (users or groups):
            if "access" in changes and not ({"allowed_users", "allowed_groups"} & set(body)):
                # Opening a keypair clears its lists: they mean nothing for an open keypair.
                changes["allowed_users"], changes["allowed_groups"] = [], []
            else:
                raise ValidationError("allowed_users and allowed_groups need access restricted.",
                                      details={"field": "access"})
        if "allowed_users" in changes:
            self._check_users_exist(principal.account, changes["allowed_users"])
        if not changes:
            return keypair_dict(kp)
        now = self.deps.clock()
        if "status" in changes and len(changes) == 1:
            action = "suspend" if changes["status"] == "offline" else "unsuspend"
        else:
            action = "update"
        before = {field: (list(getattr(kp, field) or []) if field.startswith("allowed") else getattr(kp, field))
                  for field in changes}
        who = Actor(principal.account, principal.user_id, source_ip)
        old_alias = kp.alias
        # A change of case keeps the claim (aliases are claimed case-insensitively); one transaction
        # may not delete and put the same item.
        moves_claim = "alias" in changes and alias_key(changes["alias"]) != alias_key(old_alias)
        try:
            with transaction() as tx:
                if moves_claim:
                    tx.delete(AliasClaim(principal.account, alias_key(old_alias)),
                              condition=AliasClaim.keypair_id == kp.id)
                    tx.save(AliasClaim(principal.account, alias_key(changes["alias"]), keypair_id=kp.id),
                            condition=AliasClaim.alias_key.does_not_exist())
                tx.update(kp, actions=[getattr(KeypairModel, f).set(v) for f, v in changes.items()],
                          condition=KeypairModel.deleted_at.does_not_exist())
                tx.save(
                    audit_item(who, now, type=kp.type, action=action, resource_id=kp.id,
                               resource_alias=changes.get("alias", old_alias), retention_days=self._retention(),
                               details={"changes": {f: {"from": before[f], "to": v} for f, v in changes.items()}}),
                    condition=AuditLogModel.sk.does_not_exist(),
                )
        except TransactWriteError as exc:
            codes = cancellation_codes(exc)
            if moves_claim and len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise AliasTaken(details={"alias": changes["alias"]}) from exc
            if "ConditionalCheckFailed" in codes:
                raise Conflict() from exc
            raise storage_error(exc) from exc
        return keypair_dict(self.resolve(principal.account, kp.id))

    def delete(self, principal: Principal, ref: str, source_ip: str | None) -> None:
        """DELETE /keypairs/{keypair}: tombstone, free the alias, destroy the key at once.

        A refresh that commits between our read and our write moves the version on; the delete then
        reads again and retries once, so a dynamic keypair can be deleted while it is refreshed.
        """
        for attempt in (1, 2):
            kp = self.resolve(principal.account, ref)
            try:
                self._delete_once(principal, kp, source_ip)
                return
            except Conflict:
                if attempt == 2:
                    raise

    def _delete_once(self, principal: Principal, kp: KeypairModel, source_ip: str | None) -> None:
        if kp.storage == "hsm":
            # An unreachable token refuses the delete before anything changes: committing first would
            # answer 503 for a keypair that is gone, with its key still on the token.
            self.deps.hsm().health()
        now = self.deps.clock()
        who = Actor(principal.account, principal.user_id, source_ip)
        try:
            with transaction() as tx:
                tx.update(
                    kp,
                    actions=[KeypairModel.deleted_at.set(rfc3339(now)), KeypairModel.due_shard.remove(),
                             KeypairModel.next_refresh_at.remove()],
                    condition=KeypairModel.deleted_at.does_not_exist(),
                )
                tx.delete(AliasClaim(principal.account, alias_key(kp.alias)), condition=AliasClaim.keypair_id == kp.id)
                tx.update(GenerationModel(kp.id, int(kp.generation)),
                          actions=[GenerationModel.retired_at.set(rfc3339(now))],
                          condition=GenerationModel.generation.exists())
                if kp.storage == "disk":
                    tx.delete(KeyMaterialModel(kp.key_ref))
                tx.save(
                    audit_item(who, now, type=kp.type, action="delete", resource_id=kp.id, resource_alias=kp.alias,
                               retention_days=self._retention(),
                               details={"key_id": kp.key_id, "generation": int(kp.generation)}),
                    condition=AuditLogModel.sk.does_not_exist(),
                )
        except TransactWriteError as exc:
            if "ConditionalCheckFailed" in cancellation_codes(exc):
                raise Conflict() from exc
            raise storage_error(exc) from exc
        # The row no longer references the key, so destroying it now cannot strand a live keypair.
        try:
            self.deps.backend(kp.storage).destroy(kp.key_ref)
        except HsmUnavailable:
            # The delete is committed (a 503 would claim nothing changed, and a retry would get 404); the
            # token went away after the check above, and the orphan sweep destroys the unreferenced key.
            log.error("key destroy deferred to the orphan sweep",
                      extra={"event": "keypair_delete", "keypair_id": kp.id, "key_ref": kp.key_ref,
                             "outcome": "destroy_deferred"})
