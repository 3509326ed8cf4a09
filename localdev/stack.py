"""The local stack runner: AWS emulator, SoftHSM token, the API over HTTP, the schedule and the SQS consumer.

Everything runs in one process on 127.0.0.1: a moto server (DynamoDB, KMS, SQS), a SoftHSM2 token under
the state folder, the Chalice app served by `chalice.local`, a timer that invokes the scheduled handler
on interval boundaries (the quarter-hour cron, scaled by `ROTASIGN_SCHEDULE_SECONDS`) and a poller that
feeds the refresh queue to the SQS handler — `chalice local` runs neither of the last two.

The emulator keeps its state in memory, so the stack is wiped as a whole at every start: the state
file and the SoftHSM token folder are deleted and made anew. A token left over from an earlier run
would hold keys that no table references any more — never half a stack.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import math
import os
import secrets
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localdev.state import MAX_RECEIVES, StackState, remove_state, require_running, state_path, write_state
from localdev.state import is_running as _is_running
from localdev.state import read_state as _read_state

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
HOST = "127.0.0.1"
REGION = "us-east-1"
TABLE_PREFIX = "rotasign-local-"
TOKEN_LABEL = "rotasign-local"  # noqa: S105 - a token label, not a secret
REFRESH_QUEUE = "rotasign-refresh"
DEAD_LETTER_QUEUE = "rotasign-refresh-dlq"
# Long-poll wait per receive: short enough that Ctrl-C stops the poller within a couple of seconds.
POLL_WAIT_SECONDS = 2
TICK_HANDLER = "refresh_tick"
WORKER_HANDLER = "refresh_worker"
LOCAL_ACCOUNT_ID = "123456789012"

log = logging.getLogger("localdev")
Handler = Callable[[dict[str, Any], Any], Any]


class StackError(RuntimeError):
    """The local stack cannot start (port taken, another stack running in the same state folder)."""


# ---------------------------------------------------------------------------------------------------
# Lambda-shaped events and handler lookup


def load_handler(name: str) -> Handler | None:
    """A Lambda-form handler of `app.py` by name, or None when the app does not define it (yet)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    module = importlib.import_module("app")
    handler = getattr(module, name, None)
    return handler if callable(handler) else None


def lambda_context(function_name: str) -> Any:
    """A Lambda context object like the one `chalice local` passes."""
    from chalice.local import LambdaContext

    return LambdaContext(function_name=function_name, memory_size=512, max_runtime_ms=900_000)


def scheduled_event(at: float, region: str, rule: str = TICK_HANDLER) -> dict[str, Any]:
    """The EventBridge event a scheduled rule delivers at `at` (epoch seconds)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/rotasign-local-{rule}"],
        "detail": {},
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS integration delivers for a batch of received messages."""
    records = []
    for message in messages:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": attributes,
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def next_boundary(now: float, interval: float) -> float:
    """The first multiple of `interval` seconds since the epoch after `now` (the cron's alignment)."""
    return (math.floor(now / interval) + 1) * interval


def fire_tick(handler: Handler, at: float, region: str) -> Any:
    """Invoke the scheduled handler once, as EventBridge would at `at`; returns what it returned."""
    return handler(scheduled_event(at, region), lambda_context(TICK_HANDLER))


@dataclass
class Batch:
    """One received batch and whether the handler took it."""

    messages: list[dict[str, Any]]
    ok: bool
    result: Any = None


