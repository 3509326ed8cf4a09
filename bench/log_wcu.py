"""Write capacity units per log entry, before and after the sharded layout, from the items the code writes.

Entries are made by the real routes (signatures with ECDSA P-256, Ed25519 and RSA-3072 keys, a refusal,
audit entries of a keypair's creation and of an update), read back, and encoded as the log repositories
write them now ("after") and as the layout before write shards wrote them ("before": partition key the
account, `id` stored, the token as base64 text, `k_status` on every entry, four or five indexes with ALL
projection). DynamoDB's rule: ceil(item size / 1 KB) write units for the table, and the same for each
index the item is projected into, computed on the projected copy (keys plus the projected attributes).
A third layout, KEYS_ONLY indexes, is shown for comparison: its lists would need a BatchGetItem per page.

Also printed: the write shards needed for 10,000 entries/s per account (1,000 write units/s per partition).
Run: `.venv/bin/python bench/log_wcu.py`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import fields
from typing import Any

from common import print_table, stack

PARTITION_WCU = 1000  # write units per second one partition key takes
TARGET = 10_000  # entries per second per account


def value_bytes(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (UTF-8 strings, raw binary, ~1 byte per 2 digits, 3 + elements)."""
    kind, raw = next(iter(value.items()))
    if kind == "S":
        return len(raw.encode())
    if kind == "B":
        return len(raw if isinstance(raw, bytes) else base64.b64decode(raw))
    if kind == "N":
        return (len(raw.strip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_bytes(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(value_bytes(v) + 1 for v in raw)
    return 1


def item_bytes(item: dict[str, dict[str, Any]]) -> int:
    """DynamoDB's item size: attribute names plus values."""
    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


def units(item: dict[str, dict[str, Any]]) -> int:
    """Write units of one item write (1 per KB, rounded up)."""
    return -(-item_bytes(item) // 1024)


def projected(item: dict[str, Any], keys: tuple[str, ...], index_key: str, include: list[str] | None
              ) -> dict[str, Any]:
    """The copy of `item` an index stores: its keys and the table's, plus `include` (None: every attribute)."""
    if include is None:
        return dict(item)
    wanted = {*keys, index_key, *include}
    return {name: value for name, value in item.items() if name in wanted}


def layout_units(item: dict[str, Any], keys: tuple[str, ...], indexes: dict[str, list[str] | None]
                 ) -> tuple[int, int, list[int]]:
    """(item bytes, table units, units of each index copy) of one item under one layout."""
    copies = [units(projected(item, keys, key, include)) for key, include in indexes.items() if key in item]
    return item_bytes(item), units(item), copies


def old_signature_item(entry: Any) -> dict[str, Any]:
    """The signature-log item as the layout before write shards wrote it."""
    from chalicelib.domain.logs import SignatureEntry
    from chalicelib.storage import codec

    account = entry.account
    values = {f.name: getattr(entry, f.name) for f in fields(SignatureEntry) if f.name not in ("account", "key",
                                                                                              "expires")}
    values.update(account=account, sk=entry.key.sort_key, id=entry.id,
                  k_keypair_id=f"{account}#{entry.keypair_id}" if entry.keypair_id else None,
                  k_alias=f"{account}#{entry.keypair_alias.lower()}" if entry.keypair_alias else None,
                  k_signer=f"{account}#{entry.signer}", k_status=f"{account}#{entry.status}")
    return codec.encode_item(values)


def old_audit_item(entry: Any) -> dict[str, Any]:
    """The audit-log item as the layout before write shards wrote it."""
    from chalicelib.storage import codec

    a = entry.account
    values = dict(entry.as_dict(), account=a, sk=entry.key.sort_key,
                  k_type_action=f"{a}#{entry.type}#{entry.action}", k_type=f"{a}#{entry.type}",
                  k_action=f"{a}#{entry.action}", k_resource=f"{a}#{entry.resource_id}" if entry.resource_id else None,
                  k_actor=f"{a}#{entry.actor}")
    return codec.encode_item(values)


def index_keys(model: Any) -> list[str]:
    """The hash key attribute of each of a model's indexes."""
    return [index._hash_key_attribute().attr_name for index in model._indexes.values()]


def includes(model: Any) -> dict[str, list[str] | None]:
    """Each index's hash key and what it projects (None: ALL)."""
    found: dict[str, list[str] | None] = {}
    for index in model._indexes.values():
        projection = index.Meta.projection
        include = getattr(projection, "non_key_attributes", None)
        found[index._hash_key_attribute().attr_name] = (list(include) if include is not None
                                                        else [] if projection.projection_type == "KEYS_ONLY"
                                                        else None)
    return found


def rows_for(label: str, old: dict[str, Any], new: dict[str, Any], model: Any) -> list[list[str]]:
    """Before / after / keys-only rows of one entry."""
    keys = index_keys(model)
    layouts: list[tuple[str, dict[str, Any], tuple[str, ...], dict[str, list[str] | None]]] = [
        ("before", old, ("account", "sk"), dict.fromkeys(keys)),
        ("after", new, ("pk", "sk"), includes(model)),
        ("after, KEYS_ONLY indexes", new, ("pk", "sk"), {key: [] for key in keys}),
    ]
    rows = []
    for name, item, table_keys, indexes in layouts:
        size, table, copies = layout_units(item, table_keys, indexes)
        rows.append([label, name, str(size), str(table), " + ".join(map(str, copies)) or "-",
                     str(table + sum(copies))])
    return rows


def main() -> None:
    """Make real entries, then print the write units of each under each layout."""
    with stack() as s:
        from chalicelib.domain.logs import AuditFilter, SignatureFilter
        from chalicelib.services.container import get_services
        from chalicelib.storage.audit_log import _row
        from chalicelib.storage.signature_log import item_of
        from chalicelib.storage.tables import AuditLogModel, SignatureLogModel

        store = get_services().deps.store
        shards = store.signatures.shards
        body = json.dumps({"hash": base64.b64encode(hashlib.sha256(b"release").digest()).decode(),
                           "hash_algorithm": "SHA-256", "file_name": "dist/rotasign-1.4.2-linux-x86_64.tar.gz",
                           "tool": "rotasign-cli/1.4.2"})
        made: list[tuple[str, str]] = []
        for label, spec in (("ECDSA P-256", {"algorithm": "ECDSA", "curve": "P-256"}),
                            ("Ed25519", {"algorithm": "EdDSA"}),
                            ("RSA-3072", {"algorithm": "RSA", "key_size": 3072})):
            kp = s.keypair(f"wcu-{label.split()[0].lower()}", spec)
            signed = s.sign(kp["id"], body)
            made.append((f"signature, {label}", signed["signature_log_id"]))
        offline = s.keypair("wcu-offline", {"algorithm": "ECDSA", "curve": "P-256"}, status="offline")
        s.call("POST", f"/keypairs/{offline['id']}/sign", body)
        s.call("PATCH", f"/keypairs/{offline['id']}", {"alias": "wcu-renamed", "status": "online"})

        rows: list[list[str]] = []
        for label, entry_id in made:
            entry = store.signatures.get(s.account, entry_id)
            assert entry is not None
            rows += rows_for(label, old_signature_item(entry), item_of(entry, shards), SignatureLogModel)
        [refused], _ = store.signatures.query(s.account, SignatureFilter(status="failed"), 1, None)
        rows += rows_for("signature refused (keypair offline)", old_signature_item(refused),
                         item_of(refused, shards), SignatureLogModel)
        for action in ("generate", "update"):
            [audit], _ = store.audit.query(s.account, AuditFilter(resource_id=offline["id"], action=action), 1, None)
            rows += rows_for(f"audit: keypair {action}", old_audit_item(audit), _row(audit, shards).serialize(),
                             AuditLogModel)
        print_table("Write units per log entry (DynamoDB: 1 per KB of the item, rounded up, for the table and each "
                    "index copy)", ["entry", "layout", "item bytes", "table", "index copies", "total WCU"], rows)

        heaviest = max(int(r[3]) for r in rows if r[1] == "after")
        print_table(f"Write shards per account for {TARGET:,} entries/s ({PARTITION_WCU:,} write units/s per "
                    "partition)", ["table units per entry", "shards needed", "configured", "entries/s per account"],
                    [[str(u), str(-(-TARGET * u // PARTITION_WCU)), str(shards),
                      f"{shards * PARTITION_WCU // u:,}"] for u in sorted({2, heaviest, 4})])


if __name__ == "__main__":
    main()
