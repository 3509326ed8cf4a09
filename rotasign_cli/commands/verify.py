"""`rotasign verify`: check a file's signature (bundle, CMS, Authenticode, JAR) offline against the account's CAs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rotasign_cli import bundle, cms, jar, logproof, pe, trust, verify, ziparchive
from rotasign_cli.arguments import add_connection_options, add_json_option, example
from rotasign_cli.client import segment
from rotasign_cli.commands import trust as trust_command
from rotasign_cli.context import Context
from rotasign_cli.errors import ApiError, UsageError, VerificationFailed
from rotasign_cli.files import check_readable, read_bytes
from rotasign_cli.output import Column, field, print_json, render_table

COLUMNS = (
    Column("CHECK", field("name")),
    Column("RESULT", lambda check: "ok" if check["ok"] else "FAILED"),
    Column("DETAIL", field("detail")),
)


def register(sub: Any) -> None:
    """Add `verify`."""
    parser = sub.add_parser(
        "verify",
        help="verify a file's signature offline (bundle, CMS, Authenticode, JAR)",
        description=(
            "Check, without the service: the file's digest; the signature by the certificate's key; the "
            "time-stamp token over the signature, from the account's TSA; the chain to a trusted CA at the "
            "token's time; the codeSigning usage; and that the token's time lies inside every certificate's "
            "validity. The signer's own signing time is never used. Prints each check; exits 0 only when all "
            "hold, 1 when one fails.\n"
            "Trust comes from --ca (a PEM file from `rotasign ca get`), --trust (the files of `rotasign trust "
            "get`) or --account (the account's public trust route).\n"
            "--require-log adds the `log` check: the signature's entry is in a checkpoint of the account's "
            "transparency log signed by the account's log key (from --trust or --account). The inclusion proof "
            "comes from --proof, else FILE.rsig.proof.json (`rotasign logs proof --bundle`), else, for a bundle "
            "and with an API key that may view the logs, from the service.\n"
            "Without --bundle, --cms or --embedded, FILE.rsig.json or else FILE.p7s is used, "
            "and without either the signature inside FILE: Authenticode for a PE file (.exe, .dll, ...), "
            "every signer's (or --signer's) for a JAR. For a JAR, `digest` means that the signer's .SF is "
            "what was signed, that it covers the manifest, and that the manifest holds the digest of every entry."
        ),
        epilog=example(
            "rotasign verify app.tar.gz --cms app.tar.gz.p7s --ca ca.pem",
            "rotasign verify app.exe --ca ca.pem && rotasign verify app.jar --ca ca.pem --signer RELEASE",
            "rotasign verify app.tar.gz --trust trust/ --require-log",
        ),
    )
    add_connection_options(parser)
    add_json_option(parser)
    parser.add_argument("file", type=Path, metavar="FILE", help="the signed file")
    signature = parser.add_mutually_exclusive_group()
    signature.add_argument("--bundle", type=Path, metavar="B", help="a FILE.rsig.json bundle")
    signature.add_argument("--cms", type=Path, metavar="C", help="a detached CMS signature FILE.p7s (DER)")
    signature.add_argument(
        "--embedded", action="store_true",
        help="the signature inside FILE (Authenticode or JAR), even when a bundle or .p7s lies beside it",
    )
    parser.add_argument(
        "--signer", metavar="NAME", help="for a JAR signed more than once: check only this signer (its .SF name)"
    )
    anchors = parser.add_mutually_exclusive_group(required=True)
    anchors.add_argument("--ca", type=Path, metavar="CA.pem", help="trusted CA (and TSA) certificates, PEM")
    anchors.add_argument(
        "--trust", type=Path, metavar="PATH", help="trust.json (or its folder) from `rotasign trust get`"
    )
    anchors.add_argument(
        "--account", metavar="ACCOUNT_ID", help="fetch the account's trust material (no API key needed)"
    )
    parser.add_argument(
        "--include-test", action="store_true", help="with --account or --trust, also trust the account's test CA"
    )
    parser.add_argument(
        "--require-log", action="store_true",
        help="also require the signature's inclusion in the account's transparency log (needs --trust or --account)",
    )
    parser.add_argument("--proof", type=Path, metavar="P", help="with --require-log: the inclusion proof file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Load the evidence and the trust material, run every check, print them, exit 0 or 1."""
    if args.include_test and args.ca is not None:
        raise UsageError("--include-test goes with --account or --trust (a --ca file trusts whatever it holds).")
    if args.proof is not None and not args.require_log:
        raise UsageError("--proof goes with --require-log.")
    if args.require_log and args.ca is not None:
        raise UsageError(
            "--require-log needs the account's log key: use --trust (from `rotasign trust get`) or --account."
        )
    check_readable(args.file)
    signature_path, kind = _signature_file(args)
    if args.signer is not None and kind != "jar":
        raise UsageError("--signer goes with a JAR.")
    data = read_bytes(signature_path) if kind in ("bundle", "cms") else None
    trusted, answer = _trust(args, ctx)
    log_check = _LogCheck(args, ctx, answer, signature_path, kind) if args.require_log else None
    rows: list[dict[str, Any]] = []
    for signer, checks in _check(args, signature_path, kind, data, trusted, log_check):
        rows += [{"name": c.name, "ok": c.ok, "detail": c.detail, **({"signer": signer} if signer else {})}
                 for c in checks]
    verified = all(row["ok"] for row in rows)
    if ctx.json:
        print_json({"file": str(args.file), "signature": str(signature_path), "verified": verified, "checks": rows})
    else:
        print(render_table(COLUMNS, rows))
    if not verified:
        failed = ", ".join(dict.fromkeys(row["name"] for row in rows if not row["ok"]))
        raise VerificationFailed(f"{args.file}: verification failed ({failed}).")
    if not ctx.json:
        print(f"Verified: {args.file}")
    return 0


