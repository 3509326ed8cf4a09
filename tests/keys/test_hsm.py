"""HsmBackend against a real SoftHSM2 token, with openssl as the outside verifier."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive, DeviceRemoved

from chalicelib.errors import Conflict, HsmUnavailable, UnsupportedAlgorithm, ValidationError
from chalicelib.keys import hsm
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, PublicKey, SigAlg, public_key_pem, verify_signature
from chalicelib.keys.hsm import HsmBackend
from chalicelib.keys.softhsm import MODULE_ENV, ensure_token, find_module

if TYPE_CHECKING:
    from conftest import SoftHsm  # only for annotations: several test dirs have a conftest.py

SPECS: dict[str, KeySpec] = {
    "RSA-2048": KeySpec.build("RSA", key_size=2048),
    "RSA-3072": KeySpec.build("RSA", key_size=3072),
    "RSA-4096": KeySpec.build("RSA", key_size=4096),
    "P-256": KeySpec.build("ECDSA", curve="P-256"),
    "P-384": KeySpec.build("ECDSA", curve="P-384"),
    "P-521": KeySpec.build("ECDSA", curve="P-521"),
    "Ed25519": KeySpec.build("EdDSA"),
}
RUN = f"kp_{uuid.uuid4().hex[:12]}"  # label prefix of this run's keys


@dataclass(frozen=True)
class TokenKey:
    label: str
    public_key: PublicKey


@pytest.fixture(scope="module")
def token_keys(hsm_backend: HsmBackend) -> Iterator[Callable[[str], TokenKey]]:
    """One token key per spec, generated on first use (on-token RSA-4096 keygen takes seconds).

    Destroyed when this module is done, so a later orphan-sweep test never sees them.
    """
    made: dict[str, TokenKey] = {}

    def get(name: str) -> TokenKey:
        if name not in made:
            label = f"{RUN}/{name}"
            made[name] = TokenKey(label, hsm_backend.generate(label, SPECS[name]))
        return made[name]

    yield get
    for key in made.values():
        hsm_backend.destroy(key.label)


def to_sign(sig_alg: SigAlg, message: bytes) -> bytes:
    """What HsmBackend.sign takes: the digest for RSA/ECDSA, the message for Ed25519."""
    if sig_alg.hash_algorithm is None:
        return message
    return hashlib.new(sig_alg.hash_algorithm.replace("-", "").lower(), message).digest()


def openssl_verify(workdir: Path, public_key: PublicKey, sig_alg: SigAlg, signature: bytes, data: bytes) -> bool:
    """Verify with the openssl CLI (3.0), independently of `cryptography`."""
    pub, sig, inp = workdir / "pub.pem", workdir / "sig.bin", workdir / "in.bin"
    pub.write_text(public_key_pem(public_key))
    sig.write_bytes(signature)
    inp.write_bytes(data)
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-sigfile", str(sig), "-in", str(inp)]
    if sig_alg.hash_algorithm is None:
        cmd.append("-rawin")
    else:
        cmd += ["-pkeyopt", "digest:" + sig_alg.hash_algorithm.replace("-", "").lower()]
        if sig_alg.pss:
            cmd += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return result.returncode == 0 and "Signature Verified Successfully" in result.stdout


@contextmanager
def token_session(softhsm: SoftHsm) -> Iterator[pkcs11.Session]:
    """A second, plain session on the test token: the outside view of what the backend made.

    Login is per process, so once the backend has logged in this session sees private objects too.
    It runs under the backend's lock, as every PKCS#11 call in the process must.
    """
    with hsm._PKCS11_LOCK:
        # The backend's own pkcs11.lib: loading the module again under another path would
        # C_Initialize it twice.
        lib = hsm._load_module(os.path.realpath(softhsm.module))
        session = lib.get_token(token_label=softhsm.label).open(rw=True)
        try:
            yield session
        finally:
            session.close()


def _sign_cases() -> Iterator[Any]:
    for name, spec in SPECS.items():
        for sig_alg in SIG_ALGS.values():
            if sig_alg.algorithm == spec.algorithm:
                marks = [pytest.mark.slow] if name == "RSA-4096" else []
                yield pytest.param(name, sig_alg.name, id=f"{name}-{sig_alg.name}", marks=marks)


# -- signing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec_name", "sig_alg_name"), list(_sign_cases()))
def test_signature_verifies_with_cryptography_and_openssl(
    hsm_backend: HsmBackend,
    token_keys: Callable[[str], TokenKey],
    tmp_path: Path,
    spec_name: str,
    sig_alg_name: str,
) -> None:
    key = token_keys(spec_name)
    sig_alg = SIG_ALGS[sig_alg_name]
    data = to_sign(sig_alg, os.urandom(100))

    signature = hsm_backend.sign(key.label, sig_alg, data)

    verify_signature(key.public_key, sig_alg, signature, data)
    assert openssl_verify(tmp_path, key.public_key, sig_alg, signature, data)


def test_openssl_check_rejects_a_tampered_signature(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey], tmp_path: Path
) -> None:
    key = token_keys("P-256")
    sig_alg = SIG_ALGS["SHA256withECDSA"]
    data = to_sign(sig_alg, b"payload")
    signature = bytearray(hsm_backend.sign(key.label, sig_alg, data))
    signature[-1] ^= 1
    assert not openssl_verify(tmp_path, key.public_key, sig_alg, bytes(signature), data)


def test_generate_returns_the_public_key_of_the_spec(token_keys: Callable[[str], TokenKey]) -> None:
    rsa_key = token_keys("RSA-3072").public_key
    assert isinstance(rsa_key, rsa.RSAPublicKey)
    assert rsa_key.key_size == 3072
    assert rsa_key.public_numbers().e == 65537
    ec_key = token_keys("P-521").public_key
    assert isinstance(ec_key, ec.EllipticCurvePublicKey)
    assert isinstance(ec_key.curve, ec.SECP521R1)
    assert isinstance(token_keys("Ed25519").public_key, ed25519.Ed25519PublicKey)


def test_sign_rejects_a_digest_of_the_wrong_length(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    key = token_keys("P-256")
    with pytest.raises(ValidationError):
        hsm_backend.sign(key.label, SIG_ALGS["SHA384withECDSA"], hashlib.sha256(b"x").digest())


def test_sign_rejects_a_sig_alg_of_another_key_type(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    key = token_keys("P-256")
    with pytest.raises(UnsupportedAlgorithm):
        hsm_backend.sign(key.label, SIG_ALGS["SHA256withRSA"], hashlib.sha256(b"x").digest())


# -- what is on the token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_name", "secret_attribute"),
    [("RSA-2048", Attribute.PRIVATE_EXPONENT), ("P-256", Attribute.VALUE), ("Ed25519", Attribute.VALUE)],
)
def test_private_half_is_sensitive_and_never_extractable(
    token_keys: Callable[[str], TokenKey], softhsm: SoftHsm, spec_name: str, secret_attribute: Attribute
) -> None:
    key = token_keys(spec_name)
    with token_session(softhsm) as session:
        (private,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: key.label})
        (public,) = session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: key.label})
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.PRIVATE] is True
        assert private[Attribute.TOKEN] is True
        assert private[Attribute.ID] == key.label.encode()
        assert public[Attribute.ID] == key.label.encode()
        assert public[Attribute.TOKEN] is True
        with pytest.raises(AttributeSensitive):
            private[secret_attribute]


def test_destroy_removes_both_halves_and_is_idempotent(hsm_backend: HsmBackend, softhsm: SoftHsm) -> None:
    label = f"{RUN}/destroy"
    hsm_backend.generate(label, SPECS["P-256"])

    assert hsm_backend.destroy(label) == 2

    with token_session(softhsm) as session:
        assert list(session.get_objects({Attribute.LABEL: label})) == []
    assert hsm_backend.destroy(label) == 0
    assert label not in hsm_backend.list_labels(RUN)
    with pytest.raises(Conflict, match="no longer exists"):
        hsm_backend.sign(label, SIG_ALGS["SHA256withECDSA"], hashlib.sha256(b"x").digest())
    with pytest.raises(Conflict):
        hsm_backend.private_key(label)


def test_key_destroyed_by_another_session_is_a_conflict(hsm_backend: HsmBackend, softhsm: SoftHsm) -> None:
    label = f"{RUN}/destroyed-elsewhere"
    sig_alg = SIG_ALGS["SHA256withECDSA"]
    digest = hashlib.sha256(b"x").digest()
    hsm_backend.generate(label, SPECS["P-256"])
    hsm_backend.sign(label, sig_alg, digest)  # the backend now holds the key's handle

    with token_session(softhsm) as session:  # as another Lambda would
        for obj in list(session.get_objects({Attribute.LABEL: label})):
            obj.destroy()

    with pytest.raises(Conflict, match="no longer exists"):
        hsm_backend.sign(label, sig_alg, digest)


def test_a_remembered_handle_naming_another_key_is_not_used(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    key = token_keys("P-256")
    other = f"{RUN}/other-p256"
    hsm_backend.generate(other, SPECS["P-256"])
    sig_alg = SIG_ALGS["SHA256withECDSA"]
    digest = hashlib.sha256(b"which key?").digest()
    hsm_backend.sign(key.label, sig_alg, digest)
    # A module that reuses the handle of a destroyed key for a new one looks like this:
    conn = hsm_backend._connection
    with hsm._PKCS11_LOCK:
        conn.keys[key.label] = conn.keys[other]

    verify_signature(key.public_key, sig_alg, hsm_backend.sign(key.label, sig_alg, digest), digest)
    hsm_backend.destroy(other)


def test_list_labels_filters_by_prefix(hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]) -> None:
    labels = {token_keys("P-256").label, token_keys("Ed25519").label}
    listed = hsm_backend.list_labels(RUN)
    assert labels <= set(listed)
    assert all(label.startswith(RUN) for label in listed)
    assert listed == sorted(listed)
    assert hsm_backend.list_labels("no-such-prefix/") == []


def test_generate_refuses_a_label_already_on_the_token(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    key = token_keys("P-256")
    with pytest.raises(Conflict):
        hsm_backend.generate(key.label, SPECS["P-256"])
    sig_alg = SIG_ALGS["SHA256withECDSA"]
    data = to_sign(sig_alg, b"still mine")
    verify_signature(key.public_key, sig_alg, hsm_backend.sign(key.label, sig_alg, data), data)


def test_generate_leaves_nothing_behind_when_it_fails_halfway(
    hsm_backend: HsmBackend, softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = f"{RUN}/halfway"

    def fail_after_keygen(obj: Any) -> PublicKey:
        raise RuntimeError("reading the public key failed")

    monkeypatch.setattr(hsm, "_public_key_of", fail_after_keygen)
    with pytest.raises(RuntimeError):
        hsm_backend.generate(label, SPECS["P-256"])
    monkeypatch.undo()

    with token_session(softhsm) as session:
        assert list(session.get_objects({Attribute.LABEL: label})) == []
    hsm_backend.generate(label, SPECS["P-256"])  # the label is free again
    assert hsm_backend.destroy(label) == 2


# -- concurrency --------------------------------------------------------------------------------


def test_eight_threads_signing_with_different_algorithms(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    plan = [
        ("RSA-2048", "SHA256withRSA"),
        ("RSA-2048", "SHA512withRSA/PSS"),
        ("RSA-3072", "SHA384withRSA"),
        ("P-256", "SHA256withECDSA"),
        ("P-384", "SHA384withECDSA"),
        ("P-521", "SHA512withECDSA"),
        ("Ed25519", "Ed25519"),
        ("P-256", "via-private-key"),  # the cryptography-key path shares the same lock
    ]
    keys = {name: token_keys(name) for name, _ in plan}
    deadline = time.monotonic() + 3.0
    counts = [0] * len(plan)
    errors: list[BaseException] = []
    churned = [0]

    def signer(index: int, name: str, sig_alg_name: str) -> None:
        key = keys[name]
        try:
            if sig_alg_name == "via-private-key":
                private = hsm_backend.private_key(key.label)
                assert isinstance(private, ec.EllipticCurvePrivateKey)
                public = private.public_key()
            while time.monotonic() < deadline:
                message = os.urandom(64)
                if sig_alg_name == "via-private-key":
                    signature = private.sign(message, ec.ECDSA(hashes.SHA256()))
                    public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
                else:
                    sig_alg = SIG_ALGS[sig_alg_name]
                    data = to_sign(sig_alg, message)
                    verify_signature(key.public_key, sig_alg, hsm_backend.sign(key.label, sig_alg, data), data)
                counts[index] += 1
        except BaseException as exc:
            errors.append(exc)

    def churner() -> None:
        # Key generation and destruction (read/write calls) interleaved with the signers.
        try:
            while time.monotonic() < deadline:
                label = f"{RUN}/churn-{churned[0]}"
                hsm_backend.generate(label, SPECS["P-256"])
                assert hsm_backend.destroy(label) == 2
                churned[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=signer, args=(i, *step)) for i, step in enumerate(plan)]
    threads.append(threading.Thread(target=churner))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert all(count > 0 for count in counts), counts
    assert churned[0] > 0


# -- faults -------------------------------------------------------------------------------------


# Runs in a fresh interpreter: login is per process, and this process is already logged in to the
# token, so a wrong PIN here would never reach C_Login.
WRONG_PIN_PROBE = """
import io, json, logging, sys
from chalicelib.errors import HsmUnavailable
from chalicelib.keys.hsm import HsmBackend

