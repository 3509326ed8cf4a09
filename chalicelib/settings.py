"""Settings: one typed object read from the environment when first used, never at import."""

from __future__ import annotations

import base64
import os
import secrets
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
)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    stage: str
    region: str
    table_prefix: str
    kms_key_id: str
    schedule_seconds: int
    refresh_queue_name: str
    token_key: bytes
    principal_cache_seconds: float
    key_cache_seconds: float
    pkcs11_module: str
    hsm_token_label: str
    hsm_pin: str | None
    hsm_pin_secret: str | None
    ca_storage: str
    log_retention_days: int

    def table_name(self, table: str) -> str:
        """The DynamoDB table name of one of TABLES in this stage."""
        return f"{self.table_prefix}{table}"


def _token_key() -> bytes:
    raw = os.environ.get("ROTASIGN_TOKEN_KEY")
    if raw:
        key = base64.b64decode(raw)
        if len(key) != 32:
            raise ValueError("ROTASIGN_TOKEN_KEY must be 32 bytes, base64-encoded")
        return key
    # No key configured: tokens are sealed with a per-process key, so they only work within one
    # process (tests, a single local server). Deployments set ROTASIGN_TOKEN_KEY from Secrets Manager.
    return secrets.token_bytes(32)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings once per process (tests call `get_settings.cache_clear()`)."""
    env = os.environ
    stage = env.get("ROTASIGN_STAGE", "local")
    return Settings(
        stage=stage,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        table_prefix=env.get("ROTASIGN_TABLE_PREFIX", f"rotasign-{stage}-"),
        kms_key_id=env.get("ROTASIGN_KMS_KEY_ID", "alias/rotasign"),
        schedule_seconds=int(env.get("ROTASIGN_SCHEDULE_SECONDS", "900")),
        refresh_queue_name=env.get("ROTASIGN_REFRESH_QUEUE", "rotasign-refresh"),
        token_key=_token_key(),
        principal_cache_seconds=min(float(env.get("ROTASIGN_PRINCIPAL_CACHE_SECONDS", "5")), 5.0),
        key_cache_seconds=float(env.get("ROTASIGN_KEY_CACHE_SECONDS", "60")),
        pkcs11_module=env.get("ROTASIGN_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"),
        hsm_token_label=env.get("ROTASIGN_HSM_TOKEN_LABEL", "rotasign"),
        hsm_pin=env.get("ROTASIGN_HSM_PIN"),
        hsm_pin_secret=env.get("ROTASIGN_HSM_PIN_SECRET"),
        ca_storage=env.get("ROTASIGN_CA_STORAGE", "disk"),
        log_retention_days=int(env.get("ROTASIGN_LOG_RETENTION_DAYS", "0")),
    )
