"""Trust material: the account's CA certificates (anchors) and its TSA certificate.

`rotasign ca get` writes them as one PEM file; `rotasign verify --ca FILE` reads it back. A CA
certificate (basic constraints `CA:TRUE`) is an anchor; a certificate whose extended key usage is
`timeStamping` is the account's TSA. The production file leaves the test CA out, so that a test
signature never verifies against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from rotasign_cli.errors import UsageError
from rotasign_cli.files import read_bytes

PEM_LABELS = {"production": "production CA", "test": "test CA", "tsa": "time-stamping authority (TSA)"}


@dataclass(frozen=True)
class Trust:
    """Anchors (CA certificates) and TSA certificates, and where they came from."""

    anchors: tuple[x509.Certificate, ...]
    tsa: tuple[x509.Certificate, ...]
    source: str


def is_ca(certificate: x509.Certificate) -> bool:
    """Whether the certificate's basic constraints say CA:TRUE."""
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def is_tsa(certificate: x509.Certificate) -> bool:
    """Whether the certificate's extended key usage includes timeStamping."""
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.TIME_STAMPING in usages


def from_certificates(certificates: list[x509.Certificate], source: str) -> Trust:
    """Sort certificates into anchors and TSA certificates; raises UsageError when there is no anchor."""
    anchors = tuple(c for c in certificates if is_ca(c))
    tsa = tuple(c for c in certificates if not is_ca(c) and is_tsa(c))
    if not anchors:
        raise UsageError(f"{source} holds no CA certificate to trust.")
    return Trust(anchors, tsa, source)


def load_pem_file(path: Path) -> Trust:
    """The trust material in a PEM file; raises UsageError when it cannot be read or has no CA."""
    data = read_bytes(path)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM file of certificates.") from exc
    return from_certificates(certificates, str(path))


def from_api(answer: dict[str, Any], source: str, *, include_test: bool) -> Trust:
    """Trust material from `GET /ca` or `GET /trust/{account_id}`; raises UsageError for a bad answer."""
    return from_certificates(_certificates(answer, include_test), source)


def _certificates(answer: dict[str, Any], include_test: bool) -> list[x509.Certificate]:
    names = ["production", *(["test"] if include_test else []), "tsa"]
    certificates = []
    for name in names:
        pem = answer.get(name)
        if not isinstance(pem, str):
            raise UsageError(f"The service's trust material has no {name} certificate.")
        try:
            certificates.append(x509.load_pem_x509_certificate(pem.encode("ascii")))
        except ValueError as exc:
            raise UsageError(f"The service's {name} certificate is not PEM.") from exc
    return certificates


def pem_bundle(answer: dict[str, Any], *, include_test: bool) -> str:
    """The PEM file `ca get` writes: each certificate after a comment line naming it."""
    names = ["production", *(["test"] if include_test else []), "tsa"]
    blocks = []
    for name, certificate in zip(names, _certificates(answer, include_test), strict=True):
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        subject = certificate.subject.rfc4514_string()
        blocks.append(f"# rotasign {PEM_LABELS[name]}: {subject}\n{pem}")
    return "".join(blocks)


TRUST_FILE = "trust.json"


def load_json_file(path: Path, *, include_test: bool) -> tuple[Trust, dict[str, Any]]:
    """The trust material `rotasign trust get` saved (a trust.json, or the folder holding one), and its JSON.

    Raises UsageError when it cannot be read or is not the trust route's answer.
    """
    file = path / TRUST_FILE if path.is_dir() else path
    try:
        answer = json.loads(read_bytes(file))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: not JSON (expected the trust.json of `rotasign trust get`).") from exc
    if not isinstance(answer, dict) or "production" not in answer:
        raise UsageError(f"{file}: not the trust material of `rotasign trust get`.")
    account = answer.get("account_id") or file.name
    return from_api(answer, f"account {account} ({file})", include_test=include_test), answer
