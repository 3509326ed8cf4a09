"""Throwaway CAs and TSA certificates for the time-stamping tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chalicelib.keys.algorithms import PrivateKey

# Certificates are valid from an hour before this until 30 days after.
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Pki:
    """A CA, a TSA key with its certificate, and both as PEM files for openssl."""

    ca_key: PrivateKey
    ca: x509.Certificate
    tsa_key: PrivateKey
    tsa: x509.Certificate
    ca_pem: Path
    tsa_pem: Path

    def reissue_tsa(
        self, *, eku_critical: bool = True, not_after: datetime | None = None, serial: int | None = None
    ) -> x509.Certificate:
        """Another certificate for the same TSA key from the same CA, varied as asked."""
        return _tsa_cert(self.tsa_key, self.ca_key, self.ca, eku_critical, not_after, serial)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rotasign test"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _sign_hash(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _ca_cert(key: PrivateKey, cn: str = "Test Production CA") -> x509.Certificate:
    """A self-signed CA certificate like the account's production CA."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _sign_hash(key))
    )


def _tsa_cert(
    tsa_key: PrivateKey,
    ca_key: PrivateKey,
    ca: x509.Certificate,
    eku_critical: bool = True,
    not_after: datetime | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """A TSA certificate issued by `ca`: EKU timeStamping, keyUsage digitalSignature."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA"))
        .issuer_name(ca.subject)
        .public_key(tsa_key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(not_after or NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, _sign_hash(ca_key))
    )


def _pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


KEY_MAKERS: dict[str, Callable[[], PrivateKey]] = {
    "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ec521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


@pytest.fixture(scope="session")
def make_pki(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Pki]:
    """Build (and cache per kind and label) a CA plus TSA with keys of `kind` (`ec`, `rsa`, ...)."""
    cache: dict[tuple[str, str], Pki] = {}

    def make(kind: str, label: str = "") -> Pki:
        if (kind, label) not in cache:
            # The CA is ECDSA P-256 or RSA, like production; the TSA key is what the test asks for.
            ca_key = KEY_MAKERS["rsa" if kind == "rsa" else "ec"]()
            ca = _ca_cert(ca_key)
            tsa_key = KEY_MAKERS[kind]()
            tsa = _tsa_cert(tsa_key, ca_key, ca)
            directory = tmp_path_factory.mktemp(f"pki-{kind}")
            cache[kind, label] = Pki(
                ca_key, ca, tsa_key, tsa, _pem(directory / "ca.pem", ca), _pem(directory / "tsa.pem", tsa)
            )
        return cache[kind, label]

    return make


@pytest.fixture
def pki(make_pki: Callable[..., Pki]) -> Pki:
    """The default PKI: ECDSA P-256 CA and TSA."""
    return make_pki("ec")
