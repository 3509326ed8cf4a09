"""Detached CMS built by the CLI: signed attributes, the signer, the token attribute; and reading it back."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from rotasign_cli import cms
from rotasign_cli.algorithms import SIG_ALGS, verify_signature
from tests.cli.localpki import NOW, Account

CONTENT = b"release artifact\n" * 100


def _pem(certificate: object) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()  # type: ignore[attr-defined]


def _sign(key: object, sig_alg: str, attrs: bytes) -> bytes:
    """Sign the attributes as the service would: a digest for RSA/ECDSA, the DER itself for Ed25519."""
    chosen = SIG_ALGS[sig_alg]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(attrs)
    assert chosen.hash_algorithm is not None
    algorithms = {"SHA-256": hashes.SHA256(), "SHA-384": hashes.SHA384(), "SHA-512": hashes.SHA512()}
    algorithm = algorithms[chosen.hash_algorithm]
    digest = hashlib.new(chosen.hash_algorithm.replace("-", "").lower(), attrs).digest()
    if isinstance(key, rsa.RSAPrivateKey):
        pad = (padding.PSS(padding.MGF1(algorithm), algorithm.digest_size) if chosen.pss else padding.PKCS1v15())
        return key.sign(digest, pad, utils.Prehashed(algorithm))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))


CASES = [
    ("SHA-256", "SHA256withRSA", lambda: rsa.generate_private_key(65537, 2048)),
    ("SHA-384", "SHA384withRSA/PSS", lambda: rsa.generate_private_key(65537, 2048)),
    ("SHA-384", "SHA384withECDSA", lambda: ec.generate_private_key(ec.SECP384R1())),
    ("SHA-512", "Ed25519", ed25519.Ed25519PrivateKey.generate),
]


@pytest.mark.parametrize(("hash_algorithm", "sig_alg", "new_key"), CASES, ids=[c[1] for c in CASES])
def test_build_then_read_back(hash_algorithm: str, sig_alg: str, new_key: object, tmp_path: Path) -> None:
    account = Account.make()
    key = new_key()  # type: ignore[operator]
    leaf = account.issue(key)
    content_digest = hashlib.new(hash_algorithm.replace("-", "").lower(), CONTENT).digest()
    attrs = cms.signed_attributes(content_digest, hash_algorithm, NOW)
    assert attrs[0] == 0x31  # a DER SET, the form the signature covers
    signature = _sign(key, sig_alg, attrs)
    token = account.stamp(signature, NOW)
    der = cms.build(signed_attrs_der=attrs, hash_algorithm=hash_algorithm, sig_alg=SIG_ALGS[sig_alg],
                    signature=signature, certificate_pem=_pem(leaf), chain_pems=[_pem(account.ca)],
                    timestamp_token=token)

    view = cms.read(der)
    assert view.hash_algorithm == hash_algorithm and view.sig_alg.name == sig_alg
    assert view.message_digest == content_digest and view.content_type == "data"
    assert view.signing_time == NOW
    assert view.signed_attrs_der == attrs and view.signature == signature
    assert view.signer_certificate == leaf and set(view.certificates) == {leaf, account.ca}
    assert view.timestamp_token == token
    attrs_digest = hashlib.new((SIG_ALGS[sig_alg].hash_algorithm or hash_algorithm).replace("-", "").lower(),
                               attrs).digest()
    verify_signature(leaf.public_key(), view.sig_alg, signature, attrs_digest, attrs)  # type: ignore[arg-type]

    if sig_alg != "Ed25519":  # OpenSSL 3.0 cannot verify Ed25519 CMS (see the module docstring)
        (tmp_path / "content").write_bytes(CONTENT)
        (tmp_path / "sig.p7s").write_bytes(der)
        (tmp_path / "ca.pem").write_text(_pem(account.ca))
        # -attime: the leaf is valid around NOW, a fixed date, not today.
        result = subprocess.run(
            ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "sig.p7s"),
             "-content", str(tmp_path / "content"), "-CAfile", str(tmp_path / "ca.pem"), "-purpose", "any",
             "-attime", str(int(NOW.timestamp()) + 60), "-out", "/dev/null"],
            capture_output=True, text=True, check=False,
        )
        assert result.returncode == 0, result.stderr


def test_signing_time_after_2049_is_generalized_time() -> None:
    der = cms.signed_attributes(b"\x00" * 32, "SHA-256", datetime(2050, 1, 1, tzinfo=UTC))
    times = [a["values"][0] for a in asn1_cms.CMSAttributes.load(der) if a["type"].native == "signing_time"]
    assert times[0].name == "generalized_time"


def test_reading_refuses_what_it_cannot_check() -> None:
    with pytest.raises(cms.CmsError, match="not a DER CMS SignedData"):
        cms.read(b"\x30\x03\x02\x01\x01")
    account = Account.make()
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = cms.signed_attributes(hashlib.sha256(CONTENT).digest(), "SHA-256", NOW)
    der = cms.build(signed_attrs_der=attrs, hash_algorithm="SHA-256", sig_alg=SIG_ALGS["SHA256withECDSA"],
                    signature=_sign(key, "SHA256withECDSA", attrs), certificate_pem=_pem(account.issue(key)),
                    chain_pems=[], timestamp_token=None)
    info = asn1_cms.ContentInfo.load(der)
    info["content"]["encap_content_info"]["content"] = CONTENT
    with pytest.raises(cms.CmsError, match="not detached"):
        cms.read(info.dump(force=True))
    info = asn1_cms.ContentInfo.load(der)
    info["content"]["certificates"] = []
    with pytest.raises(cms.CmsError, match="signer's certificate is not in the CMS file"):
        cms.read(info.dump(force=True))
    assert cms.read(der).timestamp_token is None
