"""Signing under faults: every failure class at every I/O step of the path, refreshes and deletes racing it.

The guarantee under test: no signature leaves the service unless its log entry is written, and every
attempt that the log can still record is recorded (as `failed`, with its `sign_denied` audit entry).
Faults are injected at the botocore boundary of the real clients (tests/support/faults.py); keys, moto
and the token are real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.clock import parse_rfc3339, rfc3339, utc_now
from chalicelib.domain.logs import SCHEDULER, Actor
from chalicelib.errors import HsmUnavailable
from chalicelib.keys.algorithms import SIG_ALGS, PrivateKey, verify_signature
from chalicelib.keys.backend import KeyBackend, NewKey, SealedKey
from chalicelib.services.container import Deps, get_services
from chalicelib.storage.connection import client as dynamodb
from chalicelib.storage.tables import AuditLogModel, GenerationModel, SignatureLogModel
from tests.support.clock import FakeClock
from tests.support.faults import FAILURES, STATUS, failing

DIGEST = hashlib.sha256(b"release.tar.gz").digest()
BODY = {"hash": base64.b64encode(DIGEST).decode(), "file_name": "release.tar.gz"}


@pytest.fixture(scope="module")
def client(aws: Any) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as c:
        yield c


@pytest.fixture
def call(client: Any, account: Any) -> Callable[..., tuple[int, Any, dict[str, str]]]:
    headers = {"X-API-Key": account.api_key, "Content-Type": "application/json"}

    def run(method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        fn = getattr(client.http, method.lower())
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        response = fn(f"/api/v1{path}", **kwargs)
        return response.status_code, json.loads(response.body) if response.body else None, response.headers

    return run


@pytest.fixture
def keypair(call: Callable[..., Any]) -> dict[str, Any]:
    status, kp, _ = call("POST", "/keypairs", {"alias": f"faults-{uuid.uuid4().hex[:12]}", "type": "dynamic",
                                               "algorithm": "ECDSA", "curve": "P-256"})
    assert status == 201, kp
    return kp  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def cold(aws: Any) -> None:
    """Every test starts with nothing cached about keypairs, so the state read is exercised too."""
    get_services().signing.states.clear()


def since() -> str:
    return rfc3339(utc_now() - timedelta(seconds=2))


def entries(account: str, start: str, kp_id: str) -> list[SignatureLogModel]:
    """The signature-log entries about one keypair since `start` (a refusal that never read it names no id)."""
    found = SignatureLogModel.query(account, SignatureLogModel.sk >= start, consistent_read=True)
    return [e for e in found if e.keypair_id in (kp_id, None)]


def denials(account: str, start: str, kp_id: str) -> list[AuditLogModel]:
    found = AuditLogModel.query(account, AuditLogModel.sk >= start, consistent_read=True)
    return [e for e in found if e.action == "sign_denied" and dict(e.details.as_dict()).get("keypair") == kp_id]


def assert_refused_without_signature(status: int, body: Any, headers: dict[str, str], want: int) -> None:
    assert status == want, body
    assert set(body) == {"error"} and '"signature":' not in json.dumps(body)
    if want == 429:
        assert headers.get("Retry-After") == "1"


# -- storage faults at each step -----------------------------------------------------------------------

STEPS = {
    # the keypair row and its key material (cold)
    "state read": "BatchGetItem",
    # the signature-log entry: the one write of a signature
    "log write": "PutItem",
}


# A read has no condition to fail: every other failure class at every step.
CASES = [(step, failure) for step in STEPS for failure in FAILURES if (step, failure) != ("state read", "conditional")]


@pytest.mark.parametrize(("step", "failure"), CASES)
def test_a_failed_step_gives_no_signature_and_the_attempt_is_logged(
    call: Any, account: Any, keypair: dict[str, Any], step: str, failure: str
) -> None:
    start = since()
    with failing(dynamodb(), STEPS[step], failure, times=1) as failed:
        status, body, headers = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert failed == [STEPS[step]]
    want = STATUS[failure]
    assert_refused_without_signature(status, body, headers, want)
    # The refusal itself could be written (the fault hit once): one failed entry and its audit entry.
    [entry] = entries(account.id, start, keypair["id"])
    assert (entry.status, entry.signature, entry.timestamp_token) == ("failed", None, None)
    assert entry.error == body["error"]["code"] == ("throttled" if want == 429 else "storage_unavailable")
    assert len(denials(account.id, start, keypair["id"])) == 1
    # The keypair is unharmed: the next request signs.
    status, signed, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert status == 200 and signed["generation"] == 1


@pytest.mark.parametrize("failure", list(FAILURES))
def test_the_log_down_for_good_means_no_signature_and_nothing_written(
    call: Any, account: Any, keypair: dict[str, Any], failure: str
) -> None:
    start = since()
    with failing(dynamodb(), "PutItem", failure), failing(dynamodb(), "TransactWriteItems", failure):
        status, body, headers = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert_refused_without_signature(status, body, headers, STATUS[failure])
    assert entries(account.id, start, keypair["id"]) == []
    assert denials(account.id, start, keypair["id"]) == []


@pytest.mark.parametrize("failure", ["throttled", "internal", "dropped", "conditional"])
def test_a_batch_whose_write_fails_returns_no_signature_and_writes_nothing(
    call: Any, account: Any, keypair: dict[str, Any], failure: str
) -> None:
    start = since()
    items = [{"hash": base64.b64encode(hashlib.sha256(b"%d" % i).digest()).decode()} for i in range(30)]
    with failing(dynamodb(), "TransactWriteItems", failure, times=1,
                 when=lambda params: len(params["TransactItems"]) == 30):
        status, body, headers = call("POST", f"/keypairs/{keypair['id']}/sign", {"items": items})
    assert_refused_without_signature(status, body, headers, STATUS[failure])
    # No entry of the batch was written; the refusal is (one entry for the request).
    [entry] = entries(account.id, start, keypair["id"])
    assert (entry.status, entry.signature) == ("failed", None)


def test_a_bad_batch_item_is_a_400_naming_it_and_writes_nothing(
    call: Any, account: Any, keypair: dict[str, Any]
) -> None:
    start = since()
    good = {"hash": base64.b64encode(DIGEST).decode()}
    for bad, field in [({"hash": "AAAA"}, "hash"), ({"hash": good["hash"], "sig_alg": "SHA256withRSA"}, "sig_alg"),
                       ({"hash": good["hash"], "colour": "red"}, "colour")]:
        status, body, _ = call("POST", f"/keypairs/{keypair['id']}/sign", {"items": [good, good, bad, good]})
        assert status == 400 and body["error"]["details"] == {"field": field, "index": 2}, body
    assert entries(account.id, start, keypair["id"]) == []
    assert denials(account.id, start, keypair["id"]) == []


@pytest.mark.parametrize("failure", ["throttled", "internal", "dropped"])
def test_kms_failing_to_open_the_key_gives_no_signature(
    call: Any, account: Any, keypair: dict[str, Any], failure: str
) -> None:
    start = since()
    with failing(get_services().deps.kms, "Decrypt", failure, times=1) as failed:
        status, body, headers = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert failed == ["Decrypt"]
    assert_refused_without_signature(status, body, headers, 429 if failure == "throttled" else 503)
    [entry] = entries(account.id, start, keypair["id"])
    assert entry.status == "failed" and entry.signature is None


# -- racing refreshes and deletes ------------------------------------------------------------------------


class HookedKey:
    """A real key object that runs a hook right after it signs (a refresh or delete committing mid-request)."""

    def __init__(self, key: PrivateKey, hook: Callable[[], None]) -> None:
        self._key, self._hook = key, hook

    def sign(self, *args: Any) -> bytes:
        signature = self._key.sign(*args)  # type: ignore[call-arg]
        self._hook()
        return signature

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)


class HookedBackend:
    """The real backend whose loaded keys run `hook` once, after their first signature."""

    def __init__(self, inner: KeyBackend, hook: Callable[[], None]) -> None:
        self.inner, self.storage, self.hook = inner, inner.storage, hook

    def generate(self, account: str, key_ref: str, spec: Any) -> NewKey:
        return self.inner.generate(account, key_ref, spec)

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> Any:
        hook, self.hook = self.hook, lambda: None
        return HookedKey(self.inner.load(account, key_ref, sealed), hook)

    def destroy(self, key_ref: str) -> None:
        self.inner.destroy(key_ref)


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], None]], None]:
    deps = get_services().deps

    def install(hook: Callable[[], None]) -> None:
        backend = HookedBackend(Deps.backend(deps, "disk"), hook)
        monkeypatch.setattr(deps, "backend", lambda storage: backend)

    return install


def retired_at(kp_id: str, generation: int) -> str | None:
    return GenerationModel.get(kp_id, generation, consistent_read=True).retired_at


def test_a_refresh_committing_mid_signature_leaves_a_signature_of_the_old_generation_before_its_retirement(
    call: Any, account: Any, keypair: dict[str, Any], hooked: Any
) -> None:
    services = get_services()
    hooked(lambda: services.refresh.refresh(account.id, keypair["id"], Actor(account.id, SCHEDULER)))
    status, body, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert status == 200, body
    assert body["generation"] == 1 and body["key_id"] == keypair["key_id"]
    # Generation 1 was retired by the refresh, with its grace: the signature is stamped before that.
    gone = retired_at(keypair["id"], 1)
    assert gone is not None and parse_rfc3339(body["signed_at"]) < parse_rfc3339(gone)
    verify_signature(_public_key(keypair), SIG_ALGS["SHA256withECDSA"], base64.b64decode(body["signature"]), DIGEST)
    status, after, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert status == 200 and after["generation"] == 2


def test_a_request_that_outlives_the_grace_signs_again_on_a_fresh_state(
    call: Any, account: Any, keypair: dict[str, Any], hooked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state read at T may sign only until T + grace: a request slower than that reads again."""
    services = get_services()
    deps = services.deps
    clock = FakeClock(utc_now())
    monkeypatch.setattr(deps, "clock", clock)
    grace = deps.settings.retirement_grace_seconds

    def slow_and_refreshed() -> None:
        services.refresh.refresh(account.id, keypair["id"], Actor(account.id, SCHEDULER))
        clock.advance(grace)  # the request stalled past its state's bound

    hooked(slow_and_refreshed)
    start = since()
    status, body, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert status == 200, body
    assert body["generation"] == 2  # signed again, on the generation current now
    assert parse_rfc3339(body["signed_at"]) >= parse_rfc3339(retired_at(keypair["id"], 1) or "") - timedelta(
        seconds=grace)
    # Only the signature that left is logged.
    assert [(e.status, int(e.generation)) for e in entries(account.id, start, keypair["id"])] == [
        ("success", 2)]


