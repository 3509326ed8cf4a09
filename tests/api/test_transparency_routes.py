"""The transparency log through the API, checked by an outside verifier written from the specs (tests/support/tlog).

Checkpoints, inclusion proofs and consistency proofs verify with the account's published log key;
deleting or altering an entry in the table (behind the API's back) is caught; an entry written late
enters the next checkpoint; no entry enters twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.support import tlog
from tests.support.api import Api, add_user
from tests.support.clock import FakeClock, installed

EC_KEYPAIR = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}
AFTER_SETTLING = timedelta(seconds=60)  # past ROTASIGN_MAX_REQUEST_SECONDS (30 s) and the skew margin


@pytest.fixture
def clock(services: Any) -> Iterator[FakeClock]:
    with installed(services.deps, timedelta(days=1)) as fake:
        yield fake


def sign(api: Api, alias: str, count: int, clock: FakeClock) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        clock.advance(0.25)
        digest = hashlib.sha256(f"{alias}-{i}-{clock.now}".encode()).digest()
        out.append(api.ok("POST", f"/keypairs/{alias}/sign",
                          {"hash": base64.b64encode(digest).decode(), "hash_algorithm": "SHA-256"}))
    return out


def checkpoint(services: Any, api: Api, clock: FakeClock) -> None:
    """A checkpointer run once everything signed so far has settled (the clock moves there: time goes forward)."""
    clock.advance(AFTER_SETTLING)
    services.checkpointer.run_account(api.account.id, clock.now)


def trust_of(api: Api) -> dict[str, Any]:
    response = api.client.http.get(f"/api/v1/trust/{api.account.id}")
    assert response.status_code == 200
    return dict(json.loads(response.body))


def verify_all(api: Api, route: str, log: str) -> tlog.Checkpoint:
    """Every entry of a log proves its inclusion with the outside verifier; returns the checkpoint."""
    trust = trust_of(api)
    entries = api.every(route)
    checkpoints = set()
    for entry in entries:
        proof = api.ok("GET", f"{route}/{entry['id']}/proof")
        checkpoints.add(tlog.check_inclusion(proof, entry, trust["log_origins"][log], trust["log_public_key"]))
    [only] = checkpoints
    assert only.size == len(entries)
    text = api.call("GET", f"{route}/checkpoint")
    assert text.status_code == 200 and text.headers["Content-Type"].startswith("text/plain")
    assert tlog.open_checkpoint(text.body.decode(), trust["log_origins"][log], trust["log_public_key"]) == only
    return only


def test_every_entry_proves_its_inclusion_in_the_signed_checkpoint(api: Api, services: Any, clock: FakeClock) -> None:
    api.ok("POST", "/keypairs", {"alias": "tl", **EC_KEYPAIR}, 201)
    sign(api, "tl", 6, clock)
    batch = {"items": [{"hash": base64.b64encode(bytes([i]) * 32).decode(), "hash_algorithm": "SHA-256"}
                       for i in range(3)]}
    api.ok("POST", "/keypairs/tl/sign", batch)
    assert api.call("POST", "/keypairs/tl/sign", {"hash": "AAAA", "hash_algorithm": "SHA-256"}).status_code == 400
    checkpoint(services, api, clock)

    signatures = verify_all(api, "/signature-logs", "signatures")
    assert signatures.size == 10  # 6 + a batch of 3 + one refusal
    assert verify_all(api, "/audit-logs", "audit").size == len(api.every("/audit-logs"))
    # A leaf is exactly what GET /signature-logs/{id} returns.
    entry = next(e for e in api.every("/signature-logs") if e["status"] == "success")
    proof = api.ok("GET", f"/signature-logs/{entry['id']}/proof")
    assert json.loads(base64.b64decode(proof["leaf_data"])) == api.ok("GET", f"/signature-logs/{entry['id']}")
    assert set(entry) >= {"timestamp_token", "certificate_serial"}


def test_consistency_between_two_checkpoints_verifies(api: Api, services: Any, clock: FakeClock) -> None:
    trust = trust_of(api)
    origin, key = trust["log_origins"]["signatures"], trust["log_public_key"]
    api.ok("POST", "/keypairs", {"alias": "grow", **EC_KEYPAIR}, 201)
    sign(api, "grow", 3, clock)
    checkpoint(services, api, clock)
    old = tlog.open_checkpoint(api.call("GET", "/signature-logs/checkpoint").body.decode(), origin, key)
    sign(api, "grow", 6, clock)
    checkpoint(services, api, clock)
    new = tlog.open_checkpoint(api.call("GET", "/signature-logs/checkpoint").body.decode(), origin, key)
    assert (old.size, new.size) == (3, 9)

    proof = api.ok("GET", f"/signature-logs/consistency?from={old.size}&to={new.size}")
    assert (proof["from"], proof["to"]) == (3, 9)
    tlog.check_consistency(old, new, proof["hashes"])
    assert api.ok("GET", "/signature-logs/consistency?from=3") == proof  # `to` defaults to the latest size
    for start in (0, 1, 8, 9):
        tlog.check_consistency(tlog.Checkpoint(origin, start, tlog.mth(leaves(api)[:start])), new,
                               api.ok("GET", f"/signature-logs/consistency?from={start}")["hashes"])
    with pytest.raises(AssertionError):  # a proof does not connect a checkpoint to another tree
        tlog.check_consistency(tlog.Checkpoint(origin, 3, hashlib.sha256(b"forged").digest()), new, proof["hashes"])
    for query, field in (("from=4&to=3", "from"), ("from=1&to=10", "to"), ("to=3", "from"), ("from=x", "from"),
                         ("from=-1", "from"), ("from=1&limit=2&size=3", "size")):
        response = api.call("GET", f"/signature-logs/consistency?{query}")
        assert response.status_code == 400, query
        assert json.loads(response.body)["error"]["details"]["field"] == field


def leaves(api: Api) -> list[bytes]:
    """The leaf hashes of the signature log's entries in key order, from the proofs' leaf data."""
    found = {}
    for entry in api.every("/signature-logs"):
        proof = api.ok("GET", f"/signature-logs/{entry['id']}/proof")
        found[proof["leaf_index"]] = tlog.leaf(base64.b64decode(proof["leaf_data"]))
    return [found[i] for i in range(len(found))]


def _row_key(services: Any, account: str, entry_id: str) -> dict[str, Any]:
    from chalicelib.storage.signature_log import item_of

    log = services.deps.store.signatures
    item = item_of(log.get(account, entry_id), log.shards)
    return {"pk": item["pk"], "sk": item["sk"]}


def test_deleting_or_altering_an_entry_in_the_table_is_caught(api: Api, services: Any, clock: FakeClock) -> None:
    from chalicelib.storage.connection import client

    api.ok("POST", "/keypairs", {"alias": "tamper", **EC_KEYPAIR}, 201)
    sign(api, "tamper", 5, clock)
    checkpoint(services, api, clock)
    trust = trust_of(api)
    origin, key = trust["log_origins"]["signatures"], trust["log_public_key"]
    entries = api.every("/signature-logs")
    signed = tlog.open_checkpoint(api.call("GET", "/signature-logs/checkpoint").body.decode(), origin, key)
    order = tlog.tree_order(entries)
    assert tlog.mth([tlog.leaf(tlog.jcs(e)) for e in order]) == signed.root

    table = services.deps.settings.table_name("signature_log")
    altered, deleted = order[1], order[3]
    client().update_item(TableName=table, Key=_row_key(services, api.account.id, altered["id"]),
                         UpdateExpression="SET file_name = :f", ExpressionAttributeValues={":f": {"S": "evil.exe"}})
    client().delete_item(TableName=table, Key=_row_key(services, api.account.id, deleted["id"]))

    # The altered entry's proof no longer leads to the signed root; the deleted one has none.
    changed = api.ok("GET", f"/signature-logs/{altered['id']}")
    assert changed["file_name"] == "evil.exe"
    with pytest.raises(AssertionError):
        tlog.check_inclusion(api.ok("GET", f"/signature-logs/{altered['id']}/proof"), changed, origin, key)
    assert api.call("GET", f"/signature-logs/{deleted['id']}/proof").status_code == 404
    # Rebuilding the tree from what the log now holds does not give the signed root either.
    now = tlog.tree_order(api.every("/signature-logs"))
    assert len(now) == 4 and tlog.mth([tlog.leaf(tlog.jcs(e)) for e in now]) != signed.root
    # The untouched entries still prove their inclusion: the tree itself was not changed.
    tlog.check_inclusion(api.ok("GET", f"/signature-logs/{order[0]['id']}/proof"), order[0], origin, key)


def test_an_entry_written_late_enters_the_next_checkpoint_once(api: Api, services: Any, clock: FakeClock) -> None:
    from chalicelib.clock import rfc3339
    from chalicelib.domain.logs import LogKey, SignatureEntry

    api.ok("POST", "/keypairs", {"alias": "late", **EC_KEYPAIR}, 201)
    sign(api, "late", 3, clock)
    clock.advance(5)
    services.checkpointer.run_account(api.account.id, clock.now)
    # Younger than the longest request: not settled at this tick yet, so not in its checkpoint.
    assert api.ok("GET", "/signature-logs/consistency?from=0")["to"] == 0
    checkpoint(services, api, clock)
    assert api.ok("GET", "/signature-logs/consistency?from=0")["to"] == 3

    # A slow request that started 10 s before the checkpoint above ran writes its entry only now.
    at = clock.now - timedelta(seconds=10)
    services.deps.store.signatures.append(SignatureEntry(api.account.id, LogKey.new(at), rfc3339(at), "failed",
                                                         api.account.user_id, error="keypair_offline"))
    late = next(e for e in api.every("/signature-logs") if e["status"] == "failed")
    response = api.call("GET", f"/signature-logs/{late['id']}/proof")
    assert response.status_code == 409 and json.loads(response.body)["error"]["code"] == "not_yet_in_log"

    for _ in range(3):  # the next checkpoint takes it; the later ones never take it again
        clock.advance(900)
        sign(api, "late", 1, clock)
        checkpoint(services, api, clock)
    final = verify_all(api, "/signature-logs", "signatures")
    entries = api.every("/signature-logs")
    assert final.size == len(entries) == 7
    indices = [api.ok("GET", f"/signature-logs/{e['id']}/proof")["leaf_index"] for e in entries]
    assert sorted(indices) == list(range(7))
    assert tlog.mth([tlog.leaf(tlog.jcs(e)) for e in tlog.tree_order(entries)]) == final.root


def test_before_its_first_checkpoint_an_entry_is_409_and_the_log_has_no_checkpoint(api: Api, services: Any) -> None:
    for route in ("/signature-logs", "/audit-logs"):
        response = api.call("GET", f"{route}/checkpoint")
        assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found"
        assert api.call("GET", f"{route}/consistency?from=0").status_code == 404
    entry = api.every("/audit-logs")[0]
    response = api.call("GET", f"/audit-logs/{entry['id']}/proof")
    assert response.status_code == 409 and json.loads(response.body)["error"]["code"] == "not_yet_in_log"


def test_proofs_name_only_the_callers_entries(api: Api, services: Any, clock: FakeClock, client: Any) -> None:
    from tests.support.api import make_account

    checkpoint(services, api, clock)
    other = Api(client, make_account())
    checkpoint(services, other, clock)
    theirs = other.every("/audit-logs")[0]["id"]
    for path in (f"/audit-logs/{theirs}/proof", f"/audit-logs/{theirs}", "/audit-logs/log_nope/proof",
                 "/signature-logs/log_01ARZ3NDEKTSV4RRFFQ69G5FAV/proof", "/signature-logs/checkpoint/proof"):
        response = api.call("GET", path)
        assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found", path
    mine = api.call("GET", "/audit-logs/checkpoint").body.decode()
    assert mine.startswith(f"rotasign/{api.account.id}/audit\n")


def test_the_log_routes_need_view_audit_log(api: Api, services: Any, clock: FakeClock) -> None:
    checkpoint(services, api, clock)
    entry = api.every("/audit-logs")[0]
    paths = ("/audit-logs/checkpoint", "/signature-logs/checkpoint", f"/audit-logs/{entry['id']}/proof",
             f"/audit-logs/{entry['id']}", "/audit-logs/consistency?from=0")
    auditor = {"X-API-Key": add_user(api.account, "auditor", roles=("auditor",)).api_key}
    nobody = {"X-API-Key": add_user(api.account, "signer", permissions=("sign",)).api_key}
    for path in paths:
        assert api.call("GET", path, headers=auditor).status_code == 200, path
        assert api.call("GET", path, headers=nobody).status_code == 403, path
        assert api.call("GET", path, headers={"X-API-Key": ""}).status_code == 401, path
