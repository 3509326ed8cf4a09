"""Signing under faults: a log that cannot be written, refreshes that race the signature, failing backends."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.clock import rfc3339, utc_now
from chalicelib.errors import HsmUnavailable
from chalicelib.keys.algorithms import SIG_ALGS, PrivateKey, verify_signature
from chalicelib.keys.backend import SealedKey
from chalicelib.services.registry import get_services
from chalicelib.services.signing import SigningService
from chalicelib.storage.models import AuditLogModel, KeypairModel, SignatureLogModel
from chalicelib.storage.tx import transaction

DIGEST = hashlib.sha256(b"release.tar.gz").digest()
BODY = {"hash": base64.b64encode(DIGEST).decode()}


@pytest.fixture(scope="module")
def client(shared_account: Any) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as c:
        yield c


@pytest.fixture
def call(client: Any, shared_account: Any) -> Callable[..., tuple[int, Any]]:
    headers = {"X-API-Key": shared_account.api_key, "Content-Type": "application/json"}

    def run(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        fn = getattr(client.http, method.lower())
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        response = fn(f"/api/v1{path}", **kwargs)
        return response.status_code, json.loads(response.body) if response.body else None

    return run


@pytest.fixture
def keypair(call: Callable[..., tuple[int, Any]], request: pytest.FixtureRequest) -> dict[str, Any]:
    alias = f"faults-{uuid.uuid4().hex}"
    status, kp = call("POST", "/keypairs", {"alias": alias, "type": "static", "algorithm": "ECDSA", "curve": "P-256"})
    assert status == 201, kp
    return kp  # type: ignore[no-any-return]


@pytest.fixture
def use_signing(aws: Any) -> Iterator[Callable[..., SigningService]]:
    """Swap in a SigningService built with fakes for one test."""
    services = get_services()
    original = services.signing

    def install(**overrides: Any) -> SigningService:
        services.signing = SigningService(services.deps, services.accounts, **overrides)
        return services.signing

    yield install
    services.signing = original


class FlakyLog:
    """Transactions that fail at commit, like a storage outage: the items are built, nothing is written."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    @contextmanager
    def __call__(self) -> Iterator[TransactWrite]:
        with transaction() as tx:
            yield tx
            if self.failures > 0:
                self.failures -= 1
                cause = ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}},
                                    "TransactWriteItems")
                raise TransactWriteError("injected storage failure", cause)


class Backend:
    """The real disk backend, with a hook run after each signature (to race it) or an injected failure."""

    storage = "disk"

    def __init__(self, after: Callable[[], None] | None = None, error: Exception | None = None) -> None:
        self.after = after
        self.error = error
        self.signatures = 0

    def __call__(self, storage: str) -> Backend:
        return self

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        if self.error is not None:
            raise self.error
        key = get_services().deps.disk.load(account, key_ref, sealed)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return HookedKey(key, self)

    def signed(self) -> None:
        self.signatures += 1
        if self.after is not None:
            self.after()