def test_a_keypair_deleted_mid_signature_signs_within_the_cache_bound_and_404s_after(
    call: Any, account: Any, keypair: dict[str, Any], hooked: Any
) -> None:
    hooked(lambda: call("DELETE", f"/keypairs/{keypair['id']}"))
    status, body, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert status == 200 and parse_rfc3339(body["signed_at"]) < parse_rfc3339(retired_at(keypair["id"], 1) or "")
    start = since()
    status, body, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (status, body["error"]["code"]) == (404, "not_found")
    [entry] = [e for e in entries(account.id, start, keypair["id"]) if e.status == "failed"]
    assert (entry.error, entry.keypair_id) == ("not_found", keypair["id"])


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(HsmUnavailable(), 503, "hsm_unavailable"), (RuntimeError("boom"), 500, "internal_error")],
)
def test_a_failing_key_is_logged_as_a_failed_attempt(
    call: Any, account: Any, keypair: dict[str, Any], hooked: Any, error: Exception, status: int, code: str
) -> None:
    def fail() -> None:
        raise error

    hooked(fail)
    start = since()
    got_status, body, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (got_status, body["error"]["code"]) == (status, code) and '"signature":' not in json.dumps(body)
    [entry] = entries(account.id, start, keypair["id"])
    assert (entry.status, entry.error) == ("failed", code)


def test_the_time_stamp_failing_gives_no_signature(
    call: Any, account: Any, keypair: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_: Any, **__: Any) -> str:
        raise HsmUnavailable("The time-stamping key is unavailable.")

    monkeypatch.setattr(get_services().timestamps, "stamp_signature", unavailable)
    start = since()
    status, body, _ = call("POST", f"/keypairs/{keypair['id']}/sign", BODY)
    assert (status, body["error"]["code"]) == (503, "hsm_unavailable") and '"signature":' not in json.dumps(body)
    [entry] = entries(account.id, start, keypair["id"])
    assert (entry.status, entry.signature) == ("failed", None)


def _public_key(keypair: dict[str, Any]) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(keypair["public_key"].encode())


