"""Commands against a running local stack, from their own processes: `make bootstrap` and `make tick`."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localdev.environment import apply_environment, reset_process, set_environment
from localdev.events import TICK_HANDLER, WORKER_HANDLER, fire_tick, load_handler
from localdev.poller import QueuePoller, create_queues
from localdev.stack import DEFAULT_STATE_DIR
from localdev.state import StackState, require_running


@contextmanager
def attached(state_dir: Path = DEFAULT_STATE_DIR, **overrides: str) -> Iterator[StackState]:
    """Point this process at the running stack for the duration (raises NoRunningStack)."""
    state = require_running(state_dir.resolve())
    saved = apply_environment({**state.environment(), **overrides})
    try:
        yield state
    finally:
        set_environment(saved)
        reset_process()


def bootstrap(account: str, state_dir: Path = DEFAULT_STATE_DIR) -> Any:
    """Create another account on the running stack; returns the BootstrapResult (its admin key once)."""
    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.container import get_deps

    with attached(state_dir):
        return bootstrap_account(get_deps(), account)


@dataclass(frozen=True)
class Refreshed:
    """One keypair a tick handed to the refresh worker, and where it ended."""

    keypair_id: str
    alias: str | None
    expected_generation: int | None
    generation: int | None
    ok: bool


@dataclass(frozen=True)
class TickReport:
    """What one tick did: the keypairs it refreshed and what it added to the transparency logs."""

    refreshed: list[Refreshed]
    logged: int = 0
    checkpoints: int = 0


def tick(state_dir: Path = DEFAULT_STATE_DIR) -> TickReport | None:
    """Fire one scheduled invocation against the running stack and drain what it enqueued.

    Returns what was refreshed and checkpointed, or None when the app has no scheduled handler yet. The tick enqueues
    to a private queue of this command, so the running stack's poller cannot take the messages first
    and this command can report exactly what it refreshed; a message the worker fails on is moved to
    the stack's refresh queue, where the usual retries and dead-lettering apply.
    """
    state = require_running(state_dir.resolve())
    private = f"{state.refresh_queue}-tick-{secrets.token_hex(4)}"
    with attached(state_dir, ROTASIGN_REFRESH_QUEUE=private):
        handler = load_handler(TICK_HANDLER)
        worker = load_handler(WORKER_HANDLER)
        if handler is None:
            return None
        import boto3

        sqs = boto3.client("sqs")
        url = create_queues(sqs, private)
        try:
            result = fire_tick(handler, time.time(), state.region)
            counts = result if isinstance(result, dict) else {}
            logged, checkpoints = int(counts.get("logged", 0)), int(counts.get("checkpoints", 0))
            if worker is None:
                return TickReport([], logged, checkpoints)
            batches = QueuePoller(sqs, url, worker, state.region).drain()
            main_url = sqs.get_queue_url(QueueName=state.refresh_queue)["QueueUrl"]
            for batch in batches:
                if not batch.ok:
                    for message in batch.messages:
                        sqs.send_message(QueueUrl=main_url, MessageBody=message["Body"])
        finally:
            sqs.delete_queue(QueueUrl=url)
        outcomes = [_outcome(m["Body"], b.ok) for b in batches for m in b.messages if not _is_slice(m["Body"])]
        return TickReport(outcomes, logged, checkpoints)


def _is_slice(body: str) -> bool:
    """Slice messages are the tick's fan-out over the due index, not refreshes: they are not reported."""
    from chalicelib.errors import ValidationError
    from chalicelib.services.refresh_queue import SliceMessage, parse_message

    try:
        return isinstance(parse_message(body), SliceMessage)
    except ValidationError:
        return False


def _outcome(body: str, ok: bool) -> Refreshed:
    from chalicelib.services.container import get_deps

    try:
        message = json.loads(body)
        account, keypair_id = str(message["account"]), str(message["keypair_id"])
        expected = message.get("expected_generation")
    except (ValueError, KeyError, TypeError):
        return Refreshed(body[:80], None, None, None, ok)
    keypair = get_deps().store.keypairs.get(account, keypair_id)
    if keypair is None:
        return Refreshed(keypair_id, None, expected, None, ok)
    return Refreshed(keypair_id, keypair.alias, expected, keypair.generation, ok)
