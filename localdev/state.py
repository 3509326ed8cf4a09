"""The local stack's state file: what `make bootstrap` and `make tick` need to reach the running stack.

It holds the token key and the HSM PIN, so it is written with mode 0600 and never printed.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

STATE_FILE = "stack.json"
# The refresh queue's maxReceiveCount; the worker audits a refresh as failed on the last receive.
MAX_RECEIVES = 5


class NoRunningStack(RuntimeError):
    """No local stack answers at the address the state file records."""


@dataclass(frozen=True)
class StackState:
    """Where the running local stack is and the settings its processes share."""

    pid: int
    endpoint: str
    emulator_port: int
    region: str
    kms_key_id: str
    table_prefix: str
    token_key: str
    softhsm2_conf: str
    token_label: str
    hsm_pin: str
    pkcs11_module: str
    schedule_seconds: int
    refresh_queue: str

    @property
    def emulator_endpoint(self) -> str:
        """The moto server's URL."""
        return f"http://127.0.0.1:{self.emulator_port}"

    def environment(self) -> dict[str, str]:
        """The environment that points boto3, PynamoDB, settings and SoftHSM at this stack."""
        return {
            "AWS_ENDPOINT_URL": self.emulator_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "ROTASIGN_STAGE": "local",
            "ROTASIGN_KMS_KEY_ID": self.kms_key_id,
            "ROTASIGN_TABLE_PREFIX": self.table_prefix,
            "ROTASIGN_TOKEN_KEY": self.token_key,
            "ROTASIGN_SCHEDULE_SECONDS": str(self.schedule_seconds),
            "ROTASIGN_REFRESH_QUEUE": self.refresh_queue,
            "ROTASIGN_REFRESH_MAX_RECEIVES": str(MAX_RECEIVES),
            "SOFTHSM2_CONF": self.softhsm2_conf,
            "ROTASIGN_PKCS11_MODULE": self.pkcs11_module,
            "ROTASIGN_HSM_TOKEN_LABEL": self.token_label,
            "ROTASIGN_HSM_PIN": self.hsm_pin,
            # Issued certificates name their CA under this stack's public trust route (AIA caIssuers).
            "ROTASIGN_PUBLIC_BASE_URL": self.endpoint,
        }


def state_path(state_dir: Path) -> Path:
    """The state file of a state folder."""
    return state_dir / STATE_FILE


def write_state(state_dir: Path, state: StackState) -> Path:
    """Write the state file atomically with mode 0600; returns its path."""
    path = state_path(state_dir)
    tmp = path.with_name(path.name + ".tmp")
    # Created 0600 from the start (not chmod-ed afterwards): the file holds the PIN and the token key.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(asdict(state), indent=2).encode())
    finally:
        os.close(fd)
    tmp.replace(path)
    return path


def read_state(state_dir: Path) -> StackState:
    """The recorded state; raises NoRunningStack when there is none."""
    path = state_path(state_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NoRunningStack(f"No local stack state in {path}; start one with `make run`.") from exc
    except ValueError as exc:
        raise NoRunningStack(f"{path} is not a state file; restart the stack with `make run`.") from exc
    names = {f.name for f in fields(StackState)}
    if not names <= set(raw):
        raise NoRunningStack(f"{path} is from another version; restart the stack with `make run`.")
    return StackState(**{name: raw[name] for name in names})


def remove_state(state_dir: Path) -> None:
    """Forget the state file (the stack stopped)."""
    state_path(state_dir).unlink(missing_ok=True)


def is_running(state: StackState) -> bool:
    """Whether the process that wrote the state is alive and its API and emulator accept connections."""
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    api = urlsplit(state.endpoint)
    return _accepts("127.0.0.1", state.emulator_port) and _accepts(api.hostname or "127.0.0.1", api.port or 80)


def require_running(state_dir: Path) -> StackState:
    """The state of the running stack; raises NoRunningStack when it is gone."""
    state = read_state(state_dir)
    if not is_running(state):
        raise NoRunningStack(
            f"The local stack recorded in {state_path(state_dir)} is not running; start it with `make run`."
        )
    return state


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
