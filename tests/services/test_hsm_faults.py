"""Token failures in the middle of HSM requests: 503 (or a clean 4xx), and nothing half-made left behind.

Faults come in through small wrappers swapped into `Deps` (`deps.hsm_store`), a fake authority store, and a
botocore hook at the DynamoDB boundary; the token itself is the real SoftHSM2 test token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.clock import rfc3339, utc_now
from chalicelib.errors import HsmUnavailable
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, PrivateKey, verify_signature
from chalicelib.keys.backend import NewKey, SealedKey
from chalicelib.keys.hsm.session import PKCS11_LOCK
from chalicelib.keys.hsm.store import HsmKeyStore
from chalicelib.services.container import get_services
from chalicelib.storage.connection import connection
from chalicelib.storage.tables import AliasClaim, AuditLogModel, KeypairModel, SignatureLogModel
from tests.support.api import Account, Api

DIGEST = hashlib.sha256(b"release.tar.gz").digest()
SIGN = {"hash": base64.b64encode(DIGEST).decode(), "file_name": "release.tar.gz"}
EC = {"type": "static", "storage": "hsm", "algorithm": "ECDSA", "curve": "P-256"}

# python-pkcs11 leaves a search whose C_FindObjectsInit failed on a dead session for __del__ to
# finish, which fails again on the dead handle; the warning is about that discarded session.
LOST_SESSION_NOISE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class FlakyStore:
    """The real HsmKeyStore on the test token, with a fault run before (or after) chosen calls.

    `faults` maps `generate` / `load` / `destroy` / `after_generate` / `health` to a callable that raises
    or does something behind the store's back. Every key it generates is recorded, so a test can look
    for it on the token afterwards.
    """

    storage = "hsm"

    def __init__(self, real: HsmKeyStore, **faults: Callable[[], None]) -> None:
        self.real = real
        self.faults = faults
        self.generated: list[str] = []

    def _fault(self, name: str) -> None:
        if name in self.faults:
            self.faults[name]()

    def generate(self, account: str, key_ref: str, spec: KeySpec) -> NewKey:
        self._fault("generate")
        new = self.real.generate(account, key_ref, spec)
        self.generated.append(key_ref)
        self._fault("after_generate")
        return new

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        self._fault("load")
        return self.real.load(account, key_ref, sealed)

    def destroy(self, key_ref: str) -> None:
        self._fault("destroy")
        self.real.destroy(key_ref)

    def list_refs(self, prefix: str = "") -> list[str]:
        return self.real.list_refs(prefix)

    def health(self) -> None:
        self._fault("health")
        self.real.health()


def hsm_down() -> None:
    raise HsmUnavailable("The HSM failed during test (DeviceRemoved).")


def close_session_behind_its_back() -> None:
    """What a token restart or an idle timeout does: the shared session (and the login) is gone."""
    session = real_store().token.session
    with PKCS11_LOCK:
        if session.session is not None:
            session.session.close()  # C_Logout + C_CloseSession; the store still holds the dead handle


@pytest.fixture(scope="module")
def api(shared_account: Account) -> Iterator[Api]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield Api(client, shared_account)


@pytest.fixture
def store(aws: dict[str, str]) -> Iterator[Callable[..., HsmKeyStore]]:
    """Swap the process's HSM key store for one built around a wrapper; the real one is back afterwards."""
    deps = get_services().deps
    real = deps.hsm()

    def install(store: Any) -> HsmKeyStore:
        deps.hsm_store = store
        return store  # type: ignore[no-any-return]

    yield install
    deps.hsm_store = real


@pytest.fixture(scope="module")
def signer(api: Api) -> Iterator[dict[str, Any]]:
    """One HSM keypair for the sign-path faults."""
    kp = api.ok("POST", "/keypairs", {"alias": f"faulty-signer-{uuid.uuid4().hex[:8]}"} | EC, 201)
    yield kp
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)


