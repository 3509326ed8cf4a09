"""The audit and signature logs through the API: filters, paging, tokens, isolation, retention, append-only."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.handlers import BUILTIN_HANDLERS
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.support import schedule
from tests.support.api import Account, Api, add_user, make_account
from tests.support.clock import FakeMonotonic

ROOT = Path(__file__).resolve().parents[2]
AUDIT_FIELDS = {"id", "at", "actor", "type", "action", "resource_id", "resource_alias", "outcome", "error",
                "details", "source_ip"}
SIGNATURE_FIELDS = {"id", "signed_at", "status", "signer", "keypair_id", "keypair_alias", "keypair_type", "key_id",
                    "generation", "algorithm", "sig_alg", "signature_type", "hash_algorithm", "hash", "signature",
                    "file_name", "tool", "client_ip", "error"}
EC_KEYPAIR = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


# -- helpers ------------------------------------------------------------------------------------


def signature_entry(
    account: str,
    at: datetime,
    *,
    keypair_id: str | None,
    alias: str | None,
    signer: str,
    status: str = "success",
    keypair_type: str = "static",
) -> Any:
    """A signature-log entry as the signing service makes one."""
    from chalicelib.clock import rfc3339
    from chalicelib.domain.logs import LogKey, SignatureEntry

    key = LogKey.new(at)
    failed = status == "failed"
    return SignatureEntry(
        account=account,
        key=key,
        signed_at=rfc3339(at),
        status=status,
        signer=signer,
        keypair_id=keypair_id,
        keypair_alias=alias,
        keypair_type=keypair_type,
        key_id=hashlib.sha256(f"{keypair_id}".encode()).hexdigest(),
        generation=1,
        algorithm="ECDSA",
        sig_alg="SHA256withECDSA",
        signature_type="production",
        hash_algorithm="SHA-256",
        hash=base64.b64encode(hashlib.sha256(key.sort_key.encode()).digest()).decode(),
        signature=None if failed else base64.b64encode(b"sig-" + key.sort_key.encode()).decode(),
        file_name="app.exe",
        tool="tests/1.0",
        client_ip="192.0.2.1",
        error="not_allowed" if failed else None,
    )


def save_entry(item: Any) -> Any:
    """Append one log entry the way the services do (never overwriting)."""
    from chalicelib.domain.logs import AuditEntry
    from chalicelib.services.container import get_deps

    store = get_deps().store
    if isinstance(item, AuditEntry):
        store.audit.append(item)
    else:
        store.signatures.append(item)
    return item


def audit_entry(account: Account, at: datetime, **fields: Any) -> Any:
    """An audit entry made by the account's admin at `at`."""
    from chalicelib.domain.logs import Actor, AuditEntry

    return AuditEntry.new(Actor(account.id, account.user_id), at, **fields)


def query_path(route: str, params: dict[str, Any]) -> str:
    return f"/{route}?{urlencode(params)}" if params else f"/{route}"


