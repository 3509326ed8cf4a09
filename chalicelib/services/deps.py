"""The outside capabilities the services use, built lazily once per process and swappable in tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.clock import Clock, utc_now
from chalicelib.errors import HsmUnavailable, ValidationError
from chalicelib.keys.backend import KeyBackend
from chalicelib.keys.disk import DiskKeyStore
from chalicelib.settings import Settings, get_settings
from chalicelib.storage.models import configure_models

if TYPE_CHECKING:
    from chalicelib.keys.hsm.store import HsmKeyStore


@dataclass
class Deps:
    """Settings, clock, AWS clients and key backends for one process."""

    settings: Settings
    clock: Clock
    kms: Any
    disk: DiskKeyStore
    sqs: Any = None
    secrets: Any = None
    _hsm: HsmKeyStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hsm(self) -> HsmKeyStore:
        """The HSM key store, connected on first use."""
        with self._lock:
            if self._hsm is None:
                from chalicelib.keys.hsm.store import HsmKeyStore

                self._hsm = HsmKeyStore.from_settings(self.settings, self._hsm_pin)
            return self._hsm

    def backend(self, storage: str) -> KeyBackend:
        """The key backend of a keypair's `storage`."""
        if storage == "disk":
            return self.disk
        if storage == "hsm":
            return self.hsm()
        raise ValidationError(f"Unknown storage {storage!r}.")

    def _hsm_pin(self) -> str:
        if self.settings.hsm_pin:
            return self.settings.hsm_pin
        if self.settings.hsm_pin_secret:
            if self.secrets is None:
                import boto3

                self.secrets = boto3.client("secretsmanager", region_name=self.settings.region)
            try:
                value = self.secrets.get_secret_value(SecretId=self.settings.hsm_pin_secret)
            except Exception as exc:
                raise HsmUnavailable("The HSM PIN could not be read from Secrets Manager.") from exc
            return str(value["SecretString"])
        raise HsmUnavailable("No HSM PIN is configured.")

    def queue(self) -> tuple[Any, str]:
        """The SQS client and the refresh queue URL."""
        with self._lock:
            if self.sqs is None:
                import boto3

                self.sqs = boto3.client("sqs", region_name=self.settings.region)
        url = self.sqs.get_queue_url(QueueName=self.settings.refresh_queue_name)["QueueUrl"]
        return self.sqs, str(url)


_deps: Deps | None = None
_deps_lock = threading.Lock()


def build_deps(settings: Settings | None = None, clock: Clock = utc_now) -> Deps:
    """Build the real dependencies from settings (boto3 clients honour AWS_ENDPOINT_URL)."""
    import boto3

    settings = settings or get_settings()
    configure_models(settings)
    kms = boto3.client("kms", region_name=settings.region)
    return Deps(
        settings=settings,
        clock=clock,
        kms=kms,
        disk=DiskKeyStore(kms, settings.kms_key_id),
    )


def get_deps() -> Deps:
    """This process's dependencies, built on first use."""
    global _deps
    with _deps_lock:
        if _deps is None:
            _deps = build_deps()
        return _deps


def set_deps(deps: Deps | None) -> None:
    """Replace (or with None, forget) this process's dependencies; for tests and the local runner."""
    global _deps
    with _deps_lock:
        _deps = deps