def real_store() -> HsmKeyStore:
    """A store on the test token with the right PIN, whatever store is swapped in (it shares the process's
    one session and login, so it is the token as the service sees it)."""
    settings = get_services().deps.settings
    pin = settings.hsm_pin or ""
    return HsmKeyStore.connect(settings.pkcs11_module, settings.hsm_token_label, lambda: pin)


def unreachable(tmp_path: Path) -> HsmKeyStore:
    """A store whose PKCS#11 module cannot be loaded."""
    settings = get_services().deps.settings
    return HsmKeyStore.connect(str(tmp_path / "no-such-module.so"), settings.hsm_token_label, lambda: "unused")


def token_labels() -> set[str]:
    """Every keypair key label on the token (account CA labels start with acct_)."""
    return set(real_store().list_refs("kp_"))


def since() -> str:
    return rfc3339(utc_now() - timedelta(seconds=2))


def assert_nothing_made(api: Api, alias: str, start: str, labels_before: set[str]) -> None:
    """No keypair, alias claim, generate audit entry or token key exists for a create that failed."""
    account = api.account.id
    assert api.ok("GET", f"/keypairs?alias={alias}")["items"] == []
    assert [kp.id for kp in KeypairModel.query(account, consistent_read=True) if kp.alias == alias] == []
    with pytest.raises(AliasClaim.DoesNotExist):
        AliasClaim.get(account, alias.lower(), consistent_read=True)
    generated = [e for e in AuditLogModel.query(account, AuditLogModel.sk >= start, consistent_read=True)
                 if e.action == "generate" and e.resource_alias == alias]
    assert generated == []
    assert token_labels() == labels_before


def create(api: Api, alias: str) -> tuple[int, Any]:
    response = api.call("POST", "/keypairs", {"alias": alias} | EC)
    return response.status_code, json.loads(response.body)


# -- module unavailable ------------------------------------------------------------------------------


def test_module_unavailable_create_is_503_and_leaves_nothing(
    api: Api, store: Callable[..., HsmKeyStore], tmp_path: Path
) -> None:
    settings = get_services().deps.settings
    store(unreachable(tmp_path))
    alias, start, before = f"unreachable-{uuid.uuid4().hex[:8]}", since(), token_labels()

    status, body = create(api, alias)

    assert (status, body["error"]["code"]) == (503, "hsm_unavailable")
    assert settings.hsm_pin and settings.hsm_pin not in json.dumps(body)
    assert_nothing_made(api, alias, start, before)


def test_module_unavailable_sign_is_503_logged_without_a_signature(
    api: Api, store: Callable[..., HsmKeyStore], signer: dict[str, Any], tmp_path: Path
) -> None:
    store(unreachable(tmp_path))
    start = since()

    response = api.call("POST", f"/keypairs/{signer['id']}/sign", SIGN)

    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "hsm_unavailable"
    entries = [e for e in SignatureLogModel.query(api.account.id, SignatureLogModel.sk >= start, consistent_read=True)
               if e.keypair_id == signer["id"]]
    assert [(e.status, e.error, e.signature) for e in entries] == [("failed", "hsm_unavailable", None)]


def test_module_unavailable_delete_is_503_and_the_keypair_stays_whole(
    api: Api, store: Callable[..., HsmKeyStore], tmp_path: Path
) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": f"undeletable-{uuid.uuid4().hex[:8]}"} | EC, 201)
    label = str(KeypairModel.get(api.account.id, kp["id"]).key_ref)
    real = get_services().deps.hsm()
    store(unreachable(tmp_path))

    response = api.call("DELETE", f"/keypairs/{kp['id']}")

    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "hsm_unavailable"
    get_services().deps.hsm_store = real
    assert api.ok("GET", f"/keypairs/{kp['alias']}")["id"] == kp["id"]
    assert real.list_refs(kp["id"]) == [label]
    signed = api.ok("POST", f"/keypairs/{kp['id']}/sign", SIGN)
    assert signed["key_id"] == kp["key_id"]
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)
    assert real.list_refs(kp["id"]) == []


# -- session closed behind the backend's back -------------------------------------------------------


