"""`storage: hsm` keypairs through the API: every algorithm signs on the token, keys stay there, delete destroys."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography import x509
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from chalicelib.clock import rfc3339, utc_now
from chalicelib.keys.algorithms import SIG_ALGS, key_id_of, verify_signature
from chalicelib.keys.hsm.session import PKCS11_LOCK, Pkcs11Module
from chalicelib.services.container import get_services
from chalicelib.storage.tables import AuditLogModel, KeypairModel, SignatureLogModel
from tests.support.api import KEY_SPECS, Account, Api, sign_in_process

SPECS = KEY_SPECS
RUN = uuid.uuid4().hex[:8]  # alias suffix: the module's keypairs never clash with another module's


def _cases() -> Iterator[Any]:
    """(spec, sig_alg, hash_algorithm, input) for every algorithm x size x sig_alg of docs/api.md."""
    for name, spec in SPECS.items():
        for bits in ("256", "384", "512"):
            hash_algorithm = f"SHA-{bits}"
            if spec["algorithm"] == "RSA":
                for sig_alg in (f"SHA{bits}withRSA", f"SHA{bits}withRSA/PSS"):
                    yield pytest.param(name, sig_alg, hash_algorithm, "hash", id=f"{name}-{sig_alg}")
            elif spec["algorithm"] == "ECDSA":
                yield pytest.param(name, f"SHA{bits}withECDSA", hash_algorithm, "hash", id=f"{name}-SHA{bits}")
            else:
                yield pytest.param(name, "Ed25519", hash_algorithm, "hash", id=f"{name}-hash-SHA{bits}")
    yield pytest.param("ed25519", "Ed25519", "SHA-256", "message", id="ed25519-message")
    yield pytest.param("rsa-3072", "SHA384withRSA/PSS", "SHA-384", "message", id="rsa-3072-PSS-message")
    yield pytest.param("p-521", "SHA512withECDSA", "SHA-512", "message", id="p-521-message")


@pytest.fixture(scope="module")
def api(shared_account: Account) -> Iterator[Api]:
    """The API as the module account's admin, on one module-wide test client."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield Api(client, shared_account)


@pytest.fixture(scope="module")
def hsm_keypairs(api: Api) -> Iterator[dict[str, dict[str, Any]]]:
    """One HSM keypair per algorithm and size, made once (on-token RSA-4096 keygen takes seconds)."""
    made = {
        name: api.ok("POST", "/keypairs", {"alias": f"hsm-{name}-{RUN}", "type": "static", "storage": "hsm"} | spec,
                     201)
        for name, spec in SPECS.items()
    }
    yield made
    for kp in made.values():  # leave the token as we found it
        api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)


@contextmanager
def token_session() -> Iterator[pkcs11.Session]:
    """A second, plain session on the test token: the outside view of what the service made.

    Login is per process, so once the service has logged in this session sees private objects too.
    It holds the backend's lock, as every PKCS#11 call in the process must (SoftHSM crashes otherwise).
    """
    settings = get_services().deps.settings
    get_services().deps.hsm().health()  # log the process in
    with PKCS11_LOCK:
        lib = Pkcs11Module.shared(settings.pkcs11_module).lib
        session = lib.get_token(token_label=settings.hsm_token_label).open(rw=True)
        try:
            yield session
        finally:
            session.close()


def labels_on_token(session: pkcs11.Session) -> list[str]:
    """The label of every object on the token."""
    return [obj[Attribute.LABEL] for obj in session.get_objects({})]


def key_ref(account: Account, kp_id: str) -> str:
    """The keypair's key reference: its token label."""
    return str(KeypairModel.get(account.id, kp_id, consistent_read=True).key_ref)


