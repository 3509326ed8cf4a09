"""An outside verifier of transparency logs, written from the specifications alone (it imports nothing of rotasign).

- RFC 9162 2.1: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), split at the largest
  power of two below n; inclusion and consistency proofs undone by walking the same recursion backwards.
- RFC 8785: for entries made only of strings, integers, booleans, null, lists and objects with ASCII member
  names, canonical JSON is Python's `json.dumps` with sorted keys, no whitespace and no ASCII escaping.
- C2SP signed-note / tlog-checkpoint: text, blank line, `— <name> base64(key ID || Ed25519 signature)`,
  key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]; text = origin, size, base64 root.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript serialization.
RFC8785_NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


def jcs(value: Any) -> bytes:
    """Canonical JSON of a value without floats and with ASCII member names (where RFC 8785 is plain sorting)."""

    def check(v: Any) -> None:
        assert not isinstance(v, float), "this outside JCS handles no floats"
        if isinstance(v, dict):
            assert all(k.isascii() for k in v), "this outside JCS sorts ASCII member names only"
            for item in v.values():
                check(item)
        elif isinstance(v, list):
            for item in v:
                check(item)

    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def tree_order(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries in the order the README gives for leaves: by time (as a time, to the millisecond), then by id."""

    def key(entry: dict[str, Any]) -> tuple[datetime, str]:
        return datetime.fromisoformat(entry.get("signed_at", entry.get("at", "")).replace("Z", "+00:00")), entry["id"]

    return sorted(entries, key=key)


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH over leaf hashes, by its recursive definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def root_from_path(leaf_hash: bytes, m: int, n: int, path: Sequence[bytes]) -> bytes:
    """Undo RFC 9162 PATH(m, D[n]): the root the audit path leads to."""
    if n == 1:
        assert not path, "audit path too long"
        return leaf_hash
    assert path, "audit path too short"
    k = _k(n)
    *rest, last = path
    if m < k:
        return node(root_from_path(leaf_hash, m, k, rest), last)
    return node(last, root_from_path(leaf_hash, m - k, n - k, rest))


def roots_from_consistency(old_root: bytes, m: int, n: int, proof: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Undo RFC 9162 PROOF(m, D[n]): the (old, new) roots the proof leads to."""

    def walk(m: int, n: int, proof: Sequence[bytes], complete: bool) -> tuple[bytes, bytes]:
        if m == n:
            if complete:
                assert not proof, "consistency proof too long"
                return old_root, old_root
            assert len(proof) == 1, "consistency proof has the wrong length"
            return proof[0], proof[0]
        assert proof, "consistency proof too short"
        k = _k(n)
        *rest, last = proof
        if m <= k:
            old, new = walk(m, k, rest, complete)
            return old, node(new, last)
        old, new = walk(m - k, n - k, rest, False)
        return node(last, old), node(last, new)

    return walk(m, n, proof, True)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def open_checkpoint(text: str, origin: str, public_pem: str) -> Checkpoint:
    """Verify a C2SP checkpoint note signed by `public_pem` under key name `origin`; asserts on any failure."""
    key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(origin.encode() + b"\n" + b"\x01" + raw).digest()[:4]
    body, _, signatures = text.rpartition("\n\n")
    body += "\n"
    found = 0
    for line in signatures.splitlines():
        dash, name, blob = line.split(" ")
        assert dash == "\u2014"
        decoded = base64.b64decode(blob)
        if name == origin and decoded[:4] == key_id:
            key.verify(decoded[4:], body.encode())  # raises InvalidSignature
            found += 1
    assert found == 1, "no signature by the log key"
    lines = body.splitlines()
    assert lines[0] == origin and len(lines) == 3
    return Checkpoint(lines[0], int(lines[1]), base64.b64decode(lines[2]))


def check_inclusion(proof: dict[str, Any], entry: dict[str, Any], origin: str, public_pem: str) -> Checkpoint:
    """Verify an API inclusion proof of `entry` against its signed checkpoint; asserts on any failure."""
    checkpoint = open_checkpoint(proof["checkpoint"], origin, public_pem)
    data = base64.b64decode(proof["leaf_data"])
    assert data == jcs(entry), "the proven leaf is not the entry"
    assert proof["tree_size"] == checkpoint.size
    path = [base64.b64decode(h) for h in proof["hashes"]]
    assert root_from_path(leaf(data), proof["leaf_index"], proof["tree_size"], path) == checkpoint.root
    return checkpoint


def check_consistency(old: Checkpoint, new: Checkpoint, hashes: Sequence[str]) -> None:
    """Verify an API consistency proof between two opened checkpoints; asserts on any failure."""
    proof = [base64.b64decode(h) for h in hashes]
    if old.size in (0, new.size):
        assert not proof and (old.size == 0 or old.root == new.root)
        return
    assert roots_from_consistency(old.root, old.size, new.size, proof) == (old.root, new.root)