@LOST_SESSION_NOISE
def test_session_closed_mid_create_is_reopened_and_the_key_is_made(
    api: Api, store: Callable[..., HsmKeyStore]
) -> None:
    flaky = FlakyStore(real_store(), generate=close_session_behind_its_back)
    store(flaky)

    kp = api.ok("POST", "/keypairs", {"alias": f"reopened-{uuid.uuid4().hex[:8]}"} | EC, 201)

    assert flaky.list_refs(kp["id"]) == flaky.generated
    signed = api.ok("POST", f"/keypairs/{kp['id']}/sign", SIGN)
    public_key = real_store().load(api.account.id, flaky.generated[0], None).public_key()
    verify_signature(public_key, SIG_ALGS["SHA256withECDSA"], base64.b64decode(signed["signature"]), DIGEST)
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)


@LOST_SESSION_NOISE
def test_session_closed_mid_sign_is_reopened_and_the_signature_verifies(
    api: Api, store: Callable[..., HsmKeyStore], signer: dict[str, Any]
) -> None:
    api.ok("POST", f"/keypairs/{signer['id']}/sign", SIGN)  # the signing service now holds the key object
    close_session_behind_its_back()

    signed = api.ok("POST", f"/keypairs/{signer['id']}/sign", SIGN)

    key_ref = str(KeypairModel.get(api.account.id, signer["id"]).key_ref)
    public_key = real_store().load(api.account.id, key_ref, None).public_key()
    verify_signature(public_key, SIG_ALGS["SHA256withECDSA"], base64.b64decode(signed["signature"]), DIGEST)


@LOST_SESSION_NOISE
def test_session_closed_and_no_pin_to_reopen_with_is_503_and_leaves_nothing(
    api: Api, store: Callable[..., HsmKeyStore]
) -> None:
    """The session dies, and re-login needs the PIN from Secrets Manager, which is down too."""
    settings = get_services().deps.settings

    def pin_secret_down() -> str:
        raise RuntimeError("secretsmanager: connection refused")

    no_pin = HsmKeyStore.connect(settings.pkcs11_module, settings.hsm_token_label, pin_secret_down)
    store(FlakyStore(no_pin, generate=close_session_behind_its_back))
    alias, start, before = f"no-pin-{uuid.uuid4().hex[:8]}", since(), token_labels()

    status, body = create(api, alias)

    assert (status, body["error"]["code"]) == (503, "hsm_unavailable")
    assert "connection refused" not in json.dumps(body)
    assert_nothing_made(api, alias, start, before)


# -- wrong PIN ---------------------------------------------------------------------------------------

# A fresh process, as a new Lambda instance would be: login is per process, and this test process is
# already logged in to the token, so a wrong PIN here would never reach C_Login.
WRONG_PIN_RUN = """
import io, json, logging, os, sys
from moto import mock_aws

wrong, right = sys.argv[1:3]
os.environ["ROTASIGN_HSM_PIN"] = wrong
logs = io.StringIO()
logging.basicConfig(stream=logs, level=logging.DEBUG, force=True)
with mock_aws():
    import boto3
    os.environ["ROTASIGN_KMS_KEY_ID"] = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    from chalice.test import Client
    from app import app
    from chalicelib.keys.hsm.store import HsmKeyStore
    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.container import get_deps
    from chalicelib.settings import get_settings
    from chalicelib.storage.tables import AliasClaim, AuditLogModel, KeypairModel, create_tables

    for handler in logging.getLogger("rotasign").handlers:
        handler.setStream(logs)
    settings = get_settings()
    create_tables(settings)
    account = bootstrap_account(get_deps(), "wrong-pin-co")
    headers = {"X-API-Key": account.api_key, "Content-Type": "application/json"}
    body = json.dumps({"alias": "on-the-token", "type": "static", "storage": "hsm",
                       "algorithm": "ECDSA", "curve": "P-256"})
    out = {"responses": []}
    with Client(app, stage_name="local") as client:
        for _ in range(2):
            r = client.http.post("/api/v1/keypairs", headers=headers, body=body)
            out["responses"].append([r.status_code, r.body.decode()])
        out["keypairs"] = [kp.id for kp in KeypairModel.query(account.account_id)]
        out["claims"] = [c.alias_key for c in AliasClaim.query(account.account_id)]
        out["generate_entries"] = [e.id for e in AuditLogModel.query(account.account_id) if e.action == "generate"]
        # The operator fixes the PIN: the same alias is free, and the key is made (and removed again).
        get_deps().hsm_store = HsmKeyStore.connect(settings.pkcs11_module, settings.hsm_token_label, lambda: right)
        r = client.http.post("/api/v1/keypairs", headers=headers, body=body)
        out["fixed"] = [r.status_code, r.body.decode()]
        kp_id = json.loads(r.body)["id"]
        out["label_after_fix"] = get_deps().hsm().list_refs(kp_id)
        r = client.http.delete(f"/api/v1/keypairs/{kp_id}", headers=headers)
        out["deleted"] = r.status_code
        out["left_on_token"] = get_deps().hsm().list_refs(kp_id)
out["logs"] = logs.getvalue()
print(json.dumps(out))
"""


