"""Clocks the tests move by hand."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta


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
