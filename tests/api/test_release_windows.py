"""Offline keypairs sign only inside a release window that names them (and the caller, when it names
users), until the window's budget is used: counted exactly, in the write of the signature's log entry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.clock import rfc3339
from chalicelib.errors import RotasignError
from chalicelib.ids import new_id
from chalicelib.storage.tables import ReleaseWindowModel, SignatureLogModel
from tests.support.api import Account, Api, check_signed, digest_body, sign_in_process
from tests.support.clock import FakeClock, FakeMonotonic, on_cache_clock
from tests.support.requests import RequestCounter

EC = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The services' wall clock, moved by the test."""
    from chalicelib.services.container import get_deps

    fake = FakeClock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(get_deps(), "clock", fake)
    return fake


@pytest.fixture
def caches(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    return on_cache_clock(monkeypatch)


@pytest.fixture
def offline(api: Api) -> dict[str, Any]:
    return dict(api.ok("POST", "/keypairs", {"alias": "offline-release", **EC, "status": "offline"}, 201))


def window(api: Api, kp: dict[str, Any], start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    body = {"name": "release 2.0", "keypair_ids": [kp["id"]], "starts_at": rfc3339(start), "ends_at": rfc3339(end),
            **extra}
    return dict(api.ok("POST", "/release-windows", body, 201))


def sign(api: Api, kp: dict[str, Any], data: bytes = b"artifact") -> Any:
    return api.call("POST", f"/keypairs/{kp['id']}/sign", digest_body(data))


def test_refused_before_allowed_during_refused_after(
    api: Api, offline: dict[str, Any], clock: FakeClock, caches: FakeMonotonic, tmp_path: Path
) -> None:
    opened = window(api, offline, clock.now + timedelta(minutes=1), clock.now + timedelta(minutes=2))
    assert opened["signatures_used"] == 0 and opened["max_signatures"] is None and opened["user_ids"] == []
    before = api.error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"early"), 403, "keypair_offline")
    assert before["details"]["keypair"] == offline["id"]
    clock.advance(60)  # the window's first second
    signed = api.ok("POST", f"/keypairs/{offline['alias']}/sign", digest_body(b"during"))
    check_signed(tmp_path, signed, b"during")
    clock.advance(59.999)
    api.ok("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"last moment"))
    clock.advance(0.001)  # ends_at itself is outside
    api.error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"late"), 403, "keypair_offline")
    assert api.ok("GET", f"/release-windows/{opened['id']}")["signatures_used"] == 2
    statuses = [(e.status, e.error) for e in SignatureLogModel.query(api.account.id)
                if e.keypair_id == offline["id"]]
    assert statuses == [("failed", "keypair_offline"), ("success", None), ("success", None),
                        ("failed", "keypair_offline")]


def test_the_budget_is_spent_exactly(api: Api, offline: dict[str, Any], clock: FakeClock,
                                     caches: FakeMonotonic) -> None:
    opened = window(api, offline, clock.now, clock.now + timedelta(hours=1), max_signatures=3)
    for i in range(3):
        assert sign(api, offline, bytes([i])).status_code == 200
    api.error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"fourth"), 403, "keypair_offline")
    assert api.ok("GET", f"/release-windows/{opened['id']}")["signatures_used"] == 3
    # Room for two more: a batch of three is refused whole, a batch of two fits exactly.
    api.ok("PATCH", f"/release-windows/{opened['id']}", {"max_signatures": 5})
    items = [digest_body(bytes([i])) for i in range(3)]
    api.error("POST", f"/keypairs/{offline['id']}/sign", {"items": items}, 403, "keypair_offline")
    assert api.ok("GET", f"/release-windows/{opened['id']}")["signatures_used"] == 3
    assert len(api.ok("POST", f"/keypairs/{offline['id']}/sign", {"items": items[:2]})["items"]) == 2
    assert api.ok("GET", f"/release-windows/{opened['id']}")["signatures_used"] == 5
    # The budget cannot be lowered below what is used.
    error = api.error("PATCH", f"/release-windows/{opened['id']}", {"max_signatures": 4}, 409, "conflict")
    assert error["details"]["field"] == "max_signatures"
    successes = [e for e in SignatureLogModel.query(api.account.id) if e.keypair_id == offline["id"]
                 and e.status == "success"]
    assert len(successes) == 5