def test_wrong_pin_is_503_leaves_nothing_and_never_shows_the_pin(
    aws: dict[str, str], request: pytest.FixtureRequest
) -> None:
    settings = get_services().deps.settings
    wrong = "8642-not-the-pin"
    assert settings.hsm_pin is not None
    before = token_labels()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTASIGN_KMS")}
    result = subprocess.run(
        [sys.executable, "-c", WRONG_PIN_RUN, wrong, settings.hsm_pin],
        cwd=request.config.rootpath, env=env, capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])

    for status, body in out["responses"]:
        assert (status, json.loads(body)["error"]["code"]) == (503, "hsm_unavailable")
    # The refused PIN is not tried again (repeated failures can lock an HSM user).
    assert "before" in json.loads(out["responses"][1][1])["error"]["message"]
    assert (out["keypairs"], out["claims"], out["generate_entries"]) == ([], [], [])
    assert out["fixed"][0] == 201, out["fixed"]
    assert len(out["label_after_fix"]) == 1 and out["deleted"] == 204 and out["left_on_token"] == []
    shown = [body for _, body in out["responses"]] + [out["logs"], result.stderr, result.stdout]
    assert all(wrong not in text and settings.hsm_pin not in text for text in shown)
    assert token_labels() == before


# -- a failure between key generation and the keypair transaction ------------------------------------


class _CaUnreachable:
    """Authorities whose CA key cannot be reached (an HSM-held CA on a token that just went away)."""

    def get(self, account: Any, role: str) -> Any:
        raise HsmUnavailable()


@pytest.fixture
def keypairs_without_ca(aws: dict[str, str]) -> Iterator[None]:
    maker = get_services().keypairs.keys
    real = maker.authorities
    maker.authorities = _CaUnreachable()  # type: ignore[assignment]
    yield
    maker.authorities = real


@pytest.fixture
def storage_down_for_keypair_writes(aws: dict[str, str]) -> Iterator[None]:
    """TransactWriteItems that create a keypair fail at the DynamoDB boundary, like an outage."""
    events = connection().client.meta.events

    def fail(params: dict[str, Any], **_: Any) -> None:
        tables = {op.get("TableName", "") for item in params.get("TransactItems", []) for op in item.values()}
        if any(name.endswith("keypairs") for name in tables):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "TransactWriteItems")

    events.register("before-parameter-build.dynamodb.TransactWriteItems", fail, unique_id="hsm-faults-outage")
    yield
    events.unregister("before-parameter-build.dynamodb.TransactWriteItems", unique_id="hsm-faults-outage")


