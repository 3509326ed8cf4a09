"""The signature log: one entry per signature attempt, append-only, one index per filter of docs/api.md, spread
over the account's write shards.

Index choice (first match wins; the other filters become a FilterExpression): keypair_id →
by_keypair_id; keypair_alias → by_alias; signer → by_signer; status `failed` → by_status (only
refusals are in it); otherwise the account's partitions of the table.

The time-stamp token is most of an entry (~2.2 KB of base64 in a ~3.1 KB entry): it is stored as its
DER, deflated (~1 KB), which brings a success entry under 2 KB, two write units instead of four.

A warm signature's only DynamoDB request is `append`: one PutItem built straight in DynamoDB's wire
format (a PynamoDB model costs more CPU than the request itself), conditioned on the key being new.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from chalicelib.domain.logs import LogKey, SignatureEntry, SignatureFilter
from chalicelib.storage import codec
from chalicelib.storage.connection import client
from chalicelib.storage.errors import guarded
from chalicelib.storage.log_queries import LogPosition, Plan, ShardedLog, all_of, ascending, by_id, run_query
from chalicelib.storage.shards import shard_of, sharded
from chalicelib.storage.tables import SignatureLogModel
from chalicelib.storage.transaction import Transaction

NEW_KEY = "attribute_not_exists(sk)"
MAX_TRANSACTION_ITEMS = 100
_PLAIN = tuple(f.name for f in fields(SignatureEntry)
               if f.name not in ("account", "key", "expires", "timestamp_token"))
FAILED = "failed"  # the one status with an index (by_status is sparse)
# First byte of a stored token: its DER deflated (a standard base64 token, all the signing path makes),
# or, for any other text, the text deflated.
_DER, _TEXT = b"\x01", b"\x00"


def pack_token(token: str) -> bytes:
    """A time-stamp token as stored: deflated DER when that gives back exactly the same base64."""
    try:
        der = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        der = None
    if der is not None and base64.b64encode(der).decode() == token:
        return _DER + zlib.compress(der)
    return _TEXT + zlib.compress(token.encode())


def unpack_token(stored: bytes) -> str:
    """The token as it was given to `pack_token`."""
    raw = zlib.decompress(stored[1:])
    return base64.b64encode(raw).decode() if stored[:1] == _DER else raw.decode()


def item_of(entry: SignatureEntry, shards: int) -> dict[str, Any]:
    """The entry as a DynamoDB item in its shard, with the index keys of its filters."""
    account = entry.account
    shard = shard_of(entry.id[4:], shards)

    def key(value: str) -> str:
        return sharded(f"{account}#{value}", shard)

    values: dict[str, Any] = {name: getattr(entry, name) for name in _PLAIN}
    values.update(
        pk=sharded(account, shard),
        sk=entry.key.sort_key,
        timestamp_token=pack_token(entry.timestamp_token) if entry.timestamp_token is not None else None,
        expires=int(entry.expires.timestamp()) if entry.expires is not None else None,
        k_keypair_id=key(entry.keypair_id) if entry.keypair_id else None,
        k_alias=key(entry.keypair_alias.lower()) if entry.keypair_alias else None,
        k_signer=key(entry.signer),
        k_status=key(entry.status) if entry.status == FAILED else None,
    )
    return codec.encode_item(values)


def _entry(row: SignatureLogModel) -> SignatureEntry:
    values = {name: getattr(row, name) for name in _PLAIN}
    if values["generation"] is not None:
        values["generation"] = int(values["generation"])
    token = unpack_token(bytes(row.timestamp_token)) if row.timestamp_token is not None else None
    return SignatureEntry(account=row.account, key=LogKey(row.sk), timestamp_token=token, **values)


def plan(account: str, f: SignatureFilter) -> Plan:
    """The index and residual filter for a signature-log query."""
    m = SignatureLogModel
    alias = f.keypair_alias.lower() if f.keypair_alias is not None else None
    if f.keypair_id is not None:
        index, attr, value, served = "by_keypair_id", "k_keypair_id", f"{account}#{f.keypair_id}", "keypair_id"
    elif alias is not None:
        index, attr, value, served = "by_alias", "k_alias", f"{account}#{alias}", "keypair_alias"
    elif f.signer is not None:
        index, attr, value, served = "by_signer", "k_signer", f"{account}#{f.signer}", "signer"
    elif f.status == FAILED:
        index, attr, value, served = "by_status", "k_status", f"{account}#{f.status}", "status"
    else:
        index, attr, value, served = None, "pk", account, ""
    columns: dict[str, Any] = {
        "keypair_id": m.keypair_id == (f.keypair_id or ""),
        "signer": m.signer == (f.signer or ""),
        "status": m.status == (f.status or ""),
    }
    residual = [columns[name] for name in columns if getattr(f, name) is not None and name != served]
    keep = None
    if alias is not None and served != "keypair_alias":
        # Aliases are unique case-insensitively (`Release` and `release` name the same keypair) and
        # DynamoDB cannot compare without case, so this one is compared here.
        def keep(row: Any) -> bool:
            return (row.keypair_alias or "").lower() == alias

    return Plan(index, attr, value, all_of(residual), keep)


class SignatureLog(ShardedLog):
    """Writes (always conditional on a new key) and queries of the signature log."""

    model = SignatureLogModel

    @property
    def table(self) -> str:
        """This stage's table name."""
        return str(SignatureLogModel.Meta.table_name)

    @guarded
    def append(self, entry: SignatureEntry) -> None:
        """Write one entry: a single conditional PutItem."""
        client().put_item(TableName=self.table, Item=item_of(entry, self.shards), ConditionExpression=NEW_KEY)

    def stage(self, tx: Transaction, entry: SignatureEntry) -> None:
        """Write the entry in a transaction (refusals, single-use keys, release windows, batches)."""
        tx.put_values(self.table, item_of(entry, self.shards), NEW_KEY)

    @guarded
    def query(self, account: str, f: SignatureFilter, limit: int, start: LogPosition | None
              ) -> tuple[list[SignatureEntry], LogPosition | None]:
        """One page, newest first, merged over the shards; raises InvalidPaginationToken for a foreign position."""
        rows, position = run_query(SignatureLogModel, plan(account, f), f.time, limit, start, self.shards)
        return [_entry(row) for row in rows], position

    @guarded
    def get(self, account: str, entry_id: str) -> SignatureEntry | None:
        """One entry of the account by id (one shard, read consistently); None when there is none."""
        row = by_id(SignatureLogModel, account, entry_id, self.shards)
        return _entry(row) if row is not None else None

    def between(self, account: str, low: str, high: str, page_size: int = 1000) -> Iterator[SignatureEntry]:
        """Entries with keys in [low, high], oldest first over every shard, read consistently (the transparency log)."""
        return (_entry(row) for row in ascending(SignatureLogModel, account, low, high, page_size, self.shards))
