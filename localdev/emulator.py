"""The AWS emulator (moto) with DynamoDB's atomicity and isolation kept under concurrent clients.

moto applies a TransactWriteItems by deep-copying the tables it touches and restoring them on failure,
with no lock: two requests served at once on two threads undo each other's committed writes (a refresh
answered 200 whose row update is lost, two keypairs claiming one alias). DynamoDB applies every request
atomically and in isolation, so the emulator must too: one process-wide lock around each DynamoDB
request moto serves. The tests (in-process moto) and the local stack (moto server) use this same lock.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_installed = False


def serialize_dynamodb() -> None:
    """Serve every DynamoDB request of this process's moto one at a time (idempotent)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        from moto.dynamodb.responses import DynamoHandler

        serve = DynamoHandler.call_action

        @functools.wraps(serve)
        def serialized(self: Any) -> Any:
            with _LOCK:
                return serve(self)

        DynamoHandler.call_action = serialized  # type: ignore[method-assign]
        _installed = True


def start_server(host: str, port: int) -> Any:
    """A threaded moto server on host:port with serialized DynamoDB; returns it started."""
    from moto.server import ThreadedMotoServer

    serialize_dynamodb()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server
