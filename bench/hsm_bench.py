"""HSM signatures per second: the key-object path beside raw python-pkcs11 on the same SoftHSM2 token and key.

For each algorithm of docs/api.md a key pair is generated on a temporary token through `HsmKeyStore`, and the
same SHA-256 digest (the message, for Ed25519) is signed in one thread two ways:
1. the service's path: `algorithms.sign(store.load(...), sig_alg, digest)` — the `cryptography` key object
   whose `sign()` maps to a mechanism, takes the process-wide lock, checks the cached handle's label and
   converts ECDSA's raw r || s to DER;
2. raw python-pkcs11: `key.sign()` on the token object with the same mechanism and payload, on a session
   of its own — no lock, no handle check, no DER.
The two are measured in alternating rounds so that load from other processes hits both alike; the ratio
says what the backend costs on top of the token. `load ms` is one `store.load` (the signing service does
it once per key reference and cache period). Run: `.venv/bin/python bench/hsm_bench.py [seconds]`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from common import ALGORITHMS, print_table, rate

HSM_LABEL, HSM_PIN, HSM_SO_PIN = "rotasign-hsm-bench", "hsm-bench-pin-1234", "hsm-bench-so-5678"
ROUNDS = 3


class RawSigner:
    """One bare C_Sign per call with the token key `label`, on a session of its own."""

    def __init__(self, module_path: str, label: str, payload: bytes, mechanism: Any, param: Any) -> None:
        from pkcs11 import Attribute, ObjectClass

        from chalicelib.keys.hsm.session import PKCS11_LOCK, Pkcs11Module

        with PKCS11_LOCK:
            # The module the store loaded: loading it again under another handle would C_Initialize it twice.
            lib = Pkcs11Module.shared(module_path).lib
            self.session = lib.get_token(token_label=HSM_LABEL).open()  # login is per process
            (self.key,) = self.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
        self.payload, self.mechanism, self.param = payload, mechanism, param

    def __call__(self) -> bytes:
        """Sign once."""
        return bytes(self.key.sign(self.payload, mechanism=self.mechanism, mechanism_param=self.param))

    def close(self) -> None:
        """Close the extra session (the store's own session keeps the process logged in)."""
        self.session.close()


def alternate(a: Callable[[], object], b: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Rates per second of `a` and `b`, measured in ROUNDS alternating rounds of `seconds / ROUNDS / 2` each."""
    totals = [[0, 0.0], [0, 0.0]]
    for _ in range(ROUNDS):
        for total, fn in zip(totals, (a, b), strict=True):
            n, elapsed = rate(fn, seconds / ROUNDS / 2, 20)
            total[0] += n
            total[1] += elapsed
    return totals[0][0] / totals[0][1], totals[1][0] / totals[1][1]


def main(seconds: float = 3.0) -> None:
    """Print one row per algorithm."""
    from localdev.softhsm import ensure_token, find_module

    with tempfile.TemporaryDirectory(prefix="rotasign-hsm-bench-") as state:
        # SoftHSM reads SOFTHSM2_CONF when the module is initialised, i.e. on the store's first call.
        os.environ["SOFTHSM2_CONF"] = str(ensure_token(Path(state), HSM_LABEL, HSM_PIN, HSM_SO_PIN))
        run(find_module(), seconds)


def run(module_path: str, seconds: float) -> None:
    """Measure every algorithm on the token and print the table."""
    from chalicelib.keys.algorithms import KeySpec, resolve_sig_alg, sign, verify_signature
    from chalicelib.keys.hsm.mechanisms import sign_ecdsa, sign_eddsa, sign_rsa
    from chalicelib.keys.hsm.store import HsmKeyStore

    store = HsmKeyStore.connect(module_path, HSM_LABEL, lambda: HSM_PIN)
    digest = hashlib.sha256(b"rotasign HSM benchmark artifact").digest()
    rows = []
    for name, params in ALGORITHMS.items():
        spec = KeySpec.build(**params)
        sig_alg = resolve_sig_alg(spec, "SHA-256", None)
        label = f"kp_bench/{name.replace(' ', '-')}"
        started = time.perf_counter()
        public_key = store.generate("bench", label, spec).public_key
        keygen_ms = 1000 * (time.perf_counter() - started)
        started = time.perf_counter()
        key = store.load("bench", label, None)
        load_ms = 1000 * (time.perf_counter() - started)
        verify_signature(public_key, sig_alg, sign(key, sig_alg, digest), digest)

        # The raw signer gets exactly the C_Sign the key object makes.
        if sig_alg.algorithm == "RSA":
            c_sign = sign_rsa(digest, *_rsa_args(sig_alg), spec.key_size or 0)
        elif sig_alg.algorithm == "ECDSA":
            c_sign = sign_ecdsa(digest, _ecdsa_arg(sig_alg), key.public_key().curve)  # type: ignore[union-attr]
        else:
            c_sign = sign_eddsa(digest)
        raw = RawSigner(module_path, label, c_sign.payload, c_sign.mechanism, c_sign.param)
        via_key, bare = alternate(partial(sign, key, sig_alg, digest), raw, seconds)
        raw.close()
        store.destroy(label)
        rows.append([
            name, sig_alg.name, f"{keygen_ms:,.0f}", f"{load_ms:.2f}", f"{via_key:,.0f}", f"{bare:,.0f}",
            f"{via_key / bare:.3f}", f"{1e6 / via_key - 1e6 / bare:,.0f}",
        ])
    left = store.list_refs("kp_bench/")
    if left:
        raise RuntimeError(f"keys left on the token: {left}")
    print_table(
        "HSM signatures per second (SoftHSM2, one thread, same token key and SHA-256 digest): "
        "algorithms.sign on the HsmKeyStore key object vs raw python-pkcs11 key.sign",
        ["algorithm", "sig_alg", "keygen ms", "load ms", "key object/s", "raw pkcs11/s", "object÷raw",
         "overhead µs/sig"],
        rows,
    )


def _rsa_args(sig_alg: Any) -> tuple[Any, Any]:
    from cryptography.hazmat.primitives.asymmetric import utils

    from chalicelib.keys.algorithms import rsa_padding

    return rsa_padding(sig_alg), utils.Prehashed(sig_alg.hash())


def _ecdsa_arg(sig_alg: Any) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    return ec.ECDSA(utils.Prehashed(sig_alg.hash()))


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
