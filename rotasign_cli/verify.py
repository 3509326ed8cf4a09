"""Offline verification of a signature (bundle, detached CMS, Authenticode, JAR) against the account's trust material.

The checks, each reported on its own: the file's digest (for Authenticode, the PE image digest; for a
JAR, that the `.SF` covers the manifest and the manifest every entry), the signature by the certificate's key, the
time-stamp token over the signature value from the account's TSA, the certificate chain to a trusted
CA at the token's time, the code-signing usage, and that the token's time lies inside the validity of
every certificate in the chain. The time always comes from the verified token, never from the signer's
own `signingTime` or the bundle's `signed_at`: a holder of a stolen key can write any of those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from rotasign_cli import authenticode, cms, jar, pe
from rotasign_cli.algorithms import (
    SigAlg,
    key_algorithm_of,
    key_id,
    new_hash,
    sig_alg,
    supported_key,
    verify_signature,
)
from rotasign_cli.bundle import Bundle
from rotasign_cli.hashing import hash_file
from rotasign_cli.timestamps import TimestampVerificationError, verify_signature_token
from rotasign_cli.trust import Trust, is_ca

MAX_CHAIN_DEPTH = 5


@dataclass(frozen=True)
class Check:
    """One check and its outcome, as `verify` prints it."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Evidence:
    """A signature to check, from a bundle or a CMS file, in one shape.

    RSA and ECDSA signed `signed_digest`; Ed25519 signed `signed_message` when there is one (the DER of
    CMS signed attributes), else the digest bytes.
    """

    kind: str
    hash_algorithm: str
    content_digest: bytes
    sig_alg: SigAlg
    signature: bytes
    signed_digest: bytes
    signed_message: bytes | None
    certificate: x509.Certificate | None
    certificates: tuple[x509.Certificate, ...]
    timestamp_token: bytes | None
    claimed_key_id: str | None = None
    content_type: str | None = None
    content_check: Check | None = None  # a format's own check of what was signed (Authenticode, JAR)


def evidence_from_bundle(bundle: Bundle) -> Evidence:
    """The bundle's signature in verifiable form; raises ValueError for an unreadable certificate."""
    certificate = x509.load_pem_x509_certificate(bundle.certificate.encode("ascii")) if bundle.certificate else None
    chain = tuple(x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in bundle.chain)
    return Evidence(
        kind="bundle",
        hash_algorithm=bundle.hash_algorithm,
        content_digest=bundle.digest,
        sig_alg=sig_alg(bundle.sig_alg),
        signature=bundle.signature,
        signed_digest=bundle.digest,
        signed_message=None,
        certificate=certificate,
        certificates=chain,
        timestamp_token=bundle.timestamp_token,
        claimed_key_id=bundle.key_id,
    )


def evidence_from_cms(view: cms.SignerView) -> Evidence:
    """A parsed CMS signer in verifiable form."""
    attrs_hash = new_hash(view.sig_alg.hash_algorithm or view.hash_algorithm)
    attrs_hash.update(view.signed_attrs_der)
    return Evidence(
        kind="cms",
        hash_algorithm=view.hash_algorithm,
        content_digest=view.message_digest,
        sig_alg=view.sig_alg,
        signature=view.signature,
        signed_digest=attrs_hash.digest(),
        signed_message=view.signed_attrs_der,
        certificate=view.signer_certificate,
        certificates=view.certificates,
        timestamp_token=view.timestamp_token,
        content_type=view.content_type,
    )


def evidence_from_authenticode(path: Path, progress: Callable[[int], None] | None = None) -> Evidence:
    """The Authenticode signature of a PE file, its image digest checked; raises ValueError when unreadable."""
    signature = authenticode.read(pe.signature_der(path))
    algorithm = signature.image_hash_algorithm
    if not signature.content_digest_ok:
        check = Check("digest", False, "the signed message digest is not that of the signed SpcIndirectDataContent")
    elif pe.image_digest(path, algorithm, progress) != signature.image_digest:
        check = Check("digest", False, f"the {algorithm} Authenticode digest of {path.name} is not the signed one")
    else:
        check = Check("digest", True, f"the {algorithm} Authenticode digest of {path.name} is the signed one")
    return replace(evidence_from_cms(signature.signer), kind="authenticode", content_type=None, content_check=check)


def evidence_from_jar_signer(
    signed: jar.SignedJar, signer: jar.SignerFiles, digests: jar.EntryDigests
) -> Evidence:
    """One signer of a JAR, its `.SF`, manifest and entries checked; raises ValueError when unreadable."""
    view = cms.read(signer.block)
    evidence = replace(evidence_from_cms(view), kind="jar")
    if view.content_type != "data":
        check = Check("digest", False, f"the signed content type is {view.content_type}, not data")
    elif _digest_of(signer.signature_file, view.hash_algorithm) != view.message_digest:
        check = Check("digest", False, f"{signer.signature_file_name} is not the signed content")
    else:
        ok, detail = jar.check_signer(signed, signer, digests)
        check = Check("digest", ok, detail)
    return replace(evidence, content_check=check)


def _digest_of(data: bytes, hash_algorithm: str) -> bytes:
    digest = new_hash(hash_algorithm)
    digest.update(data)
    result: bytes = digest.digest()
    return result


def verify(
    path: Path, evidence: Evidence, trust: Trust, progress: Callable[[int], None] | None = None
) -> list[Check]:
    """Every check on `path`; all hold exactly when every returned Check is ok."""
    checks = [evidence.content_check or _digest(path, evidence, progress), _signature(evidence)]
    token_check, token_time = _timestamp(evidence, trust)
    checks.append(token_check)
    chain_check, path_certs = _chain(evidence, trust, token_time)
    checks += [chain_check, _usage(evidence), _time(path_certs or _leaf_only(evidence), token_time)]
    return checks


