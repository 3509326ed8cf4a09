"""The dependency container: outside capabilities (`Deps`) and the services built on them (`Services`).

Everything is built lazily, once per process, and can be replaced: tests and the local stack supply
their own `Deps` (a fake clock, a given HSM store) with `set_deps`, and the services follow.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.clock import Clock, utc_now
from chalicelib.errors import HsmUnavailable, StorageUnavailable
from chalicelib.settings import Settings, get_settings
from chalicelib.storage.store import Store

if TYPE_CHECKING:
    from chalicelib.keys.backend import KeyBackend
    from chalicelib.keys.disk import DiskKeyStore
    from chalicelib.keys.hsm.store import HsmKeyStore
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.api_keys import ApiKeyService
    from chalicelib.services.authentication import Authenticator
    from chalicelib.services.authorities import Authorities
    from chalicelib.services.checkpointer import Checkpointer
    from chalicelib.services.generations import GenerationHistory
    from chalicelib.services.groups import GroupService
    from chalicelib.services.keypairs import KeypairService
    from chalicelib.services.log_keys import LogKeys
    from chalicelib.services.log_queries import LogService
    from chalicelib.services.profiles import ProfileService
    from chalicelib.services.refresh import RefreshService
    from chalicelib.services.refresh_queue import RefreshQueue
    from chalicelib.services.release_windows import ReleaseWindowService
    from chalicelib.services.signing import SigningService
    from chalicelib.services.teams import TeamService
    from chalicelib.services.timestamping import TimestampService
    from chalicelib.services.transparency import TransparencyService
    from chalicelib.services.users import UserService


TOKEN_SECRET_MIN_CHARS = 32  # the deployment's secret has 64 random letters and digits
_TOKEN_KEY_INFO = b"rotasign pagination token key v1"


@dataclass
class Deps:
    """Settings, clock, storage, AWS clients and key backends of one process."""

    settings: Settings
    clock: Clock
    store: Store
    kms: Any
    disk: DiskKeyStore
    sqs: Any = None
    secrets: Any = None
    hsm_store: HsmKeyStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _token_key: bytes | None = field(default=None, repr=False)

    def hsm(self) -> HsmKeyStore:
        """The HSM key store: the one supplied, or one connected to the configured token on first use."""
        with self._lock:
            if self.hsm_store is None:
                from chalicelib.keys.hsm.store import HsmKeyStore

                self.hsm_store = HsmKeyStore.from_settings(self.settings, self._hsm_pin)
            return self.hsm_store

    def backend(self, storage: str) -> KeyBackend:
        """The key backend of a keypair's `storage` (`disk` or `hsm`)."""
        return self.disk if storage == "disk" else self.hsm()

    def log_expiry(self, at: datetime) -> datetime | None:
        """When a log entry made at `at` expires (ROTASIGN_LOG_RETENTION_DAYS; None keeps it)."""
        days = self.settings.log_retention_days
        return at + timedelta(days=days) if days > 0 else None

    def token_key(self) -> bytes:
        """The key that seals pagination tokens, fixed for the life of this process.

        ROTASIGN_TOKEN_KEY when set (the local stack's key); else derived from the deployment's secret
        (ROTASIGN_TOKEN_KEY_SECRET), read once, so every process of a deployment opens every other's
        tokens; else a random key of this process alone (tests). Raises StorageUnavailable when the
        secret cannot be read (nothing is cached then, so the next request tries again).
        """
        with self._lock:
            if self._token_key is None:
                if self.settings.token_key is not None:
                    self._token_key = self.settings.token_key
                elif self.settings.token_key_secret:
                    self._token_key = self._secret_token_key(self.settings.token_key_secret)
                else:
                    self._token_key = secrets.token_bytes(32)
            return self._token_key

    def _secret_token_key(self, secret_id: str) -> bytes:
        # The secret is printable text (what CloudFormation's GenerateSecretString makes), so the AES key
        # is derived from it rather than read as raw bytes.
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        try:
            value = str(self._secrets().get_secret_value(SecretId=secret_id)["SecretString"])
        except Exception as exc:
            raise StorageUnavailable("The pagination key could not be read; retry later.") from exc
        if len(value) < TOKEN_SECRET_MIN_CHARS:
            raise StorageUnavailable("The pagination key secret is too short; an operator must replace it.")
        return HKDF(hashes.SHA256(), 32, salt=None, info=_TOKEN_KEY_INFO).derive(value.encode())

    def _secrets(self) -> Any:
        if self.secrets is None:
            import boto3

            self.secrets = boto3.client("secretsmanager", region_name=self.settings.region)
        return self.secrets

    def _hsm_pin(self) -> str:
        if self.settings.hsm_pin:
            return self.settings.hsm_pin
        if self.settings.hsm_pin_secret:
            try:
                value = self._secrets().get_secret_value(SecretId=self.settings.hsm_pin_secret)
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