class _LogCheck:
    """The `log` check of `--require-log`, with the proof from --proof, beside the file, or the service."""

    def __init__(self, args: argparse.Namespace, ctx: Context, answer: dict[str, Any] | None, signature_path: Path,
                 kind: str) -> None:
        self.args, self.ctx, self.answer = args, ctx, answer or {}
        self.beside = logproof.path_for_bundle(signature_path) if kind == "bundle" else logproof.path_for_file(
            args.file)

    def __call__(self, evidence: verify.Evidence, entry_id: str | None) -> verify.Check:
        proof = self._proof(entry_id)
        if proof is None:
            return verify.Check("log", False, f"no inclusion proof: give --proof, or save one as {self.beside} with "
                                              "`rotasign logs proof --bundle` (a key with view_audit_log)")
        if isinstance(proof, verify.Check):
            return proof
        return logproof.check_signature(proof, self.answer, evidence.signature, entry_id)

    def _proof(self, entry_id: str | None) -> dict[str, Any] | verify.Check | None:
        if self.args.proof is not None:
            return logproof.load(self.args.proof)
        if self.beside.is_file():
            return logproof.load(self.beside)
        if entry_id is None or not self.ctx.settings.endpoint or not self.ctx.settings.api_key:
            return None
        try:
            proof: dict[str, Any] = self.ctx.client().call("GET", f"/signature-logs/{segment(entry_id)}/proof")
        except ApiError as exc:
            if exc.code != "not_yet_in_log":
                raise
            return verify.Check("log", False, f"entry {entry_id} is not in a signed checkpoint yet: {exc.api_message}")
        return proof


