"""The log tables over write shards: entries spread by id, pages merged newest first with no duplicate and
no gap, a bounded number of requests per page, one shard read per entry."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.clock import rfc3339
from chalicelib.domain.logs import (
    Actor,
    AuditEntry,
    AuditFilter,
    LogKey,
    SignatureEntry,
    SignatureFilter,
    TimeRange,
)
from chalicelib.errors import InvalidPaginationToken
from chalicelib.ids import new_id
from chalicelib.storage.audit_log import AuditLog
from chalicelib.storage.shards import shard_of, sharded
from chalicelib.storage.signature_log import SignatureLog, pack_token, unpack_token
from chalicelib.storage.tables import SignatureLogModel
from tests.support.clock import FakeClock
from tests.support.requests import RequestCounter

SHARDS = 3
COUNT = 40
KEYPAIRS = ("kp_01JAAAAAAAAAAAAAAAAAAAAAA1", "kp_01JAAAAAAAAAAAAAAAAAAAAAA2")
SIGNERS = ("usr_01JAAAAAAAAAAAAAAAAAAAAAA1", "usr_01JAAAAAAAAAAAAAAAAAAAAAA2")


def walk(query: Callable[[int, Any], tuple[list[Any], Any]], limit: int) -> Iterator[list[Any]]:
    """Every page, passing each position through JSON as a pagination token carries it."""
    position = None
    for _ in range(200):
        items, position = query(limit, position)
        yield items
        if position is None:
            return
        position = json.loads(json.dumps(position))
    raise AssertionError("paging does not end")


def newest_first(entries: list[Any]) -> list[Any]:
    """Entries in key order, newest first (entries of one millisecond in ULID order, not in the order written)."""
    return sorted(entries, key=lambda e: e.key.sort_key, reverse=True)


@pytest.fixture(scope="module")
def signatures(aws: Any) -> tuple[str, SignatureLog, list[SignatureEntry]]:
    """COUNT signature entries of a new account on a fake clock (some in the same millisecond), over SHARDS shards."""
    log = SignatureLog(shards=SHARDS)
    account = new_id("acct")
    clock = FakeClock(datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    entries = []
    for i in range(COUNT):
        at = clock()
        if i % 5 != 3:  # every fifth entry shares its successor's millisecond
            clock.advance(timedelta(milliseconds=250 + 7 * i))
        entry = SignatureEntry(
            account, LogKey.new(at), rfc3339(at), "failed" if i % 6 == 0 else "success", SIGNERS[i % 2],
            keypair_id=KEYPAIRS[i % 2], keypair_alias=("Alpha", "beta")[i % 2] if i < 30 else "Gamma",
            hash=f"h{i}", signature=None if i % 6 == 0 else f"s{i}",
            timestamp_token=None if i % 6 == 0 else base64.b64encode(hashlib.sha256(b"%d" % i).digest() * 40).decode())
        log.append(entry)
        entries.append(entry)
    return account, log, entries


SIGNATURE_FILTERS: dict[str, tuple[SignatureFilter, Callable[[SignatureEntry], bool]]] = {
    "all": (SignatureFilter(), lambda e: True),
    "keypair_id": (SignatureFilter(keypair_id=KEYPAIRS[0]), lambda e: e.keypair_id == KEYPAIRS[0]),
    "alias, any case": (SignatureFilter(keypair_alias="ALPHA"), lambda e: e.keypair_alias == "Alpha"),
    "keypair_id + alias": (SignatureFilter(keypair_id=KEYPAIRS[1], keypair_alias="gamma"),
                           lambda e: e.keypair_id == KEYPAIRS[1] and e.keypair_alias == "Gamma"),
    "signer": (SignatureFilter(signer=SIGNERS[1]), lambda e: e.signer == SIGNERS[1]),
    "failed": (SignatureFilter(status="failed"), lambda e: e.status == "failed"),
    "success": (SignatureFilter(status="success"), lambda e: e.status == "success"),
    "signer + failed": (SignatureFilter(signer=SIGNERS[0], status="failed"),
                        lambda e: e.signer == SIGNERS[0] and e.status == "failed"),
}


def test_entries_are_spread_over_every_shard_by_their_id(signatures: Any) -> None:
    account, _, entries = signatures
    found: dict[int, set[str]] = {}
    for shard in range(SHARDS):
        found[shard] = {row.id for row in SignatureLogModel.shard_query(sharded(account, shard))}
    assert all(found.values()), "every shard holds entries"
    assert set().union(*found.values()) == {e.id for e in entries}
    for entry in entries:
        assert entry.id in found[shard_of(entry.id[4:], SHARDS)]


@pytest.mark.parametrize("limit", [1, 2, 7])
@pytest.mark.parametrize("name", SIGNATURE_FILTERS)
def test_pages_walk_every_signature_newest_first_exactly_once(signatures: Any, name: str, limit: int) -> None:
    account, log, entries = signatures
    f, chosen = SIGNATURE_FILTERS[name]
    want = [e.id for e in newest_first(entries) if chosen(e)]
    assert want
    pages = list(walk(lambda n, start: log.query(account, f, n, start), limit))
    assert [e.id for page in pages for e in page] == want
    assert all(len(page) == limit for page in pages[:-1])


@pytest.mark.parametrize("limit", [1, 2, 7])
def test_pages_within_a_time_range(signatures: Any, limit: int) -> None:
    account, log, entries = signatures
    start, end = entries[5].key.sort_key.split("#")[0], entries[33].key.sort_key.split("#")[0]
    window = TimeRange(datetime.fromisoformat(start), datetime.fromisoformat(end))
    want = [e.id for e in newest_first(entries) if start <= e.key.sort_key.split("#")[0] <= end]
    got = [e.id for page in walk(lambda n, s: log.query(account, SignatureFilter(time=window), n, s), limit)
           for e in page]
    assert got == want


def test_the_default_shard_count_walks_the_same_entries(signatures: Any) -> None:
    from chalicelib.settings import DEFAULT_LOG_SHARDS

    _, _, entries = signatures
    log = SignatureLog(shards=DEFAULT_LOG_SHARDS)
    moved = new_id("acct")
    for entry in entries:
        log.append(SignatureEntry(**{**entry.__dict__, "account": moved}))
    got = [e.id for page in walk(lambda n, s: log.query(moved, SignatureFilter(), n, s), 7) for e in page]
    assert got == [e.id for e in newest_first(entries)]
    assert log.get(moved, entries[3].id) == SignatureEntry(**{**entries[3].__dict__, "account": moved})


def test_an_entry_is_read_from_its_shard_in_one_request(signatures: Any) -> None:
    account, log, entries = signatures
    for entry in entries[:6]:
        with RequestCounter() as counter:
            assert log.get(account, entry.id) == entry
        assert counter.of("dynamodb") == ["Query"]
    assert log.get(account, "log_01JAAAAAAAAAAAAAAAAAAAAAAA") is None
    assert log.get(new_id("acct"), entries[0].id) is None


def test_a_page_costs_a_bounded_number_of_requests_whatever_the_limit_or_the_log_size(signatures: Any) -> None:
    account, log, entries = signatures
    small = new_id("acct")
    for entry in entries[:4]:
        log.append(SignatureEntry(**{**entry.__dict__, "account": small}))
    signer = SignatureFilter(signer=SIGNERS[0], status="success")
    for who, limit, f in ((small, 1, SignatureFilter()), (account, 1, SignatureFilter()),
                          (account, 7, SignatureFilter()), (account, COUNT - 1, SignatureFilter()),
                          (account, 2, signer), (account, COUNT, signer)):
        with RequestCounter() as counter:
            items, _ = log.query(who, f, limit, None)
        if f == signer:
            assert len(items) == min(limit, sum(e.signer == SIGNERS[0] and e.status == "success" for e in entries))
        else:
            assert len(items) == min(limit, 4 if who == small else COUNT)
        queries = counter.of("dynamodb")
        assert set(queries) == {"Query"}
        # One request per shard, plus at most one per shard page a shard gives the page beyond its first.
        assert SHARDS <= len(queries) <= 2 * SHARDS, (who == small, limit, queries)


def test_shards_that_ran_out_are_not_read_again(signatures: Any) -> None:
    account, log, _ = signatures
    f = SignatureFilter(keypair_id=KEYPAIRS[0])
    positions: list[Any] = []

    def query(limit: int, start: Any) -> tuple[list[Any], Any]:
        positions.append(start)
        return log.query(account, f, limit, start)

    pages = list(walk(query, 2))
    assert len(pages) > 2
    last = positions[-1]
    assert last is not None and last["done"], "some shard ran out before the last page"
    done = bin(last["done"]).count("1")
    with RequestCounter() as counter:
        log.query(account, f, 2, last)
    assert len(counter.of("dynamodb")) == SHARDS - done


def test_a_position_from_another_shard_layout_is_refused(signatures: Any) -> None:
    account, log, _ = signatures
    for position in ({"after": "2026-04-01T09:00:01.000Z#x", "done": 1 << SHARDS}, {"account": {"S": account}},
                     {"after": 5, "done": 0}):
        with pytest.raises(InvalidPaginationToken):
            log.query(account, SignatureFilter(), 2, position)


def test_the_transparency_read_merges_every_shard_in_key_order(signatures: Any) -> None:
    account, log, entries = signatures
    assert list(log.between(account, "0", "9")) == sorted(entries, key=lambda e: e.key.sort_key)
    middle = sorted(e.key.sort_key for e in entries)[10:20]
    assert [e.key.sort_key for e in log.between(account, middle[0], middle[-1], page_size=2)] == middle


def test_the_model_reads_an_account_as_one_partition(signatures: Any) -> None:
    account, _, entries = signatures
    rows = list(SignatureLogModel.query(account))
    assert [row.id for row in rows] == [e.id for e in sorted(entries, key=lambda e: e.key.sort_key)]
    assert {row.account for row in rows} == {account}
    newest = list(SignatureLogModel.query(account, scan_index_forward=False, limit=3))
    assert [row.id for row in newest] == [e.id for e in sorted(entries, key=lambda e: e.key.sort_key)][::-1][:3]
    by_index = list(SignatureLogModel.by_signer.query(f"{account}#{SIGNERS[0]}"))
    assert [row.id for row in by_index] == [e.id for e in sorted(entries, key=lambda e: e.key.sort_key)
                                            if e.signer == SIGNERS[0]]


# -- the audit log ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit(aws: Any) -> tuple[str, AuditLog, list[AuditEntry]]:
    """COUNT audit entries of a new account over 4 shards, on a fake clock."""
    log = AuditLog(shards=4)
    account = new_id("acct")
    clock = FakeClock(datetime(2026, 4, 2, 9, 0, tzinfo=UTC), step=timedelta(milliseconds=333))
    entries = []
    for i in range(COUNT):
        entry = AuditEntry.new(Actor(account, SIGNERS[i % 2]), clock(), type=("static", "dynamic", "user")[i % 3],
                               action=("update", "refresh")[i % 2], resource_id=KEYPAIRS[i % 2] if i % 4 else None,
                               outcome="failure" if i % 7 == 0 else "success")
        log.append(entry)
        entries.append(entry)
    return account, log, entries


AUDIT_FILTERS: dict[str, tuple[AuditFilter, Callable[[AuditEntry], bool]]] = {
    "all": (AuditFilter(), lambda e: True),
    "type + action": (AuditFilter(type="dynamic", action="refresh"), lambda e: (e.type, e.action) == ("dynamic",
                                                                                                       "refresh")),
    "type": (AuditFilter(type="user"), lambda e: e.type == "user"),
    "action + outcome": (AuditFilter(action="update", outcome="success"),
                         lambda e: e.action == "update" and e.outcome == "success"),
    "resource": (AuditFilter(resource_id=KEYPAIRS[1]), lambda e: e.resource_id == KEYPAIRS[1]),
    "actor": (AuditFilter(actor=SIGNERS[0]), lambda e: e.actor == SIGNERS[0]),
    "outcome": (AuditFilter(outcome="failure"), lambda e: e.outcome == "failure"),
}


@pytest.mark.parametrize("limit", [1, 2, 7])
@pytest.mark.parametrize("name", AUDIT_FILTERS)
def test_pages_walk_every_audit_entry_newest_first_exactly_once(audit: Any, name: str, limit: int) -> None:
    account, log, entries = audit
    f, chosen = AUDIT_FILTERS[name]
    want = [e.id for e in newest_first(entries) if chosen(e)]
    assert want
    got = [e.id for page in walk(lambda n, start: log.query(account, f, n, start), limit) for e in page]
    assert got == want
    assert log.get(account, want[-1]) == next(e for e in entries if e.id == want[-1])


# -- storage encoding ---------------------------------------------------------------------------------------------


def test_time_stamp_tokens_come_back_exactly_as_written() -> None:
    der = hashlib.sha256(b"token").digest() * 50
    token = base64.b64encode(der).decode()
    packed = pack_token(token)
    assert unpack_token(packed) == token and len(packed) < len(der)
    for odd in ("not base64!", "QUJD\n", "QUJD", ""):
        assert unpack_token(pack_token(odd)) == odd
