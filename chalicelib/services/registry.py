"""The service objects of one process, built on first use from `get_deps()`."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from chalicelib.services.access import Authenticator
from chalicelib.services.accounts import AccountCache
from chalicelib.services.api_keys import ApiKeyService
from chalicelib.services.authorities import Authorities
from chalicelib.services.deps import Deps, get_deps
from chalicelib.services.keypairs import KeypairService
from chalicelib.services.logs import LogService
from chalicelib.services.refresh import RefreshService
from chalicelib.services.signing import SigningService
from chalicelib.services.timestamping import TimestampService


@dataclass
class Services:
    """Everything a route or event handler calls."""

    deps: Deps
    auth: Authenticator
    accounts: AccountCache
    authorities: Authorities
    keypairs: KeypairService
    api_keys: ApiKeyService
    signing: SigningService
    logs: LogService
    timestamps: TimestampService
    refresh: RefreshService


_services: Services | None = None
_lock = threading.Lock()


def build_services(deps: Deps) -> Services:
    """Wire the services around one set of dependencies."""
    accounts = AccountCache()
    authorities = Authorities(deps)
    timestamps = TimestampService(deps, accounts, authorities)
    keypairs = KeypairService(deps, accounts, authorities)
    refresh = RefreshService(deps, keypairs, accounts)
    return Services(
        deps=deps,
        auth=Authenticator(deps),
        accounts=accounts,
        authorities=authorities,
        keypairs=keypairs,
        api_keys=ApiKeyService(deps),
        signing=SigningService(deps, accounts, timestamper=timestamps.signature_token,
                               refresh_if_overdue=refresh.before_sign, after_sign=refresh.after_sign),
        logs=LogService(deps),
        timestamps=timestamps,
        refresh=refresh,
    )


def get_services() -> Services:
    """This process's services (rebuilt when the dependencies were replaced)."""
    global _services
    deps = get_deps()
    with _lock:
        if _services is None or _services.deps is not deps:
            _services = build_services(deps)
        return _services


def reset_services() -> None:
    """Forget the services (tests)."""
    global _services
    with _lock:
        _services = None