def _check(
    args: argparse.Namespace, signature_path: Path, kind: str, data: bytes | None, trusted: trust.Trust,
    log_check: _LogCheck | None,
) -> list[tuple[str | None, list[verify.Check]]]:
    """The checks of each signature: one for a file, one per signer of a JAR."""
    if kind == "jar":
        return _check_jar(args.file, args.signer, trusted, log_check)
    try:
        evidence, entry_id = _evidence(kind, args.file, data)
    except (bundle.BundleError, cms.CmsError, ValueError) as exc:
        return [(None, [verify.Check("format", False, f"{signature_path} is not a valid {kind}: {exc}")])]
    described = "Authenticode signature inside it" if kind == "authenticode" else kind
    checks = [verify.Check("format", True, f"{signature_path} ({described})")]
    checks += verify.verify(args.file, evidence, trusted)
    if log_check is not None:
        checks.append(log_check(evidence, entry_id))
    return [(None, checks)]


def _check_jar(path: Path, wanted: str | None, trusted: trust.Trust,
               log_check: _LogCheck | None) -> list[tuple[str | None, list[verify.Check]]]:
    try:
        signed = jar.read_signed(path)
    except jar.JarError as exc:
        return [(None, [verify.Check("format", False, f"{path} is not a signed JAR: {exc}")])]
    signers = [s for s in signed.signers if wanted is None or s.name.upper() == wanted.upper()]
    if not signers:
        names = ", ".join(s.name for s in signed.signers)
        raise UsageError(f"{path} has no signer {wanted} (its signers: {names}).")
    digests = jar.EntryDigests(signed.archive)
    results: list[tuple[str | None, list[verify.Check]]] = []
    for signer in signers:
        files = f"{signer.signature_file_name}, {signer.block_name}"
        try:
            evidence = verify.evidence_from_jar_signer(signed, signer, digests)
        except (cms.CmsError, ValueError) as exc:
            results.append((signer.name, [verify.Check("format", False, f"{files}: not a signature block: {exc}")]))
            continue
        checks = [verify.Check("format", True, f"{path} (jar signer {signer.name}: {files})")]
        checks += verify.verify(path, evidence, trusted)
        if log_check is not None:
            checks.append(log_check(evidence, None))
        results.append((signer.name, checks))
    return results


def _signature_file(args: argparse.Namespace) -> tuple[Path, str]:
    if args.bundle is not None:
        return args.bundle, "bundle"
    if args.cms is not None:
        return args.cms, "cms"
    if not args.embedded:
        for suffix, kind in ((bundle.SUFFIX, "bundle"), (cms.SUFFIX, "cms")):
            candidate = args.file.with_name(args.file.name + suffix)
            if candidate.is_file():
                return candidate, kind
    if pe.is_pe(args.file):
        return args.file, "authenticode"
    if ziparchive.is_zip(args.file):
        return args.file, "jar"
    if args.embedded:
        raise UsageError(f"{args.file} is neither a PE file nor a JAR: it cannot carry a signature inside.")
    raise UsageError(
        f"No {args.file.name}{bundle.SUFFIX} or {args.file.name}{cms.SUFFIX}, and {args.file.name} is neither a "
        "PE file nor a JAR: give --bundle or --cms."
    )


def _evidence(kind: str, path: Path, data: bytes | None) -> tuple[verify.Evidence, str | None]:
    """The signature in verifiable form, and the signature-log entry it names (a bundle's signature_log_id)."""
    if kind == "authenticode" or data is None:
        return verify.evidence_from_authenticode(path), None
    if kind == "bundle":
        held = bundle.Bundle.from_json(data)
        return verify.evidence_from_bundle(held), held.signature_log_id
    return verify.evidence_from_cms(cms.read(data)), None


def _trust(args: argparse.Namespace, ctx: Context) -> tuple[trust.Trust, dict[str, Any] | None]:
    """The trust material, and the trust route's answer (with the log key) when it came from there."""
    if args.ca is not None:
        return trust.load_pem_file(args.ca), None
    if args.trust is not None:
        return trust.load_json_file(args.trust, include_test=args.include_test)
    answer = trust_command.fetch(ctx.client(authenticated=False), args.account,
                                 ": use --ca with a file from `rotasign ca get`")
    return trust.from_api(answer, f"account {args.account}", include_test=args.include_test), answer