def walk(api: Api, route: str, params: dict[str, Any], limit: int = 50) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following `next` to the end."""
    pages: list[list[dict[str, Any]]] = []
    token = None
    while True:
        query = dict(params, limit=limit, **({"next": token} if token else {}))
        body = api.ok("GET", query_path(route, query))
        pages.append(body["items"])
        token = body["next"]
        if token is None:
            return pages
        assert len(pages) < 100, "paging does not end"


def error_code(response: Any) -> str:
    return str(json.loads(response.body)["error"]["code"])


# -- 120 signature-log entries across 3 keypairs ---------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    account: Account
    other_user: str
    keypairs: tuple[str, str, str]
    entries: list[Any]  # as written, oldest first
    times: list[datetime]


BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(aws: dict[str, str]) -> Seeded:
    """120 entries, 61 s apart (a tenth on whole seconds), across 3 keypairs, 2 signers, some failed.

    Keypair 1 was renamed half-way (`beta-old` → `Beta-Release`); keypair 2 never existed in the keypairs
    table, like a deleted one: its entries must stay findable by id and alias.
    """
    from chalicelib.ids import new_id

    account = make_account()
    other_user = new_id("usr")
    keypairs = (new_id("kp"), new_id("kp"), new_id("kp"))
    entries, times = [], []
    for i in range(120):
        at = BASE + timedelta(seconds=61 * i, milliseconds=0 if i % 10 == 0 else (i * 137) % 1000)
        kp = i % 3
        alias = ("alpha", "beta-old" if i < 60 else "Beta-Release", "gamma")[kp]
        entries.append(save_entry(signature_entry(
            account.id, at, keypair_id=keypairs[kp], alias=alias,
            signer=account.user_id if i % 2 == 0 else other_user, status="failed" if i % 7 == 0 else "success",
        )))
        times.append(at)
    return Seeded(account, other_user, keypairs, entries, times)


def expected_ids(seeded: Seeded, params: dict[str, str]) -> list[str]:
    """The ids a filter set selects, newest first, computed from what was written."""
    from chalicelib.clock import parse_rfc3339

    start = parse_rfc3339(params["from"]) if "from" in params else None
    end = parse_rfc3339(params["to"]) if "to" in params else None
    chosen = []
    for item, at in zip(seeded.entries, seeded.times, strict=True):
        if "keypair_id" in params and item.keypair_id != params["keypair_id"]:
            continue
        if "keypair_alias" in params and item.keypair_alias.lower() != params["keypair_alias"].lower():
            continue
        if "signer" in params and item.signer != params["signer"]:
            continue
        if "status" in params and item.status != params["status"]:
            continue
        if (start and at < start) or (end and at > end):
            continue
        chosen.append(item.id)
    return list(reversed(chosen))


def iso(value: datetime) -> str:
    from chalicelib.clock import rfc3339

    return rfc3339(value)


FILTER_SETS = {
    "all": lambda s: {},
    "keypair_id": lambda s: {"keypair_id": s.keypairs[0]},
    "deleted keypair by id": lambda s: {"keypair_id": s.keypairs[2]},
    "old alias after rename": lambda s: {"keypair_alias": "beta-old"},
    "new alias, other case": lambda s: {"keypair_alias": "BETA-RELEASE"},
    "deleted keypair by alias": lambda s: {"keypair_alias": "gamma"},
    "status": lambda s: {"status": "failed"},
    "signer": lambda s: {"signer": s.other_user},
    "keypair_id + status": lambda s: {"keypair_id": s.keypairs[1], "status": "success"},
    "alias + signer + status": lambda s: {"keypair_alias": "alpha", "signer": s.account.user_id, "status": "success"},
    "signer + status": lambda s: {"signer": s.account.user_id, "status": "failed"},
}


@pytest.mark.parametrize("name", FILTER_SETS)
@pytest.mark.parametrize("window", ["no range", "range"])
def test_signature_log_pages_return_every_entry_once_in_order(
    client: Any, seeded: Seeded, name: str, window: str
) -> None:
    api = Api(client, seeded.account)
    params = FILTER_SETS[name](seeded)
    if window == "range":
        # From just after entry 15 (which has milliseconds) to entry 100 exactly (a whole second): inclusive.
        params.update({"from": iso(seeded.times[15] + timedelta(milliseconds=1)), "to": iso(seeded.times[100])})
    want = expected_ids(seeded, params)
    assert want, "the filter set must select something"
    pages = walk(api, "signature-logs", params)
    got = [entry["id"] for items in pages for entry in items]
    assert got == want
    assert all(len(items) == 50 for items in pages[:-1])
    assert len(pages) == max(1, -(-len(want) // 50))
    stamps = [entry["signed_at"] for items in pages for entry in items]
    assert [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps] == sorted(
        (datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps), reverse=True)


def test_the_whole_log_is_three_pages(client: Any, seeded: Seeded) -> None:
    pages = walk(Api(client, seeded.account), "signature-logs", {})
    assert [len(items) for items in pages] == [50, 50, 20]
    first = pages[0][0]
    assert set(first) == SIGNATURE_FIELDS
    assert first["id"] == seeded.entries[-1].id and first["generation"] == 1


def test_open_ended_ranges(client: Any, seeded: Seeded) -> None:
    api = Api(client, seeded.account)
    since = {"from": iso(seeded.times[110])}
    assert [e["id"] for p in walk(api, "signature-logs", since) for e in p] == expected_ids(seeded, since)
    until = {"to": iso(seeded.times[4] - timedelta(milliseconds=1)), "keypair_alias": "beta-old"}
    assert [e["id"] for p in walk(api, "signature-logs", until) for e in p] == expected_ids(seeded, until)
    # Any RFC 3339 offset works.
    offset = {"from": seeded.times[50].astimezone(timezone(timedelta(hours=2))).isoformat()}
    assert [e["id"] for p in walk(api, "signature-logs", offset) for e in p] == expected_ids(seeded, offset)


# -- time ranges to the millisecond ------------------------------------------------------------


def test_range_edges_within_one_second(client: Any, account: Account) -> None:
    """Entries on a whole second and at .250/.750 of it: bounds are exact and `to` is inclusive."""
    second = datetime(2026, 5, 5, 8, 30, 0, tzinfo=UTC)
    made = {}
    for ms in (0, 250, 750):
        item = save_entry(audit_entry(account, second + timedelta(milliseconds=ms), type="team", action="create",
                                      resource_id=f"team_{ms}"))
        made[ms] = item.id
    api = Api(client, account)

    def ids(**params: str) -> set[str]:
        return {e["id"] for p in walk(api, "audit-logs", dict(params, type="team")) for e in p}

    assert ids(**{"from": "2026-05-05T08:30:00Z", "to": "2026-05-05T08:30:00Z"}) == {made[0]}
    assert ids(**{"from": "2026-05-05T08:30:00Z", "to": "2026-05-05T08:30:00.999Z"}) == set(made.values())
    assert ids(**{"from": "2026-05-05T08:30:00.250Z", "to": "2026-05-05T08:30:00.750Z"}) == {made[250], made[750]}
    assert ids(**{"from": "2026-05-05T08:30:00.001Z"}) == {made[250], made[750]}
    assert ids(**{"to": "2026-05-05T08:30:00.249Z"}) == {made[0]}
    assert ids(**{"from": "2026-05-05T08:30:01Z"}) == set()
    assert ids(**{"to": "2026-05-05T08:29:59.999Z"}) == set()


def test_newest_first_within_one_second(client: Any, account: Account) -> None:
    second = datetime(2026, 5, 6, 9, 0, 0, tzinfo=UTC)
    older = save_entry(audit_entry(account, second, type="team", action="create"))
    newer = save_entry(audit_entry(account, second + timedelta(milliseconds=500), type="team", action="create"))
    got = [e["id"] for p in walk(Api(client, account), "audit-logs", {"type": "team"}) for e in p]
    assert got == [newer.id, older.id]


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("audit-logs", {"kind": "dynamic"}, "kind"),
        ("audit-logs", {"type": ""}, "type"),
        ("audit-logs", {"type": "Dynamic"}, "type"),
        ("audit-logs", {"action": "re fresh"}, "action"),
        ("audit-logs", {"outcome": "failed"}, "outcome"),
        ("audit-logs", {"actor": "bob smith"}, "actor"),
        ("audit-logs", {"resource_id": "x" * 201}, "resource_id"),
        ("audit-logs", {"from": "yesterday"}, "from"),
        ("audit-logs", {"to": "2026-01-01T00:00:00"}, "to"),
        ("audit-logs", {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ("audit-logs", {"type": "dynamic\n"}, "type"),
        ("audit-logs", {"from": "0001-01-01T00:00:00+01:00"}, "from"),
        ("audit-logs", {"to": "9999-12-31T23:59:59-01:00"}, "to"),
        ("audit-logs", {"limit": "0"}, "limit"),
        ("audit-logs", {"limit": "501"}, "limit"),
        ("signature-logs", {"keypair": "x"}, "keypair"),
        ("signature-logs", {"type": "dynamic"}, "type"),
        ("signature-logs", {"status": "ok"}, "status"),
        ("signature-logs", {"keypair_id": "release"}, "keypair_id"),
        ("signature-logs", {"keypair_alias": "no spaces"}, "keypair_alias"),
        ("signature-logs", {"signer": "system:scheduler"}, "signer"),
        ("signature-logs", {"keypair_id": "kp_01JAAAAAAAAAAAAAAAAAAAAAAA\n"}, "keypair_id"),
        ("signature-logs", {"keypair_alias": "alpha\n"}, "keypair_alias"),
        ("signature-logs", {"from": "2026-13-01T00:00:00Z"}, "from"),
        ("signature-logs", {"limit": "ten"}, "limit"),
    ],
)
def test_bad_filters_are_400(api: Api, route: str, params: dict[str, str], field: str) -> None:
    response = api.call("GET", query_path(route, params))
    assert response.status_code == 400
    body = json.loads(response.body)
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["field"] == field


def test_reading_logs_needs_view_audit_log(client: Any, account: Account) -> None:
    outsider = Api(client, add_user(account, "signer-only", permissions=("sign",)))
    for route in ("audit-logs", "signature-logs"):
        response = outsider.call("GET", f"/{route}")
        assert response.status_code == 403 and error_code(response) == "forbidden"
        assert client.http.get(f"/api/v1/{route}").status_code == 401


# -- pagination tokens ------------------------------------------------------------------------


def _first_token(api: Api, route: str, params: dict[str, str]) -> str:
    body = api.ok("GET", query_path(route, dict(params, limit=5)))
    assert body["next"], "need a second page"
    return str(body["next"])


def _assert_rejected(api: Api, route: str, params: dict[str, Any]) -> None:
    response = api.call("GET", query_path(route, params))
    assert response.status_code == 400, response.body
    body = json.loads(response.body)
    assert body["error"]["code"] == "invalid_pagination_token"
    assert "items" not in body


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_altered_tokens_are_rejected(client: Any, seeded: Seeded) -> None:
    api = Api(client, seeded.account)
    params = {"keypair_id": seeded.keypairs[0]}
    token = _first_token(api, "signature-logs", params)
    assert api.ok("GET", query_path("signature-logs", dict(params, limit=5, next=token)))["items"]
    size = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for index in (0, 11, 12, size // 2, size - 17, size - 1):  # nonce, first ciphertext byte, middle, tag
        _assert_rejected(api, "signature-logs", dict(params, limit=5, next=_flip(token, index)))
    for garbage in ("x", "not a token", "A" * 40, token[:-4], token + "AAAA"):
        _assert_rejected(api, "signature-logs", dict(params, limit=5, next=garbage))


def test_tokens_are_bound_to_filters_route_and_account(client: Any, seeded: Seeded) -> None:
    api = Api(client, seeded.account)
    params = {"keypair_id": seeded.keypairs[0]}
    token = _first_token(api, "signature-logs", params)
    _assert_rejected(api, "signature-logs", {"keypair_id": seeded.keypairs[1], "next": token})
    _assert_rejected(api, "signature-logs", {"keypair_id": seeded.keypairs[0], "status": "success", "next": token})
    _assert_rejected(api, "signature-logs", {"next": token})
    _assert_rejected(api, "audit-logs", {"next": token})
    stranger = Api(client, make_account())
    _assert_rejected(stranger, "signature-logs", dict(params, next=token))
    # The limit is not part of the query: a client may change its page size between pages.
    assert api.ok("GET", query_path("signature-logs", dict(params, limit=7, next=token)))["items"]


def test_expired_tokens_are_rejected(client: Any, seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.services import pagination
    from chalicelib.services.container import get_deps

    api = Api(client, seeded.account)
    params = {"status": "success"}
    key = get_deps().token_key()
    token = _first_token(api, "signature-logs", params)
    position = pagination.open_token(key, token, seeded.account.id, "signature-logs", params)
    # A token sealed (by the real code) two hours ago, for this very account, route, filters and position.
    two_hours_ago = time.time() - 7200
    with monkeypatch.context() as patched:
        patched.setattr(pagination.time, "time", lambda: two_hours_ago)
        expired = pagination.seal(key, seeded.account.id, "signature-logs", params, position)
    _assert_rejected(api, "signature-logs", dict(params, next=expired))
    fresh = pagination.seal(key, seeded.account.id, "signature-logs", params, position)
    assert api.ok("GET", query_path("signature-logs", dict(params, next=fresh)))["items"]


# -- cross-account isolation ------------------------------------------------------------------


def test_accounts_never_see_each_other(client: Any, seeded: Seeded, account: Account) -> None:
    mine = save_entry(signature_entry(account.id, datetime.now(UTC), keypair_id=seeded.keypairs[0],
                                      alias="alpha", signer=seeded.other_user))
    api = Api(client, account)
    for params in ({}, {"keypair_id": seeded.keypairs[0]}, {"keypair_alias": "alpha"},
                   {"signer": seeded.other_user}, {"status": "success"}):
        assert [e["id"] for p in walk(api, "signature-logs", params) for e in p] == [mine.id]
    audit = [e for p in walk(api, "audit-logs", {}) for e in p]
    assert audit and {e["actor"] for e in audit} == {"system:bootstrap"}
    assert walk(api, "audit-logs", {"actor": seeded.account.user_id}) == [[]]
    assert walk(api, "audit-logs", {"resource_id": seeded.account.id}) == [[]]


# -- no scans: every filter set is a Query on the index chosen for it ------------------------------


@pytest.fixture
def dynamodb_calls(aws: dict[str, str]) -> Iterator[list[tuple[str, str | None]]]:
    """(operation, IndexName) of every DynamoDB call made by clients created during the test.

    The handler is added to botocore's built-in handlers (as moto adds its own) and the cached
    connections are dropped, so every DynamoDB client the app uses from here on is a new one that has it.
    """
    from chalicelib.storage.connection import reset as reset_connections

    calls: list[tuple[str, str | None]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params.get("IndexName")))

    handler = ("before-parameter-build.dynamodb", record)
    BUILTIN_HANDLERS.append(handler)
    reset_connections()
    try:
        yield calls
    finally:
        BUILTIN_HANDLERS.remove(handler)
        reset_connections()


AUDIT_PLANS = [
    ({}, None),
    ({"type": "dynamic", "action": "refresh"}, "by_type_action"),
    ({"type": "dynamic", "action": "refresh", "actor": "system:scheduler", "outcome": "success"}, "by_type_action"),
    ({"resource_id": "kp_01JAAAAAAAAAAAAAAAAAAAAAAA"}, "by_resource"),
    ({"resource_id": "kp_01JAAAAAAAAAAAAAAAAAAAAAAA", "type": "dynamic", "action": "refresh"}, "by_resource"),
    ({"actor": "system:scheduler"}, "by_actor"),
    ({"actor": "system:scheduler", "type": "dynamic"}, "by_actor"),
    ({"type": "dynamic"}, "by_type"),
    ({"type": "dynamic", "outcome": "failure"}, "by_type"),
    ({"action": "sign_denied"}, "by_action"),
    ({"outcome": "failure"}, None),
]
SIGNATURE_PLANS = [
    ({}, None),
    ({"keypair_id": "kp_01JAAAAAAAAAAAAAAAAAAAAAAA"}, "by_keypair_id"),
    ({"keypair_id": "kp_01JAAAAAAAAAAAAAAAAAAAAAAA", "keypair_alias": "alpha", "status": "failed"}, "by_keypair_id"),
    ({"keypair_alias": "alpha"}, "by_alias"),
    ({"keypair_alias": "alpha", "signer": "usr_01JAAAAAAAAAAAAAAAAAAAAAAA"}, "by_alias"),
    ({"signer": "usr_01JAAAAAAAAAAAAAAAAAAAAAAA"}, "by_signer"),
    ({"signer": "usr_01JAAAAAAAAAAAAAAAAAAAAAAA", "status": "failed"}, "by_signer"),
    ({"status": "failed"}, "by_status"),
]


@pytest.mark.parametrize("window", [{}, {"from": "2026-03-01T12:00:00Z", "to": "2026-03-01T14:00:00Z"}])
def test_no_route_scans(
    client: Any, seeded: Seeded, window: dict[str, str], dynamodb_calls: list[tuple[str, str | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.services.authentication import Authenticator
    from chalicelib.services.container import get_services

    # The caller is authenticated once, on a clock that stands still: only the log queries are counted.
    services = get_services()
    monkeypatch.setattr(services, "auth", Authenticator(services.deps, monotonic=FakeMonotonic()))
    api = Api(client, seeded.account)
    api.ok("GET", "/me")
    for route, plans in (("audit-logs", AUDIT_PLANS), ("signature-logs", SIGNATURE_PLANS)):
        for params, index in plans:
            dynamodb_calls.clear()
            walk(api, route, dict(params, **window), limit=20)
            queries = [name for op, name in dynamodb_calls if op == "Query"]
            assert queries, f"{route} {params}: the counter saw no Query"
            assert set(queries) == {index}, (route, params, dynamodb_calls)
            assert not [op for op, _ in dynamodb_calls if op in ("Scan", "ParallelScan")]
            assert {op for op, _ in dynamodb_calls} == {"Query"}, dynamodb_calls


# -- the documented refresh query ------------------------------------------------------------


class SteppedClock:
    """A settable clock for the scheduled ticks."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _drain_mine(sqs: Any, url: str, account: str) -> list[str]:
    """Empty the refresh queue; the bodies of this account's messages."""
    bodies = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        for message in got:
            if json.loads(message["Body"])["account"] == account:
                bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_refreshed_dynamic_keypairs_query(client: Any, account: Account) -> None:
    """`?type=dynamic&action=refresh` after three scheduled ticks returns exactly the refreshes."""
    from chalicelib.clock import next_tick
    from chalicelib.domain.logs import SCHEDULER
    from chalicelib.services.container import get_services

    deps = get_services().deps
    interval = deps.settings.schedule_seconds
    # A day ahead on the quarter-hour grid, so nothing another test made (at the real time) is in the way.
    start = next_tick(datetime.now(UTC) + timedelta(days=1), interval)
    clock = SteppedClock(start + timedelta(seconds=30))
    real_clock, deps.clock = deps.clock, clock
    try:
        api = Api(client, account)
        dynamic = [api.ok("POST", "/keypairs", dict(EC_KEYPAIR, alias=f"dyn-{i}", type="dynamic"), 201)
                   for i in range(2)]
        static = api.ok("POST", "/keypairs", dict(EC_KEYPAIR, alias="static-1"), 201)
        api.ok("PATCH", f"/keypairs/{dynamic[0]['id']}", {"status": "offline"})
        api.ok("PATCH", f"/keypairs/{dynamic[0]['id']}", {"status": "online"})
        api.ok("PATCH", f"/keypairs/{static['id']}", {"alias": "static-2"})
        sqs, url = deps.queue()
        _drain_mine(sqs, url, account.id)
        for tick in range(1, 4):
            clock.now = start + timedelta(seconds=tick * interval, milliseconds=350)
            schedule.tick(client, sqs, url)  # the tick and its slices: the refresh messages are left on the queue
            mine = _drain_mine(sqs, url, account.id)
            assert len(mine) == 2
            event = client.events.generate_sqs_event(message_bodies=mine, queue_name=deps.settings.refresh_queue_name)
            assert client.lambda_.invoke("refresh_worker", event).payload == {"refreshed": 2, "skipped": 0}
        api.ok("DELETE", f"/keypairs/{dynamic[1]['id']}", status=204)
    finally:
        deps.clock = real_clock

    got = [e for p in walk(api, "audit-logs", {"type": "dynamic", "action": "refresh"}) for e in p]
    assert len(got) == 6
    assert {(e["type"], e["action"], e["actor"], e["outcome"]) for e in got} == {
        ("dynamic", "refresh", SCHEDULER, "success")}
    assert sorted(e["resource_id"] for e in got) == sorted([dynamic[0]["id"], dynamic[1]["id"]] * 3)
    assert [e["at"] for e in got] == sorted((e["at"] for e in got), reverse=True)
    assert all(set(e) == AUDIT_FIELDS for e in got)
    one = [e for p in walk(api, "audit-logs", {"type": "dynamic", "action": "refresh",
                                                "resource_id": dynamic[1]["id"]}) for e in p]
    assert len(one) == 3 and {e["resource_alias"] for e in one} == {"dyn-1"}
    # The whole log holds much more than the refreshes: generates, suspends, an update, a delete.
    everything = {(e["type"], e["action"]) for p in walk(api, "audit-logs", {}) for e in p}
    assert {("dynamic", "suspend"), ("static", "update"), ("dynamic", "delete"), ("dynamic", "refresh")} <= everything