def digest_of(hash_algorithm: str, data: bytes) -> bytes:
    return hashlib.new(hash_algorithm.replace("-", "").lower(), data).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def openssl_verify(tmp: Path, cert_pem: str, sig_alg: str, signed: bytes, signature: bytes, *, message: bool) -> None:
    """Verify with the openssl CLI against the certificate's public key.

    `signed` is the digest (pkeyutl, RSA/ECDSA), the message (dgst, RSA/ECDSA) or Ed25519's input (pkeyutl -rawin).
    """
    alg = SIG_ALGS[sig_alg]
    cert, data, sig, pub = tmp / "cert.pem", tmp / "data.bin", tmp / "sig.bin", tmp / "pub.pem"
    cert.write_text(cert_pem)
    data.write_bytes(signed)
    sig.write_bytes(signature)
    pss = ["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"] if alg.pss else []
    if alg.hash_algorithm is None:
        args = ["pkeyutl", "-verify", "-certin", "-inkey", str(cert), "-rawin", "-in", str(data), "-sigfile", str(sig)]
        expected = "Signature Verified Successfully"
    elif message:
        pub.write_text(subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                                      capture_output=True, text=True, check=True).stdout)
        args = ["dgst", "-" + alg.hash_algorithm.replace("-", "").lower(), "-verify", str(pub),
                "-signature", str(sig), *[a for opt in pss for a in ("-sigopt", opt)], str(data)]
        expected = "Verified OK"
    else:
        args = ["pkeyutl", "-verify", "-certin", "-inkey", str(cert), "-in", str(data), "-sigfile", str(sig),
                "-pkeyopt", "digest:" + alg.hash_algorithm.replace("-", "").lower(),
                *[a for opt in pss for a in ("-pkeyopt", opt)]]
        expected = "Signature Verified Successfully"
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and expected in result.stdout, result.stdout + result.stderr


# -- every algorithm, size and sig_alg ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "sig_alg", "hash_algorithm", "mode"), list(_cases()))
def test_hsm_signature_verifies_with_cryptography_and_openssl(
    api: Api, hsm_keypairs: dict[str, dict[str, Any]], tmp_path: Path,
    name: str, sig_alg: str, hash_algorithm: str, mode: str,
) -> None:
    kp = hsm_keypairs[name]
    payload = os.urandom(200)
    digest = digest_of(hash_algorithm, payload)
    body = {"hash_algorithm": hash_algorithm, "sig_alg": sig_alg}
    body |= {"message": b64(payload)} if mode == "message" else {"hash": b64(digest)}

    response = api.ok("POST", f"/keypairs/{kp['id']}/sign", body)

    assert (response["sig_alg"], response["keypair_id"], response["key_id"]) == (sig_alg, kp["id"], kp["key_id"])
    cert = x509.load_pem_x509_certificate(response["certificate"]["pem"].encode())
    assert key_id_of(cert.public_key()) == kp["key_id"]  # type: ignore[arg-type]
    signature = base64.b64decode(response["signature"])
    alg = SIG_ALGS[sig_alg]
    # Ed25519 signs the message itself when one is sent (RFC 8419), the digest bytes otherwise.
    signed = payload if mode == "message" and alg.algorithm == "EdDSA" else digest
    verify_signature(cert.public_key(), alg, signature, signed)  # type: ignore[arg-type]
    if mode == "message" and alg.algorithm != "EdDSA":
        openssl_verify(tmp_path, response["certificate"]["pem"], sig_alg, payload, signature, message=True)
    else:
        openssl_verify(tmp_path, response["certificate"]["pem"], sig_alg, signed, signature, message=False)


def test_created_keypair_reports_hsm_storage_and_only_public_material(
    api: Api, hsm_keypairs: dict[str, dict[str, Any]]
) -> None:
    kp = hsm_keypairs["rsa-4096"]
    assert (kp["storage"], kp["algorithm"], kp["key_size"], kp["generation"]) == ("hsm", "RSA", 4096, 1)
    assert "PRIVATE" not in str(kp)
    fetched = api.ok("GET", f"/keypairs/{kp['id']}")
    assert fetched["public_key"] == kp["public_key"]
    listed = api.ok("GET", "/keypairs?storage=hsm&limit=500")["items"]
    assert {k["id"] for k in hsm_keypairs.values()} <= {k["id"] for k in listed}
    assert all(k["storage"] == "hsm" for k in listed)


# -- what is on the token ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret_attributes"),
    [("rsa-2048", (Attribute.PRIVATE_EXPONENT, Attribute.PRIME_1, Attribute.PRIME_2)),
     ("p-384", (Attribute.VALUE,)), ("ed25519", (Attribute.VALUE,))],
)
def test_token_key_is_sensitive_never_extractable_and_unreadable(
    shared_account: Account, hsm_keypairs: dict[str, dict[str, Any]], name: str, secret_attributes: tuple[Attribute]
) -> None:
    kp = hsm_keypairs[name]
    label = key_ref(shared_account, kp["id"])
    assert label.startswith(f"{kp['id']}/1/")
    with token_session() as session:
        (private,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
        (public,) = session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label})
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.TOKEN] is True and private[Attribute.PRIVATE] is True
        for attribute in secret_attributes:
            with pytest.raises(AttributeSensitive):
                private[attribute]
        # The public half on the token is the key the API published.
        token_public = get_services().deps.hsm().load(shared_account.id, label, None).public_key()
        assert key_id_of(token_public) == kp["key_id"]
        assert public[Attribute.ID] == label.encode()


