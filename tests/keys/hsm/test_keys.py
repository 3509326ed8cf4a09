"""HSM key objects where `cryptography` expects private keys: certificates issued on the token verify with openssl."""

from __future__ import annotations

import datetime
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from chalicelib.keys.algorithms import KeySpec, PrivateKey
from chalicelib.keys.hsm.store import HsmKeyStore

SPECS: dict[str, KeySpec] = {
    "RSA-2048": KeySpec.build("RSA", key_size=2048),
    "P-256": KeySpec.build("ECDSA", curve="P-256"),
    "P-384": KeySpec.build("ECDSA", curve="P-384"),
    "Ed25519": KeySpec.build("EdDSA"),
}
RUN = f"kp_{uuid.uuid4().hex[:12]}"  # label prefix of this run's keys


@pytest.fixture(scope="module")
def token_key(hsm_store: HsmKeyStore) -> Iterator[Callable[[str], PrivateKey]]:
    """The key object of one token key per spec, made on first use and destroyed when the module is done."""
    made: list[str] = []

    def get(name: str) -> PrivateKey:
        label = f"{RUN}/{name}"
        if label not in made:
            hsm_store.generate(RUN, label, SPECS[name])
            made.append(label)
        return hsm_store.load(RUN, label, None)

    yield get
    for label in made:
        hsm_store.destroy(label)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _self_signed_ca(private_key: Any, hash_alg: Any, **sign_kwargs: Any) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("rotasign HSM CA"))
        .issuer_name(_name("rotasign HSM CA"))
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(private_key, hash_alg, **sign_kwargs)
    )


def _leaf(ca: x509.Certificate, ca_key: Any, hash_alg: Any) -> x509.Certificate:
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
        ("P-256", hashes.SHA512(), ec.EllipticCurvePrivateKey),  # a digest longer than the curve: cut
        ("Ed25519", None, ed25519.Ed25519PrivateKey),
    ],
    ids=["RSA-2048", "P-384", "P-256-SHA512", "Ed25519"],
)
def test_token_keys_issue_certificates(
    token_key: Callable[[str], PrivateKey],
    tmp_path: Path,
    spec_name: str,
    hash_alg: hashes.HashAlgorithm | None,
    key_class: type,
) -> None:
    ca_key = token_key(spec_name)
    assert isinstance(ca_key, key_class)

    ca = _self_signed_ca(ca_key, hash_alg)
    leaf = _leaf(ca, ca_key, hash_alg)

    ca.verify_directly_issued_by(ca)
    leaf.verify_directly_issued_by(ca)
    _openssl_verify_chain(tmp_path, ca, ca)
    _openssl_verify_chain(tmp_path, ca, leaf)


def test_token_key_issues_an_rsa_pss_certificate(token_key: Callable[[str], PrivateKey], tmp_path: Path) -> None:
    ca_key = token_key("RSA-2048")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

    ca = _self_signed_ca(ca_key, hashes.SHA256(), rsa_padding=pss)

    ca.verify_directly_issued_by(ca)
    _openssl_verify_chain(tmp_path, ca, ca)


def test_token_keys_sign_like_in_memory_keys(token_key: Callable[[str], PrivateKey]) -> None:
    """`cryptography`'s own API (messages hashed on the way, any PSS salt) works on token keys too."""
    rsa_key = token_key("RSA-2048")
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    public = rsa_key.public_key()
    message = b"max-length PSS salt and PKCS#1 v1.5 over SHA-384"
    pss_max = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    public.verify(rsa_key.sign(message, pss_max, hashes.SHA256()), message, pss_max, hashes.SHA256())
    pkcs1 = padding.PKCS1v15()
    public.verify(rsa_key.sign(message, pkcs1, hashes.SHA384()), message, pkcs1, hashes.SHA384())

    ec_key = token_key("P-384")
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    ec_key.public_key().verify(ec_key.sign(message, ec.ECDSA(hashes.SHA256())), message, ec.ECDSA(hashes.SHA256()))

    ed_key = token_key("Ed25519")
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    ed_key.public_key().verify(ed_key.sign(message), message)


def test_token_keys_are_for_signing_only(token_key: Callable[[str], PrivateKey]) -> None:
    rsa_key, ec_key = token_key("RSA-2048"), token_key("P-256")
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and isinstance(ec_key, ec.EllipticCurvePrivateKey)
    with pytest.raises(TypeError):
        rsa_key.decrypt(b"\x00" * 256, padding.PKCS1v15())
    with pytest.raises(TypeError):
        ec_key.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())
