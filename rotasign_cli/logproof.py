"""Inclusion proofs of signatures in the account's transparency log: the proof file, and the check of one.

A proof is `GET /api/v1/signature-logs/{id}/proof` (`{leaf_index, tree_size, leaf_data, hashes,
checkpoint}`), which needs a key with `view_audit_log`. Whoever has one saves it beside the bundle
(`rotasign logs proof --bundle`), as `FILE.rsig.proof.json`, and hands it on with the file and bundle:
the proof is checked offline against the account's log key, so a third party needs neither a key nor
the service. The proven leaf is the log entry itself, so the check also shows that the entry is the
signature being verified.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from rotasign_cli import bundle, transparency
from rotasign_cli.errors import UsageError
from rotasign_cli.files import read_bytes, write_atomically
from rotasign_cli.verify import Check

MEDIA_TYPE = "application/vnd.rotasign.log-proof+json;version=1"
SUFFIX = ".rsig.proof.json"


def path_for_file(signed_file: Path) -> Path:
    """Where the proof of FILE's signature lies by default: `FILE.rsig.proof.json`."""
    return signed_file.with_name(signed_file.name + SUFFIX)


def path_for_bundle(bundle_path: Path) -> Path:
    """`X.rsig.proof.json` for the bundle `X.rsig.json` (`B.proof.json` for a bundle named otherwise)."""
    name = bundle_path.name
    if name.endswith(bundle.SUFFIX):
        return bundle_path.with_name(name[: -len(bundle.SUFFIX)] + SUFFIX)
    return bundle_path.with_name(name + ".proof.json")


def document(proof: dict[str, Any], *, log: str, entry_id: str, account_id: str | None) -> dict[str, Any]:
    """The API's proof with what it is a proof of (extra fields the offline verifier ignores)."""
    return {"media_type": MEDIA_TYPE, "log": log, "entry_id": entry_id, "account_id": account_id, **proof}


def save(path: Path, proof: dict[str, Any], *, log: str, entry_id: str, account_id: str | None) -> None:
    """Write the proof's `document`."""
    text = json.dumps(document(proof, log=log, entry_id=entry_id, account_id=account_id), indent=2, sort_keys=True)
    write_atomically(path, (text + "\n").encode("utf-8"))


def load(path: Path) -> dict[str, Any]:
    """A saved proof (or the API's answer saved as is); raises UsageError when it is not a proof."""
    try:
        document = json.loads(read_bytes(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not JSON (expected a proof from `rotasign logs proof`).") from exc
    if not isinstance(document, dict) or "checkpoint" not in document or "leaf_data" not in document:
        raise UsageError(f"{path}: not an inclusion proof (expected one from `rotasign logs proof`).")
    return document


def proven_entry(proof: dict[str, Any]) -> dict[str, Any]:
    """The log entry a proof's leaf holds; raises VerificationError when it is not one."""
    try:
        entry = json.loads(base64.b64decode(str(proof.get("leaf_data")), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise transparency.VerificationError("the proven leaf is not a log entry") from None
    if not isinstance(entry, dict):
        raise transparency.VerificationError("the proven leaf is not a log entry")
    return entry


def check_signature(proof: dict[str, Any], trust_answer: dict[str, Any], signature: bytes,
                    entry_id: str | None) -> Check:
    """The `log` check: the proof leads to a checkpoint signed by the account's log key, and its leaf is the
    successful signature-log entry of `signature` (and, when the bundle names one, the entry `entry_id`)."""
    try:
        key = transparency.LogKey.from_trust(trust_answer, "signatures")
        checkpoint = transparency.verify_inclusion(proof, key)
        entry = proven_entry(proof)
    except transparency.VerificationError as exc:
        return Check("log", False, str(exc))
    if entry_id is not None and entry.get("id") != entry_id:
        return Check("log", False, f"the proof is of entry {entry.get('id')}, not of {entry_id}")
    if entry.get("status") != "success" or entry.get("signature") != base64.b64encode(signature).decode():
        return Check("log", False, f"the proven entry {entry.get('id')} is not this signature")
    return Check("log", True, f"entry {entry.get('id')} is leaf {proof.get('leaf_index')} of {checkpoint.size} "
                              f"in a checkpoint of {checkpoint.origin} signed by the account's log key")