class HookedKey(ec.EllipticCurvePrivateKey):
    """An in-memory EC key that tells its Backend about every signature it makes."""

    def __init__(self, inner: ec.EllipticCurvePrivateKey, backend: Backend) -> None:
        self.inner, self.backend = inner, backend

    def sign(self, data: Any, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        signature = self.inner.sign(data, signature_algorithm)
        self.backend.signed()
        return signature

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        return self.inner.exchange(algorithm, peer_public_key)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.inner.public_key()

    @property
    def curve(self) -> ec.EllipticCurve:
        return self.inner.curve

    @property
    def key_size(self) -> int:
        return self.inner.key_size

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        return self.inner.private_numbers()

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        return self.inner.private_bytes(encoding, format, encryption_algorithm)

    def __copy__(self) -> HookedKey:
        return self

    def __deepcopy__(self, memo: Any) -> HookedKey:
        return self


def bump_generation(account: str, kp_id: str) -> Callable[[], None]:
    """What a refresh committing mid-signature looks like to the signer: the row moves to a newer generation."""

    def bump() -> None:
        KeypairModel.get(account, kp_id, consistent_read=True).update(actions=[KeypairModel.generation.add(1)])

    return bump


def since() -> str:
    return rfc3339(utc_now() - timedelta(seconds=2))


def entries(account: str, start: str, kp_id: str) -> list[SignatureLogModel]:
    """The signature-log entries of one keypair since `start`."""
    found = SignatureLogModel.query(account, SignatureLogModel.sk >= start, consistent_read=True)
    return [e for e in found if e.keypair_id == kp_id]


def denials(account: str, start: str, kp_id: str) -> list[AuditLogModel]:
    found = AuditLogModel.query(account, AuditLogModel.sk >= start, consistent_read=True)
    return [e for e in found if e.action == "sign_denied" and e.resource_id == kp_id]


def test_log_down_means_no_signature_and_nothing_written(
    call: Any, shared_account: Any, keypair: dict[str, Any], use_signing: Any
) -> None:
    start = since()
    before = KeypairModel.get(shared_account.id, keypair["id"], consistent_read=True)
    use_signing(transaction=FlakyLog(failures=99))
    status, body = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (status, body["error"]["code"]) == (503, "storage_unavailable")
    assert "signature" not in body
    assert entries(shared_account.id, start, keypair["id"]) == []
    assert denials(shared_account.id, start, keypair["id"]) == []
    after = KeypairModel.get(shared_account.id, keypair["id"], consistent_read=True)
    assert (after.version, after.generation, after.key_id) == (before.version, before.generation, before.key_id)


def test_log_failing_once_still_logs_the_failed_attempt(
    call: Any, shared_account: Any, keypair: dict[str, Any], use_signing: Any
) -> None:
    start = since()
    use_signing(transaction=FlakyLog(failures=1))
    status, body = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (status, body["error"]["code"]) == (503, "storage_unavailable") and "signature" not in body
    [entry] = entries(shared_account.id, start, keypair["id"])
    assert (entry.status, entry.error, entry.signature, entry.keypair_id) == (
        "failed", "storage_unavailable", None, keypair["id"])
    assert len(denials(shared_account.id, start, keypair["id"])) == 1


def test_a_refresh_racing_once_signs_again_on_the_new_generation(
    call: Any, shared_account: Any, keypair: dict[str, Any], use_signing: Any
) -> None:
    start = since()
    backend = Backend()
    backend.after = lambda: (bump_generation(shared_account.id, keypair["id"])(), setattr(backend, "after", None))
    use_signing(backend=backend)
    status, body = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert status == 200, body
    assert body["generation"] == 2 and backend.signatures == 2
    [entry] = entries(shared_account.id, start, keypair["id"])
    assert (entry.status, entry.generation, entry.signature) == ("success", 2, body["signature"])
    verify_signature(_public_key(keypair), SIG_ALGS["SHA256withECDSA"], base64.b64decode(body["signature"]), DIGEST)


def test_a_keypair_changing_twice_is_a_conflict_with_one_failed_entry(
    call: Any, shared_account: Any, keypair: dict[str, Any], use_signing: Any
) -> None:
    start = since()
    use_signing(backend=Backend(after=bump_generation(shared_account.id, keypair["id"])))
    status, body = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (status, body["error"]["code"]) == (409, "conflict") and "signature" not in body
    [entry] = entries(shared_account.id, start, keypair["id"])
    assert (entry.status, entry.error, entry.signature) == ("failed", "conflict", None)


def test_a_keypair_deleted_mid_signature_is_not_found(
    call: Any, shared_account: Any, keypair: dict[str, Any], use_signing: Any
) -> None:
    start = since()
    use_signing(backend=Backend(after=lambda: call("DELETE", f"/keypairs/{keypair['id']}")))
    status, body = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (status, body["error"]["code"]) == (404, "not_found") and "signature" not in body
    [entry] = entries(shared_account.id, start, keypair["id"])
    assert (entry.status, entry.error) == ("failed", "not_found")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(HsmUnavailable(), 503, "hsm_unavailable"), (RuntimeError("boom"), 500, "internal_error")],
)
def test_a_failing_backend_is_logged_as_a_failed_attempt(
    call: Any, shared_account: Any, keypair: dict[str, Any], use_signing: Any, error: Exception, status: int, code: str
) -> None:
    start = since()
    use_signing(backend=Backend(error=error))
    got_status, body = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (got_status, body["error"]["code"]) == (status, code)
    [entry] = entries(shared_account.id, start, keypair["id"])
    assert (entry.status, entry.error) == ("failed", code)


def test_hooks_timestamper_refresh_and_after_sign(
    call: Any, shared_account: Any, keypair: dict[str, Any], use_signing: Any
) -> None:
    stamped: list[tuple[str, bytes]] = []
    seen: list[tuple[int, str]] = []
    refreshed: list[int] = []

    def refresh_if_overdue(kp: KeypairModel) -> bool:
        if refreshed:
            return False
        refreshed.append(int(kp.generation))
        bump_generation(kp.account, kp.id)()
        return True

    def after_sign(kp: KeypairModel, entry: SignatureLogModel) -> None:
        seen.append((int(kp.generation), entry.id))
        raise RuntimeError("a failing hook does not take the signature away")

    def timestamper(account: str, digest: bytes) -> str:
        stamped.append((account, digest))
        return "dG9rZW4="

    use_signing(timestamper=timestamper, refresh_if_overdue=refresh_if_overdue, after_sign=after_sign)
    status, body = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert status == 200, body
    assert body["timestamp_token"] == "dG9rZW4="
    assert stamped == [(shared_account.id, hashlib.sha256(base64.b64decode(body["signature"])).digest())]
    assert refreshed == [1] and body["generation"] == 2
    assert seen == [(2, body["signature_log_id"])]


def _public_key(keypair: dict[str, Any]) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(keypair["public_key"].encode())
