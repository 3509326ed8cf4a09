"""What `rotasign sign` asks the service for and writes beside each file, per output format.

- `bundle`: `FILE.rsig.json` (see `bundle`);
- `cms`: `FILE.p7s`, a detached CMS SignedData (see `cms`);
- `raw`: `FILE.sig` (the signature bytes), `FILE.sig.pem` (certificate, then its chain) and
  `FILE.sig.tst` (the DER RFC 3161 TimeStampToken over SHA-256 of `FILE.sig`; a token, not a
  time-stamp *response*, hence not `.tsr`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rotasign_cli import bundle, cms
from rotasign_cli.algorithms import SIG_ALGS

FORMATS = ("bundle", "cms", "raw")
RAW_SUFFIXES = (".sig", ".sig.pem", ".sig.tst")


def suffixes(fmt: str) -> tuple[str, ...]:
    """The suffixes of the files a format may write (the first is the signature itself)."""
    if fmt == "bundle":
        return (bundle.SUFFIX,)
    if fmt == "cms":
        return (cms.SUFFIX,)
    return RAW_SUFFIXES


def output_base(path: Path, output_dir: Path | None) -> Path:
    """Where a file's outputs go: beside it, or under `output_dir` with its name."""
    return (output_dir / path.name) if output_dir is not None else path


@dataclass(frozen=True)
class Prepared:
    """One file, hashed, with the sign request that goes to the service."""

    path: Path
    hash_algorithm: str
    digest: bytes
    signed_attrs: bytes | None
    request: dict[str, Any]


def prepare(
    path: Path, digest: bytes, *, hash_algorithm: str, fmt: str, sig_alg: str | None, tool: str, now: datetime
) -> Prepared:
    """The sign request for a file's digest: the digest itself, or for CMS the DER of its signed attributes.

    The attributes go as `message`, which the service hashes with `hash_algorithm` for RSA and ECDSA
    and signs as they are for Ed25519 (RFC 8419), so the request does not depend on the key type.
    """
    request: dict[str, Any] = {"hash_algorithm": hash_algorithm, "file_name": path.name, "tool": tool}
    if sig_alg is not None:
        request["sig_alg"] = sig_alg
    signed_attrs = None
    if fmt == "cms":
        signed_attrs = cms.signed_attributes(digest, hash_algorithm, now)
        request["message"] = _b64(signed_attrs)
    else:
        request["hash"] = _b64(digest)
    return Prepared(path, hash_algorithm, digest, signed_attrs, request)


def render(
    prepared: Prepared, answer: dict[str, Any], *, fmt: str, account_id: str | None, tool: str
) -> dict[str, bytes]:
    """The output files' contents by suffix (raw leaves out what the answer lacks); raises ValueError."""
    signature = base64.b64decode(answer["signature"])
    certificate = (answer.get("certificate") or {}).get("pem")
    chain = [str(pem) for pem in answer.get("chain") or []]
    token = base64.b64decode(answer["timestamp_token"]) if answer.get("timestamp_token") else None
    if fmt == "bundle":
        made = bundle.Bundle.from_sign_response(
            answer, file_name=prepared.path.name, hash_algorithm=prepared.hash_algorithm, digest=prepared.digest,
            account_id=account_id, tool=tool,
        )
        return {bundle.SUFFIX: made.to_json().encode("utf-8")}
    if fmt == "cms":
        if certificate is None:
            raise ValueError("the keypair has no certificate, which CMS needs (use bundle or raw)")
        if answer["sig_alg"] == "Ed25519" and prepared.hash_algorithm != cms.ED25519_HASH:
            raise ValueError(f"Ed25519 CMS uses {cms.ED25519_HASH} (RFC 8419): sign without --hash-algorithm")
        assert prepared.signed_attrs is not None
        der = cms.build(
            signed_attrs_der=prepared.signed_attrs, hash_algorithm=prepared.hash_algorithm,
            sig_alg=SIG_ALGS[str(answer["sig_alg"])], signature=signature, certificate_pem=certificate,
            chain_pems=chain, timestamp_token=token,
        )
        return {cms.SUFFIX: der}
    files = {".sig": signature}
    if certificate:
        files[".sig.pem"] = "".join(_pem_text(pem) for pem in [certificate, *chain]).encode("ascii")
    if token:
        files[".sig.tst"] = token
    return files


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pem_text(pem: str) -> str:
    return pem if pem.endswith("\n") else pem + "\n"
