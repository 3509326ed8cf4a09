"""The transparency log of an account: its two trees, their stored state and their signed checkpoints.

Each account has one tree over its signature log and one over its audit log. Leaf i of a tree is the
i-th entry of that log in key order (`<at, to the millisecond>#<ulid>`); its data is the RFC 8785
canonical JSON of the entry as the API returns it. A checkpoint is a C2SP tlog-checkpoint signed as a
C2SP signed-note with the account's Ed25519 log key, whose key name is the tree's origin.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from dataclasses import dataclass

LOGS: tuple[str, ...] = ("signatures", "audit")
ED25519_SIGNATURE_TYPE = b"\x01"  # C2SP signed-note's identifier byte for Ed25519
# Where the tree starts reading: every `at#ulid` key sorts after it (a key condition cannot take "").
START_KEY = "0"


def origin(account_id: str, log: str) -> str:
    """`rotasign/<account id>/signatures` or `.../audit`: the checkpoint origin and the note key name."""
    if log not in LOGS:
        raise ValueError(f"unknown log {log!r}")
    return f"rotasign/{account_id}/{log}"


@dataclass(frozen=True)
class TreeState:
    """What a tree has committed: its size and root, the note that signs them, and how far it has read.

    `settled` is a key bound: every entry whose key sorts below it is in the tree, and none above it is.
    `edge_key` is the first key of the leaf block the next leaf joins (None when that block starts anew).
    """

    size: int
    root: bytes
    settled: str
    checkpoint: str
    updated_at: str
    edge_key: str | None = None


@dataclass(frozen=True)
class LeafBlock:
    """The log keys of leaves [start, start + len(keys)): one block per level-0 tile, so one read finds a leaf."""

    start: int
    keys: tuple[str, ...]

    def index_of(self, key: str) -> int | None:
        """The leaf index of an entry key, if this block holds it."""
        position = bisect.bisect_left(self.keys, key)
        if position < len(self.keys) and self.keys[position] == key:
            return self.start + position
        return None


def checkpoint_body(origin_line: str, size: int, root: bytes) -> str:
    """The note text of a C2SP tlog-checkpoint: origin, decimal size, base64 root, each ending in a newline."""
    return f"{origin_line}\n{size}\n{base64.b64encode(root).decode()}\n"


def note_key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_SIGNATURE_TYPE + public_key).digest()[:4]


def signed_note(body: str, name: str, public_key: bytes, signature: bytes) -> str:
    """The note text, a blank line and one signature line: em dash, space, key name, space, base64(key ID || sig)."""
    line = base64.b64encode(note_key_id(name, public_key) + signature).decode()
    return f"{body}\n\u2014 {name} {line}\n"


def verifier_key(name: str, public_key: bytes) -> str:
    """The `<name>+<hex key ID>+<base64(0x01 || public key)>` form note verifiers (e.g. Go's sumdb/note) take."""
    encoded = base64.b64encode(ED25519_SIGNATURE_TYPE + public_key).decode()
    return f"{name}+{note_key_id(name, public_key).hex()}+{encoded}"
