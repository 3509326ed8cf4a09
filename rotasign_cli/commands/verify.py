"""`rotasign verify`: check a file's bundle or CMS signature offline, against the account's trust material."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rotasign_cli import bundle, cms, trust, verify
from rotasign_cli.arguments import add_connection_options, add_json_option, example
from rotasign_cli.client import segment
from rotasign_cli.context import Context
from rotasign_cli.errors import ApiError, NotFoundError, UsageError, VerificationFailed
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
        help="verify a file's signature offline (bundle or CMS)",
        description=(
            "Check, without the service: the file's digest; the signature by the certificate's key; the "
            "time-stamp token over the signature, from the account's TSA; the chain to a trusted CA at the "
            "token's time; the codeSigning usage; and that the token's time lies inside every certificate's "
            "validity. The signer's own signing time is never used. Prints each check; exits 0 only when all "
            "hold, 1 when one fails.\n"
            "Trust comes from --ca (a PEM file from `rotasign ca get`) or --account (the account's public "
            "trust route). Without --bundle or --cms, FILE.rsig.json or else FILE.p7s is used."
        ),
        epilog=example("rotasign verify app.tar.gz --cms app.tar.gz.p7s --ca ca.pem"),
    )
    add_connection_options(parser)
    add_json_option(parser)
    parser.add_argument("file", type=Path, metavar="FILE", help="the signed file")
    signature = parser.add_mutually_exclusive_group()
    signature.add_argument("--bundle", type=Path, metavar="B", help="a FILE.rsig.json bundle")
    signature.add_argument("--cms", type=Path, metavar="C", help="a detached CMS signature FILE.p7s (DER)")
    anchors = parser.add_mutually_exclusive_group(required=True)
    anchors.add_argument("--ca", type=Path, metavar="CA.pem", help="trusted CA (and TSA) certificates, PEM")
    anchors.add_argument(
        "--account", metavar="ACCOUNT_ID", help="fetch the account's trust material (no API key needed)"
    )
    parser.add_argument(
        "--include-test", action="store_true", help="with --account, also trust the account's test CA"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Load the evidence and the trust material, run every check, print them, exit 0 or 1."""
    if args.include_test and not args.account:
        raise UsageError("--include-test goes with --account (a --ca file trusts whatever it holds).")
    check_readable(args.file)
    signature_path, kind = _signature_file(args)
    data = read_bytes(signature_path)
    trusted = _trust(args, ctx)
    try:
        evidence = _evidence(kind, data)
    except (bundle.BundleError, cms.CmsError, ValueError) as exc:
        checks = [verify.Check("format", False, f"{signature_path} is not a valid {kind}: {exc}")]
    else:
        checks = [verify.Check("format", True, f"{signature_path} ({kind})")]
        checks += verify.verify(args.file, evidence, trusted)
    rows = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
    verified = all(c.ok for c in checks)
    if ctx.json:
        print_json({"file": str(args.file), "signature": str(signature_path), "verified": verified, "checks": rows})
    else:
        print(render_table(COLUMNS, rows))
    if not verified:
        failed = ", ".join(c.name for c in checks if not c.ok)
        raise VerificationFailed(f"{args.file}: verification failed ({failed}).")
    if not ctx.json:
        print(f"Verified: {args.file}")
    return 0


def _signature_file(args: argparse.Namespace) -> tuple[Path, str]:
    if args.bundle is not None:
        return args.bundle, "bundle"
    if args.cms is not None:
        return args.cms, "cms"
    for suffix, kind in ((bundle.SUFFIX, "bundle"), (cms.SUFFIX, "cms")):
        candidate = args.file.with_name(args.file.name + suffix)
        if candidate.is_file():
            return candidate, kind
    raise UsageError(f"No {args.file.name}{bundle.SUFFIX} or {args.file.name}{cms.SUFFIX}: give --bundle or --cms.")


def _evidence(kind: str, data: bytes) -> verify.Evidence:
    if kind == "bundle":
        return verify.evidence_from_bundle(bundle.Bundle.from_json(data))
    return verify.evidence_from_cms(cms.read(data))


def _trust(args: argparse.Namespace, ctx: Context) -> trust.Trust:
    if args.ca is not None:
        return trust.load_pem_file(args.ca)
    client = ctx.client(authenticated=False)
    try:
        answer = client.call("GET", f"/trust/{segment(args.account)}", authenticated=False)
    except ApiError as exc:
        if exc.code != ApiError.NOT_API:
            raise
        raise NotFoundError(
            f"{client.endpoint} does not publish trust material (GET /api/v1/trust/ACCOUNT_ID): "
            "use --ca with a file from `rotasign ca get`."
        ) from exc
    return trust.from_api(answer, f"account {args.account}", include_test=args.include_test)
