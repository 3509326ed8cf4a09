"""Clocks the tests move by hand."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any


class FakeClock:
    """A settable wall clock (timezone-aware); with `step`, every reading moves it on."""

    def __init__(self, now: datetime, step: timedelta | None = None) -> None:
        self.now = now
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            value = self.now
            if self.step is not None:
                self.now += self.step
            return value

    def advance(self, delta: timedelta | float) -> None:
        """Move the clock on by a timedelta or a number of seconds."""
        with self._lock:
            self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


class FakeMonotonic:
    """A `time.monotonic` stand-in (for caches), moved by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move it on."""
        self.now += seconds


@contextmanager
def installed(deps: Any, offset: timedelta) -> Iterator[FakeClock]:
    """A FakeClock `offset` away from now (whole seconds) as the services' clock, the real one put back after.

    A day ahead keeps a test clear of what other tests wrote at the real time; days behind make
    certificates issued "now" expired by the real clock that openssl reads.
    """
    real = deps.clock
    fake = FakeClock(datetime.now(UTC).replace(microsecond=0) + offset)
    deps.clock = fake
    try:
        yield fake
    finally:
        deps.clock = real


def on_caller_clock(monkeypatch: Any, clock: FakeMonotonic | None = None) -> FakeMonotonic:
    """Put this process's principal and account caches on a clock the test moves (by default one that
    stands still, so a measurement never meets a cache that lapsed because the machine was slow)."""
    from chalicelib.cache import TtlCache
    from chalicelib.services.authentication import Authenticator
    from chalicelib.services.container import get_services

    clock = clock or FakeMonotonic()
    services = get_services()
    monkeypatch.setattr(services, "auth", Authenticator(services.deps, monotonic=clock, sleep=clock.advance))
    monkeypatch.setattr(services.accounts, "_cache", TtlCache(services.deps.settings.state_cache_seconds, clock=clock))
    return clock


def on_cache_clock(monkeypatch: Any) -> FakeMonotonic:
    """Put this process's caches (principals, accounts, sign states, release windows) on one clock the test
    moves. Each cache is rebuilt empty on the fake clock, so the test also starts cold."""
    from chalicelib.services.container import get_services
    from chalicelib.services.release_windows import ReleaseGate
    from chalicelib.services.sign_state import SignStates

    clock = on_caller_clock(monkeypatch)
    services = get_services()
    states = SignStates(services.deps, monotonic=clock)
    gate = ReleaseGate(services.deps, monotonic=clock)
    monkeypatch.setattr(services.signing, "states", states)
    monkeypatch.setattr(services.keypairs, "states", states)
    monkeypatch.setattr(services.signing, "gate", gate)
    monkeypatch.setattr(services.windows, "gate", gate)
    return clock
