"""Signatures that go inside the file they sign: Authenticode for PE files, jarsigner's for JARs.

Signing one file has two halves around the service's answer. `prepare` reads the file and builds
what the signature covers: for a PE file, its image digest in an `SpcIndirectDataContent` and the
Authenticode signed attributes; for a JAR, its new manifest and `.SF` and CMS signed attributes over
the `.SF`. The DER of those attributes goes to the service as `message` (it hashes it for RSA and
ECDSA, signs it as it is for Ed25519), so nothing depends on the key until the answer names it.
`write` then builds the PKCS#7 from the answer (signature, certificate, chain, time-stamp token) and
writes the signed file next to the original, or over it, atomically.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rotasign_cli import authenticode, cms, jar, pe, ziparchive
from rotasign_cli.algorithms import SIG_ALGS, new_hash
from rotasign_cli.files import atomic_output

FORMATS = ("authenticode", "jar")
_ALREADY_SIGNED = (
    "it already has an Authenticode signature, which rotasign does not replace "
    "(`osslsigncode remove-signature` removes it)"
)


@dataclass(frozen=True)
class Options:
    """What the command line adds: Authenticode's program name and URL, the JAR's signer name."""

    program_name: str | None = None
    program_url: str | None = None
    signer_name: str | None = None


@dataclass(frozen=True)
class Job:
    """One file read and ready to sign: the request for the service and what `write` needs after it."""

    path: Path
    fmt: str
    hash_algorithm: str
    digest: bytes  # what the signature binds: the PE image digest, or the digest of the JAR's .SF
    signed_attrs: bytes
    request: dict[str, Any]
    version: tuple[int, int]  # the file's size and modification time when it was read
    indirect_data: bytes | None = None
    plan: jar.Plan | None = None


def check(path: Path, fmt: str) -> None:
    """Cheap checks before anything is signed: a PE file without a signature, a JAR this CLI can rewrite.

    Raises ValueError (PeError, JarError) or OSError.
    """
    if fmt == "authenticode":
        if pe.is_signed(path):
            raise pe.PeError(_ALREADY_SIGNED)
        return
    try:
        ziparchive.read(path)
    except ziparchive.ZipError as exc:
        raise jar.JarError(str(exc)) from exc


def prepare(
    path: Path, fmt: str, *, hash_algorithm: str, sig_alg: str | None, tool: str, now: datetime,
    options: Options, progress: Callable[[int], None] | None = None,
) -> Job:
    """Read and digest the file, build the signed attributes; raises ValueError naming the problem."""
    request: dict[str, Any] = {"hash_algorithm": hash_algorithm, "file_name": path.name, "tool": tool}
    if sig_alg is not None:
        request["sig_alg"] = sig_alg
    version = _version(path)
    if fmt == "authenticode":
        if pe.is_signed(path):
            raise pe.PeError(_ALREADY_SIGNED)
        digest = pe.image_digest(path, hash_algorithm, progress)
        indirect = authenticode.indirect_data(digest, hash_algorithm)
        attrs = authenticode.signed_attributes(
            indirect, hash_algorithm, program_name=options.program_name, program_url=options.program_url
        )
        request["message"] = base64.b64encode(attrs).decode("ascii")
        return Job(path, fmt, hash_algorithm, digest, attrs, request, version, indirect_data=indirect)
    if options.signer_name is None:
        raise ValueError("a JAR signature needs a signer name")
    plan = jar.prepare(
        path, signer_name=options.signer_name, hash_algorithm=hash_algorithm, created_by=tool, progress=progress
    )
    hashed = new_hash(hash_algorithm)
    hashed.update(plan.signature_file)
    sf_digest: bytes = hashed.digest()
    attrs = cms.signed_attributes(sf_digest, hash_algorithm, now)
    request["message"] = base64.b64encode(attrs).decode("ascii")
    return Job(path, fmt, hash_algorithm, sf_digest, attrs, request, version, plan=plan)


def _version(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def write(job: Job, answer: dict[str, Any], target: Path, *, now: datetime) -> None:
    """Write the signed file to `target` (which may be the file itself); raises ValueError or UsageError."""
    certificate = (answer.get("certificate") or {}).get("pem")
    if certificate is None:
        raise ValueError("the keypair has no certificate, which a signed file needs")
    sig_alg = SIG_ALGS[str(answer["sig_alg"])]
    signature = base64.b64decode(answer["signature"])
    chain = [str(pem) for pem in answer.get("chain") or []]
    token = base64.b64decode(answer["timestamp_token"]) if answer.get("timestamp_token") else None
    mode = job.path.stat().st_mode & 0o777
    if _version(job.path) != job.version:
        # The signature covers the file as it was read; a copy of what it became would not verify.
        raise ValueError("the file changed while it was being signed: sign it again")
    if job.fmt == "authenticode":
        assert job.indirect_data is not None
        der = authenticode.build(
            indirect_data_der=job.indirect_data, signed_attrs_der=job.signed_attrs,
            hash_algorithm=job.hash_algorithm, sig_alg=sig_alg, signature=signature, certificate_pem=certificate,
            chain_pems=chain, timestamp_token=token,
        )
        with atomic_output(target, mode) as handle:
            pe.write_signed(job.path, handle, der)
        return
    assert job.plan is not None
    if sig_alg.key_algorithm == "EdDSA" and job.hash_algorithm != cms.ED25519_HASH:
        raise ValueError(f"Ed25519 signatures use {cms.ED25519_HASH} (RFC 8419): sign without --hash-algorithm")
    block = cms.build(
        signed_attrs_der=job.signed_attrs, hash_algorithm=job.hash_algorithm, sig_alg=sig_alg, signature=signature,
        certificate_pem=certificate, chain_pems=chain, timestamp_token=token,
    )
    with atomic_output(target, mode) as handle:
        jar.write(job.plan, handle, block=block, key_algorithm=sig_alg.key_algorithm, now=now)