def test_delete_destroys_every_token_object_of_the_keypair(api: Api, shared_account: Account) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": f"hsm-doomed-{RUN}", "type": "static", "storage": "hsm",
                                      "algorithm": "ECDSA", "curve": "P-256"}, 201)
    label = key_ref(shared_account, kp["id"])
    digest = hashlib.sha256(b"last words").digest()
    api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": b64(digest)})
    store = get_services().deps.hsm()
    assert store.list_refs(kp["id"]) == [label]
    with token_session() as session:
        assert len(list(session.get_objects({Attribute.LABEL: label}))) == 2

    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)

    assert store.list_refs(kp["id"]) == []
    with token_session() as session:
        assert list(session.get_objects({Attribute.LABEL: label})) == []
        assert list(session.get_objects({Attribute.ID: label.encode()})) == []
        assert [lbl for lbl in labels_on_token(session) if lbl.startswith(kp["id"])] == []
    assert api.call("POST", f"/keypairs/{kp['id']}/sign", {"hash": b64(digest)}).status_code == 404
    assert api.call("GET", f"/keypairs/{kp['id']}").status_code == 404
    deleted = [e for e in AuditLogModel.query(shared_account.id, consistent_read=True)
               if e.resource_id == kp["id"] and e.action == "delete"]
    assert len(deleted) == 1
    # The alias is free again, and a new HSM key takes it.
    again = api.ok("POST", "/keypairs", {"alias": f"hsm-doomed-{RUN}", "type": "static", "storage": "hsm",
                                         "algorithm": "EdDSA"}, 201)
    api.ok("DELETE", f"/keypairs/{again['id']}", status=204)


# -- threads -----------------------------------------------------------------------------------------


def test_eight_threads_signing_through_the_service(
    shared_account: Account, hsm_keypairs: dict[str, dict[str, Any]]
) -> None:
    """Chalice's test client is not thread-safe (it swaps os.environ and sets app.current_request per
    request), so the threads call the signing service the route calls, with the caller's principal."""
    services = get_services()
    principal = services.auth.authenticate(shared_account.api_key, "127.0.0.1")
    plan = [
        ("rsa-2048", "SHA256withRSA", "SHA-256"),
        ("rsa-2048", "SHA512withRSA/PSS", "SHA-512"),
        ("rsa-3072", "SHA384withRSA", "SHA-384"),
        ("p-256", "SHA256withECDSA", "SHA-256"),
        ("p-384", "SHA384withECDSA", "SHA-384"),
        ("p-521", "SHA512withECDSA", "SHA-512"),
        ("ed25519", "Ed25519", "SHA-256"),
        ("rsa-4096", "SHA256withRSA/PSS", "SHA-256"),
    ]
    public_keys = {name: x509.load_pem_x509_certificate(kp["certificate"]["pem"].encode()).public_key()
                   for name, kp in hsm_keypairs.items()}
    start = rfc3339(utc_now() - timedelta(seconds=2))
    deadline = time.monotonic() + 3.0
    counts = [0] * len(plan)
    log_ids: list[str] = []
    errors: list[BaseException] = []

    def signer(index: int, name: str, sig_alg: str, hash_algorithm: str) -> None:
        try:
            while time.monotonic() < deadline:
                digest = digest_of(hash_algorithm, os.urandom(64))
                body = {"hash": b64(digest), "hash_algorithm": hash_algorithm, "sig_alg": sig_alg}
                response = sign_in_process(principal, hsm_keypairs[name]["id"], body)
                verify_signature(public_keys[name], SIG_ALGS[sig_alg],  # type: ignore[arg-type]
                                 base64.b64decode(response["signature"]), digest)
                log_ids.append(response["signature_log_id"])
                counts[index] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=signer, args=(i, *step)) for i, step in enumerate(plan)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert all(count > 0 for count in counts), counts
    # Every signature made is in the signature log, once.
    logged = {e.id: e.status for e in SignatureLogModel.query(shared_account.id, SignatureLogModel.sk >= start,
                                                              consistent_read=True)}
    assert len(set(log_ids)) == len(log_ids) == sum(counts)
    assert all(logged.get(log_id) == "success" for log_id in log_ids)
