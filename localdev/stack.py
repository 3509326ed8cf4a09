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
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localdev.emulator import start_server
from localdev.environment import HOST, REGION, TABLE_PREFIX, apply_environment, base_environment, reset_process
from localdev.environment import set_environment as _set_environment
from localdev.events import REPO_ROOT, TICK_HANDLER, WORKER_HANDLER, Handler, fire_tick, load_handler, next_boundary
from localdev.poller import REFRESH_QUEUE, QueuePoller, create_queues
from localdev.state import StackState, remove_state, state_path, write_state
from localdev.state import is_running as _is_running
from localdev.state import read_state as _read_state

DEFAULT_STATE_DIR = REPO_ROOT / ".local"
TOKEN_LABEL = "rotasign-local"  # noqa: S105 - a token label, not a secret
# Long-poll wait per receive: short enough that Ctrl-C stops the poller within a couple of seconds.
POLL_WAIT_SECONDS = 2

log = logging.getLogger("localdev")


class StackError(RuntimeError):
    """The local stack cannot start (port taken, another stack running in the same state folder)."""


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
    moto = start_server(HOST, emulator_port)
    cleanups.append(moto.stop)
    emulator_port = moto.get_host_and_port()[1]

    saved = apply_environment(base_environment(emulator_port))

    def restore() -> None:
        _set_environment(saved)
        reset_process()

    cleanups.append(restore)

    import boto3

    from localdev.softhsm import ensure_token, find_module

    kms_key_id = boto3.client("kms").create_key(Description="rotasign local stack")["KeyMetadata"]["KeyId"]
    pin = secrets.token_urlsafe(16)
    conf = ensure_token(state_dir / "softhsm", TOKEN_LABEL, pin, secrets.token_urlsafe(16))
    # Bound (not yet serving) before the bootstrap: the account's TSA certificate names the endpoint (AIA).
    server = _http_server(port)
    cleanups.append(server.server.server_close)
    state = StackState(
        pid=os.getpid(),
        endpoint=f"http://{HOST}:{server.server.server_address[1]}",
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
    from chalicelib.services.container import get_deps
    from chalicelib.settings import get_settings
    from chalicelib.storage.tables import create_tables

    create_tables(get_settings())
    sqs = boto3.client("sqs")
    queue_url = create_queues(sqs)
    admin = bootstrap_account(get_deps(), account)

    http_thread = threading.Thread(target=server.server.serve_forever, name="localdev-http", daemon=True)
    http_thread.start()

    def stop_http() -> None:
        server.shutdown()
        server.server.server_close()
        http_thread.join(timeout=5)

    cleanups.append(stop_http)
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


def _http_server(port: int) -> Any:
    from chalice.config import Config
    from chalice.local import CustomLocalChalice, LocalChalice, LocalDevServer, ThreadedHTTPServer

    class Server(ThreadedHTTPServer):
        # socketserver listens with a backlog of 5: a burst of clients (a CI job's parallel signers) got
        # connections reset before a thread could accept them.
        request_queue_size = 128

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
    if not isinstance(app_obj, LocalChalice):  # as chalice's create_local_server (a second stack: already swapped)
        CustomLocalChalice.__bases__ = (LocalChalice, app_obj.__class__)
        app_obj.__class__ = CustomLocalChalice
    return LocalDevServer(app_obj, config, HOST, port, server_cls=Server)


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