module, label, wrong, right = sys.argv[1:5]
logs = io.StringIO()
logging.basicConfig(stream=logs, level=logging.DEBUG)
out = {}
backend = HsmBackend(module, label, lambda: wrong)
for attempt in ("first", "second"):
    try:
        backend.health()
    except HsmUnavailable as exc:
        out[attempt] = {
            "shown": [str(exc), repr(exc), json.dumps(exc.body()), str(exc.__cause__), repr(exc.__cause__)],
            "cause": type(exc.__cause__).__name__,
        }
HsmBackend(module, label, lambda: right).health()
out["right_pin_ok"] = True
out["logs"] = logs.getvalue()
print(json.dumps(out))
"""


def test_wrong_pin_is_unavailable_and_never_shows_the_pin(softhsm: SoftHsm, request: pytest.FixtureRequest) -> None:
    wrong = "2468-not-the-pin"
    result = subprocess.run(
        [sys.executable, "-c", WRONG_PIN_PROBE, softhsm.module, softhsm.label, wrong, softhsm.pin],
        cwd=request.config.rootpath,
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm.conf)},
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(result.stdout)

    assert out["first"]["cause"] == "PinIncorrect"
    # A refused PIN is not tried again (repeated failures can lock an HSM user) ...
    assert "before" in out["second"]["shown"][0]
    # ... but a corrected one is.
    assert out["right_pin_ok"] is True
    shown = [*out["first"]["shown"], *out["second"]["shown"], out["logs"], result.stderr]
    assert all(wrong not in text for text in shown)
    assert all(softhsm.pin not in text for text in shown)


def test_unloadable_module_is_unavailable(softhsm: SoftHsm, tmp_path: Path) -> None:
    missing = HsmBackend(str(tmp_path / "missing.so"), softhsm.label, lambda: "unused")
    with pytest.raises(HsmUnavailable):
        missing.health()
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"not a shared object")
    with pytest.raises(HsmUnavailable):
        HsmBackend(str(garbage), softhsm.label, lambda: "unused").health()


def test_missing_token_is_unavailable(softhsm: SoftHsm) -> None:
    with pytest.raises(HsmUnavailable, match="no-such-token"):
        HsmBackend(softhsm.module, "no-such-token", lambda: "unused").generate("x", SPECS["P-256"])


# python-pkcs11 leaves a search whose C_FindObjectsInit failed (on the dead session) for __del__
# to finish, which fails again on the dead handle; the warning is about that discarded session.
LOST_SESSION_NOISE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@LOST_SESSION_NOISE
def test_session_closed_behind_its_back_is_reopened(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    key = token_keys("Ed25519")
    hsm_backend.health()
    lost = hsm_backend._connection.session
    assert lost is not None
    lost.close()  # C_Logout + C_CloseSession on the backend's own session

    signature = hsm_backend.sign(key.label, SIG_ALGS["Ed25519"], b"after the loss")

    verify_signature(key.public_key, SIG_ALGS["Ed25519"], signature, b"after the loss")
    assert hsm_backend._connection.session is not lost


@LOST_SESSION_NOISE
def test_module_reinitialised_behind_its_back_is_reopened(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    key = token_keys("P-384")
    hsm_backend.health()
    with hsm._PKCS11_LOCK:
        hsm._LIBS[hsm_backend._connection.module_path].reinitialize()  # C_Finalize + C_Initialize

    sig_alg = SIG_ALGS["SHA384withECDSA"]
    data = to_sign(sig_alg, b"after a restart")
    verify_signature(key.public_key, sig_alg, hsm_backend.sign(key.label, sig_alg, data), data)


class _DeadSession:
    """Stands in for a session whose device keeps disappearing."""

    def __init__(self) -> None:
        self.calls = 0

    def get_objects(self, attrs: Any = None) -> Iterator[Any]:
        self.calls += 1
        raise DeviceRemoved()

    def close(self) -> None:
        raise DeviceRemoved()


def test_session_lost_twice_is_unavailable(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = token_keys("P-256")
    hsm_backend.health()
    conn = hsm_backend._connection
    dead = _DeadSession()

    def reopen(pin_provider: Callable[[], str]) -> Any:
        conn.session = dead  # type: ignore[assignment]
        return dead

    monkeypatch.setattr(conn, "session", dead)
    monkeypatch.setattr(conn, "open", reopen)

    with pytest.raises(HsmUnavailable) as info:
        hsm_backend.sign(key.label, SIG_ALGS["SHA256withECDSA"], hashlib.sha256(b"x").digest())

    assert isinstance(info.value.__cause__, DeviceRemoved)
    assert dead.calls == 2  # tried, reopened, tried once more


def test_backends_share_one_connection_and_one_login(hsm_backend: HsmBackend, softhsm: SoftHsm, tmp_path: Path) -> None:
    hsm_backend.health()
    link = tmp_path / "libsofthsm2-link.so"
    link.symlink_to(os.path.realpath(softhsm.module))
    second = HsmBackend(str(link), softhsm.label, lambda: "a second login would fail anyway")

    second.health()  # no second C_Login, so no UserAlreadyLoggedIn

    assert second._connection is hsm_backend._connection


# -- cryptography private keys backed by the token ----------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _self_signed_ca(private_key: Any, hash_alg: hashes.HashAlgorithm | None, **sign_kwargs: Any) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("rotasign HSM CA"))
        .issuer_name(_name("rotasign HSM CA"))
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(private_key, hash_alg, **sign_kwargs)
    )


def _leaf(ca: x509.Certificate, ca_key: Any, hash_alg: hashes.HashAlgorithm | None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("leaf"))
        .issuer_name(ca.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(ca_key, hash_alg)
    )


def _openssl_verify_chain(workdir: Path, ca: x509.Certificate, cert: x509.Certificate) -> None:
    ca_pem, cert_pem = workdir / "ca.pem", workdir / "cert.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_pem), str(cert_pem)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("spec_name", "hash_alg", "key_class"),
    [
        ("RSA-2048", hashes.SHA256(), rsa.RSAPrivateKey),
        ("P-384", hashes.SHA384(), ec.EllipticCurvePrivateKey),
        ("P-256", hashes.SHA512(), ec.EllipticCurvePrivateKey),
        ("Ed25519", None, ed25519.Ed25519PrivateKey),
    ],
    ids=["RSA-2048", "P-384", "P-256-SHA512", "Ed25519"],
)
def test_private_key_issues_certificates(
    hsm_backend: HsmBackend,
    token_keys: Callable[[str], TokenKey],
    tmp_path: Path,
    spec_name: str,
    hash_alg: hashes.HashAlgorithm | None,
    key_class: type,
) -> None:
    key = token_keys(spec_name)
    ca_key = hsm_backend.private_key(key.label)
    assert isinstance(ca_key, key_class)
    assert ca_key.public_key() == key.public_key

    ca = _self_signed_ca(ca_key, hash_alg)
    leaf = _leaf(ca, ca_key, hash_alg)

    ca.verify_directly_issued_by(ca)
    leaf.verify_directly_issued_by(ca)
    _openssl_verify_chain(tmp_path, ca, ca)
    _openssl_verify_chain(tmp_path, ca, leaf)


def test_private_key_issues_an_rsa_pss_certificate(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey], tmp_path: Path
) -> None:
    ca_key = hsm_backend.private_key(token_keys("RSA-3072").label)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

    ca = _self_signed_ca(ca_key, hashes.SHA256(), rsa_padding=pss)

    ca.verify_directly_issued_by(ca)
    _openssl_verify_chain(tmp_path, ca, ca)


def test_private_key_signs_like_an_in_memory_key(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey]
) -> None:
    rsa_key = hsm_backend.private_key(token_keys("RSA-2048").label)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    public = rsa_key.public_key()
    message = b"max-length PSS salt and PKCS#1 v1.5 over SHA-384"
    pss_max = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    public.verify(rsa_key.sign(message, pss_max, hashes.SHA256()), message, pss_max, hashes.SHA256())
    pkcs1 = padding.PKCS1v15()
    public.verify(rsa_key.sign(message, pkcs1, hashes.SHA384()), message, pkcs1, hashes.SHA384())

    ed_key = hsm_backend.private_key(token_keys("Ed25519").label)
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    ed_key.public_key().verify(ed_key.sign(message), message)


@pytest.mark.parametrize("spec_name", ["RSA-2048", "P-256", "Ed25519"])
def test_private_key_cannot_be_exported(
    hsm_backend: HsmBackend, token_keys: Callable[[str], TokenKey], spec_name: str
) -> None:
    private = hsm_backend.private_key(token_keys(spec_name).label)
    with pytest.raises(TypeError):
        private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    if isinstance(private, ed25519.Ed25519PrivateKey):
        with pytest.raises(TypeError):
            private.private_bytes_raw()
    else:
        with pytest.raises(TypeError):
            private.private_numbers()


# -- softhsm helper -----------------------------------------------------------------------------


def test_ensure_token_initialises_a_label_only_once(tmp_path: Path) -> None:
    first = ensure_token(tmp_path, "once", "1234-pin", "5678-so")
    second = ensure_token(tmp_path, "once", "1234-pin", "5678-so")
    assert first == second == tmp_path.resolve() / "softhsm2.conf"
    shown = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env={**os.environ, "SOFTHSM2_CONF": str(first)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [line.split(":", 1)[1].strip() for line in shown.splitlines() if "Label:" in line].count("once") == 1


def test_ensure_token_failure_does_not_echo_the_pin(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        ensure_token(tmp_path, "short-pin", "q7", "5678-so")  # SoftHSM wants 4+ characters
    assert "q7" not in str(info.value)
    with pytest.raises(ValueError):
        ensure_token(tmp_path, "x" * 33, "1234-pin", "5678-so")


def test_find_module_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so")
    assert find_module() == "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so"
    monkeypatch.delenv(MODULE_ENV)
    assert os.path.isfile(find_module())
