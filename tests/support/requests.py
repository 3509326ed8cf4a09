"""Counting AWS requests: every botocore client alive in the process, from its own events."""

from __future__ import annotations

import gc
import time
import uuid
from typing import Any


class RequestCounter:
    """Counts (and times) the API calls of every botocore client alive in this process.

    The clients are found by walking the heap, so a client that some module keeps privately is counted
    too; a client created while counting would be missed, so `__exit__` refuses to report then.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.seconds: dict[str, float] = {}
        self._uid = f"count-{uuid.uuid4()}"
        self._watched: list[Any] = []
        self._started = 0.0

    @staticmethod
    def _clients() -> list[Any]:
        from botocore.client import BaseClient

        return [o for o in gc.get_objects() if isinstance(o, BaseClient)]

    def _before(self, model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))
        self._started = time.perf_counter()

    def _after(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.seconds[service] = self.seconds.get(service, 0.0) + time.perf_counter() - self._started

    def __enter__(self) -> RequestCounter:
        self._watched = self._clients()
        for client in self._watched:
            client.meta.events.register_first("before-call", self._before, unique_id=self._uid)
            client.meta.events.register_last("after-call", self._after, unique_id=f"{self._uid}-after")
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self._watched:
            client.meta.events.unregister("before-call", unique_id=self._uid)
            client.meta.events.unregister("after-call", unique_id=f"{self._uid}-after")
        new = {id(c) for c in self._clients()} - {id(c) for c in self._watched}
        if new:
            raise RuntimeError("a botocore client was created while counting; the count would be incomplete")

    def of(self, service: str) -> list[str]:
        """The operations called on one service, in order."""
        return [op for svc, op in self.calls if svc == service]
