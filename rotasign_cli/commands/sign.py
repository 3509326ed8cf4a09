"""`rotasign sign` (files, hashed locally while streaming; signatures beside them or inside them) and `sign-hash`."""

from __future__ import annotations

import argparse
import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rotasign_cli import __version__, artifacts, authenticode, embedded, jar
from rotasign_cli.algorithms import DIGEST_SIZES, HASH_ALGORITHMS, SIG_ALGS, default_hash_algorithm
from rotasign_cli.arguments import add_connection_options, add_json_option, digest_value, example, reject_unless
from rotasign_cli.client import Client, segment
from rotasign_cli.cms import ED25519_HASH
from rotasign_cli.context import Context
from rotasign_cli.errors import ApiError, CliError, UsageError
from rotasign_cli.files import check_readable, write_atomically
from rotasign_cli.hashing import hash_file
from rotasign_cli.output import print_json
from rotasign_cli.progress import Progress

TOOL = f"rotasign-cli/{__version__}"
BATCH_SIZE = 100  # the most items one batch sign request may carry
FORMATS = (*artifacts.FORMATS, *embedded.FORMATS)


def register(sub: Any) -> None:
    """Add `sign` and `sign-hash`."""
    parser = sub.add_parser(
        "sign",
        help="sign files (hashed here; the service never sees them)",
        description=(
            "Hash each FILE locally while streaming it (memory stays flat for any size), have the service "
            "sign the digests (up to 100 per request), and write beside each file:\n"
            "  bundle  FILE.rsig.json  digest, signature, certificate and chain, time-stamp token, log id\n"
            "  cms     FILE.p7s        detached CMS/PKCS#7 (openssl cms -verify -binary -inform DER ...)\n"
            "  raw     FILE.sig (signature), FILE.sig.pem (certificate and chain), FILE.sig.tst (RFC 3161 token)\n"
            "or sign inside each file and write it as NAME.signed.EXT beside it (DIR/NAME.EXT with --output-dir, "
            "over it with --in-place):\n"
            "  authenticode  PE files (.exe, .dll, .sys): Authenticode with an RFC 3161 time-stamp (RSA, ECDSA)\n"
            "  jar           JARs (.jar, .war, .ear): signed as jarsigner signs them, with the time-stamp\n"
            "A progress bar is drawn on a terminal."
        ),
        epilog=example(
            "rotasign sign --keypair release --format cms dist/*.tar.gz",
            "rotasign sign --keypair release --format authenticode --program-name 'Acme App' dist/app.exe",
        ),
    )
    add_connection_options(parser)
    add_json_option(parser)
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path)
    _signing_options(parser)
    parser.add_argument(
        "--format", choices=FORMATS, default="bundle", help="what to write per file (default: bundle)"
    )
    outputs = parser.add_mutually_exclusive_group()
    outputs.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="write the signature files (or signed copies) into DIR"
    )
    outputs.add_argument(
        "--in-place", action="store_true", help="authenticode, jar: replace each file with its signed copy"
    )
    parser.add_argument(
        "--program-name", metavar="TEXT", help="authenticode: the program's name that Windows shows (SpcSpOpusInfo)"
    )
    parser.add_argument("--program-url", metavar="URL", help="authenticode: a URL about the program (SpcSpOpusInfo)")
    parser.add_argument(
        "--signer-name", metavar="NAME",
        help="jar: the signer's file names META-INF/NAME.SF and .RSA/.EC, 1-8 of A-Z 0-9 _ - "
        "(default: from the keypair's alias, as jarsigner names a signer after its key alias)",
    )
    parser.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    parser.set_defaults(func=sign)

    digest_parser = sub.add_parser(
        "sign-hash",
        help="sign a digest computed elsewhere",
        description="Sign a digest (hex or base64) and print the signature; --json prints the whole answer.",
        epilog=example("rotasign sign-hash --keypair release --digest $(sha256sum app.tar.gz | cut -d' ' -f1)"),
    )
    add_connection_options(digest_parser)
    add_json_option(digest_parser)
    digest_parser.add_argument(
        "--digest", required=True, type=digest_value,
        help="the digest, hex or base64 (its length names the hash algorithm unless --hash-algorithm is given)",
    )
    _signing_options(digest_parser)
    digest_parser.add_argument("--file-name", help="a file name to record in the signature log")
    digest_parser.set_defaults(func=sign_hash)