def _leaf_only(evidence: Evidence) -> list[x509.Certificate]:
    return [evidence.certificate] if evidence.certificate is not None else []


def _digest(path: Path, evidence: Evidence, progress: Callable[[int], None] | None) -> Check:
    if evidence.content_type is not None and evidence.content_type != "data":
        return Check("digest", False, f"the signed content type is {evidence.content_type}, not data")
    actual = hash_file(path, evidence.hash_algorithm, progress)
    if actual != evidence.content_digest:
        return Check("digest", False, f"{evidence.hash_algorithm} of {path.name} does not match the signed digest")
    return Check("digest", True, f"{evidence.hash_algorithm} of {path.name} matches the signed digest")


def _signature(evidence: Evidence) -> Check:
    certificate = evidence.certificate
    if certificate is None:
        return Check("signature", False, "no certificate: nothing to check the signature with")
    public_key = supported_key(certificate.public_key())
    if public_key is None:
        return Check("signature", False, "the certificate's key is not RSA, ECDSA or Ed25519")
    if key_algorithm_of(public_key) != evidence.sig_alg.key_algorithm:
        return Check("signature", False, f"{evidence.sig_alg.name} does not fit the certificate's key")
    if evidence.sig_alg.hash_algorithm not in (None, evidence.hash_algorithm):
        return Check("signature", False, f"{evidence.sig_alg.name} does not use {evidence.hash_algorithm}")
    identifier = key_id(public_key)
    if evidence.claimed_key_id is not None and evidence.claimed_key_id != identifier:
        return Check("signature", False, "the certificate's key is not the key_id the bundle names")
    try:
        verify_signature(
            public_key, evidence.sig_alg, evidence.signature, evidence.signed_digest, evidence.signed_message
        )
    except InvalidSignature:
        return Check("signature", False, f"{evidence.sig_alg.name} does not verify with key {identifier[:12]}")
    return Check("signature", True, f"{evidence.sig_alg.name} by key {identifier[:12]} ({_cn(certificate.subject)})")


def _timestamp(evidence: Evidence, trust: Trust) -> tuple[Check, datetime | None]:
    if evidence.timestamp_token is None:
        return Check("timestamp", False, "no time-stamp token: the signing time cannot be established"), None
    pinned = trust.tsa or (None,)
    reasons = []
    for anchor in trust.anchors:
        for tsa in pinned:
            try:
                stamp = verify_signature_token(evidence.timestamp_token, evidence.signature, anchor, tsa)
            except TimestampVerificationError as exc:
                reasons.append(exc.reason.rstrip("."))
                continue
            detail = f"token over the signature by {_cn(stamp.tsa_certificate.subject)} at {_iso(stamp.gen_time)}"
            return Check("timestamp", True, detail), stamp.gen_time
    reason = reasons[-1] if reasons else "no trusted TSA"
    detail = f"the token is not from the account's TSA or not over this signature: {reason}"
    return Check("timestamp", False, detail), None


def _chain(evidence: Evidence, trust: Trust, at: datetime | None) -> tuple[Check, list[x509.Certificate]]:
    leaf = evidence.certificate
    if leaf is None:
        return Check("chain", False, "no certificate"), []
    path = [leaf]
    pool = [c for c in evidence.certificates if c != leaf]
    while len(path) <= MAX_CHAIN_DEPTH:
        current = path[-1]
        anchor = _issuer_of(current, list(trust.anchors))
        if anchor is not None:
            path.append(anchor)
            problem = _issuer_problem(path)
            if problem:
                return Check("chain", False, problem), path
            names = " -> ".join(_cn(c.subject) for c in path)
            return Check("chain", True, f"{names} (trusted, from {trust.source})"), path
        issuer = _issuer_of(current, [c for c in pool if c not in path])
        if issuer is None:
            return Check("chain", False, f"{_cn(current.subject)} is not issued by a CA in {trust.source}"), path
        path.append(issuer)
    return Check("chain", False, f"no trusted CA within {MAX_CHAIN_DEPTH} certificates"), path


def _issuer_of(certificate: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _issuer_problem(path: list[x509.Certificate]) -> str | None:
    for below, issuer in enumerate(path[1:]):
        if not is_ca(issuer):
            return f"{_cn(issuer.subject)} is not a CA"
        try:
            usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.key_cert_sign:
            return f"{_cn(issuer.subject)} may not sign certificates"
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.path_length is not None and below > constraints.path_length:
            return f"{_cn(issuer.subject)} allows {constraints.path_length} intermediate CAs below it"
    return None


def _usage(evidence: Evidence) -> Check:
    if evidence.certificate is None:
        return Check("usage", False, "no certificate")
    try:
        usages = evidence.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return Check("usage", False, "the certificate has no extended key usage; codeSigning is required")
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        return Check("usage", False, "the certificate is not for code signing")
    return Check("usage", True, "extended key usage codeSigning")


def _time(path: list[x509.Certificate], at: datetime | None) -> Check:
    if at is None:
        return Check("time", False, "no trusted time (the time-stamp did not verify)")
    if not path:
        return Check("time", False, "no certificate")
    for certificate in path:
        if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
            return Check(
                "time",
                False,
                f"the token's time {_iso(at)} is outside {_cn(certificate.subject)}'s validity "
                f"({_iso(certificate.not_valid_before_utc)} to {_iso(certificate.not_valid_after_utc)})",
            )
    leaf = path[0]
    return Check(
        "time",
        True,
        f"{_iso(at)} is within the certificate's validity "
        f"({_iso(leaf.not_valid_before_utc)} to {_iso(leaf.not_valid_after_utc)})",
    )


def _cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return f"CN={values[0].value!s}" if values else name.rfc4514_string()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