def test_a_window_that_names_users_lets_only_them_sign(
    api: Api, offline: dict[str, Any], clock: FakeClock, caches: FakeMonotonic
) -> None:
    releaser = api.new_user("releaser", roles=("developer",))
    other = api.new_user("other", roles=("developer",))
    window(api, offline, clock.now, clock.now + timedelta(hours=1), user_ids=[releaser.user_id])
    assert api.as_(releaser).call("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"x")).status_code == 200
    api.as_(other).error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"x"), 403, "keypair_offline")
    api.error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"x"), 403, "keypair_offline")  # the admin


def test_a_windowed_batch_fits_one_transaction(api: Api, offline: dict[str, Any], clock: FakeClock,
                                               caches: FakeMonotonic) -> None:
    opened = window(api, offline, clock.now, clock.now + timedelta(hours=1))
    items = [digest_body(str(i).encode()) for i in range(100)]
    before = sum(1 for _ in SignatureLogModel.query(api.account.id))
    error = api.error("POST", f"/keypairs/{offline['id']}/sign", {"items": items}, 400, "validation_error")
    assert error["details"]["field"] == "items"
    assert sum(1 for _ in SignatureLogModel.query(api.account.id)) == before  # a bad batch writes nothing
    with RequestCounter() as counter:
        assert len(api.ok("POST", f"/keypairs/{offline['id']}/sign", {"items": items[:99]})["items"]) == 99
    assert counter.of("dynamodb").count("TransactWriteItems") == 1
    assert api.ok("GET", f"/release-windows/{opened['id']}")["signatures_used"] == 99


def test_a_warm_windowed_signature_is_one_transaction(
    api: Api, offline: dict[str, Any], clock: FakeClock, caches: FakeMonotonic
) -> None:
    window(api, offline, clock.now, clock.now + timedelta(hours=1), max_signatures=10)
    assert sign(api, offline).status_code == 200  # fills the principal, state and window caches
    with RequestCounter() as warm:
        assert sign(api, offline).status_code == 200
    assert warm.of("dynamodb") == ["TransactWriteItems"], warm.calls
    caches.advance(5.001)  # every cache lapses
    with RequestCounter() as cold:
        assert sign(api, offline).status_code == 200
    # The key and its user, the user's groups and teams; the keypair's state; the account's open windows;
    # the account (its CA chain); then the one write.
    assert cold.of("dynamodb") == ["GetItem", "GetItem", "Query", "Query", "BatchGetItem", "Query", "GetItem",
                                   "TransactWriteItems"], cold.calls


def test_closing_a_window_elsewhere_stops_signing_at_once(
    api: Api, offline: dict[str, Any], clock: FakeClock, caches: FakeMonotonic
) -> None:
    opened = window(api, offline, clock.now, clock.now + timedelta(hours=1))
    assert sign(api, offline).status_code == 200  # this process now holds the window in its cache
    ReleaseWindowModel(api.account.id, opened["id"]).delete()  # another process closed it
    api.error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"x"), 403, "keypair_offline")
    # A window taken off the keypair (changed elsewhere) refuses the same way.
    second = window(api, offline, clock.now, clock.now + timedelta(hours=1))
    assert sign(api, offline).status_code == 200
    other = api.ok("POST", "/keypairs", {"alias": "another-offline", **EC, "status": "offline"}, 201)
    ReleaseWindowModel(api.account.id, second["id"]).update(
        actions=[ReleaseWindowModel.keypair_ids.set([other["id"]])])
    api.error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"x"), 403, "keypair_offline")


def test_twenty_concurrent_signers_spend_a_budget_of_five_exactly(
    api: Api, account: Account, offline: dict[str, Any]
) -> None:
    from chalicelib.services.container import get_services

    opened = window(api, offline, datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC) + timedelta(hours=1),
                    max_signatures=5)
    services = get_services()
    principal = services.auth.authenticate(account.api_key, None)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def signer(i: int) -> None:
        barrier.wait()
        try:
            sign_in_process(principal, offline["id"], digest_body(f"signer {i}".encode()))
            outcomes.append("signed")
        except RotasignError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=signer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["keypair_offline"] * 15 + ["signed"] * 5
    assert api.ok("GET", f"/release-windows/{opened['id']}")["signatures_used"] == 5
    entries = [e for e in SignatureLogModel.query(account.id) if e.keypair_id == offline["id"]]
    assert sorted(e.status for e in entries) == ["failed"] * 15 + ["success"] * 5


