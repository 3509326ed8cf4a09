"""The mechanism table, without a token: what C_Sign each sig_alg of the API becomes."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto.algos import DigestInfo
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pkcs11 import MGF, KeyType, Mechanism

from chalicelib.errors import UnsupportedAlgorithm
from chalicelib.keys.algorithms import SIG_ALGS, SigAlg, rsa_padding
from chalicelib.keys.hsm.mechanisms import HASHES, sign_ecdsa, sign_eddsa, sign_rsa

HASH_MECHANISMS = {"SHA-256": (Mechanism.SHA256, MGF.SHA256), "SHA-384": (Mechanism.SHA384, MGF.SHA384),
                   "SHA-512": (Mechanism.SHA512, MGF.SHA512)}


def _digest(sig_alg: SigAlg) -> bytes:
    assert sig_alg.hash_algorithm is not None
    return hashlib.new(sig_alg.hash_algorithm.replace("-", "").lower(), b"artifact").digest()


@pytest.mark.parametrize("name", [n for n, s in SIG_ALGS.items() if s.algorithm == "RSA"])
def test_rsa_sig_algs_map_to_pkcs1_or_pss_over_the_digest(name: str) -> None:
    sig_alg = SIG_ALGS[name]
    digest = _digest(sig_alg)

    # The arguments `algorithms.sign` hands an RSA key for this sig_alg.
    got = sign_rsa(digest, rsa_padding(sig_alg), utils.Prehashed(sig_alg.hash()), 3072)

    assert got.key_type == KeyType.RSA
    assert sig_alg.hash_algorithm is not None
    if sig_alg.pss:
        hash_mechanism, mgf = HASH_MECHANISMS[sig_alg.hash_algorithm]
        assert (got.mechanism, got.param, got.payload) == (
            Mechanism.RSA_PKCS_PSS, (hash_mechanism, mgf, len(digest)), digest)
    else:
        info = DigestInfo({"digest_algorithm": {"algorithm": sig_alg.hash_algorithm.replace("-", "").lower()},
                           "digest": digest}).dump()
        assert (got.mechanism, got.param, got.payload) == (Mechanism.RSA_PKCS, None, info)


@pytest.mark.parametrize("name", [n for n, s in SIG_ALGS.items() if s.algorithm == "ECDSA"])
@pytest.mark.parametrize(("curve", "size"), [(ec.SECP256R1(), 32), (ec.SECP384R1(), 48), (ec.SECP521R1(), 66)])
def test_ecdsa_sig_algs_map_to_raw_ecdsa_over_the_leftmost_bytes(name: str, curve: ec.EllipticCurve, size: int) -> None:
    sig_alg = SIG_ALGS[name]
    digest = _digest(sig_alg)

    got = sign_ecdsa(digest, ec.ECDSA(utils.Prehashed(sig_alg.hash())), curve)

    assert (got.key_type, got.mechanism, got.param) == (KeyType.EC, Mechanism.ECDSA, None)
    # A digest longer than the curve's order is cut to its leftmost bits, as OpenSSL does.
    assert got.payload == digest[:size]


def test_ed25519_maps_to_eddsa_over_the_message() -> None:
    message = b"any length at all" * 100
    got = sign_eddsa(message)
    assert (got.key_type, got.mechanism, got.param, got.payload) == (KeyType.EC_EDWARDS, Mechanism.EDDSA, None, message)
    assert SIG_ALGS["Ed25519"].hash_algorithm is None


def test_every_digest_info_prefix_is_the_der_of_its_hash() -> None:
    for name, params in HASHES.items():
        digest = hashlib.new(name, b"x").digest()
        assert params.digest_info + digest == DigestInfo(
            {"digest_algorithm": {"algorithm": name}, "digest": digest}).dump()


def test_messages_are_hashed_on_the_way() -> None:
    message = b"cryptography's own API: the key hashes the message"
    got = sign_rsa(message, padding.PKCS1v15(), hashes.SHA384(), 2048)
    assert got.payload == HASHES["sha384"].digest_info + hashlib.sha384(message).digest()
    assert sign_ecdsa(message, ec.ECDSA(hashes.SHA256()), ec.SECP256R1()).payload == hashlib.sha256(message).digest()
    # A caller that builds the DigestInfo itself gets it signed as it is.
    info = got.payload
    assert sign_rsa(info, padding.PKCS1v15(), utils.NoDigestInfo(), 2048).payload == info


def test_a_digest_of_the_wrong_length_is_cryptographys_error() -> None:
    in_memory = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    prehashed = utils.Prehashed(hashes.SHA256())
    with pytest.raises(ValueError) as expected:
        in_memory.sign(b"\x00" * 31, padding.PKCS1v15(), prehashed)
    with pytest.raises(ValueError) as got_rsa:
        sign_rsa(b"\x00" * 31, padding.PKCS1v15(), prehashed, 2048)
    with pytest.raises(ValueError) as got_ec:
        sign_ecdsa(b"\x00" * 33, ec.ECDSA(prehashed), ec.SECP256R1())
    assert str(got_rsa.value) == str(got_ec.value) == str(expected.value)


def test_pss_salt_lengths() -> None:
    digest = hashlib.sha256(b"x").digest()
    mgf = padding.MGF1(hashes.SHA256())
    prehashed = utils.Prehashed(hashes.SHA256())
    assert sign_rsa(digest, padding.PSS(mgf, padding.PSS.MAX_LENGTH), prehashed, 2048).param == (
        Mechanism.SHA256, MGF.SHA256, 256 - 32 - 2)
    assert sign_rsa(digest, padding.PSS(mgf, 20), prehashed, 2048).param == (Mechanism.SHA256, MGF.SHA256, 20)
    # MGF1 may use another hash than the message.
    other_mgf = padding.PSS(padding.MGF1(hashes.SHA512()), padding.PSS.DIGEST_LENGTH)
    assert sign_rsa(digest, other_mgf, prehashed, 2048).param == (Mechanism.SHA256, MGF.SHA512, 32)
    with pytest.raises(ValueError):
        sign_rsa(digest, padding.PSS(mgf, padding.PSS.AUTO), prehashed, 2048)


def test_what_the_token_does_not_offer_is_unsupported() -> None:
    digest = hashlib.sha256(b"x").digest()
    with pytest.raises(UnsupportedAlgorithm):
        sign_rsa(hashlib.sha1(b"x").digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()), 2048)  # noqa: S303, S324
    with pytest.raises(UnsupportedAlgorithm):
        sign_rsa(digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), utils.NoDigestInfo(), 2048)
    with pytest.raises(UnsupportedAlgorithm):
        sign_ecdsa(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True), ec.SECP256R1())
    with pytest.raises(UnsupportedAlgorithm):
        sign_rsa(digest, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
                 utils.Prehashed(hashes.SHA256()), 2048)
