"""Settings: one typed object read from the environment when first used, never at import."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

TABLES = (
    "accounts",
    "account_names",
    "users",
    "api_keys",
    "keypairs",
    "aliases",
    "key_material",
    "generations",
    "audit_log",
    "signature_log",
    "groups",
    "teams",
    "keypair_profiles",
    "release_windows",
    "transparency",
)
# Clock difference allowed between the functions that write log entries and the checkpointer.
LOG_CLOCK_SKEW_SECONDS = 5.0
# Write shards per account of each log table (README "Limits and cost at scale": 10,000 entries/s of
# up to 3 write units each over partitions of 1,000 units/s needs 30).
DEFAULT_LOG_SHARDS = 32


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    stage: str
    region: str
    table_prefix: str
    kms_key_id: str
    schedule_seconds: int
    refresh_queue_name: str
    token_key: bytes | None  # ROTASIGN_TOKEN_KEY; services take the key from `Deps.token_key()`
    token_key_secret: str | None
    principal_cache_seconds: float
    state_cache_seconds: float
    max_request_seconds: float
    refresh_max_receives: int
    sweep_min_age_seconds: float | None
    pkcs11_module: str
    hsm_token_label: str
    hsm_pin: str | None
    hsm_pin_secret: str | None
    ca_storage: str
    log_retention_days: int
    public_base_url: str | None = None
    checkpoint_seconds: float = 40.0
    log_shards: int = DEFAULT_LOG_SHARDS

    def table_name(self, table: str) -> str:
        """The DynamoDB table name of one of TABLES in this stage."""
        return f"{self.table_prefix}{table}"

    @property
    def retirement_grace_seconds(self) -> float:
        """How long after a refresh (or delete) commits its old generation may still sign.

        A warm process may use a keypair's state for `state_cache_seconds`, and a request that read it
        may run for `max_request_seconds`: a generation retired at T is usable until T + both.
        """
        return self.state_cache_seconds + self.max_request_seconds

    @property
    def log_settle_seconds(self) -> float:
        """How old a log entry's key must be before no entry with an older key can still be written.

        An entry's key is its time, and a request writes it before it ends (`max_request_seconds`).
        """
        return self.max_request_seconds + LOG_CLOCK_SKEW_SECONDS


def _token_key(env: Mapping[str, str]) -> bytes | None:
    """A pagination-token key given directly (the local stack's per-stack key); None when not set."""
    raw = env.get("ROTASIGN_TOKEN_KEY")
    if not raw:
        return None
    key = base64.b64decode(raw)
    if len(key) != 32:
        raise ValueError("ROTASIGN_TOKEN_KEY must be 32 bytes, base64-encoded")
    return key


# Where distributions put SoftHSM2's module (the default token library when none is configured).
KNOWN_PKCS11_MODULES: tuple[str, ...] = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
CACHE_BOUND_SECONDS = 5.0  # docs/api.md: revocation, suspension and access changes take effect within 5 s


def _pkcs11_module(configured: str | None) -> str:
    if configured:
        return configured
    return next((path for path in KNOWN_PKCS11_MODULES if os.path.isfile(path)), KNOWN_PKCS11_MODULES[0])


def _bounded(raw: str | None, default: float) -> float:
    """A cache lifetime from the environment, never above the documented bound."""
    return max(0.0, min(float(raw) if raw else default, CACHE_BOUND_SECONDS))


def _log_shards(raw: str | None) -> int:
    """The log tables' write shards per account: 1 to 256 (fixed for a stage once it holds entries)."""
    shards = int(raw) if raw else DEFAULT_LOG_SHARDS
    if not 1 <= shards <= 256:
        raise ValueError("ROTASIGN_LOG_SHARDS must be between 1 and 256")
    return shards


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings once per process (tests call `get_settings.cache_clear()`)."""
    return settings_from(os.environ)


def settings_from(env: Mapping[str, str]) -> Settings:
    """The settings an environment gives (the packaging reads a stage's environment from its config)."""
    stage = env.get("ROTASIGN_STAGE", "local")
    return Settings(
        stage=stage,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        table_prefix=env.get("ROTASIGN_TABLE_PREFIX", f"rotasign-{stage}-"),
        kms_key_id=env.get("ROTASIGN_KMS_KEY_ID", "alias/rotasign"),
        schedule_seconds=int(env.get("ROTASIGN_SCHEDULE_SECONDS", "900")),
        refresh_queue_name=env.get("ROTASIGN_REFRESH_QUEUE", "rotasign-refresh"),
        token_key=_token_key(env),
        token_key_secret=env.get("ROTASIGN_TOKEN_KEY_SECRET") or None,
        principal_cache_seconds=_bounded(env.get("ROTASIGN_PRINCIPAL_CACHE_SECONDS"), CACHE_BOUND_SECONDS),
        state_cache_seconds=_bounded(env.get("ROTASIGN_STATE_CACHE_SECONDS"), CACHE_BOUND_SECONDS),
        max_request_seconds=float(env.get("ROTASIGN_MAX_REQUEST_SECONDS", "30")),
        refresh_max_receives=max(1, int(env.get("ROTASIGN_REFRESH_MAX_RECEIVES", "5"))),
        sweep_min_age_seconds=float(min_age) if (min_age := env.get("ROTASIGN_SWEEP_MIN_AGE_SECONDS")) else None,
        pkcs11_module=_pkcs11_module(env.get("ROTASIGN_PKCS11_MODULE")),
        hsm_token_label=env.get("ROTASIGN_HSM_TOKEN_LABEL", "rotasign"),
        hsm_pin=env.get("ROTASIGN_HSM_PIN"),
        hsm_pin_secret=env.get("ROTASIGN_HSM_PIN_SECRET"),
        ca_storage=env.get("ROTASIGN_CA_STORAGE", "disk"),
        log_retention_days=int(env.get("ROTASIGN_LOG_RETENTION_DAYS", "0")),
        public_base_url=(env.get("ROTASIGN_PUBLIC_BASE_URL") or "").rstrip("/") or None,
        checkpoint_seconds=float(env.get("ROTASIGN_CHECKPOINT_SECONDS", "40")),
        log_shards=_log_shards(env.get("ROTASIGN_LOG_SHARDS")),
    )
