"""Authentication's guarantees, with the clocks under the test's control: a 401 reveals nothing by its
timing, a cached key never outlives its expiry, a key's use is recorded at most once per interval."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.clock import rfc3339
from chalicelib.errors import Unauthenticated
from chalicelib.ids import ulid
from chalicelib.services.authentication import FAILURE_FLOOR_SECONDS, USE_RECORD_SECONDS, Authenticator
from chalicelib.services.container import get_services
from tests.support.api import Account, add_user
from tests.support.clock import FakeClock, FakeMonotonic
from tests.support.requests import RequestCounter


def fake_secret() -> str:
    return base64.b32encode(os.urandom(32)).decode().rstrip("=").lower()


class SlowStore:
    """Makes each storage write of the audit path take `seconds` on the fake clock, as a real write would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, clock: FakeMonotonic, seconds: float) -> None:
        from chalicelib.storage.transaction import Transaction

        commit = Transaction.commit

        def slow_commit(tx: Transaction) -> None:
            clock.advance(seconds)
            commit(tx)

        monkeypatch.setattr(Transaction, "commit", slow_commit)


def timed(auth: Authenticator, clock: FakeMonotonic, header: str) -> float:
    started = clock()
    with pytest.raises(Unauthenticated):
        auth.authenticate(header, "192.0.2.1")
    return clock() - started


def test_a_401_takes_as_long_for_a_known_key_id_as_for_an_unknown_one(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = get_services()
    clock = FakeMonotonic()
    SlowStore(monkeypatch, clock, 0.015)  # the audit entry of a known key's failure costs a write
    auth = Authenticator(services.deps, monotonic=clock, sleep=clock.advance)
    known = timed(auth, clock, f"rsk_{account.api_key.split('_')[1]}_{fake_secret()}")
    unknown = timed(auth, clock, f"rsk_{ulid()}_{fake_secret()}")
    assert known == pytest.approx(FAILURE_FLOOR_SECONDS) and unknown == pytest.approx(FAILURE_FLOOR_SECONDS)
    # Without the floor the two differ by the write (what an outsider could measure).
    bare = Authenticator(services.deps, monotonic=clock, sleep=lambda _: None)
    monkeypatch.setattr("chalicelib.services.authentication.FAILURE_FLOOR_SECONDS", 0.0)
    fresh_key = add_user(account, "probe").api_key
    assert timed(bare, clock, f"rsk_{fresh_key.split('_')[1]}_{fake_secret()}") > timed(
        bare, clock, f"rsk_{ulid()}_{fake_secret()}")


def test_a_cached_principal_never_outlives_its_keys_expiry(account: Account) -> None:
    services = get_services()
    wall = FakeClock(datetime.now(UTC).replace(microsecond=0))
    mono = FakeMonotonic()
    deps = services.deps
    expires = wall.now + timedelta(seconds=2)
    user = add_user(account, "short-lived", roles=("auditor",), expires_at=rfc3339(expires))
    monkey = pytest.MonkeyPatch()
    monkey.setattr(deps, "clock", wall)
    try:
        auth = Authenticator(deps, monotonic=mono, sleep=mono.advance)
        assert auth.authenticate(user.api_key, None).user_id == user.user_id  # cached from now on
        wall.advance(1.5)
        mono.advance(1.5)
        assert auth.authenticate(user.api_key, None).user_id == user.user_id  # 0.5 s left: still valid
        wall.advance(0.6)
        mono.advance(0.6)  # well inside the 5-second cache bound, but past expires_at
        with pytest.raises(Unauthenticated):
            auth.authenticate(user.api_key, None)
    finally:
        monkey.undo()


def test_use_is_recorded_at_most_once_per_interval(account: Account) -> None:
    services = get_services()
    wall = FakeClock(datetime.now(UTC).replace(microsecond=0))
    mono = FakeMonotonic()
    user = add_user(account, "recorded", roles=("auditor",))
    key_id = user.api_key.split("_")[1]
    monkey = pytest.MonkeyPatch()
    monkey.setattr(services.deps, "clock", wall)
    try:
        auth = Authenticator(services.deps, monotonic=mono, sleep=mono.advance)

        def authenticate() -> list[str]:
            mono.advance(10)  # past the principal cache: the key is read again
            with RequestCounter() as counter:
                auth.authenticate(user.api_key, None)
            return counter.of("dynamodb")

        def last_used() -> Any:
            key = services.deps.store.identity.api_key(key_id)
            assert key is not None
            return key.last_used_at

        assert last_used() is None
        assert "UpdateItem" in authenticate()
        assert last_used() == rfc3339(wall.now)
        wall.advance(60)
        assert "UpdateItem" not in authenticate()  # within the interval: nothing written
        wall.advance(USE_RECORD_SECONDS)
        assert "UpdateItem" in authenticate()
        assert last_used() == rfc3339(wall.now)
        listed = services.api_keys.list(services.auth.authenticate(account.api_key, None), user.user_id)
        assert [k.last_used_at for k in listed] == [rfc3339(wall.now)]
    finally:
        monkey.undo()
