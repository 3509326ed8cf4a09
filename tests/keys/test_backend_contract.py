"""The KeyBackend contract, run over both backends: disk (moto's KMS) and HSM (the SoftHSM2 test token).

For every algorithm of the API and every sig_alg that fits it: generate, load, sign through the one
signing function, verify with `cryptography` and with openssl; the key id is stable; destroy makes
load fail; a digest of the wrong length fails the same way on both; HSM keys refuse export.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chalicelib.errors import KeyMissing, UnsupportedAlgorithm
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, PrivateKey, SigAlg, key_id_of, sign, verify_signature
from chalicelib.keys.backend import KeyBackend, NewKey, SealedKey
from chalicelib.keys.disk import DiskKeyStore
from chalicelib.keys.hsm.store import HsmKeyStore
from tests.keys.keytest import digest_for, openssl_verify
from tests.support.api import KEY_SPECS

RUN = f"kp_{uuid.uuid4().hex[:12]}"  # key_ref prefix of this run's keys
ACCOUNT = "acct_contract"
BACKENDS = ("disk", "hsm")
KEY_CLASSES: dict[str, type] = {
    "RSA": rsa.RSAPrivateKey,
    "ECDSA": ec.EllipticCurvePrivateKey,
    "EdDSA": ed25519.Ed25519PrivateKey,
}


@dataclass
class Harness:
    """A backend plus what its caller keeps: the sealed material of each key_ref (the key-material table).

    `destroy` is what the services do: the backend's destroy, and for disk keys the deletion of the
    material row in the same transaction.
    """

    backend: KeyBackend
    stored: dict[str, SealedKey | None] = field(default_factory=dict)
    made: dict[str, NewKey] = field(default_factory=dict)

    def generate(self, key_ref: str, spec: KeySpec) -> NewKey:
        new = self.backend.generate(ACCOUNT, key_ref, spec)
        self.stored[key_ref] = new.sealed
        self.made[key_ref] = new
        return new

    def load(self, key_ref: str) -> PrivateKey:
        return self.backend.load(ACCOUNT, key_ref, self.stored.get(key_ref))

    def destroy(self, key_ref: str) -> None:
        self.backend.destroy(key_ref)
        self.stored.pop(key_ref, None)
        self.made.pop(key_ref, None)


@pytest.fixture(scope="module")
def harnesses(disk_store: DiskKeyStore, hsm_store: HsmKeyStore) -> Iterator[dict[str, Harness]]:
    """One harness per backend for the module; every key left at the end is destroyed."""
    made = {"disk": Harness(disk_store), "hsm": Harness(hsm_store)}
    yield made
    for harness in made.values():
        for key_ref in list(harness.made):
            harness.destroy(key_ref)


@pytest.fixture(scope="module")
def shared_key(harnesses: dict[str, Harness]) -> Callable[[str, str], tuple[NewKey, Harness]]:
    """One key per backend and spec, made on first use (on-token RSA-4096 keygen takes seconds)."""

    def get(storage: str, spec_name: str) -> tuple[NewKey, Harness]:
        harness = harnesses[storage]
        key_ref = f"{RUN}/{spec_name}/1"
        new = harness.made.get(key_ref) or harness.generate(key_ref, KeySpec.build(**KEY_SPECS[spec_name]))
        return new, harness

    return get


def _spec_cases() -> Iterator[Any]:
    for storage in BACKENDS:
        for spec_name in KEY_SPECS:
            marks = [pytest.mark.slow] if spec_name == "rsa-4096" else []
            yield pytest.param(storage, spec_name, id=f"{storage}-{spec_name}", marks=marks)


def _sign_cases() -> Iterator[Any]:
    for storage in BACKENDS:
        for spec_name, spec in KEY_SPECS.items():
            for sig_alg in SIG_ALGS.values():
                if sig_alg.algorithm != spec["algorithm"]:
                    continue
                # Ed25519 signs whatever it is given: a client's digest, or the message itself.
                inputs = ["digest", "message"] if sig_alg.hash_algorithm is None else ["digest"]
                for what in inputs:
                    marks = [pytest.mark.slow] if spec_name == "rsa-4096" else []
                    case_id = f"{storage}-{spec_name}-{sig_alg.name}" + ("-message" if what == "message" else "")
                    yield pytest.param(storage, spec_name, sig_alg.name, what, id=case_id, marks=marks)


def _data(sig_alg: SigAlg, what: str) -> bytes:
    message = os.urandom(1000)
    if what == "message":
        return message
    if sig_alg.hash_algorithm is None:
        return hashlib.sha512(message).digest()
    return digest_for(sig_alg, message)


# -- generate and load ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("storage", "spec_name"), list(_spec_cases()))
def test_load_gives_the_generated_key_with_a_stable_key_id(
    shared_key: Callable[[str, str], tuple[NewKey, Harness]], storage: str, spec_name: str
) -> None:
    new, harness = shared_key(storage, spec_name)
    spec = KeySpec.build(**KEY_SPECS[spec_name])

    first, second = harness.load(new.key_ref), harness.load(new.key_ref)

    assert isinstance(first, KEY_CLASSES[spec.algorithm])
    assert first.public_key() == second.public_key() == new.public_key
    assert key_id_of(first.public_key()) == key_id_of(second.public_key()) == key_id_of(new.public_key)
    public = new.public_key
    if isinstance(public, rsa.RSAPublicKey):
        assert (public.key_size, public.public_numbers().e) == (spec.key_size, 65537)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        assert public.curve.name == {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}[spec.curve or ""]
    assert new.sealed is None if storage == "hsm" else new.sealed is not None


# -- signing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("storage", "spec_name", "sig_alg_name", "what"), list(_sign_cases()))
def test_signature_verifies_with_cryptography_and_openssl(
    shared_key: Callable[[str, str], tuple[NewKey, Harness]],
    tmp_path: Path,
    storage: str,
    spec_name: str,
    sig_alg_name: str,
    what: str,
) -> None:
    new, harness = shared_key(storage, spec_name)
    sig_alg = SIG_ALGS[sig_alg_name]
    data = _data(sig_alg, what)

    signature = sign(harness.load(new.key_ref), sig_alg, data)

    verify_signature(new.public_key, sig_alg, signature, data)
    assert openssl_verify(tmp_path, new.public_key, sig_alg, signature, data)
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 1
    assert not openssl_verify(tmp_path, new.public_key, sig_alg, bytes(tampered), data)


@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize(
    ("spec_name", "sig_alg_name", "length"),
    [("rsa-2048", "SHA256withRSA", 31), ("rsa-2048", "SHA384withRSA/PSS", 32),
     ("p-256", "SHA256withECDSA", 33), ("p-384", "SHA512withECDSA", 48)],
)
def test_a_digest_of_the_wrong_length_is_the_same_error_on_both(
    shared_key: Callable[[str, str], tuple[NewKey, Harness]], storage: str, spec_name: str, sig_alg_name: str,
    length: int,
) -> None:
    new, harness = shared_key(storage, spec_name)
    with pytest.raises(ValueError, match=r"^The provided data must be the same length as the hash algorithm's digest"):
        sign(harness.load(new.key_ref), SIG_ALGS[sig_alg_name], b"\x01" * length)


@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize(("spec_name", "sig_alg_name"), [("p-256", "SHA256withRSA"), ("rsa-2048", "Ed25519"),
                                                        ("ed25519", "SHA256withECDSA")])
def test_a_sig_alg_of_another_key_type_is_refused(
    shared_key: Callable[[str, str], tuple[NewKey, Harness]], storage: str, spec_name: str, sig_alg_name: str
) -> None:
    new, harness = shared_key(storage, spec_name)
    with pytest.raises(UnsupportedAlgorithm):
        sign(harness.load(new.key_ref), SIG_ALGS[sig_alg_name], hashlib.sha256(b"x").digest())


# -- destroy -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", BACKENDS)
def test_destroy_makes_load_fail_and_is_idempotent(harnesses: dict[str, Harness], storage: str) -> None:
    harness = harnesses[storage]
    key_ref = f"{RUN}/destroyed/1"
    harness.generate(key_ref, KeySpec.build("ECDSA", curve="P-256"))
    harness.load(key_ref)

    harness.destroy(key_ref)

    with pytest.raises(KeyMissing):
        harness.load(key_ref)
    harness.destroy(key_ref)  # nothing left to destroy: no error


@pytest.mark.parametrize("storage", BACKENDS)
def test_a_key_never_made_is_missing(harnesses: dict[str, Harness], storage: str) -> None:
    with pytest.raises(KeyMissing):
        harnesses[storage].load(f"{RUN}/never-made/1")


# -- export ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec_name", ["rsa-2048", "p-256", "ed25519"])
def test_hsm_keys_refuse_export(shared_key: Callable[[str, str], tuple[NewKey, Harness]], spec_name: str) -> None:
    new, harness = shared_key("hsm", spec_name)
    key = harness.load(new.key_ref)
    with pytest.raises(TypeError):
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(TypeError):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"passphrase"))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        with pytest.raises(TypeError):
            key.private_bytes_raw()
    else:
        with pytest.raises(TypeError):
            key.private_numbers()
    assert repr(key).count(new.key_ref) == 1  # says which token key it is, and nothing secret


def test_disk_keys_are_plain_in_memory_keys(shared_key: Callable[[str, str], tuple[NewKey, Harness]]) -> None:
    """The other side of the contract: a disk key object is `cryptography`'s own, unsealed in memory."""
    new, harness = shared_key("disk", "p-256")
    key = harness.load(new.key_ref)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert serialization.load_der_private_key(der, None).public_key() == new.public_key
