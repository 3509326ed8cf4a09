"""HSM signatures per second: the service beside raw PKCS#11 signing on the same SoftHSM2 token and key.

For each algorithm an HSM keypair is created through the API (its create time includes on-token key
generation), then the same SHA-256 digest is signed, in one thread, three ways:
1. through the service: `POST /keypairs/{id}/sign` on Chalice's test client with in-process moto (auth,
   one BatchGetItem, the token signature, the RFC 3161 time-stamp, one TransactWriteItems);
2. `HsmBackend.sign`: the backend alone (process lock, cached key handle, DER conversion for ECDSA);
3. raw python-pkcs11: `key.sign()` on the token object with the mechanism the backend uses.
The ratios say what the service and the backend cost on top of the token. The account's CA and TSA keys
are on disk here (the default), so the time-stamp costs what it costs for a disk account.
The token is a temporary SoftHSM2 token made for this run. Run: `.venv/bin/python bench/hsm_bench.py [seconds]`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from common import ALGORITHMS, RequestCounter, Stack, print_table, rate, sign_body, stack, time_timestamper

HSM_LABEL, HSM_PIN, HSM_SO_PIN = "rotasign-hsm-bench", "hsm-bench-pin-1234", "hsm-bench-so-5678"
# DER DigestInfo prefix of SHA-256 (RFC 8017 section 9.2): what CKM_RSA_PKCS signs in front of the digest.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def make_token(state_dir: Path) -> None:
    """A fresh SoftHSM2 token for this run; settings and SoftHSM are pointed at it before either is loaded."""
    from chalicelib.keys.softhsm import ensure_token, find_module

    conf = ensure_token(state_dir, HSM_LABEL, HSM_PIN, HSM_SO_PIN)
    os.environ.update(SOFTHSM2_CONF=str(conf), ROTASIGN_PKCS11_MODULE=find_module(),
                      ROTASIGN_HSM_TOKEN_LABEL=HSM_LABEL, ROTASIGN_HSM_PIN=HSM_PIN)


class RawSigner:
    """One bare C_Sign per call with the token key `label`: no lock, no key cache, no DER conversion."""

    def __init__(self, label: str, algorithm: str, digest: bytes) -> None:
        from pkcs11 import Attribute, Mechanism, ObjectClass

        from chalicelib.keys import hsm
        from chalicelib.settings import get_settings

        settings = get_settings()
        # The module the backend loaded: loading it again under another handle would C_Initialize it twice.
        lib = hsm._load_module(os.path.realpath(settings.pkcs11_module))
        self.session = lib.get_token(token_label=settings.hsm_token_label).open()  # login is per process
        (self.key,) = self.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
        self.mechanism, self.payload = {
            "RSA": (Mechanism.RSA_PKCS, SHA256_DIGEST_INFO + digest),
            "ECDSA": (Mechanism.ECDSA, digest),
            "EdDSA": (Mechanism.EDDSA, digest),
        }[algorithm]

    def __call__(self) -> bytes:
        """Sign once."""
        return bytes(self.key.sign(self.payload, mechanism=self.mechanism))

    def close(self) -> None:
        """Close the extra session (the backend's own session keeps the process logged in)."""
        self.session.close()


def main(seconds: float = 1.5) -> None:
    """Print one row per algorithm."""
    with tempfile.TemporaryDirectory(prefix="rotasign-hsm-bench-") as state:
        make_token(Path(state))  # before stack(), which reads the settings
        with stack() as s:
            run(s, seconds)


def run(s: Stack, seconds: float) -> None:
    """Measure every algorithm on the stack `s` and print the table."""
    from chalicelib.keys.algorithms import resolve_sig_alg, verify_signature
    from chalicelib.services.container import get_deps
    from chalicelib.services.keypairs import spec_of
    from chalicelib.services.container import get_services
    from chalicelib.storage.tables import KeypairModel

    backend = get_deps().hsm().backend
    signing = get_services().signing
    stamping = time_timestamper(signing)
    digest = hashlib.sha256(b"rotasign HSM benchmark artifact").digest()
    body = sign_body(digest)
    rows, made = [], []
    for name, spec in ALGORITHMS.items():
        started = time.perf_counter()
        kp = s.keypair(f"hsm-bench-{name.replace(' ', '-').lower()}", spec, storage="hsm")
        create_ms = 1000 * (time.perf_counter() - started)
        made.append(kp["id"])
        row = KeypairModel.get(s.account, kp["id"])
        sig_alg = resolve_sig_alg(spec_of(row), "SHA-256", None)
        label = str(row.key_ref)

        s.sign(kp["id"], body)  # warm: principal, account, key handle cached
        stamping[0] = 0.0
        with RequestCounter() as counter:
            n, elapsed = rate(partial(s.sign, kp["id"], body), seconds)
        service = n / elapsed
        per_sig = 1000 * elapsed / n
        dynamo_ms = 1000 * counter.seconds.get("dynamodb", 0.0) / n
        stamp_ms = 1000 * stamping[0] / n

        public_key = backend.private_key(label).public_key()
        verify_signature(public_key, sig_alg, backend.sign(label, sig_alg, digest), digest)
        m, b_elapsed = rate(partial(backend.sign, label, sig_alg, digest), seconds / 2, 50)
        via_backend = m / b_elapsed

        raw = RawSigner(label, spec["algorithm"], digest)
        r, r_elapsed = rate(raw, seconds / 2, 50)
        raw.close()
        bare = r / r_elapsed
        rows.append([
            name, sig_alg.name, f"{create_ms:,.0f}", f"{service:,.1f}", f"{via_backend:,.0f}", f"{bare:,.0f}",
            f"{service / bare:.3f}", f"{via_backend / bare:.3f}", f"{per_sig:.2f}", f"{1000 / bare:.3f}",
            f"{dynamo_ms:.2f}", f"{stamp_ms:.2f}", f"{per_sig - 1000 / bare - dynamo_ms - stamp_ms:.2f}",
        ])
    for kp_id in made:
        status, _ = s.call("DELETE", f"/keypairs/{kp_id}")
        if status != 204:
            raise RuntimeError(f"deleting {kp_id}: {status}")
    left = backend.list_labels("kp_")
    if left:
        raise RuntimeError(f"keys left on the token: {left}")
    print_table(
        "HSM signatures per second (SoftHSM2, one thread, same token key and SHA-256 digest): the service "
        "(Chalice test client + in-process moto) vs HsmBackend.sign vs raw python-pkcs11 key.sign",
        ["algorithm", "sig_alg", "create ms", "service/s", "HsmBackend/s", "raw pkcs11/s", "service÷raw",
         "backend÷raw", "ms/sig", "of which: token", "DynamoDB (moto)", "timestamp", "rest"],
        rows,
    )
    print("create ms = POST /keypairs with storage hsm (on-token keygen + certificate + one transaction). ms/sig = "
          "1000 / service rate, split into the bare token signature, time inside DynamoDB calls (moto deep-copies "
          "every table a transaction touches, so this grows with the signature log), the RFC 3161 timestamper, "
          "and the rest (HTTP, auth, JSON, logging, the backend's lock and key cache).")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5)
