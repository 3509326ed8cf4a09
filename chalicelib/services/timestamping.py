"""Trusted time: each account's RFC 3161 TSA, for the timestamp route and for every signature.

The TSA key is loaded through `Authorities` (disk or HSM, cached there for a few minutes) and the
`TimeStampAuthority` built around it is kept per warm process while that key object stays the same.
Time-stamps are counted, not logged one by one: `StampCounter` emits one structured line per
account every `every` stamps or once a minute, which a CloudWatch metric filter turns into a metric.

Fail closed: the sign path calls `signature_token` before its signature-log transaction, so when the
TSA key cannot be used (HSM or storage down) the request gets 503, no signature is returned, and the
attempt is logged as failed. A signature without its time-stamp stops verifying when its short-lived
certificate expires, so handing one out would only defer the failure to the verifier.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.domain.identity import Account
from chalicelib.errors import Conflict, HsmUnavailable, NotFound, Unauthenticated
from chalicelib.ids import looks_like_id

if TYPE_CHECKING:
    from chalicelib.pki.tsa import TimeStampAuthority
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.authorities import Authorities, Authority
    from chalicelib.services.container import Deps

log = logging.getLogger("rotasign.timestamps")

REPORT_EVERY = 1000
REPORT_SECONDS = 60.0
# Kinds of time-stamp, counted apart: answers to RFC 3161 queries, and tokens on signatures.
KINDS = ("query", "signature")


@dataclass
class _Pending:
    since: float
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))


class StampCounter:
    """Counts time-stamps per account; logs `timestamps_issued` every `every` stamps or `seconds`."""

    def __init__(
        self,
        every: int = REPORT_EVERY,
        seconds: float = REPORT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every = every
        self._seconds = seconds
        self._monotonic = monotonic
        self._pending: dict[str, _Pending] = {}
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, account: str, kind: str) -> None:
        """Count one stamp; reports the account's pending count when it is due."""
        now = self._monotonic()
        with self._lock:
            pending = self._pending.get(account)
            if pending is None:
                pending = self._pending[account] = _Pending(now)
            pending.counts[kind] += 1
            self._totals[account] = self._totals.get(account, 0) + 1
            due = sum(pending.counts.values()) >= self._every or now - pending.since >= self._seconds
            if due:
                del self._pending[account]
                total = self._totals[account]
        if due:
            self._report(account, pending, now, total)

    def flush(self) -> None:
        """Report every pending count now (a runner that shuts down cleanly)."""
        now = self._monotonic()
        with self._lock:
            pending, self._pending = self._pending, {}
            totals = dict(self._totals)
        for account, item in pending.items():
            self._report(account, item, now, totals[account])

    def totals(self) -> dict[str, int]:
        """Stamps issued by this process since it started, per account."""
        with self._lock:
            return dict(self._totals)

    @staticmethod
    def _report(account: str, pending: _Pending, now: float, total: int) -> None:
        log.info(
            "timestamps issued",
            extra={
                "event": "timestamps_issued",
                "account": account,
                "count": sum(pending.counts.values()),
                **pending.counts,
                "period_seconds": round(now - pending.since, 3),
                "process_total": total,
            },
        )


class TimestampService:
    """Per-account TSAs: answers RFC 3161 queries and time-stamps signatures."""

    def __init__(self, deps: Deps, accounts: AccountCache, authorities: Authorities,
                 counter: StampCounter | None = None) -> None:
        self.deps = deps
        self.accounts = accounts
        self.authorities = authorities
        self.counter = counter or StampCounter()
        self._tsas: dict[str, tuple[Authority, TimeStampAuthority]] = {}
        self._lock = threading.Lock()

    def authority(self, account: Account) -> TimeStampAuthority:
        """The account's TSA; raises StorageUnavailable / HsmUnavailable when its key cannot be loaded."""
        from chalicelib.pki.certificates import load_pem
        from chalicelib.pki.tsa import TimeStampAuthority

        loaded = self.authorities.get(account, "tsa")
        with self._lock:
            hit = self._tsas.get(account.id)
        # Authorities hands out a new object when it reloads the key; the TSA follows it.
        if hit is not None and hit[0] is loaded:
            return hit[1]
        tsa = TimeStampAuthority(
            loaded.key, loaded.certificate, chain=[load_pem(account.production_ca_pem)], clock=self.deps.clock
        )
        with self._lock:
            self._tsas[account.id] = (loaded, tsa)
        return tsa

    def respond(self, account_id: str, query: bytes) -> bytes:
        """A DER TimeStampResp to a DER query (bad queries get a `rejection` reply); raises 503s only."""
        from chalicelib.pki.tsa import TimeStampResp

        tsa = self.authority(self.accounts.get(account_id))
        with _key_failures():
            reply = tsa.respond(query)
        # Only granted replies carry a time-stamp. The status is read lazily: the token is not parsed.
        if TimeStampResp.load(reply)["status"]["status"].native == "granted":
            self.counter.add(account_id, "query")
        return reply

    def stamp_signature(self, account: Account, signature: bytes, at: datetime | None = None) -> str:
        """The `signatureTimeStampToken` of a signature value: a base64 token over its SHA-256, made at `at`.

        Raises HsmUnavailable / StorageUnavailable when the TSA key cannot be used.
        """
        tsa = self.authority(account)
        with _key_failures():
            token = tsa.stamp(hashlib.sha256(signature).digest(), "sha256", cert_req=True, at=at)
        self.counter.add(account.id, "signature")
        return base64.b64encode(token).decode()

    def public_account(self, account_id: str) -> str:
        """`account_id` when that account runs a public TSA; raises Unauthenticated otherwise.

        An unknown account and a private one get the same answer, so the route reveals no account ids.
        """
        refusal = Unauthenticated("This time-stamping authority needs an API key.")
        if not looks_like_id(account_id, "acct"):
            raise refusal
        try:
            account = self.accounts.get(account_id)
        except NotFound as exc:
            raise refusal from exc
        if not account.public_tsa:
            raise refusal
        return account_id


@contextmanager
def _key_failures() -> Iterator[None]:
    """The TSA key gone from the HSM (Conflict) is a 503 too: nothing was stamped, retry later."""
    try:
        yield
    except Conflict as exc:
        raise HsmUnavailable("The time-stamping key is unavailable.") from exc
