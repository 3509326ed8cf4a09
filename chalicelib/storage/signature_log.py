"""The signature log: one entry per signature attempt, append-only, one index per filter of docs/api.md.

Index choice (first match wins; the other filters become a FilterExpression): keypair_id →
by_keypair_id; keypair_alias → by_alias; signer → by_signer; status → by_status; otherwise the
account's partition of the table.

A warm signature's only DynamoDB request is `append`: one PutItem built straight in DynamoDB's wire
format (a PynamoDB model costs more CPU than the request itself), conditioned on the key being new.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from chalicelib.domain.logs import LogKey, SignatureEntry, SignatureFilter
from chalicelib.storage import codec
from chalicelib.storage.connection import client
from chalicelib.storage.errors import guarded
from chalicelib.storage.log_queries import Plan, all_of, ascending, by_id, run_query
from chalicelib.storage.paging import Position
from chalicelib.storage.tables import SignatureLogModel
from chalicelib.storage.transaction import Transaction

NEW_KEY = "attribute_not_exists(sk)"
MAX_TRANSACTION_ITEMS = 100
_PLAIN = tuple(f.name for f in fields(SignatureEntry) if f.name not in ("account", "key", "expires"))


def item_of(entry: SignatureEntry) -> dict[str, Any]:
    """The entry as a DynamoDB item, with the index keys of its filters."""
    account = entry.account
    values: dict[str, Any] = {name: getattr(entry, name) for name in _PLAIN}
    values.update(
        account=account,
        sk=entry.key.sort_key,
        id=entry.id,
        expires=int(entry.expires.timestamp()) if entry.expires is not None else None,
        k_keypair_id=f"{account}#{entry.keypair_id}" if entry.keypair_id else None,
        k_alias=f"{account}#{entry.keypair_alias.lower()}" if entry.keypair_alias else None,
        k_signer=f"{account}#{entry.signer}",
        k_status=f"{account}#{entry.status}",
    )
    return codec.encode_item(values)


def _entry(row: SignatureLogModel) -> SignatureEntry:
    values = {name: getattr(row, name) for name in _PLAIN}
    if values["generation"] is not None:
        values["generation"] = int(values["generation"])
    return SignatureEntry(account=row.account, key=LogKey(row.sk), **values)


def plan(account: str, f: SignatureFilter) -> Plan:
    """The index and residual filter for a signature-log query."""
    m = SignatureLogModel
    alias_key = f"{account}#{f.keypair_alias.lower()}" if f.keypair_alias is not None else None
    if f.keypair_id is not None:
        index, attr, value, served = "by_keypair_id", "k_keypair_id", f"{account}#{f.keypair_id}", "keypair_id"
    elif alias_key is not None:
        index, attr, value, served = "by_alias", "k_alias", alias_key, "keypair_alias"
    elif f.signer is not None:
        index, attr, value, served = "by_signer", "k_signer", f"{account}#{f.signer}", "signer"
    elif f.status is not None:
        index, attr, value, served = "by_status", "k_status", f"{account}#{f.status}", "status"
    else:
        index, attr, value, served = None, "account", account, ""
    # The alias is compared through k_alias, which holds it in lower case: aliases are unique
    # case-insensitively, so `Release` and `release` name the same keypair.
    columns: dict[str, Any] = {
        "keypair_id": m.keypair_id == (f.keypair_id or ""),
        "keypair_alias": m.k_alias == (alias_key or ""),
        "signer": m.signer == (f.signer or ""),
        "status": m.status == (f.status or ""),
    }
    residual = [columns[name] for name in columns if getattr(f, name) is not None and name != served]
    return Plan(index, attr, value, all_of(residual))


class SignatureLog:
    """Writes (always conditional on a new key) and queries of the signature log."""

    @property
    def table(self) -> str:
        """This stage's table name."""
        return str(SignatureLogModel.Meta.table_name)

    @guarded
    def append(self, entry: SignatureEntry) -> None:
        """Write one entry: a single conditional PutItem."""
        client().put_item(TableName=self.table, Item=item_of(entry), ConditionExpression=NEW_KEY)

    def stage(self, tx: Transaction, entry: SignatureEntry) -> None:
        """Write the entry in a transaction (refusals, single-use keys, release windows, batches)."""
        tx.put_values(self.table, item_of(entry), NEW_KEY)

    @guarded
    def query(self, account: str, f: SignatureFilter, limit: int, start: Position | None
              ) -> tuple[list[SignatureEntry], Position | None]:
        """One page, newest first."""
        rows, position = run_query(SignatureLogModel, plan(account, f), f.time, limit, start)
        return [_entry(row) for row in rows], position

    @guarded
    def get(self, account: str, entry_id: str) -> SignatureEntry | None:
        """One entry of the account by id, read consistently; None when there is none."""
        row = by_id(SignatureLogModel, account, entry_id)
        return _entry(row) if row is not None else None

    def between(self, account: str, low: str, high: str, page_size: int = 1000) -> Iterator[SignatureEntry]:
        """Entries whose key lies in [low, high], oldest first, read consistently (the transparency log)."""
        return (_entry(row) for row in ascending(SignatureLogModel, account, low, high, page_size))
