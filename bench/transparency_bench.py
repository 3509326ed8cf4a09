"""The transparency log's checkpointer and proofs: CPU per entry, requests per tick, independence of the tree size.

1. CPU per entry of the checkpointer's own work, no I/O, on a success entry of the real size (its RFC 3161
   token included): decode the stored item (PynamoDB), render it as the API does, RFC 8785 canonical JSON,
   the leaf hash, and the append to the tiles.
2. One checkpointer run appending 1,000 and 10,000 entries (in-process moto): DynamoDB requests by
   operation, wall time and process CPU (moto's included), per entry.
3. The same 1,000-entry run and an inclusion proof on a tree that already holds 1,048,576 leaves (its tiles
   written directly) beside an empty one: the requests and the work must not grow with the tree.
Run: `.venv/bin/python bench/transparency_bench.py`.
"""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from common import RequestCounter, print_table, stack

BIG = 1 << 20  # leaves already in the big tree


def sample_entry(account: str, at: datetime, i: int) -> Any:
    """A success entry shaped like the signing path's: base64 hash and signature, a 2.2 KB token."""
    from chalicelib.clock import rfc3339
    from chalicelib.domain.logs import LogKey, SignatureEntry

    return SignatureEntry(
        account, LogKey.new(at), rfc3339(at), "success", "usr_01JBENCHUSER000000000000000", keypair_id="kp_01JBENCH",
        keypair_alias="release-signing", keypair_type="dynamic", key_id="ab" * 32, generation=7, algorithm="ECDSA",
        sig_alg="SHA256withECDSA", signature_type="production", hash_algorithm="SHA-256",
        hash=base64.b64encode(os.urandom(32)).decode(), signature=base64.b64encode(os.urandom(72)).decode(),
        file_name=f"dist/app-{i}.tar.gz", tool="rotasign-cli/1.0", client_ip="203.0.113.7",
        timestamp_token=base64.b64encode(os.urandom(1650)).decode(), certificate_serial="3f" * 19)


def write_entries(account: str, start: datetime, count: int) -> datetime:
    """`count` entries 1 ms apart, in BatchWriteItems of 25 (moto's transactions copy the table each time)."""
    from chalicelib.storage.connection import client
    from chalicelib.storage.signature_log import item_of
    from chalicelib.storage.tables import SignatureLogModel

    table = str(SignatureLogModel.Meta.table_name)
    at = start
    for first in range(0, count, 25):
        puts = []
        for i in range(first, min(first + 25, count)):
            at = start + timedelta(milliseconds=i)
            puts.append({"PutRequest": {"Item": item_of(sample_entry(account, at, i), SignatureLogModel.shards)}})
        client().batch_write_item(RequestItems={table: puts})
    return at


def cpu_rows() -> list[list[str]]:
    """Microseconds per entry of each step of the checkpointer's own work, each timed on its own."""
    from chalicelib.domain.jcs import canonical
    from chalicelib.domain.merkle import TileSet, leaf_hash
    from chalicelib.storage.signature_log import _entry, item_of
    from chalicelib.storage.tables import SignatureLogModel

    n = 5_000
    entries = [sample_entry("acct_01JBENCHACCOUNT00000000000", datetime.now(UTC), i) for i in range(n)]
    raw = [item_of(e, SignatureLogModel.shards) for e in entries]
    bodies = [e.as_dict() for e in entries]
    data = [canonical(b) for b in bodies]
    hashes = [leaf_hash(d) for d in data]
    steps: list[tuple[str, Any]] = [
        ("decode the stored item (PynamoDB)", lambda: [_entry(SignatureLogModel.from_raw_data(r)) for r in raw]),
        ("render as the API does", lambda: [e.as_dict() for e in entries]),
        ("RFC 8785 canonical JSON", lambda: [canonical(b) for b in bodies]),
        ("leaf hash (SHA-256)", lambda: [leaf_hash(d) for d in data]),
        ("append to the tiles", lambda: TileSet().append(hashes)),
    ]
    rows, total = [], 0.0
    for name, fn in steps:
        started = time.process_time()
        fn()
        each = (time.process_time() - started) / n * 1e6
        total += each
        rows.append([name, f"{each:.1f}"])
    rows.append(["total", f"{total:.1f}"])
    rows.append([f"(leaf data: {len(data[0]):,} bytes; stored item: {len(str(raw[0])):,} characters)", ""])
    return rows


