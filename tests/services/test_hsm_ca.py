"""Account CAs and TSA in the HSM (`ROTASIGN_CA_STORAGE=hsm`): issuing and time-stamping with token keys.

The module runs the whole service with settings where `ca_storage` is `hsm`, checked by openssl as the
outside verifier: `openssl verify` for certificates issued by the token CA key, `openssl ts -verify` for
time-stamp tokens made with the token TSA key.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pkcs11 import Attribute, ObjectClass

from chalicelib.keys.algorithms import SIG_ALGS, verify_signature
from chalicelib.keys.hsm.session import PKCS11_LOCK, Pkcs11Module
from chalicelib.services.accounts import AccountExists, bootstrap_account
from chalicelib.services.container import Deps, get_services
from chalicelib.storage.tables import AccountModel, KeyMaterialModel
from tests.support.api import Account, Api, cas_on_the_hsm, make_account


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture(scope="module")
def hsm_ca_deps(aws: dict[str, str]) -> Iterator[Deps]:
    """The process runs with `ca_storage=hsm` for this module; the previous dependencies come back after."""
    with cas_on_the_hsm() as deps:
        yield deps


@pytest.fixture(scope="module")
def hsm_account(hsm_ca_deps: Deps) -> Account:
    """An account bootstrapped while CAs go to the HSM."""
    return make_account(f"hsm-ca-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def api(hsm_account: Account) -> Iterator[Api]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield Api(client, hsm_account)


@pytest.fixture(scope="module")
def cas(api: Api, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """GET /api/v1/ca, each PEM written to a file for openssl."""
    folder = tmp_path_factory.mktemp("hsm-cas")
    paths = {}
    for role, pem in api.ok("GET", "/ca").items():
        paths[role] = folder / f"{role}.pem"
        paths[role].write_text(pem)
    return paths


def authority_labels(account_id: str) -> list[str]:
    """The account's keys on the token: its CAs, its TSA and its transparency-log key."""
    return sorted([f"{account_id}/ca/production", f"{account_id}/ca/test", f"{account_id}/tsa", f"{account_id}/log"])


def token_labels(prefix: str) -> list[str]:
    return get_services().deps.hsm().list_refs(prefix)


def write_cert(tmp_path: Path, pem: str) -> Path:
    path = tmp_path / f"cert-{uuid.uuid4().hex[:6]}.pem"
    path.write_text(pem)
    return path


def test_bootstrap_puts_the_ca_and_tsa_keys_on_the_token(
    hsm_account: Account, cas: dict[str, Path], hsm_ca_deps: Deps
) -> None:
    account = AccountModel.get(hsm_account.id)
    assert account.ca_storage == "hsm"
    assert token_labels(hsm_account.id) == authority_labels(hsm_account.id)
    # Nothing of them is in the key-material table.
    for ref in authority_labels(hsm_account.id):
        with pytest.raises(KeyMaterialModel.DoesNotExist):
            KeyMaterialModel.get(ref)
    # The published certificates carry the token keys' public halves.
    store = hsm_ca_deps.hsm()
    for role, ref in (("production", f"{hsm_account.id}/ca/production"), ("test", f"{hsm_account.id}/ca/test"),
                      ("tsa", f"{hsm_account.id}/tsa")):
        cert = x509.load_pem_x509_certificate(cas[role].read_bytes())
        assert cert.public_key() == store.load(hsm_account.id, ref, None).public_key()
    with PKCS11_LOCK:
        lib = Pkcs11Module.shared(hsm_ca_deps.settings.pkcs11_module).lib
        session = lib.get_token(token_label=hsm_ca_deps.settings.hsm_token_label).open()
        try:
            (ca_key,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                             Attribute.LABEL: f"{hsm_account.id}/ca/production"})
            assert ca_key[Attribute.SENSITIVE] is True and ca_key[Attribute.EXTRACTABLE] is False
        finally:
            session.close()


@pytest.mark.parametrize(
    ("storage", "category", "spec"),
    [("hsm", "production", {"algorithm": "RSA", "key_size": 2048}),
     ("hsm", "test", {"algorithm": "ECDSA", "curve": "P-384"}),
     ("disk", "production", {"algorithm": "EdDSA"})],
)
def test_certificates_issued_by_the_token_ca_verify_with_openssl(
    api: Api, cas: dict[str, Path], tmp_path: Path, storage: str, category: str, spec: dict[str, Any]
) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": f"ca-{storage}-{category}-{uuid.uuid4().hex[:6]}", "type": "static",
                                      "storage": storage, "category": category} | spec, 201)
    cert = write_cert(tmp_path, kp["certificate"]["pem"])
    other = "test" if category == "production" else "production"

    ok = openssl("verify", "-CAfile", cas[category], cert)
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    # A test signature never verifies as a production one (and the other way round).
    assert openssl("verify", "-CAfile", cas[other], cert).returncode != 0
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)