def test_ca_unreachable_after_keygen_is_503_and_the_new_key_is_destroyed(
    api: Api, store: Callable[..., HsmKeyStore], keypairs_without_ca: None
) -> None:
    flaky = FlakyStore(real_store())
    store(flaky)
    alias, start, before = f"no-ca-{uuid.uuid4().hex[:8]}", since(), token_labels()

    status, body = create(api, alias)

    assert (status, body["error"]["code"]) == (503, "hsm_unavailable")
    assert len(flaky.generated) == 1  # the key was made on the token ...
    assert real_store().list_refs(flaky.generated[0]) == []  # ... and destroyed again
    assert_nothing_made(api, alias, start, before)


def test_storage_down_after_keygen_is_503_and_the_new_key_is_destroyed(
    api: Api, store: Callable[..., HsmKeyStore], storage_down_for_keypair_writes: None
) -> None:
    flaky = FlakyStore(real_store())
    store(flaky)
    alias, start, before = f"no-db-{uuid.uuid4().hex[:8]}", since(), token_labels()

    status, body = create(api, alias)

    assert (status, body["error"]["code"]) == (503, "storage_unavailable")
    assert len(flaky.generated) == 1
    assert real_store().list_refs(flaky.generated[0]) == []
    assert_nothing_made(api, alias, start, before)


def test_alias_taken_after_keygen_is_409_and_the_new_key_is_destroyed(
    api: Api, store: Callable[..., HsmKeyStore], signer: dict[str, Any]
) -> None:
    flaky = FlakyStore(real_store())
    store(flaky)
    before = token_labels()

    status, body = create(api, signer["alias"])

    assert (status, body["error"]["code"]) == (409, "alias_taken")
    assert len(flaky.generated) == 1
    assert real_store().list_refs(flaky.generated[0]) == []
    assert token_labels() == before
    assert api.ok("GET", f"/keypairs/{signer['alias']}")["id"] == signer["id"]


def test_hsm_lost_after_keygen_leaves_only_an_orphan_the_sweep_removes(
    api: Api, store: Callable[..., HsmKeyStore], storage_down_for_keypair_writes: None
) -> None:
    """The transaction fails and the token goes away before the new key can be destroyed: the key is
    unreferenced, no keypair names it, and the orphan sweep destroys it once it is old enough."""
    from chalicelib.services.sweep import sweep_orphans

    flaky = FlakyStore(real_store(), destroy=hsm_down)
    store(flaky)
    alias, start, before = f"orphan-{uuid.uuid4().hex[:8]}", since(), token_labels()

    status, body = create(api, alias)

    assert (status, body["error"]["code"]) == (503, "storage_unavailable")
    (orphan,) = flaky.generated
    assert token_labels() == before | {orphan}
    deps = get_services().deps
    deps.hsm_store = real_store()  # the token is back
    swept = sweep_orphans(deps, now=deps.clock() + timedelta(hours=1))
    assert orphan in swept.removed
    assert_nothing_made(api, alias, start, before - set(swept.removed))


def test_hsm_lost_after_delete_commits_is_204_and_the_sweep_removes_the_key(
    api: Api, store: Callable[..., HsmKeyStore]
) -> None:
    """The tombstone is committed and the token goes away before the key is destroyed: the keypair is
    deleted as the client asked (204, 404 afterwards), and its key is left to the orphan sweep."""
    from chalicelib.services.sweep import sweep_orphans

    kp = api.ok("POST", "/keypairs", {"alias": f"late-destroy-{uuid.uuid4().hex[:8]}"} | EC, 201)
    label = str(KeypairModel.get(api.account.id, kp["id"]).key_ref)
    store(FlakyStore(real_store(), destroy=hsm_down))

    assert api.call("DELETE", f"/keypairs/{kp['id']}").status_code == 204

    assert api.call("GET", f"/keypairs/{kp['id']}").status_code == 404
    assert api.call("POST", f"/keypairs/{kp['id']}/sign", SIGN).status_code == 404
    assert real_store().list_refs(kp["id"]) == [label]
    deps = get_services().deps
    deps.hsm_store = real_store()  # the token is back
    swept = sweep_orphans(deps, now=deps.clock() + timedelta(hours=1))
    assert label in swept.removed
    assert real_store().list_refs(kp["id"]) == []