def _signing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keypair", "-k", required=True, metavar="KEYPAIR", help="alias or id of the keypair")
    parser.add_argument(
        "--hash-algorithm", choices=HASH_ALGORITHMS,
        help="default: SHA-384 for P-384, SHA-512 for P-521 and for Ed25519 CMS and JAR, else SHA-256",
    )
    parser.add_argument(
        "--sig-alg", choices=sorted(SIG_ALGS), metavar="SIG_ALG",
        help="default by key; one of " + ", ".join(sorted(SIG_ALGS)),
    )


def _check_choice(keypair: dict[str, Any] | None, hash_algorithm: str, sig_alg: str | None) -> None:
    if sig_alg is None or keypair is None:
        return
    chosen = SIG_ALGS[sig_alg]
    if chosen.key_algorithm != keypair.get("algorithm"):
        raise UsageError(f"--sig-alg {sig_alg} does not fit the keypair's {keypair.get('algorithm')} key.")
    if chosen.hash_algorithm not in (None, hash_algorithm):
        raise UsageError(f"--sig-alg {sig_alg} does not match --hash-algorithm {hash_algorithm}.")


def sign(args: argparse.Namespace, ctx: Context) -> int:
    """Hash, sign in batches, write the outputs; one line (or one JSON item) per file."""
    fmt = args.format
    embedding = fmt in embedded.FORMATS
    _check_format_options(args, fmt)
    files = [Path(p) for p in args.files]
    sizes = [check_readable(path) for path in files]
    output_dir: Path | None = args.output_dir
    if output_dir is not None and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: not a directory.")
    if embedding:
        for path in files:  # before anything is signed
            with _refusing(path, fmt):
                embedded.check(path, fmt)
        targets = [_signed_copy(path, output_dir, in_place=args.in_place) for path in files]
    else:
        targets = [artifacts.output_base(path, output_dir) for path in files]
    replaced = [path for path, target in zip(files, targets, strict=True) if target.resolve() == path.resolve()]
    if embedding and replaced and not args.in_place:
        raise UsageError(f"{replaced[0]} would be replaced (--output-dir is its own folder): give --in-place.")
    if len({target.resolve() for target in targets}) != len(targets):
        kind = "signed file" if embedding else "signature file"
        raise UsageError(f"Two FILEs would write the same {kind} (a file twice, or one name in --output-dir).")

    client = ctx.client()
    keypair = _keypair(client, args.keypair)
    hash_algorithm = _hash_algorithm(args.hash_algorithm, keypair, fmt)
    _check_choice(keypair, hash_algorithm, args.sig_alg)
    _check_key_for_format(keypair, fmt)
    signer_name = _signer_name(args, keypair) if fmt == "jar" else None
    options = embedded.Options(args.program_name, args.program_url, signer_name)
    account_id = _account_id(client) if fmt == "bundle" else None
    keypair_ref = str(keypair["id"]) if keypair is not None else args.keypair

    progress = Progress.for_terminal(sum(sizes), len(files), wanted=not args.no_progress)
    report: list[dict[str, Any]] = []
    try:
        for chunk in _chunks(list(zip(files, targets, strict=True)), BATCH_SIZE):
            now = datetime.now(UTC)
            prepared = [
                _prepare(path, fmt, hash_algorithm, args.sig_alg, now, options, progress) for path, _ in chunk
            ]
            answers = _sign_batch(client, keypair_ref, [p.request for p in prepared])
            for (path, target), item, answer in zip(chunk, prepared, answers, strict=True):
                if isinstance(item, embedded.Job):
                    written = _write_signed_copy(item, answer, target, now)
                else:
                    written = _write(item, answer, target, fmt, account_id)
                progress.add_files(1)
                line = _line(path, written, answer)
                report.append(_entry(path, written, item, answer, fmt))
                if not ctx.json:
                    progress.clear()
                    print(line, flush=True)
    finally:
        progress.clear()
    if ctx.json:
        print_json(report)
    return 0


