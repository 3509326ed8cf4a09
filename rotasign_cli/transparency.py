"""Verify a rotasign account's transparency log offline, trusting nothing but the account's published log key.

    python -m rotasign_cli.transparency inclusion --trust trust.json --log signatures --proof proof.json \\
        [--entry entry.json]
    python -m rotasign_cli.transparency consistency --trust trust.json --log audit --old old.txt --new new.txt \\
        --proof consistency.json
    python -m rotasign_cli.transparency entries --trust trust.json --log signatures --checkpoint checkpoint.txt \\
        --entries entries.json

`trust.json` is `GET /api/v1/trust/{account_id}` (or any JSON with `log_public_key` and `log_origins`);
proofs and checkpoints are what the log routes return. Everything is checked from the published formats:
checkpoints are C2SP tlog-checkpoints signed as C2SP signed-notes (Ed25519, key name = origin), trees
are RFC 9162 Merkle trees, and a leaf is the RFC 8785 (JCS) canonical JSON of a log entry. Exit status:
0 verified, 1 not verified (the reason is printed), 2 unusable input.

Pure functions over `cryptography` and the standard library, with nothing of the service.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

LOGS = ("signatures", "audit")
ED25519_TYPE = b"\x01"


class VerificationError(Exception):
    """The log does not prove what was asked; the message says which check failed."""


# -- RFC 8785 canonical JSON ------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) bytes of a JSON value as `json.loads` returns it."""
    return _jcs(value).encode("utf-8")


def _jcs(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value) if abs(value) <= 2**53 else _es_number(float(value))
    if isinstance(value, float):
        return _es_number(value)
    if isinstance(value, list):
        return "[" + ",".join(_jcs(item) for item in value) + "]"
    if isinstance(value, dict):
        members = sorted(value.items(), key=lambda member: member[0].encode("utf-16-be"))
        return "{" + ",".join(_jcs(name) + ":" + _jcs(item) for name, item in members) + "}"
    raise VerificationError(f"{type(value).__name__} is not a JSON value")


def _es_number(value: float) -> str:
    """ECMAScript's shortest round-trip form of a double (RFC 8785 3.2.2.3)."""
    if not math.isfinite(value):
        raise VerificationError("JSON has no NaN or Infinity")
    if value == 0:
        return "0"
    text = repr(abs(value))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0").rstrip("0")
    # The position of the decimal point relative to the first significant digit.
    point = len(whole.lstrip("0")) if whole.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    n = point + int(exp or 0)
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if n > 0 else "-") + str(abs(n - 1))
    return ("-" if value < 0 else "") + out


