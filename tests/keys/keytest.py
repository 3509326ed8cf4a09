"""What the key tests share: the SoftHSM2 test token, the outside views of a key (openssl, a second session)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pkcs11

from chalicelib.keys.algorithms import PublicKey, SigAlg, public_key_pem
from chalicelib.keys.hsm.session import PKCS11_LOCK, Pkcs11Module


@dataclass(frozen=True)
class SoftHsm:
    """Where the test token is and how to log in to it."""

    conf: Path
    module: str
    label: str
    pin: str


def digest_for(sig_alg: SigAlg, message: bytes) -> bytes:
    """What `algorithms.sign` takes for `message`: its digest for RSA/ECDSA, the message itself for Ed25519."""
    if sig_alg.hash_algorithm is None:
        return message
    return hashlib.new(sig_alg.hash_algorithm.replace("-", "").lower(), message).digest()


def openssl_verify(workdir: Path, public_key: PublicKey, sig_alg: SigAlg, signature: bytes, data: bytes) -> bool:
    """Verify with the openssl CLI, independently of `cryptography` (`-rawin` for Ed25519)."""
    pub, sig, inp = workdir / "pub.pem", workdir / "sig.bin", workdir / "in.bin"
    pub.write_text(public_key_pem(public_key))
    sig.write_bytes(signature)
    inp.write_bytes(data)
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-sigfile", str(sig), "-in", str(inp)]
    if sig_alg.hash_algorithm is None:
        cmd.append("-rawin")
    else:
        cmd += ["-pkeyopt", "digest:" + sig_alg.hash_algorithm.replace("-", "").lower()]
        if sig_alg.pss:
            cmd += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return result.returncode == 0 and "Signature Verified Successfully" in result.stdout


@contextmanager
def token_session(softhsm: SoftHsm) -> Iterator[pkcs11.Session]:
    """A second, plain session on the test token: the outside view of what a store made.

    Login is per process, so once a store has logged in this session sees private objects too. It runs
    under the process-wide lock and on the module the stores loaded (loading it again under another
    handle would C_Initialize it twice), as every PKCS#11 call in the process must.
    """
    with PKCS11_LOCK:
        lib = Pkcs11Module.shared(softhsm.module).lib
        session = lib.get_token(token_label=softhsm.label).open(rw=True)
        try:
            yield session
        finally:
            session.close()