def test_windows_are_validated(api: Api, offline: dict[str, Any], clock: FakeClock) -> None:
    now = clock.now
    good = {"name": "w", "keypair_ids": [offline["id"]], "starts_at": rfc3339(now),
            "ends_at": rfc3339(now + timedelta(hours=1))}
    for body, field in [
        ({**good, "ends_at": rfc3339(now)}, "ends_at"),
        ({**good, "starts_at": rfc3339(now - timedelta(hours=2)), "ends_at": rfc3339(now - timedelta(hours=1))},
         "ends_at"),
        ({**good, "keypair_ids": []}, "keypair_ids"),
        ({**good, "keypair_ids": [new_id("kp")]}, "keypair_ids"),
        ({**good, "keypair_ids": ["offline-release"]}, "keypair_ids"),
        ({**good, "user_ids": [new_id("usr")]}, "user_ids"),
        ({**good, "max_signatures": 0}, "max_signatures"),
        ({**good, "max_signatures": "5"}, "max_signatures"),
        ({**good, "starts_at": "tomorrow"}, "starts_at"),
        ({k: v for k, v in good.items() if k != "name"}, "name"),
        ({k: v for k, v in good.items() if k != "ends_at"}, "ends_at"),
        ({**good, "signatures_used": 0}, "signatures_used"),
    ]:
        error = api.error("POST", "/release-windows", body, 400, "validation_error")
        assert error["details"]["field"] == field, (body, error)
    assert api.ok("GET", "/release-windows")["items"] == []


def test_windows_are_listed_changed_and_closed(api: Api, offline: dict[str, Any], clock: FakeClock,
                                               caches: FakeMonotonic) -> None:
    first = window(api, offline, clock.now, clock.now + timedelta(hours=1))
    second = window(api, offline, clock.now, clock.now + timedelta(hours=2), max_signatures=1)
    assert [w["id"] for w in api.ok("GET", "/release-windows")["items"]] == [second["id"], first["id"]]
    renamed = api.ok("PATCH", f"/release-windows/{first['id']}", {"name": "hotfix", "max_signatures": None})
    assert (renamed["name"], renamed["max_signatures"]) == ("hotfix", None)
    api.ok("DELETE", f"/release-windows/{first['id']}", status=204)
    # The remaining window's budget of one: one signature, then refused.
    assert sign(api, offline).status_code == 200
    api.error("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"x"), 403, "keypair_offline")
    api.error("GET", f"/release-windows/{first['id']}", None, 404, "not_found")
    api.error("PATCH", f"/release-windows/{first['id']}", {"name": "x"}, 404, "not_found")


def test_a_team_keypair_in_a_window_is_hidden_from_outsiders(api: Api, clock: FakeClock) -> None:
    api.ok("PATCH", "/account", {"teams_enabled": True})
    team = api.ok("POST", "/teams", {"name": "secret"}, 201)
    hidden = api.ok("POST", "/keypairs", {"alias": "team-offline", **EC, "status": "offline",
                                          "team_id": team["id"]}, 201)
    shown = api.ok("POST", "/keypairs", {"alias": "plain-offline", **EC, "status": "offline"}, 201)
    both = api.ok("POST", "/release-windows", {
        "name": "both", "keypair_ids": [hidden["id"], shown["id"]], "starts_at": rfc3339(clock.now),
        "ends_at": rfc3339(clock.now + timedelta(hours=1))}, 201)
    only = window(api, hidden, clock.now, clock.now + timedelta(hours=1))
    lead = api.as_(api.new_user("lead", roles=("lead",)))
    assert [(w["id"], w["keypair_ids"]) for w in lead.ok("GET", "/release-windows")["items"]] == [
        (both["id"], [shown["id"]])]
    lead.error("GET", f"/release-windows/{only['id']}", None, 404, "not_found")
    lead.error("DELETE", f"/release-windows/{only['id']}", None, 404, "not_found")
    # The lead's change keeps what it cannot see.
    lead.ok("PATCH", f"/release-windows/{both['id']}", {"keypair_ids": [shown["id"]], "name": "renamed"})
    assert api.ok("GET", f"/release-windows/{both['id']}")["keypair_ids"] == [shown["id"], hidden["id"]]
    error = lead.error("POST", "/release-windows", {"name": "x", "keypair_ids": [hidden["id"]],
                                                    "starts_at": rfc3339(clock.now),
                                                    "ends_at": rfc3339(clock.now + timedelta(hours=1))},
                       400, "validation_error")
    assert error["details"]["field"] == "keypair_ids"