def run_rows(account: str, start: datetime) -> tuple[list[list[str]], datetime]:
    """One run appending 1,000 then one appending 10,000 entries."""
    from chalicelib.services.container import get_services

    checkpointer = get_services().checkpointer
    rows = []
    at = start
    for count in (1_000, 10_000):
        last = write_entries(account, at, count)
        now = last + timedelta(seconds=60)
        with RequestCounter() as counter:
            wall, cpu = time.perf_counter(), time.process_time()
            runs = checkpointer.run_account(account, now)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert runs[0].appended == count, runs
        ops = counter.of("dynamodb")
        rows.append([f"{count:,}", str(len(ops)), *(str(ops.count(op)) for op in
                                                     ("Query", "BatchWriteItem", "PutItem", "GetItem", "BatchGetItem")),
                     f"{wall:.2f}", f"{cpu:.2f}", f"{1e6 * cpu / count:.0f}"])
        at = now + timedelta(seconds=1)
    return rows, at


def seed_big_tree(account: str, before: datetime) -> None:
    """Commit a tree of BIG leaves (random hashes, keys before `before`) by writing its tiles directly."""
    from chalicelib.clock import rfc3339, rfc3339_ms
    from chalicelib.domain.merkle import TILE_WIDTH, TileSet, edge_tiles
    from chalicelib.domain.transparency import LeafBlock, TreeState, origin
    from chalicelib.services.container import get_services

    services = get_services()
    trees = services.deps.store.trees
    tiles = TileSet()
    tiles.append(os.urandom(32) for _ in range(BIG))
    full = {key: bytes(value) for key, value in tiles.tiles.items() if key not in edge_tiles(BIG)}
    keys = [f"{rfc3339_ms(before - timedelta(days=30))}#{i:026d}" for i in range(BIG)]
    blocks = [LeafBlock(i, tuple(keys[i:i + TILE_WIDTH])) for i in range(0, BIG, TILE_WIDTH)]
    trees.write_full(account, "signatures", full, blocks)
    for key, width in edge_tiles(BIG).items():
        trees.write_tile(account, "signatures", key, bytes(tiles.tiles[key])[:width * 32])
    signer = services.log_keys.signer(services.accounts.get(account))
    settled = rfc3339_ms(before - timedelta(days=1))
    checkpoint = signer.checkpoint(origin(account, "signatures"), BIG, tiles.root())
    seen = trees.state(account, "signatures")
    assert trees.commit(account, "signatures", seen, TreeState(BIG, tiles.root(), settled, checkpoint, rfc3339(before)))


def size_rows(small: str, big: str, start: datetime) -> list[list[str]]:
    """A 1,000-entry run and a proof on an empty tree and on a tree of BIG leaves."""
    from chalicelib.services.container import get_services

    services = get_services()
    rows = []
    for account, label in ((small, "empty"), (big, f"{BIG:,} leaves")):
        last = write_entries(account, start, 1_000)
        now = last + timedelta(seconds=60)
        with RequestCounter() as counter:
            cpu = time.process_time()
            run = services.checkpointer.run_tree(services.accounts.get(account), "signatures", now)
            cpu = time.process_time() - cpu
        ops = counter.of("dynamodb")
        entry = next(iter(services.deps.store.signatures.between(account, "0", "9")))
        who = _principal(account)
        with RequestCounter() as proof_counter:
            proof_cpu = time.process_time()
            proof = services.transparency.proof(who, "signatures", entry.id)
            proof_cpu = time.process_time() - proof_cpu
        rows.append([label, f"{run.size:,}", str(len(ops)), f"{cpu:.2f}", str(len(proof_counter.of("dynamodb"))),
                     str(len(proof.hashes)), f"{1000 * proof_cpu:.1f}"])
    return rows


def _principal(account: str) -> Any:
    from chalicelib.domain.identity import ROLES, Principal

    return Principal(account, "usr_bench", "bench", ("admin",), ROLES["admin"], "key_bench")


def main() -> None:
    """Print the three tables."""
    print_table("CPU per entry of the checkpointer's own work (no I/O), one core",
                ["step", "µs/entry"], cpu_rows())
    with stack() as s:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        rows, at = run_rows(s.account, start)
        print_table("One checkpointer run (in-process moto; process CPU includes moto's)",
                    ["entries appended", "DynamoDB requests", "Query", "BatchWriteItem", "PutItem", "GetItem",
                     "BatchGetItem", "wall s", "CPU s", "CPU µs/entry"], rows)
        from chalicelib.services.accounts import bootstrap_account
        from chalicelib.services.container import get_deps

        big = bootstrap_account(get_deps(), f"bench-big-{os.getpid()}").account_id
        small = bootstrap_account(get_deps(), f"bench-small-{os.getpid()}").account_id
        seed_big_tree(big, at)
        print_table("A run of 1,000 entries and an inclusion proof, by tree size already stored",
                    ["tree before", "size after", "run: DynamoDB requests", "run: CPU s", "proof: DynamoDB requests",
                     "proof: hashes", "proof: CPU ms"], size_rows(small, big, at + timedelta(seconds=5)))


if __name__ == "__main__":
    main()
