"""Operator counters as CloudWatch Embedded Metric Format log lines (no agent, no extra API call)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("rotasign.metrics")
NAMESPACE = "rotasign"


def emit(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
    """Write one metric; CloudWatch Logs turns EMF lines into metrics that alarms can watch.

    Every metric is recorded per stage (the deployment's alarms watch that) and, when it has more
    dimensions, per stage and those dimensions too.
    """
    from chalicelib.settings import get_settings

    sets = [["stage"]] + ([["stage", *sorted(dimensions)]] if dimensions else [])
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": sets, "Metrics": [{"Name": name, "Unit": unit}]}
            ],
        },
        name: value,
        **dimensions,
        "stage": get_settings().stage,
    }
    log.info(json.dumps(record, separators=(",", ":")), extra={"event": "metric", "metric": name})


class Counter:
    """A per-process count emitted at most once per `every` seconds per dimension set.

    A busy signer would otherwise write one metric line per request. Counts pending when a process ends
    (at most `every` seconds of them) are lost; a Lambda process flushes them on its next request.
    """

    def __init__(self, name: str, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.every = every
        self._clock = clock
        self._pending: dict[tuple[tuple[str, str], ...], float] = {}
        self._last = clock()
        self._lock = threading.Lock()

    def add(self, value: float = 1, **dimensions: str) -> None:
        """Count `value`; emits the pending counts when `every` seconds have passed since the last emit."""
        key = tuple(sorted(dimensions.items()))
        now = self._clock()
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + value
            if now - self._last < self.every:
                return
            pending, self._pending, self._last = self._pending, {}, now
        for dims, total in pending.items():
            emit(self.name, total, **dict(dims))

    def flush(self) -> None:
        """Emit what is pending now."""
        with self._lock:
            pending, self._pending, self._last = self._pending, {}, self._clock()
        for dims, total in pending.items():
            emit(self.name, total, **dict(dims))


signatures = Counter("signatures")
