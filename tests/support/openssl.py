"""openssl as the outside verifier: signatures over digests and messages, certificate chains, time-stamps."""

from __future__ import annotations

import subprocess
from pathlib import Path

from chalicelib.keys.algorithms import SIG_ALGS


def openssl(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run openssl; never raises on its exit status (callers assert on it)."""
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=input is None, input=input,
                          check=False)


def _key_args(tmp: Path, key_pem: str) -> list[str]:
    """`-inkey` arguments for a certificate or a public key in PEM."""
    path = tmp / "verify-key.pem"
    path.write_text(key_pem)
    if "CERTIFICATE" in key_pem:
        return ["-certin", "-inkey", str(path)]
    return ["-pubin", "-inkey", str(path)]


def verify_digest(tmp: Path, key_pem: str, sig_alg: str, data: bytes, signature: bytes) -> None:
    """`openssl pkeyutl -verify` over a digest (or, for Ed25519, the raw bytes signed); asserts success."""
    data_file, sig = tmp / "verify-data.bin", tmp / "verify-sig.bin"
    data_file.write_bytes(data)
    sig.write_bytes(signature)
    args = ["pkeyutl", "-verify", *_key_args(tmp, key_pem), "-in", str(data_file), "-sigfile", str(sig)]
    alg = SIG_ALGS[sig_alg]
    if alg.algorithm == "EdDSA":
        args.append("-rawin")
    else:
        assert alg.hash_algorithm is not None
        args += ["-pkeyopt", f"digest:{alg.hash_algorithm.replace('-', '').lower()}"]
    if alg.pss:
        args += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"]
    result = openssl(*args)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stderr


def verify_message(tmp: Path, key_pem: str, sig_alg: str, message: bytes, signature: bytes) -> None:
    """`openssl dgst -verify` over a message (RSA, ECDSA) or `pkeyutl -rawin` (Ed25519); asserts success."""
    alg = SIG_ALGS[sig_alg]
    if alg.algorithm == "EdDSA":
        verify_digest(tmp, key_pem, sig_alg, message, signature)
        return
    assert alg.hash_algorithm is not None
    pub, msg, sig = tmp / "verify-pub.pem", tmp / "verify-msg.bin", tmp / "verify-sig.bin"
    if "CERTIFICATE" in key_pem:
        cert = tmp / "verify-cert.pem"
        cert.write_text(key_pem)
        pub.write_text(openssl("x509", "-in", cert, "-pubkey", "-noout").stdout)
    else:
        pub.write_text(key_pem)
    msg.write_bytes(message)
    sig.write_bytes(signature)
    args = ["dgst", f"-{alg.hash_algorithm.replace('-', '').lower()}", "-verify", str(pub), "-signature", str(sig)]
    if alg.pss:
        args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
    result = openssl(*args, msg)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr


def verify_chain(tmp: Path, ca_pem: str, cert_pem: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`openssl verify -CAfile ca cert` (with extra options such as `-attime`); returns the result."""
    ca, cert = tmp / "chain-ca.pem", tmp / "chain-cert.pem"
    ca.write_text(ca_pem)
    cert.write_text(cert_pem)
    return openssl("verify", "-CAfile", ca, *extra, cert)
