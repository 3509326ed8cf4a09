"""An account's PKI made in memory with the service's own certificate and TSA code: the CLI's counterpart.

The CLI verifies what the service issues; these build the same CA, TSA and keypair certificates
without a running stack, so that the CLI's formats and checks can be tested case by case.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.keys.algorithms import SIG_ALGS, PrivateKey, sign
from chalicelib.pki.certificates import issue_keypair_certificate, issue_tsa_certificate, make_ca_certificate
from chalicelib.pki.tsa import TimeStampAuthority

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


@dataclass
class Account:
    """A production CA, a TSA, and a way to issue keypair certificates and time-stamp tokens."""

    name: str
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    tsa_key: ec.EllipticCurvePrivateKey
    tsa: x509.Certificate

    @classmethod
    def make(cls, name: str = "acme") -> Account:
        """A fresh account PKI, valid from NOW - 5 minutes for ten years."""
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = make_ca_certificate(ca_key, name, "production", NOW)
        tsa_key = ec.generate_private_key(ec.SECP256R1())
        tsa = issue_tsa_certificate(ca_key, ca, tsa_key.public_key(), name, NOW)
        return cls(name, ca_key, ca, tsa_key, tsa)

    def issue(self, key: PrivateKey, alias: str = "release", *, lifetime: timedelta = timedelta(minutes=30),
              not_before: datetime = NOW) -> x509.Certificate:
        """A code-signing certificate for `key`, as the service issues one."""
        return issue_keypair_certificate(
            self.ca_key, self.ca, key.public_key(), alias=alias, account_name=self.name, category="production",
            not_before=not_before, not_after=not_before + lifetime,
        )

    def issue_without_code_signing(self, key: PrivateKey) -> x509.Certificate:
        """A certificate that lacks the codeSigning usage."""
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "no-eku")]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW)
            .not_valid_after(NOW + timedelta(hours=1))
            .sign(self.ca_key, hashes.SHA256())
        )

    def stamp(self, signature: bytes, at: datetime) -> bytes:
        """The token the sign path adds: over SHA-256 of the signature value, at time `at`."""
        authority = TimeStampAuthority(self.tsa_key, self.tsa, chain=[self.ca], clock=lambda: at)
        return authority.stamp(hashlib.sha256(signature).digest())

    def answer(self, key: PrivateKey, request: dict[str, Any], certificate: x509.Certificate,
               at: datetime = NOW + timedelta(minutes=1)) -> dict[str, Any]:
        """The service's answer to a sign request that sends `message`, made with the service's own signing code."""
        message = base64.b64decode(request["message"])
        sig_alg = SIG_ALGS[request["sig_alg"]]
        data = message if sig_alg.algorithm == "EdDSA" else hashlib.new(sig_alg.hash().name, message).digest()
        signature = sign(key, sig_alg, data)
        return {
            "signature": base64.b64encode(signature).decode(), "sig_alg": sig_alg.name,
            "certificate": {"pem": pem(certificate)}, "chain": [pem(self.ca)],
            "timestamp_token": base64.b64encode(self.stamp(signature, at)).decode(),
        }


def pem(certificate: x509.Certificate) -> str:
    """A certificate as PEM text."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
