"""Key pairs on the SoftHSM2 test token, seen from the outside: attributes, destruction, labels, threads."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from chalicelib.errors import Conflict, KeyMissing, UnsupportedAlgorithm
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, PublicKey, sign, verify_signature
from chalicelib.keys.hsm import token
from chalicelib.keys.hsm.mechanisms import TokenSignature
from chalicelib.keys.hsm.session import PKCS11_LOCK
from chalicelib.keys.hsm.store import HsmKeyStore
from tests.keys.keytest import SoftHsm, digest_for, token_session

SPECS: dict[str, KeySpec] = {
    "RSA-2048": KeySpec.build("RSA", key_size=2048),
    "RSA-3072": KeySpec.build("RSA", key_size=3072),
    "P-256": KeySpec.build("ECDSA", curve="P-256"),
    "P-384": KeySpec.build("ECDSA", curve="P-384"),
    "P-521": KeySpec.build("ECDSA", curve="P-521"),
    "Ed25519": KeySpec.build("EdDSA"),
}
RUN = f"kp_{uuid.uuid4().hex[:12]}"  # label prefix of this run's keys
ECDSA = SIG_ALGS["SHA256withECDSA"]
DIGEST = hashlib.sha256(b"x").digest()


@pytest.fixture(scope="module")
def token_keys(hsm_store: HsmKeyStore) -> Iterator[Callable[[str], tuple[str, PublicKey]]]:
    """One token key per spec, made on first use: (label, public key). Destroyed when the module is done."""
    made: dict[str, tuple[str, PublicKey]] = {}

    def get(name: str) -> tuple[str, PublicKey]:
        if name not in made:
            label = f"{RUN}/{name}"
            made[name] = (label, hsm_store.generate("acct", label, SPECS[name]).public_key)
        return made[name]

    yield get
    for label, _ in made.values():
        hsm_store.destroy(label)


@pytest.mark.parametrize(
    ("spec_name", "secret_attribute"),
    [("RSA-2048", Attribute.PRIVATE_EXPONENT), ("P-256", Attribute.VALUE), ("Ed25519", Attribute.VALUE)],
)
def test_private_half_is_sensitive_and_never_extractable(
    token_keys: Callable[[str], tuple[str, PublicKey]], softhsm: SoftHsm, spec_name: str, secret_attribute: Attribute
) -> None:
    label, _ = token_keys(spec_name)
    with token_session(softhsm) as session:
        (private,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
        (public,) = session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label})
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.PRIVATE] is True
        assert private[Attribute.TOKEN] is True
        assert private[Attribute.ID] == public[Attribute.ID] == label.encode()
        assert public[Attribute.TOKEN] is True
        with pytest.raises(AttributeSensitive):
            private[secret_attribute]


def test_destroy_removes_both_halves(hsm_store: HsmKeyStore, softhsm: SoftHsm) -> None:
    label = f"{RUN}/destroy"
    hsm_store.generate("acct", label, SPECS["P-256"])
    key = hsm_store.load("acct", label, None)

    assert hsm_store.token.destroy(label) == 2

    with token_session(softhsm) as session:
        assert list(session.get_objects({Attribute.LABEL: label})) == []
    assert hsm_store.token.destroy(label) == 0
    assert label not in hsm_store.list_refs(RUN)
    with pytest.raises(KeyMissing, match="no longer exists"):
        sign(key, ECDSA, DIGEST)  # a key object loaded before: its key is gone


def test_key_destroyed_by_another_session_is_missing(hsm_store: HsmKeyStore, softhsm: SoftHsm) -> None:
    label = f"{RUN}/destroyed-elsewhere"
    hsm_store.generate("acct", label, SPECS["P-256"])
    key = hsm_store.load("acct", label, None)
    sign(key, ECDSA, DIGEST)  # the store now holds the key's handle

    with token_session(softhsm) as session:  # as another Lambda would
        for obj in list(session.get_objects({Attribute.LABEL: label})):
            obj.destroy()

    with pytest.raises(KeyMissing, match="no longer exists"):
        sign(key, ECDSA, DIGEST)
    with pytest.raises(KeyMissing):
        hsm_store.load("acct", label, None)


def test_a_remembered_handle_naming_another_key_is_not_used(
    hsm_store: HsmKeyStore, token_keys: Callable[[str], tuple[str, PublicKey]]
) -> None:
    label, public_key = token_keys("P-256")
    other = f"{RUN}/other-p256"
    hsm_store.generate("acct", other, SPECS["P-256"])
    key = hsm_store.load("acct", label, None)
    sign(key, ECDSA, DIGEST)
    handles = hsm_store.token.session.handles
    # A module that reuses the handle of a destroyed key for a new one looks like this:
    with PKCS11_LOCK:
        wrong = handles.get(other)
        assert wrong is not None
        handles.put(label, wrong)

    verify_signature(public_key, ECDSA, sign(key, ECDSA, DIGEST), DIGEST)
    hsm_store.destroy(other)


def test_a_signature_for_another_key_type_is_refused_on_the_token(
    hsm_store: HsmKeyStore, token_keys: Callable[[str], tuple[str, PublicKey]]
) -> None:
    label, _ = token_keys("P-256")
    rsa_pkcs1 = TokenSignature(KeyType.RSA, Mechanism.RSA_PKCS, None, DIGEST)
    with pytest.raises(UnsupportedAlgorithm):
        hsm_store.token.sign(label, rsa_pkcs1)


def test_list_refs_filters_by_prefix(
    hsm_store: HsmKeyStore, token_keys: Callable[[str], tuple[str, PublicKey]]
) -> None:
    labels = {token_keys("P-256")[0], token_keys("Ed25519")[0]}
    listed = hsm_store.list_refs(RUN)
    assert labels <= set(listed)
    assert all(label.startswith(RUN) for label in listed)
    assert listed == sorted(listed)
    assert hsm_store.list_refs("no-such-prefix/") == []


def test_generate_refuses_a_label_already_on_the_token(
    hsm_store: HsmKeyStore, token_keys: Callable[[str], tuple[str, PublicKey]]
) -> None:
    label, public_key = token_keys("P-256")
    with pytest.raises(Conflict):
        hsm_store.generate("acct", label, SPECS["P-256"])
    data = digest_for(ECDSA, b"still mine")
    verify_signature(public_key, ECDSA, sign(hsm_store.load("acct", label, None), ECDSA, data), data)


def test_generate_leaves_nothing_behind_when_it_fails_halfway(
    hsm_store: HsmKeyStore, softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = f"{RUN}/halfway"

    def fail_after_keygen(obj: Any) -> PublicKey:
        raise RuntimeError("reading the public key failed")

    monkeypatch.setattr(token, "public_key_of", fail_after_keygen)
    with pytest.raises(RuntimeError):
        hsm_store.generate("acct", label, SPECS["P-256"])
    monkeypatch.undo()

    with token_session(softhsm) as session:
        assert list(session.get_objects({Attribute.LABEL: label})) == []
    hsm_store.generate("acct", label, SPECS["P-256"])  # the label is free again
    assert hsm_store.token.destroy(label) == 2


def test_eight_threads_signing_with_different_algorithms(
    hsm_store: HsmKeyStore, token_keys: Callable[[str], tuple[str, PublicKey]]
) -> None:
    plan = [
        ("RSA-2048", "SHA256withRSA"),
        ("RSA-2048", "SHA512withRSA/PSS"),
        ("RSA-3072", "SHA384withRSA"),
        ("P-256", "SHA256withECDSA"),
        ("P-384", "SHA384withECDSA"),
        ("P-521", "SHA512withECDSA"),
        ("Ed25519", "Ed25519"),
        ("P-256", "message"),  # cryptography's own API on the key object, hashing on the way
    ]
    keys = {name: token_keys(name) for name, _ in plan}
    deadline = time.monotonic() + 3.0
    counts = [0] * len(plan)
    errors: list[BaseException] = []
    churned = [0]

    def signer(index: int, name: str, sig_alg_name: str) -> None:
        label, public_key = keys[name]
        try:
            key = hsm_store.load("acct", label, None)  # one object per thread, like the signing service's cache
            while time.monotonic() < deadline:
                message = os.urandom(64)
                if sig_alg_name == "message":
                    assert isinstance(key, ec.EllipticCurvePrivateKey)
                    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
                    key.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
                else:
                    sig_alg = SIG_ALGS[sig_alg_name]
                    data = digest_for(sig_alg, message)
                    verify_signature(public_key, sig_alg, sign(key, sig_alg, data), data)
                counts[index] += 1
        except BaseException as exc:
            errors.append(exc)

    def churner() -> None:
        # Key generation and destruction (read/write calls) interleaved with the signers.
        try:
            while time.monotonic() < deadline:
                label = f"{RUN}/churn-{churned[0]}"
                hsm_store.generate("acct", label, SPECS["P-256"])
                assert hsm_store.token.destroy(label) == 2
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