def test_sign_response_timestamp_token_made_with_the_token_tsa_verifies_with_openssl(
    api: Api, cas: dict[str, Path], tmp_path: Path
) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": f"stamped-{uuid.uuid4().hex[:6]}", "type": "dynamic",
                                      "storage": "hsm", "algorithm": "ECDSA", "curve": "P-256"}, 201)
    digest = hashlib.sha256(b"release-2.0.tar.gz").digest()

    signed = api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": base64.b64encode(digest).decode()})

    signature = base64.b64decode(signed["signature"])
    cert = x509.load_pem_x509_certificate(signed["certificate"]["pem"].encode())
    verify_signature(cert.public_key(), SIG_ALGS["SHA256withECDSA"], signature, digest)  # type: ignore[arg-type]
    assert signed["chain"] == [cas["production"].read_text()]
    token = tmp_path / "token.der"
    token.write_bytes(base64.b64decode(signed["timestamp_token"]))
    ok = openssl("ts", "-verify", "-digest", hashlib.sha256(signature).hexdigest(), "-in", token, "-token_in",
                 "-CAfile", cas["production"])
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    bad = openssl("ts", "-verify", "-digest", hashlib.sha256(signature + b"x").hexdigest(), "-in", token,
                  "-token_in", "-CAfile", cas["production"])
    assert bad.returncode != 0
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)


def test_timestamp_route_answers_with_the_token_tsa_key(api: Api, cas: dict[str, Path], tmp_path: Path) -> None:
    data, query, reply = tmp_path / "data", tmp_path / "q.tsq", tmp_path / "r.tsr"
    data.write_bytes(b"artifact stamped by a TSA key in the HSM\n")
    assert openssl("ts", "-query", "-data", data, "-sha256", "-cert", "-out", query).returncode == 0

    response = api.client.http.post("/api/v1/timestamp", body=query.read_bytes(), headers={
        "Content-Type": "application/timestamp-query", "Accept": "*/*", "X-API-Key": api.account.api_key})

    assert response.status_code == 200, response.body[:300]
    reply.write_bytes(response.body)
    ok = openssl("ts", "-verify", "-data", data, "-in", reply, "-CAfile", cas["production"])
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stdout + ok.stderr


def test_bootstrap_that_fails_to_commit_destroys_the_keys_it_made(hsm_ca_deps: Deps, hsm_account: Account) -> None:
    before = token_labels("acct_")

    with pytest.raises(AccountExists):
        bootstrap_account(hsm_ca_deps, hsm_account.name)

    assert token_labels("acct_") == before


def test_bootstrap_with_the_token_unreachable_makes_nothing(hsm_ca_deps: Deps, tmp_path: Path) -> None:
    from chalicelib.errors import HsmUnavailable
    from chalicelib.keys.hsm.store import HsmKeyStore

    settings = hsm_ca_deps.settings
    broken = dataclasses.replace(hsm_ca_deps, hsm_store=HsmKeyStore.connect(
        str(tmp_path / "gone.so"), settings.hsm_token_label, lambda: "unused"))
    name = f"hsm-down-{uuid.uuid4().hex[:8]}"
    before = token_labels("acct_")

    with pytest.raises(HsmUnavailable):
        bootstrap_account(broken, name)

    assert token_labels("acct_") == before
    assert [a.id for a in AccountModel.scan(AccountModel.name == name)] == []


class _FirstDestroyFails:
    """The real store, except that the first destroy finds the token gone for a moment."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failed = False

    def destroy(self, key_ref: str) -> None:
        if not self.failed:
            self.failed = True
            from chalicelib.errors import HsmUnavailable

            raise HsmUnavailable("The HSM failed during destroy (DeviceRemoved).")
        self.real.destroy(key_ref)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_failed_bootstrap_cleanup_keeps_going_and_keeps_the_real_error(
    hsm_ca_deps: Deps, hsm_account: Account
) -> None:
    flaky = _FirstDestroyFails(hsm_ca_deps.hsm())
    deps = dataclasses.replace(hsm_ca_deps, hsm_store=flaky)
    before = set(token_labels("acct_"))

    with pytest.raises(AccountExists):  # not the cleanup's HsmUnavailable
        bootstrap_account(deps, hsm_account.name)

    # Only the key whose destroy failed is left (an operator removes it; no account row names it).
    left = set(token_labels("acct_")) - before
    assert len(left) == 1
    hsm_ca_deps.hsm().destroy(left.pop())
    assert set(token_labels("acct_")) == before