class QueuePoller:
    """Feeds one queue to an SQS handler: delete after a normal return, leave for redelivery on a raise."""

    def __init__(self, sqs: Any, queue_url: str, handler: Handler, region: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.region = region
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = str(attrs["Attributes"]["QueueArn"])

    def poll_once(self, wait_seconds: int) -> Batch | None:
        """Receive up to 10 messages and hand them to the handler; None when the queue had nothing."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        if not messages:
            return None
        try:
            result = self.handler(sqs_event(messages, self.queue_arn, self.region), lambda_context(WORKER_HANDLER))
        except Exception:
            # As in Lambda: the batch stays on the queue, reappears after the visibility timeout and
            # goes to the dead-letter queue after MAX_RECEIVES attempts.
            log.exception("%s raised; %d message(s) left on the queue for redelivery", WORKER_HANDLER, len(messages))
            return Batch(messages, ok=False)
        self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        return Batch(messages, ok=True, result=result)

    def drain(self) -> list[Batch]:
        """Hand every visible message to the handler, batch by batch, until the queue looks empty."""
        batches = []
        while (batch := self.poll_once(0)) is not None:
            batches.append(batch)
        return batches


# ---------------------------------------------------------------------------------------------------
# Process environment


def _base_environment(emulator_port: int) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://{HOST}:{emulator_port}",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "ROTASIGN_STAGE": "local",
        "ROTASIGN_TABLE_PREFIX": TABLE_PREFIX,
        "ROTASIGN_REFRESH_QUEUE": REFRESH_QUEUE,
    }


def apply_environment(env: dict[str, str]) -> dict[str, str | None]:
    """Set `env` for this process (dropping what would send boto3 elsewhere); returns the previous values."""
    # A user's profile, session token or per-service endpoint would win over the emulator's settings.
    dropped = [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")]
    dropped += ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"]
    hosts = (os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "").split(",")
    no_proxy = ",".join(dict.fromkeys(h for h in (*hosts, HOST, "localhost") if h))
    changes: dict[str, str | None] = {name: None for name in dropped}
    changes.update(env)
    changes.update(NO_PROXY=no_proxy, no_proxy=no_proxy)
    saved = {name: os.environ.get(name) for name in changes}
    _set_environment(changes)
    reset_process()
    return saved


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def reset_process() -> None:
    """Forget cached settings, dependencies, services and connections so the new environment is read."""
    from chalicelib.services.deps import set_deps
    from chalicelib.services.registry import reset_services
    from chalicelib.settings import get_settings
    from chalicelib.storage.tx import reset_connections

    get_settings.cache_clear()
    set_deps(None)
    reset_services()
    reset_connections()


def _check_port(port: int, what: str) -> None:
    """Fail early with a clear message: a taken port would otherwise hang or fail mid-start."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise StackError(f"Port {port} on {HOST} ({what}) is in use; choose another.") from exc


# ---------------------------------------------------------------------------------------------------
# The running stack


@dataclass
class RunningStack:
    """A started local stack; `stop()` ends everything it started."""

    endpoint: str
    api_key: str
    account: str
    state_dir: Path
    state: StackState | None
    notices: list[str]
    _stop_event: threading.Event
    _cleanups: list[Callable[[], None]]
    _stopped: bool = False

    @property
    def port(self) -> int:
        """The API's TCP port."""
        return int(self.endpoint.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop the timer, the poller, the HTTP server and the emulator (in that order); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception:
                log.exception("stopping the local stack")


def start(
    *,
    port: int = 8000,
    emulator_port: int = 0,
    state_dir: Path = DEFAULT_STATE_DIR,
    schedule_seconds: int = 900,
    account: str = "local",
) -> RunningStack:
    """Wipe the state folder and start a fresh stack; raises StackError when it cannot."""
    if schedule_seconds < 1:
        raise StackError("The schedule interval must be at least 1 second.")
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _refuse_if_running(state_dir)
    _check_port(port, "API")
    _check_port(emulator_port, "emulator")
    # moto's werkzeug server logs every request at INFO unless told otherwise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    remove_state(state_dir)
    shutil.rmtree(state_dir / "softhsm", ignore_errors=True)

    stop_event = threading.Event()
    cleanups: list[Callable[[], None]] = []
    try:
        stack = _start(cleanups, stop_event, port, emulator_port, state_dir, schedule_seconds, account)
    except BaseException:
        RunningStack("", "", account, state_dir, None, [], stop_event, cleanups).stop()
        raise
    return stack


def _start(
    cleanups: list[Callable[[], None]],
    stop_event: threading.Event,
    port: int,
    emulator_port: int,
    state_dir: Path,
    schedule_seconds: int,
    account: str,
) -> RunningStack:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=HOST, port=emulator_port, verbose=False)
    moto.start()
    cleanups.append(moto.stop)
    emulator_port = moto.get_host_and_port()[1]

    saved = apply_environment(_base_environment(emulator_port))

    def restore() -> None:
        _set_environment(saved)
        reset_process()

    cleanups.append(restore)

    import boto3

    from localdev.softhsm import ensure_token, find_module

    kms_key_id = boto3.client("kms").create_key(Description="rotasign local stack")["KeyMetadata"]["KeyId"]
    pin = secrets.token_urlsafe(16)
    conf = ensure_token(state_dir / "softhsm", TOKEN_LABEL, pin, secrets.token_urlsafe(16))
    state = StackState(
        pid=os.getpid(),
        endpoint="",
        emulator_port=emulator_port,
        region=REGION,
        kms_key_id=kms_key_id,
        table_prefix=TABLE_PREFIX,
        token_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        softhsm2_conf=str(conf),
        token_label=TOKEN_LABEL,
        hsm_pin=pin,
        pkcs11_module=find_module(),
        schedule_seconds=schedule_seconds,
        refresh_queue=REFRESH_QUEUE,
    )
    apply_environment(state.environment())

    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.deps import get_deps
    from chalicelib.settings import get_settings
    from chalicelib.storage.models import create_tables

    create_tables(get_settings())
    sqs = boto3.client("sqs")
    queue_url = create_queues(sqs)
    admin = bootstrap_account(get_deps(), account)

    server = _http_server(port)
    http_thread = threading.Thread(target=server.server.serve_forever, name="localdev-http", daemon=True)
    http_thread.start()

    def stop_http() -> None:
        server.shutdown()
        server.server.server_close()
        http_thread.join(timeout=5)

    cleanups.append(stop_http)
    state = replace(state, endpoint=f"http://{HOST}:{server.server.server_address[1]}")
    _self_check(state.endpoint, admin.api_key)
    write_state(state_dir, state)
    cleanups.append(lambda: _forget_state(state_dir))

    notices = []
    tick = load_handler(TICK_HANDLER)
    if tick is None:
        notices.append(f"app.{TICK_HANDLER} is not defined yet: the local schedule is off.")
    else:
        timer = threading.Thread(
            target=_run_timer, args=(tick, schedule_seconds, stop_event), name="localdev-timer", daemon=True
        )
        timer.start()
        cleanups.append(lambda: timer.join(timeout=30))
    worker = load_handler(WORKER_HANDLER)
    if worker is None:
        notices.append(f"app.{WORKER_HANDLER} is not defined yet: the refresh queue is not consumed.")
    else:
        poller = QueuePoller(sqs, queue_url, worker, REGION)
        thread = threading.Thread(target=_run_poller, args=(poller, stop_event), name="localdev-sqs", daemon=True)
        thread.start()
        cleanups.append(lambda: thread.join(timeout=30))
    return RunningStack(state.endpoint, admin.api_key, account, state_dir, state, notices, stop_event, cleanups)


def create_queues(sqs: Any, name: str = REFRESH_QUEUE) -> str:
    """Create the refresh queue and its dead-letter queue (redrive after MAX_RECEIVES); returns the queue URL."""
    dlq_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})
    return str(sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"])


def _http_server(port: int) -> Any:
    from chalice.config import Config
    from chalice.local import LocalChalice, LocalDevServer, create_local_server

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    app_obj = importlib.import_module("app").app
    config = Config.create(
        chalice_stage="local",
        app_name="rotasign",
        project_dir=str(REPO_ROOT),
        config_from_disk=json.loads((REPO_ROOT / ".chalice" / "config.json").read_text()),
    )
    # The stage's environment_variables are not applied: the stack's own environment is authoritative
    # (it sets ROTASIGN_STAGE=local and its own schedule interval).
    if isinstance(app_obj, LocalChalice):  # a second stack in one process: the class is already swapped
        return LocalDevServer(app_obj, config, HOST, port)
    return create_local_server(app_obj, config, HOST, port)


def _self_check(endpoint: str, api_key: str) -> None:
    """One authenticated request over HTTP before the stack says it is up (it also warms the app)."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes via a proxy
    request = urllib.request.Request(f"{endpoint}/api/v1/me", headers={"X-API-Key": api_key})  # noqa: S310
    try:
        with opener.open(request, timeout=120) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 200:
        raise StackError(f"The API answered GET /api/v1/me with {status}; see the log above.")


def _run_timer(handler: Handler, interval: int, stop: threading.Event) -> None:
    while True:
        at = next_boundary(time.time(), interval)
        if stop.wait(max(0.0, at - time.time())):
            return
        began = time.monotonic()
        try:
            result = fire_tick(handler, at, REGION)
        except Exception:
            log.exception("%s raised", TICK_HANDLER)
            continue
        stamp = datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")
        log.info("scheduled tick %s UTC ran in %.0f ms: %s", stamp, (time.monotonic() - began) * 1000, _summary(result))


def _run_poller(poller: QueuePoller, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            batch = poller.poll_once(POLL_WAIT_SECONDS)
        except Exception:
            if stop.is_set():
                return
            log.exception("receiving from the refresh queue failed")
            stop.wait(1.0)
            continue
        if batch is not None and batch.ok:
            log.info("%s handled %d message(s): %s", WORKER_HANDLER, len(batch.messages), _summary(batch.result))


def _summary(result: Any) -> str:
    """A handler's returned counters as `name=value` pairs (handlers return dicts of counts)."""
    if isinstance(result, dict):
        return " ".join(f"{key}={value}" for key, value in result.items()) or "done"
    return "done"


def _refuse_if_running(state_dir: Path) -> None:
    if not state_path(state_dir).exists():
        return
    try:
        state = _read_state(state_dir)
    except RuntimeError:
        return
    if state.pid != os.getpid() and _is_running(state):
        raise StackError(
            f"A local stack is already running from {state_dir} (pid {state.pid}, {state.endpoint}); "
            "stop it first (Ctrl-C in its terminal)."
        )


def _forget_state(state_dir: Path) -> None:
    try:
        if _read_state(state_dir).pid == os.getpid():
            remove_state(state_dir)
    except RuntimeError:
        pass


# ---------------------------------------------------------------------------------------------------
# Commands against a running stack (their own processes)


@contextmanager
def attached(state_dir: Path = DEFAULT_STATE_DIR, **overrides: str) -> Iterator[StackState]:
    """Point this process at the running stack for the duration (raises NoRunningStack)."""
    state = require_running(state_dir.resolve())
    saved = apply_environment({**state.environment(), **overrides})
    try:
        yield state
    finally:
        _set_environment(saved)
        reset_process()


def bootstrap(account: str, state_dir: Path = DEFAULT_STATE_DIR) -> Any:
    """Create another account on the running stack; returns the BootstrapResult (its admin key once)."""
    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.deps import get_deps

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


def tick(state_dir: Path = DEFAULT_STATE_DIR) -> list[Refreshed] | None:
    """Fire one scheduled invocation against the running stack and drain what it enqueued.

    Returns what was refreshed, or None when the app has no scheduled handler yet. The tick enqueues
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
            fire_tick(handler, time.time(), state.region)
            if worker is None:
                return []
            batches = QueuePoller(sqs, url, worker, state.region).drain()
            main_url = sqs.get_queue_url(QueueName=state.refresh_queue)["QueueUrl"]
            for batch in batches:
                if not batch.ok:
                    for message in batch.messages:
                        sqs.send_message(QueueUrl=main_url, MessageBody=message["Body"])
        finally:
            sqs.delete_queue(QueueUrl=url)
        return [_outcome(m["Body"], b.ok) for b in batches for m in b.messages]


def _outcome(body: str, ok: bool) -> Refreshed:
    from pynamodb.exceptions import DoesNotExist

    from chalicelib.services.deps import get_deps
    from chalicelib.storage.models import KeypairModel

    try:
        message = json.loads(body)
        account, keypair_id = str(message["account"]), str(message["keypair_id"])
        expected = message.get("expected_generation")
    except (ValueError, KeyError, TypeError):
        return Refreshed(body[:80], None, None, None, ok)
    get_deps()  # points the models at this stack's tables
    try:
        keypair = KeypairModel.get(account, keypair_id, consistent_read=True)
    except DoesNotExist:
        return Refreshed(keypair_id, None, expected, None, ok)
    return Refreshed(keypair_id, keypair.alias, expected, int(keypair.generation), ok)