# -- RFC 9162 Merkle trees ---------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (RFC 9162 2.1.1), level by level."""
    if not leaf_hashes:
        return hashlib.sha256(b"").digest()
    level = list(leaf_hashes)
    while len(level) > 1:
        # An odd node at the end moves up unchanged: the same tree as the RFC's largest-power-of-two split.
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); raises VerificationError for a malformed proof."""
    if not 0 <= index < size:
        raise VerificationError("the leaf index is outside the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise VerificationError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("the inclusion proof is too short")
    return r


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> None:
    """Check that the tree of `new_size` extends the one of `old_size` (RFC 9162 2.1.4.2); raises VerificationError."""
    if not 0 <= old_size <= new_size:
        raise VerificationError("the older tree is larger than the newer one")
    if old_size == new_size:
        if path or old_root != new_root:
            raise VerificationError("two trees of the same size have different roots")
        return
    if old_size == 0:
        if path:
            raise VerificationError("a consistency proof from the empty tree is empty")
        return
    proof = list(path)
    if not proof:
        raise VerificationError("the consistency proof is empty")
    if old_size & (old_size - 1) == 0:
        proof.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise VerificationError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise VerificationError("the consistency proof does not connect the two checkpoints")


# -- C2SP signed checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogKey:
    """A tree's origin and the Ed25519 key that signs its checkpoints (C2SP note key name = origin)."""

    origin: str
    public_key: ed25519.Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        """The 32-byte public key."""
        return self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        """SHA-256(key name || 0x0A || 0x01 || public key)[:4]."""
        return hashlib.sha256(self.origin.encode() + b"\n" + ED25519_TYPE + self.raw).digest()[:4]

    @classmethod
    def from_trust(cls, trust: dict[str, Any], log: str) -> LogKey:
        """From the account's trust material (`log_public_key` PEM and `log_origins`)."""
        try:
            public = serialization.load_pem_public_key(str(trust["log_public_key"]).encode())
            name = str(trust["log_origins"][log])
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"the trust material has no usable log key for the {log} log") from exc
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise VerificationError("the log key is not an Ed25519 key")
        return cls(name, public)


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: its origin, tree size and root hash."""

    origin: str
    size: int
    root: bytes


def verify_checkpoint(text: str, key: LogKey) -> Checkpoint:
    """Check a signed checkpoint against the log key and parse it; raises VerificationError."""
    if not text.endswith("\n") or "\n\n" not in text:
        raise VerificationError("the checkpoint is not a signed note")
    split = text.rindex("\n\n")
    body, signatures = text[:split + 1], text[split + 2:]
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise VerificationError("the checkpoint holds control characters")
    verified = False
    for line in signatures.splitlines():
        prefix = f"\u2014 {key.origin} "
        if not line.startswith(prefix):
            continue
        try:
            blob = base64.b64decode(line[len(prefix):], validate=True)
        except (binascii.Error, ValueError):
            raise VerificationError("a signature line is not base64") from None
        if blob[:4] != key.key_id:
            continue  # another key with the same name: ignored, as the signed-note spec requires
        try:
            key.public_key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise VerificationError("the checkpoint's signature does not verify with the account's log key") from None
        verified = True
    if not verified:
        raise VerificationError("the checkpoint carries no signature by the account's log key")
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or lines[0] != key.origin:
        raise VerificationError(f"the checkpoint is not for {key.origin}")
    size_text, root_text = lines[1], lines[2]
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise VerificationError("the checkpoint's tree size is malformed")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("the checkpoint's root hash is not base64") from None
    if len(root) != 32:
        raise VerificationError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(lines[0], int(size_text), root)


# -- what the commands check ------------------------------------------------------------------------------


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not base64") from None


def _hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise VerificationError("hashes must be a list")
    out = [_b64(value, "a proof hash") for value in values]
    if any(len(h) != 32 for h in out):
        raise VerificationError("a proof hash is not 32 bytes")
    return out


def verify_inclusion(proof: dict[str, Any], key: LogKey, entry: dict[str, Any] | None = None) -> Checkpoint:
    """Check an inclusion proof (`{leaf_index, tree_size, leaf_data, hashes, checkpoint}`) and its checkpoint.

    With `entry` (the entry as the API returned it), also check that the proven leaf is that entry.
    Raises VerificationError.
    """
    checkpoint = verify_checkpoint(str(proof.get("checkpoint", "")), key)
    data = _b64(proof.get("leaf_data"), "leaf_data")
    if entry is not None and canonical_json(entry) != data:
        raise VerificationError("the proven leaf is not this entry")
    index, size = proof.get("leaf_index"), proof.get("tree_size")
    if not isinstance(index, int) or not isinstance(size, int) or size != checkpoint.size:
        raise VerificationError("the proof is not for the checkpoint's tree size")
    if root_from_inclusion(leaf_hash(data), index, size, _hashes(proof.get("hashes"))) != checkpoint.root:
        raise VerificationError("the inclusion proof does not lead to the checkpoint's root")
    return checkpoint


def verify_checkpoints(old_text: str, new_text: str, proof: dict[str, Any], key: LogKey
                       ) -> tuple[Checkpoint, Checkpoint]:
    """Check two signed checkpoints and the consistency proof between them; raises VerificationError."""
    old, new = verify_checkpoint(old_text, key), verify_checkpoint(new_text, key)
    if proof.get("from", old.size) != old.size or proof.get("to", new.size) != new.size:
        raise VerificationError("the consistency proof is for other tree sizes")
    verify_consistency(old.size, new.size, old.root, new.root, _hashes(proof.get("hashes")))
    return old, new


def entry_key(entry: dict[str, Any]) -> tuple[datetime, str]:
    """Where an entry sits in its tree: its time to the millisecond (`signed_at` or `at`), then its id."""
    raw = entry.get("signed_at", entry.get("at"))
    try:
        at = datetime.fromisoformat(str(raw).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise VerificationError(f"entry {entry.get('id')!r} has no readable time") from None
    return at.replace(microsecond=at.microsecond // 1000 * 1000), str(entry.get("id", ""))


def verify_entries(entries: Sequence[dict[str, Any]], checkpoint_text: str, key: LogKey) -> Checkpoint:
    """Rebuild the tree from every entry of the log and compare it with a signed checkpoint.

    The tree holds the oldest `size` entries in key order, so a deleted, altered, reordered or added
    entry among them changes the root. Raises VerificationError.
    """
    checkpoint = verify_checkpoint(checkpoint_text, key)
    ordered = sorted(entries, key=entry_key)
    if len(ordered) < checkpoint.size:
        raise VerificationError(f"the checkpoint covers {checkpoint.size} entries but only {len(ordered)} were given")
    leaves = [leaf_hash(canonical_json(entry)) for entry in ordered[:checkpoint.size]]
    if merkle_root(leaves) != checkpoint.root:
        raise VerificationError("the entries do not rebuild the checkpoint's tree")
    return checkpoint


# -- command line ---------------------------------------------------------------------------------------------


def _load(path: str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rotasign_cli.transparency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("inclusion", "an entry's inclusion in a signed checkpoint"),
                            ("consistency", "that a newer checkpoint extends an older one"),
                            ("entries", "that a full list of entries rebuilds a signed checkpoint")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--trust", required=True, help="the account's trust material (JSON)")
        sub.add_argument("--log", required=True, choices=LOGS)
    commands.choices["inclusion"].add_argument("--proof", required=True, help="GET .../{id}/proof (JSON)")
    commands.choices["inclusion"].add_argument("--entry", help="the entry as GET .../{id} returned it (JSON)")
    commands.choices["consistency"].add_argument("--old", required=True, help="the older checkpoint (text)")
    commands.choices["consistency"].add_argument("--new", required=True, help="the newer checkpoint (text)")
    commands.choices["consistency"].add_argument("--proof", required=True, help="GET .../consistency (JSON)")
    commands.choices["entries"].add_argument("--checkpoint", required=True, help="a checkpoint (text)")
    commands.choices["entries"].add_argument("--entries", required=True, help="a JSON list of entries, any order")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one check; prints `OK: ...` (exit 0) or `FAILED: ...` (exit 1)."""
    args = _parser().parse_args(argv)
    try:
        key = LogKey.from_trust(_load(args.trust), args.log)
        if args.command == "inclusion":
            proof = _load(args.proof)
            entry = _load(args.entry) if args.entry else None
            checkpoint = verify_inclusion(proof, key, entry)
            what = f"entry {entry['id']}" if entry else "the leaf"
            print(f"OK: {what} is leaf {proof['leaf_index']} of {checkpoint.size} in {checkpoint.origin}")
        elif args.command == "consistency":
            old, new = verify_checkpoints(Path(args.old).read_text(encoding="utf-8"),
                                          Path(args.new).read_text(encoding="utf-8"), _load(args.proof), key)
            print(f"OK: {new.origin} at size {new.size} extends size {old.size}")
        else:
            checkpoint = verify_entries(_load(args.entries), Path(args.checkpoint).read_text(encoding="utf-8"), key)
            print(f"OK: the first {checkpoint.size} entries rebuild {checkpoint.origin}")
    except VerificationError as exc:
        print(f"FAILED: {exc}")
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