def _check_format_options(args: argparse.Namespace, fmt: str) -> None:
    """Flags that belong to other formats are errors, not ignored."""
    if fmt not in embedded.FORMATS:
        reject_unless([("--in-place", args.in_place)], "--format authenticode or jar")
    if fmt != "authenticode":
        reject_unless(
            [("--program-name", args.program_name is not None), ("--program-url", args.program_url is not None)],
            "--format authenticode",
        )
    if fmt != "jar":
        reject_unless([("--signer-name", args.signer_name is not None)], "--format jar")
    if fmt == "authenticode" and args.sig_alg is not None and SIG_ALGS[args.sig_alg].pss:
        raise UsageError(f"--sig-alg {args.sig_alg}: {authenticode.NO_PSS}.")
    for flag, value in (("--program-name", args.program_name), ("--program-url", args.program_url)):
        if value is not None and not 0 < len(value) <= authenticode.MAX_OPUS_TEXT:
            raise UsageError(f"{flag} takes 1 to {authenticode.MAX_OPUS_TEXT} characters.")
    if args.program_url is not None and not args.program_url.isascii():
        raise UsageError("--program-url must be ASCII (an IA5String), e.g. https://example.com/app.")
    if args.signer_name is not None:
        try:
            jar.check_signer_name(args.signer_name)
        except ValueError as exc:
            raise UsageError(f"--signer-name {args.signer_name!r}: {exc}.") from exc


@contextmanager
def _refusing(path: Path, fmt: str) -> Iterator[None]:
    """A file that cannot be signed as `fmt`, or read, is a usage error that names it."""
    try:
        yield
    except ValueError as exc:
        raise UsageError(f"{path}: cannot be signed as {fmt}: {_sentence(exc)}") from exc
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}.") from exc


def _sentence(exc: Exception) -> str:
    text = str(exc).rstrip(".")
    return f"{text}."


def _signed_copy(path: Path, output_dir: Path | None, *, in_place: bool) -> Path:
    """Where a file's signed copy goes: over it, into `output_dir` under its name, or beside it as NAME.signed.EXT."""
    if in_place:
        return path
    if output_dir is not None:
        return output_dir / path.name
    return path.with_name(f"{path.stem}.signed{path.suffix}")


def _check_key_for_format(keypair: dict[str, Any] | None, fmt: str) -> None:
    if keypair is None or fmt in ("bundle", "raw"):
        return
    if not keypair.get("certificate"):
        named = {"cms": "CMS", "jar": "a signed JAR"}.get(fmt, fmt.capitalize())
        raise UsageError(f"Keypair {keypair.get('alias')} has no certificate, which {named} needs: use bundle or raw.")
    if fmt == "authenticode" and keypair.get("algorithm") not in authenticode.KEY_ALGORITHMS:
        raise UsageError(f"Keypair {keypair.get('alias')}: {authenticode.NO_EDDSA}.")


def _signer_name(args: argparse.Namespace, keypair: dict[str, Any] | None) -> str:
    if args.signer_name is not None:
        return jar.check_signer_name(args.signer_name)  # checked with the other flags
    alias = keypair.get("alias") if keypair is not None else None
    return jar.signer_name_from_alias(str(alias or args.keypair))


def _prepare(
    path: Path, fmt: str, hash_algorithm: str, sig_alg: str | None, now: datetime, options: embedded.Options,
    progress: Progress,
) -> artifacts.Prepared | embedded.Job:
    if fmt not in embedded.FORMATS:
        digest = hash_file(path, hash_algorithm, progress.add_bytes)
        return artifacts.prepare(
            path, digest, hash_algorithm=hash_algorithm, fmt=fmt, sig_alg=sig_alg, tool=TOOL, now=now
        )
    with _refusing(path, fmt):
        return embedded.prepare(
            path, fmt, hash_algorithm=hash_algorithm, sig_alg=sig_alg, tool=TOOL, now=now, options=options,
            progress=progress.add_bytes,
        )


def _write_signed_copy(job: embedded.Job, answer: dict[str, Any], target: Path, now: datetime) -> list[Path]:
    try:
        embedded.write(job, answer, target, now=now)
    except (KeyError, ValueError, TypeError) as exc:
        raise CliError(f"{job.path}: the service's answer cannot be written as {job.fmt}: {_sentence(exc)}") from exc
    return [target]


def _keypair(client: Client, ref: str) -> dict[str, Any] | None:
    """The keypair, or None when the key may sign but not view keypairs (a least-privilege CI key)."""
    try:
        keypair: dict[str, Any] = client.call("GET", f"/keypairs/{segment(ref)}")
    except ApiError as exc:
        if exc.status == 403 and exc.code == "forbidden":
            return None
        raise
    return keypair