# -- audit entries from the real routes --------------------------------------------------------


def test_audit_filters_over_real_changes(client: Any, account: Account) -> None:
    api = Api(client, account)
    kp = api.ok("POST", "/keypairs", dict(EC_KEYPAIR, alias="rel"), 201)
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"status": "offline"})
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"alias": "rel-2"})
    key = api.ok("POST", f"/users/{account.user_id}/api-keys", {"name": "ci"}, 201)
    bad = key["key"][:-1] + ("a" if key["key"][-1] != "a" else "b")
    assert client.http.get("/api/v1/me", headers={"X-API-Key": bad}).status_code == 401
    api.ok("DELETE", f"/users/{account.user_id}/api-keys/{key['id']}", status=204)
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)

    def actions(**params: str) -> list[str]:
        return [e["action"] for p in walk(api, "audit-logs", params) for e in p]

    assert actions(resource_id=kp["id"]) == ["delete", "update", "suspend", "generate"]
    assert actions(type="static") == ["delete", "update", "suspend", "generate"]
    assert actions(type="api_key") == ["revoke", "authenticate", "create", "create"]
    assert actions(type="api_key", outcome="failure") == ["authenticate"]
    assert actions(outcome="failure") == ["authenticate"]
    assert actions(actor=account.user_id, type="api_key") == ["revoke", "create"]
    assert actions(action="create", actor=account.user_id) == ["create"]
    assert set(actions(actor="system:bootstrap")) == {"create"}
    entry = api.ok("GET", query_path("audit-logs", {"resource_id": kp["id"], "action": "update"}))["items"][0]
    assert set(entry) == AUDIT_FIELDS
    assert entry["resource_alias"] == "rel-2" and entry["actor"] == account.user_id
    assert entry["details"]["changes"]["alias"] == {"from": "rel", "to": "rel-2"}
    assert entry["outcome"] == "success" and entry["error"] is None


