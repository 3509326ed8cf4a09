"""The process environment that points boto3, PynamoDB, settings and SoftHSM at the local stack."""

from __future__ import annotations

import os

HOST = "127.0.0.1"
REGION = "us-east-1"
TABLE_PREFIX = "rotasign-local-"
REFRESH_QUEUE = "rotasign-refresh"


def base_environment(emulator_port: int) -> dict[str, str]:
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
    set_environment(changes)
    reset_process()
    return saved


def set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def reset_process() -> None:
    """Forget cached settings, dependencies, services and connections so the new environment is read."""
    from chalicelib.services.container import set_deps
    from chalicelib.settings import get_settings
    from chalicelib.storage.connection import reset

    get_settings.cache_clear()
    set_deps(None)
    reset()