def build_deps(settings: Settings | None = None, clock: Clock = utc_now, hsm_store: HsmKeyStore | None = None) -> Deps:
    """Build the real dependencies from settings (boto3 clients honour AWS_ENDPOINT_URL)."""
    import boto3

    from chalicelib.keys.disk import DiskKeyStore
    from chalicelib.storage.connection import configure

    settings = settings or get_settings()
    configure(settings)
    kms = boto3.client("kms", region_name=settings.region)
    return Deps(settings=settings, clock=clock, store=Store(), kms=kms,
                disk=DiskKeyStore(kms, settings.kms_key_id), hsm_store=hsm_store)


@dataclass
class Services:
    """Everything a route or event handler calls."""

    deps: Deps
    auth: Authenticator
    accounts: AccountCache
    authorities: Authorities
    keypairs: KeypairService
    generations: GenerationHistory
    api_keys: ApiKeyService
    signing: SigningService
    logs: LogService
    timestamps: TimestampService
    refresh: RefreshService
    queue: RefreshQueue
    users: UserService
    groups: GroupService
    teams: TeamService
    profiles: ProfileService
    windows: ReleaseWindowService
    log_keys: LogKeys
    checkpointer: Checkpointer
    transparency: TransparencyService


def build_services(deps: Deps) -> Services:
    """Wire the services around one set of dependencies."""
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.api_keys import ApiKeyService
    from chalicelib.services.authentication import Authenticator
    from chalicelib.services.authorities import Authorities
    from chalicelib.services.checkpointer import Checkpointer
    from chalicelib.services.generations import GenerationHistory
    from chalicelib.services.groups import GroupService
    from chalicelib.services.keypairs import KeypairService
    from chalicelib.services.log_keys import LogKeys
    from chalicelib.services.log_queries import LogService
    from chalicelib.services.profiles import ProfileService
    from chalicelib.services.refresh import RefreshService
    from chalicelib.services.refresh_queue import RefreshQueue
    from chalicelib.services.release_windows import ReleaseGate, ReleaseWindowService
    from chalicelib.services.scheduler import run_slice
    from chalicelib.services.sign_state import SignStates
    from chalicelib.services.signing import SigningService
    from chalicelib.services.teams import TeamService
    from chalicelib.services.timestamping import TimestampService
    from chalicelib.services.transparency import TransparencyService
    from chalicelib.services.users import UserService

    accounts = AccountCache(deps)
    gate = ReleaseGate(deps)
    authorities = Authorities(deps)
    states = SignStates(deps)
    timestamps = TimestampService(deps, accounts, authorities)
    keypairs = KeypairService(deps, accounts, authorities, states)
    refresh = RefreshService(deps, keypairs, accounts)
    log_keys = LogKeys(deps, accounts)
    return Services(
        deps=deps,
        auth=Authenticator(deps),
        accounts=accounts,
        authorities=authorities,
        keypairs=keypairs,
        generations=GenerationHistory(deps, keypairs),
        api_keys=ApiKeyService(deps),
        signing=SigningService(deps, accounts, states, refresh, timestamps, gate),
        logs=LogService(deps),
        timestamps=timestamps,
        refresh=refresh,
        queue=RefreshQueue(deps, refresh, run_slice=lambda message: run_slice(deps, message)),
        users=UserService(deps),
        groups=GroupService(deps),
        teams=TeamService(deps, accounts),
        profiles=ProfileService(deps),
        windows=ReleaseWindowService(deps, gate),
        log_keys=log_keys,
        checkpointer=Checkpointer(deps, accounts, log_keys),
        transparency=TransparencyService(deps),
    )


_deps: Deps | None = None
_services: Services | None = None
_lock = threading.Lock()


def get_deps() -> Deps:
    """This process's dependencies, built on first use."""
    global _deps
    with _lock:
        if _deps is None:
            _deps = build_deps()
        return _deps


def set_deps(deps: Deps | None) -> None:
    """Replace (or with None, forget) this process's dependencies and services."""
    global _deps, _services
    with _lock:
        _deps = deps
        _services = None


def get_services() -> Services:
    """This process's services, built on first use around `get_deps()`."""
    global _services
    deps = get_deps()
    with _lock:
        if _services is None or _services.deps is not deps:
            _services = build_services(deps)
        return _services


def reset_services() -> None:
    """Forget the services (they are rebuilt, with fresh caches, on next use)."""
    global _services
    with _lock:
        _services = None