# -- the real sign route: rename and delete keep entries findable ------------------------------------


def test_signature_log_follows_rename_and_delete(client: Any, account: Account) -> None:
    api = Api(client, account)
    kp = api.ok("POST", "/keypairs", dict(EC_KEYPAIR, alias="ship-it"), 201)
    digest = hashlib.sha256(b"release 1.0").digest()
    body = {"hash": base64.b64encode(digest).decode(), "hash_algorithm": "SHA-256", "file_name": "app.exe",
            "tool": "rotasign-cli/1.0"}
    first = api.ok("POST", "/keypairs/ship-it/sign", body)
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"alias": "shipped"})
    second = api.ok("POST", "/keypairs/shipped/sign", body)
    refused = api.call("POST", "/keypairs/ship-it/sign", body)  # the old alias names nothing any more
    assert refused.status_code == 404
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)
    after_delete = api.call("POST", f"/keypairs/{kp['id']}/sign", body)
    assert after_delete.status_code == 404

    def ids(**params: str) -> list[str]:
        return [e["id"] for p in walk(api, "signature-logs", params) for e in p]

    by_id = [e for p in walk(api, "signature-logs", {"keypair_id": kp["id"]}) for e in p]
    assert [e["id"] for e in by_id][1:] == [second["signature_log_id"], first["signature_log_id"]]
    assert [e["status"] for e in by_id] == ["failed", "success", "success"]
    assert ids(keypair_alias="ship-it")[-1] == first["signature_log_id"]
    assert ids(keypair_alias="ship-it", status="success") == [first["signature_log_id"]]
    assert ids(keypair_alias="SHIPPED", status="success") == [second["signature_log_id"]]
    assert len(ids(keypair_alias="ship-it", status="failed")) == 1  # the attempt on the freed alias
    assert ids(signer=account.user_id, status="failed") == [by_id[0]["id"], *ids(keypair_alias="ship-it",
                                                                                    status="failed")]

    entry = by_id[2]
    assert set(entry) == SIGNATURE_FIELDS | {"timestamp_token", "certificate_serial"}
    assert entry["keypair_alias"] == "ship-it" and entry["signature"] == first["signature"]
    assert entry["key_id"] == first["key_id"] and entry["generation"] == 1 and entry["signer"] == account.user_id
    assert entry["hash"] == body["hash"] and entry["file_name"] == "app.exe" and entry["status"] == "success"
    public = load_pem_public_key(kp["public_key"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(entry["signature"]), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    denied = [e for p in walk(api, "audit-logs", {"action": "sign_denied"}) for e in p]
    assert len(denied) == 2 and {e["outcome"] for e in denied} == {"failure"}


# -- retention --------------------------------------------------------------------------------


def test_ttl_is_on_for_both_log_tables(aws: dict[str, str]) -> None:
    import boto3

    from chalicelib.services.container import get_deps
    from chalicelib.storage.retention import enable_log_ttl

    settings = get_deps().settings
    dynamodb = boto3.client("dynamodb", region_name=settings.region)
    for table in ("audit_log", "signature_log"):
        ttl = dynamodb.describe_time_to_live(TableName=settings.table_name(table))["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert enable_log_ttl(settings) == []  # idempotent: create_tables may run again


def test_retention_setting_sets_expiry(client: Any, account: Account) -> None:
    from chalicelib.services.container import get_deps, set_deps
    from chalicelib.storage.tables import AuditLogModel, SignatureLogModel

    api = Api(client, account)
    api.ok("POST", "/keypairs", dict(EC_KEYPAIR, alias="kept"), 201)
    original = get_deps()
    set_deps(replace(original, settings=replace(original.settings, log_retention_days=30)))
    try:
        api.ok("POST", "/keypairs", dict(EC_KEYPAIR, alias="expiring"), 201)
        signed = api.ok("POST", "/keypairs/expiring/sign",
                        {"hash": base64.b64encode(hashlib.sha256(b"x").digest()).decode()})
    finally:
        set_deps(original)
    entries = {e.resource_alias: e for e in AuditLogModel.query(account.id) if e.action == "generate"}
    assert entries["kept"].expires is None
    expiring = entries["expiring"]
    # TTL is stored in whole epoch seconds.
    kept_for = expiring.expires - datetime.fromisoformat(expiring.at.replace("Z", "+00:00"))
    assert abs(kept_for - timedelta(days=30)) < timedelta(seconds=1)
    signature = next(e for e in SignatureLogModel.query(account.id) if e.id == signed["signature_log_id"])
    kept_for = signature.expires - datetime.fromisoformat(signature.signed_at.replace("Z", "+00:00"))
    assert abs(kept_for - timedelta(days=30)) < timedelta(seconds=1)


# -- append-only ------------------------------------------------------------------------------

_LOG_NAMES = {"AuditLogModel", "SignatureLogModel", "audit_item", "log_entry", "audit_log", "signature_log"}
_MUTATIONS = {"update", "delete", "batch_write", "update_item", "delete_item", "batch_write_item",
              "transact_write_items", "delete_table", "update_table"}


def _mentions(node: ast.AST, names: set[str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in names:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in names:
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value in names:
            return True
    return False


def log_mutations(source: str, filename: str = "<src>") -> list[str]:
    """Calls that update or delete something built from, read from, or naming a log model or table."""
    tree = ast.parse(source, filename)
    found = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    top_level = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef
                                                                           | ast.ClassDef)], type_ignores=[])
    for scope in [top_level, *functions]:
        tainted = set(_LOG_NAMES)
        # Names bound (in this scope) to log entries: `x = AuditLogModel(...)`, `for x in SignatureLogModel.query()`.
        for _ in range(3):
            for node in ast.walk(scope):
                if isinstance(node, ast.Assign | ast.AnnAssign | ast.For | ast.NamedExpr | ast.withitem):
                    value = getattr(node, "value", None) or getattr(node, "iter", None) or getattr(
                        node, "context_expr", None)
                    targets = (getattr(node, "targets", None) or [getattr(node, "target", None)
                                                                   or getattr(node, "optional_vars", None)])
                    if value is not None and _mentions(value, tainted):
                        tainted |= {n.id for t in targets if t is not None for n in ast.walk(t)
                                    if isinstance(n, ast.Name)}
        for node in ast.walk(scope):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATIONS:
                receiver_and_args = [node.func.value, *node.args, *[k.value for k in node.keywords]]
                if any(_mentions(part, tainted) for part in receiver_and_args):
                    found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:120]}")
    return sorted(set(found))


def test_the_checker_finds_log_mutations() -> None:
    bad = """
def purge(account):
    for entry in AuditLogModel.query(account):
        entry.delete()
def edit(tx, who, now):
    item = audit_item(who, now, type="x", action="y")
    tx.update(item, actions=[])
def raw(client, settings):
    client.delete_item(TableName=settings.table_name("signature_log"), Key={})
def bulk():
    with SignatureLogModel.batch_write() as batch:
        batch.delete(SignatureLogModel("a", "b"))
"""
    assert len(log_mutations(bad)) == 5
    fine = """
def ok(tx, kp, who, now):
    tx.update(kp, actions=[])
    tx.save(audit_item(who, now, type="x", action="y"), condition=AuditLogModel.sk.does_not_exist())
    tx.delete(AliasClaim("a", "b"))
"""
    assert log_mutations(fine) == []


def test_no_code_path_updates_or_deletes_a_log_entry() -> None:
    found = []
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        found += log_mutations(path.read_text(), str(path.relative_to(ROOT)))
    assert found == [], "log entries are append-only:\n" + "\n".join(found)
