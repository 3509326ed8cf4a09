"""Certificates: the account CAs, keypair certificates and the TSA certificate.

Issuing only calls `key.sign()` through `cryptography`'s builder, so an issuer key can live on disk
or be an HSM-backed key object; this module cannot tell them apart.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from chalicelib.clock import rfc3339
from chalicelib.domain.keypairs import Certificate
from chalicelib.keys.algorithms import PrivateKey, PublicKey

CA_LIFETIME = timedelta(days=3650)
STATIC_CERT_LIFETIME = timedelta(days=365)
CATEGORIES = ("production", "test")


def describe(cert: x509.Certificate) -> Certificate:
    """A certificate as docs/api.md shows it."""
    return Certificate(
        serial=format(cert.serial_number, "x"),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        not_before=rfc3339(cert.not_valid_before_utc),
        not_after=rfc3339(cert.not_valid_after_utc),
        issuer=cert.issuer.rfc4514_string(),
    )


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _serial() -> int:
    # 159 random bits: positive, under the 20-octet limit, unpredictable (CA/B forum practice).
    return int.from_bytes(os.urandom(20), "big") >> 1


def _key_usage(*, issuer: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs only; an end entity (keypair, TSA) signs data only."""
    return x509.KeyUsage(
        digital_signature=not issuer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=issuer,
        crl_sign=issuer,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str, account_name: str, test: bool) -> x509.Name:
    parts = [
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, account_name),
    ]
    if test:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Test"))
    return x509.Name(parts)


def make_ca_certificate(
    key: PrivateKey, account_name: str, category: str, now: datetime
) -> x509.Certificate:
    """A self-signed issuing CA for one category (`production` or `test`) of an account."""
    label = "Production" if category == "production" else "Test"
    name = _name(f"rotasign {label} CA", account_name, category == "test")
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(_serial())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(issuer=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, _hash_for(key))


def _leaf_builder(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    public_key: PublicKey,
    subject: x509.Name,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(issuer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )


def _with_issuer_url(builder: x509.CertificateBuilder, ca_issuers: str | None) -> x509.CertificateBuilder:
    """Add an Authority Information Access `caIssuers` URL (RFC 5280 4.2.2.1) where the issuer can be fetched."""
    if ca_issuers is None:
        return builder
    url = x509.UniformResourceIdentifier(ca_issuers)
    access = x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, url)
    return builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)


def issue_keypair_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    public_key: PublicKey,
    *,
    alias: str,
    account_name: str,
    category: str,
    not_before: datetime,
    not_after: datetime,
    ca_issuers: str | None = None,
) -> x509.Certificate:
    """A code-signing certificate for a keypair: CN=<alias>, O=<account>, OU=Test for test keys.

    `ca_issuers` is the URL of the issuing CA's certificate (an AIA extension), when one is published.
    """
    subject = _name(alias, account_name, category == "test")
    builder = _leaf_builder(ca_key, ca_cert, public_key, subject, not_before, not_after).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
    )
    return _with_issuer_url(builder, ca_issuers).sign(ca_key, _hash_for(ca_key))


def issue_tsa_certificate(
    ca_key: PrivateKey, ca_cert: x509.Certificate, public_key: PublicKey, account_name: str, now: datetime,
    ca_issuers: str | None = None,
) -> x509.Certificate:
    """The account's time-stamping certificate: EKU timeStamping only, critical (RFC 3161 2.3)."""
    subject = _name("rotasign Time-Stamping Authority", account_name, False)
    builder = _leaf_builder(
        ca_key, ca_cert, public_key, subject, now - timedelta(minutes=5), now + CA_LIFETIME
    ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    return _with_issuer_url(builder, ca_issuers).sign(ca_key, _hash_for(ca_key))


def load_pem(pem: str) -> x509.Certificate:
    """Parse a PEM certificate."""
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def to_pem(cert: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
