"""Keypair rows and their alias claims: reads, the state the signing path reads, and staged changes.

Aliases are claimed by their own item (account + lower-case alias), written in the same transaction
that creates, renames or deletes the keypair: an index cannot enforce uniqueness. Live dynamic keypairs
carry `due_shard`, which puts them in the sparse `due` index the scheduler reads, spread over
DUE_SHARDS partitions so that no single index partition takes every refresh's write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.domain.keypairs import (
    Access,
    Category,
    Certificate,
    Keypair,
    KeypairType,
    SealedKey,
    Status,
    Storage,
)
from chalicelib.domain.keyspec import KeySpec
from chalicelib.errors import AliasTaken, Conflict, Throttled
from chalicelib.storage.connection import connection
from chalicelib.storage.errors import guarded
from chalicelib.storage.paging import Position, page
from chalicelib.storage.tables import AliasClaim, CertificateMap, KeyMaterialModel, KeypairModel
from chalicelib.storage.transaction import OnFail, Transaction

# The due index's partitions. Fixed for good: a row keeps the shard it was created with, and the tick
# reads exactly these. 64 keeps each partition far below DynamoDB's 1,000 writes/s at a million keypairs.
DUE_SHARDS = 64
# The fields a keypair list can filter on (served by a FilterExpression over the account's partition).
LIST_FILTERS = ("type", "status", "storage", "category", "algorithm")
_BATCH_TRIES = 4


def alias_key(alias: str) -> str:
    """Aliases are unique case-insensitively, so `Release` and `release` cannot both exist."""
    return alias.lower()


def due_shard(keypair_id: str) -> str:
    """The due-index partition of a keypair: a stable hash of its id."""
    number = int.from_bytes(hashlib.sha256(keypair_id.encode()).digest()[:4], "big") % DUE_SHARDS
    return f"due#{number:02d}"


def due_shards() -> list[str]:
    """Every partition of the due index, in order."""
    return [f"due#{number:02d}" for number in range(DUE_SHARDS)]


def certificate_of(value: Any) -> Certificate | None:
    """A stored certificate map (model attribute or plain dict) as a domain value."""
    if value is None:
        return None
    fields = value if isinstance(value, Mapping) else value.as_dict()
    return Certificate(str(fields["serial"]), str(fields["pem"]), str(fields["not_before"]),
                       str(fields["not_after"]), str(fields["issuer"]))


def certificate_map(cert: Certificate | None) -> CertificateMap | None:
    """A certificate as stored."""
    return CertificateMap(**cert.as_dict()) if cert is not None else None


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())


def _keypair(row: KeypairModel) -> Keypair:
    return Keypair(
        account=row.account,
        id=row.id,
        alias=row.alias,
        type=KeypairType(row.type),
        spec=KeySpec(row.algorithm, int(row.key_size) if row.key_size is not None else None, row.curve),
        category=Category(row.category),
        storage=Storage(row.storage),
        status=Status(row.status),
        access=Access(row.access),
        key_id=row.key_id,
        key_ref=row.key_ref,
        generation=int(row.generation),
        public_key=row.public_key,
        certificate=certificate_of(row.certificate),
        created_at=row.created_at,
        created_by=row.created_by,
        refreshed_at=row.refreshed_at,
        next_refresh_at=row.next_refresh_at,
        allowed_users=_strings(row.allowed_users),
        allowed_groups=_strings(row.allowed_groups),
        team_id=row.team_id,
        profile_id=row.profile_id,
        generate_certificate=bool(row.generate_certificate),
        refresh_after_sign=bool(row.refresh_after_sign),
        deleted_at=row.deleted_at,
        version=int(row.version or 0),
    )


def _row(kp: Keypair) -> KeypairModel:
    version: dict[str, Any] = {"version": kp.version} if kp.version else {}
    return KeypairModel(
        kp.account,
        kp.id,
        alias=kp.alias,
        type=kp.type.value,
        algorithm=kp.spec.algorithm,
        key_size=kp.spec.key_size,
        curve=kp.spec.curve,
        category=kp.category.value,
        storage=kp.storage.value,
        status=kp.status.value,
        access=kp.access.value,
        allowed_users=list(kp.allowed_users),
        allowed_groups=list(kp.allowed_groups),
        team_id=kp.team_id,
        profile_id=kp.profile_id,
        generate_certificate=kp.generate_certificate,
        refresh_after_sign=kp.refresh_after_sign,
        key_id=kp.key_id,
        key_ref=kp.key_ref,
        generation=kp.generation,
        public_key=kp.public_key,
        certificate=certificate_map(kp.certificate),
        created_at=kp.created_at,
        created_by=kp.created_by,
        refreshed_at=kp.refreshed_at,
        next_refresh_at=kp.next_refresh_at,
        due_shard=due_shard(kp.id) if kp.dynamic and not kp.deleted_at else None,
        deleted_at=kp.deleted_at,
        **version,
    )


def _in_teams(teams: frozenset[str]) -> Condition:
    """No team, or one of `teams` (DynamoDB's IN takes at most 100 operands, so larger sets are chunked)."""
    condition: Condition = KeypairModel.team_id.does_not_exist()
    ordered = sorted(teams)
    for start in range(0, len(ordered), 99):
        condition |= KeypairModel.team_id.is_in(*ordered[start:start + 99])
    return condition


@dataclass(frozen=True)
class StoredMaterial:
    """A sealed private key and the generation key it belongs to."""

    owner: str
    key_ref: str
    account: str
    sealed: SealedKey


def _material(item: KeyMaterialModel) -> StoredMaterial:
    return StoredMaterial(item.id, item.key_ref, item.account,
                          SealedKey(bytes(item.ciphertext), bytes(item.nonce), bytes(item.wrapped_key)))


@dataclass(frozen=True)
class DueKey:
    """A due keypair as the due index shows it (possibly stale: the index is eventually consistent)."""

    account: str
    keypair_id: str
    next_refresh_at: str


@dataclass(frozen=True)
class DueKeypair:
    """What a refresh message needs of a due keypair."""

    account: str
    keypair_id: str
    generation: int
    next_refresh_at: str


class KeypairRepository:
    """The keypairs table, the alias claims and the key-material table."""

    # -- reads -------------------------------------------------------------------------------------

    @guarded
    def get(self, account: str, keypair_id: str) -> Keypair | None:
        """The row (tombstones included), read consistently; None when there is none."""
        try:
            return _keypair(KeypairModel.get(account, keypair_id, consistent_read=True))
        except DoesNotExist:
            return None

    @guarded
    def resolve_alias(self, account: str, alias: str) -> str | None:
        """The id of the keypair that holds `alias` now, or None."""
        try:
            return str(AliasClaim.get(account, alias_key(alias), consistent_read=True).keypair_id)
        except DoesNotExist:
            return None

    @guarded
    def read_with_material(self, account: str, keypair_id: str) -> tuple[Keypair | None, StoredMaterial | None]:
        """The row and its current key material in one strongly consistent BatchGetItem.

        PynamoDB's batch_get spans one model, so the two-table request is built here. The two reads are
        not one snapshot: the caller checks that the material's key_ref is the row's.
        """
        kp_table, mat_table = KeypairModel.Meta.table_name, KeyMaterialModel.Meta.table_name
        request: dict[str, Any] = {
            kp_table: {"Keys": [{"account": {"S": account}, "id": {"S": keypair_id}}], "ConsistentRead": True},
            mat_table: {"Keys": [{"id": {"S": keypair_id}}], "ConsistentRead": True},
        }
        found: dict[str, list[dict[str, Any]]] = {}
        for _ in range(_BATCH_TRIES):
            data = connection().dispatch("BatchGetItem", {"RequestItems": request})
            for table, items in data.get("Responses", {}).items():
                found.setdefault(table, []).extend(items)
            request = data.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise Throttled("Storage is throttling requests; retry later.")
        rows, materials = found.get(kp_table, []), found.get(mat_table, [])
        kp = _keypair(KeypairModel.from_raw_data(rows[0])) if rows else None
        material = _material(KeyMaterialModel.from_raw_data(materials[0])) if materials else None
        return kp, material

    @guarded
    def material(self, owner: str) -> StoredMaterial | None:
        """The key material kept for `owner` (a keypair id or an authority reference), or None."""
        try:
            return _material(KeyMaterialModel.get(owner, consistent_read=True))
        except DoesNotExist:
            return None

    @guarded
    def page(
        self, account: str, filters: Mapping[str, str], limit: int, start: Position | None,
        *, teams: frozenset[str] | None = None,
    ) -> tuple[list[Keypair], Position | None]:
        """Live keypairs of the account, newest first, up to `limit`, from an exclusive start position.

        `teams`, when given, keeps only keypairs of no team or of one of those teams (a caller's view).
        With a filter each request reads a full 1 MB page (no `Limit`): DynamoDB applies `Limit` before
        the filter, so a small limit over a sparse filter would cost one round trip per `limit` rows.
        """
        condition: Condition = KeypairModel.deleted_at.does_not_exist()
        for name in LIST_FILTERS:
            if name in filters:
                condition &= getattr(KeypairModel, name) == filters[name]
        if teams is not None:
            condition &= _in_teams(teams)
        page_size = None if set(filters) & set(LIST_FILTERS) or teams is not None else min(limit + 1, 500)

        def run(start_key: Position | None) -> Any:
            return KeypairModel.query(account, filter_condition=condition, scan_index_forward=False,
                                      last_evaluated_key=start_key, page_size=page_size)

        rows, position = page(run, limit, start, ("account", "id"))
        return [_keypair(row) for row in rows], position

    @guarded
    def live_teams(self, account: str, keypair_ids: list[str]) -> dict[str, str | None]:
        """Live keypairs among `keypair_ids` (at most 100), each with its team id (None: no team)."""
        keys = [(account, kid) for kid in dict.fromkeys(keypair_ids)]
        rows = KeypairModel.batch_get(keys, consistent_read=True, attributes_to_get=["id", "team_id", "deleted_at"])
        return {row.id: row.team_id for row in rows if not row.deleted_at}

    @guarded
    def due_page(
        self, shard: str, bound: str, start: Position | None, limit: int
    ) -> tuple[list[DueKey], Position | None]:
        """Up to `limit` keypairs of one due-index shard with `next_refresh_at` ≤ bound, oldest first.

        One index query (eventually consistent); the position continues after the last key read, None at the end.
        """
        results = KeypairModel.due.query(shard, KeypairModel.next_refresh_at <= bound, limit=limit,
                                         page_size=limit, last_evaluated_key=start)
        keys = [DueKey(item.account, item.id, item.next_refresh_at) for item in results]
        return keys, results.last_evaluated_key

    @guarded
    def due_details(self, keys: list[tuple[str, str]]) -> list[DueKeypair]:
        """Generation and due time of up to 100 due keypairs, read consistently; drops rows no longer live."""
        attributes = ["account", "id", "type", "generation", "next_refresh_at", "deleted_at"]
        found = []
        for row in KeypairModel.batch_get(keys, consistent_read=True, attributes_to_get=attributes):
            if row.deleted_at or row.type != KeypairType.DYNAMIC.value or not row.next_refresh_at:
                continue
            found.append(DueKeypair(row.account, row.id, int(row.generation), row.next_refresh_at))
        return found

    # -- staged writes -------------------------------------------------------------------------------

    def stage_create(self, tx: Transaction, kp: Keypair) -> Keypair:
        """Claim the alias and write the new row; returns the keypair at version 1. AliasTaken on a clash."""
        tx.put(AliasClaim(kp.account, alias_key(kp.alias), keypair_id=kp.id),
               AliasClaim.alias_key.does_not_exist(), on_fail=lambda: AliasTaken(details={"alias": kp.alias}))
        tx.put(_row(replace(kp, version=0)), KeypairModel.id.does_not_exist())
        return replace(kp, version=1)

    def stage_update(self, tx: Transaction, kp: Keypair, changed: Keypair, *, on_fail: OnFail | None = None) -> Keypair:
        """Write the fields that differ between `kp` (as read) and `changed`; moves the alias claim on a rename.

        The version condition makes a concurrent change a Conflict (or `on_fail()`), never a lost update.
        """
        old, new = _row(kp), _row(changed)
        actions: list[Action] = []
        for name in ("alias", "status", "access", "allowed_users", "allowed_groups", "team_id", "profile_id"):
            value = getattr(new, name)
            if value != getattr(old, name):
                attr = getattr(KeypairModel, name)
                actions.append(attr.remove() if value is None else attr.set(value))
        if alias_key(changed.alias) != alias_key(kp.alias):
            # One transaction may not write one item twice, so a change of case keeps the claim.
            tx.delete(AliasClaim(kp.account, alias_key(kp.alias)), AliasClaim.keypair_id == kp.id)
            tx.put(AliasClaim(kp.account, alias_key(changed.alias), keypair_id=kp.id),
                   AliasClaim.alias_key.does_not_exist(),
                   on_fail=lambda: AliasTaken(details={"alias": changed.alias}))
        tx.update(old, actions, KeypairModel.deleted_at.does_not_exist(), on_fail=on_fail or Conflict)
        return replace(changed, version=kp.version + 1)

    def stage_delete(self, tx: Transaction, kp: Keypair, at: str, *, on_fail: OnFail | None = None) -> None:
        """Tombstone the row (out of the due index), free its alias, delete its key material."""
        tx.update(
            _row(kp),
            [KeypairModel.deleted_at.set(at), KeypairModel.due_shard.remove(), KeypairModel.next_refresh_at.remove()],
            KeypairModel.deleted_at.does_not_exist(),
            on_fail=on_fail or Conflict,
        )
        tx.delete(AliasClaim(kp.account, alias_key(kp.alias)), AliasClaim.keypair_id == kp.id)
        if kp.storage is Storage.DISK:
            tx.delete(KeyMaterialModel(kp.id))

    def stage_new_generation(self, tx: Transaction, kp: Keypair, moved: Keypair, *, on_fail: OnFail) -> Keypair:
        """Move the row from `kp`'s generation to `moved`'s; fails (`on_fail`) unless the row is as read.

        Conditions: same version (PynamoDB's), same generation, not deleted, still dynamic.
        """
        actions: list[Action] = [
            KeypairModel.key_id.set(moved.key_id),
            KeypairModel.key_ref.set(moved.key_ref),
            KeypairModel.generation.set(moved.generation),
            KeypairModel.public_key.set(moved.public_key),
            KeypairModel.refreshed_at.set(moved.refreshed_at or moved.created_at),
        ]
        certificate = certificate_map(moved.certificate)
        actions.append(KeypairModel.certificate.set(certificate) if certificate else KeypairModel.certificate.remove())
        if moved.next_refresh_at is not None:
            actions.append(KeypairModel.next_refresh_at.set(moved.next_refresh_at))
        condition = ((KeypairModel.generation == kp.generation) & KeypairModel.deleted_at.does_not_exist()
                     & (KeypairModel.type == KeypairType.DYNAMIC.value))
        tx.update(_row(kp), actions, condition, on_fail=on_fail)
        return replace(moved, version=kp.version + 1)

    def stage_material(self, tx: Transaction, owner: str, account: str, key_ref: str, sealed: SealedKey,
                       created_at: str, *, replaces: str | None = None, on_fail: OnFail | None = None) -> None:
        """Write the sealed key of `owner`; `replaces` names the key_ref it must overwrite (a refresh).

        Overwriting is what destroys a disk key: its ciphertext is gone when the refresh commits.
        """
        item = KeyMaterialModel(owner, key_ref=key_ref, account=account, ciphertext=sealed.ciphertext,
                                nonce=sealed.nonce, wrapped_key=sealed.wrapped_key, created_at=created_at)
        condition = KeyMaterialModel.id.does_not_exist() if replaces is None else KeyMaterialModel.key_ref == replaces
        tx.put(item, condition, on_fail=on_fail)