def _hash_algorithm(chosen: str | None, keypair: dict[str, Any] | None, fmt: str) -> str:
    cms_based = fmt in ("cms", "jar")  # formats whose signer is a CMS SignerInfo, where Ed25519 means SHA-512
    if keypair is None:
        # Unknown key type: SHA-512 suits every key in CMS (Ed25519 requires it), SHA-256 is the API's default.
        return chosen or (ED25519_HASH if cms_based else "SHA-256")
    if cms_based and keypair.get("algorithm") == "EdDSA":
        if chosen not in (None, ED25519_HASH):
            raise UsageError(f"Ed25519 {fmt.upper()} signatures use {ED25519_HASH} (RFC 8419), not {chosen}.")
        return ED25519_HASH
    return chosen or default_hash_algorithm(keypair)


def _account_id(client: Client) -> str | None:
    me = client.call("GET", "/me")
    account = me.get("account") if isinstance(me, dict) else None
    return str(account["id"]) if isinstance(account, dict) and account.get("id") else None


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sign_batch(client: Client, keypair_id: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One request per batch: the single form for one item, `{"items": [...]}` for more."""
    path = f"/keypairs/{segment(keypair_id)}/sign"
    if len(requests) == 1:
        return [client.call("POST", path, requests[0])]
    answer = client.call("POST", path, {"items": requests})
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list) or len(items) != len(requests):
        raise CliError("The service's batch answer does not have one item per file.")
    return items


def _write(
    item: artifacts.Prepared, answer: dict[str, Any], base: Path, fmt: str, account_id: str | None
) -> list[Path]:
    try:
        files = artifacts.render(item, answer, fmt=fmt, account_id=account_id, tool=TOOL)
    except (KeyError, ValueError, TypeError) as exc:
        raise CliError(f"{item.path}: the service's answer cannot be written as {fmt}: {exc}.") from exc
    written = []
    for suffix, data in files.items():
        target = base.with_name(base.name + suffix)
        write_atomically(target, data)
        written.append(target)
    return written


def _line(path: Path, written: list[Path], answer: dict[str, Any]) -> str:
    return (
        f"Signed {path} -> {', '.join(str(p) for p in written)} "
        f"({answer.get('alias')} generation {answer.get('generation')}, {answer.get('sig_alg')}, "
        f"{answer.get('signature_log_id')})"
    )


def _entry(
    path: Path, written: list[Path], item: artifacts.Prepared | embedded.Job, answer: dict[str, Any], fmt: str
) -> dict[str, Any]:
    return {
        "file": str(path),
        "format": fmt,
        "outputs": [str(p) for p in written],
        "hash_algorithm": item.hash_algorithm,
        "digest": base64.b64encode(item.digest).decode("ascii"),
        **{k: answer.get(k) for k in (
            "sig_alg", "keypair_id", "alias", "key_id", "generation", "signature_log_id", "signed_at"
        )},
    }


def sign_hash(args: argparse.Namespace, ctx: Context) -> int:
    """POST one digest; print the signature (or the whole answer with --json)."""
    client = ctx.client()
    by_size = {size: name for name, size in DIGEST_SIZES.items()}
    hash_algorithm = args.hash_algorithm or by_size.get(len(args.digest), "SHA-256")
    if len(args.digest) != DIGEST_SIZES[hash_algorithm]:
        raise UsageError(
            f"--digest has {len(args.digest)} bytes; a {hash_algorithm} digest has {DIGEST_SIZES[hash_algorithm]}."
        )
    request: dict[str, Any] = {
        "hash": base64.b64encode(args.digest).decode("ascii"), "hash_algorithm": hash_algorithm, "tool": TOOL,
    }
    if args.sig_alg:
        request["sig_alg"] = args.sig_alg
    if args.file_name:
        request["file_name"] = args.file_name
    answer = client.call("POST", f"/keypairs/{segment(args.keypair)}/sign", request)
    if ctx.json:
        print_json(answer)
    else:
        print(
            f"{answer.get('signature')}  ({answer.get('alias')} generation {answer.get('generation')}, "
            f"{answer.get('sig_alg')}, {answer.get('signature_log_id')})"
        )
    return 0
