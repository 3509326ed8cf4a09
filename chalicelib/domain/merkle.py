"""RFC 9162 Merkle trees kept as C2SP tlog-tiles: hashing, appending, root, inclusion and consistency proofs.

A tree of `size` leaves is stored as tiles: the tile (L, N) holds up to 256 consecutive hashes of level
8·L (level 0: leaf hashes; level 8: roots of full 256-leaf subtrees; ...). Any hash a proof needs is the
root of a complete subtree, computed from at most 128 hashes of one tile, so a proof reads a few tiles
(one or two per 8 levels) and never the leaves. Appending touches only the rightmost tile of each level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

HASH_SIZE = 32
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 2.1.1: the hash of an empty tree

TileKey = tuple[int, int]  # (level L, index N)


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class Nodes(Protocol):
    """Where the roots of complete subtrees come from."""

    def node(self, level: int, index: int) -> bytes:
        """The root of leaves [index·2^level, (index+1)·2^level)."""
        ...


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(nodes: Nodes, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range that RFC 9162's recursion produces (start aligned to its left part)."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return nodes.node(n.bit_length() - 1, start // n)
    k = _split(n)
    return node_hash(subtree_root(nodes, start, start + k), subtree_root(nodes, start + k, end))


def inclusion_proof(nodes: Nodes, index: int, size: int) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[0:size]); raises ValueError when index is not in the tree."""
    if not 0 <= index < size:
        raise ValueError("the leaf is not in a tree of this size")

    def path(m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, start, start + k), subtree_root(nodes, start + k, end)]
        return [*path(m - k, start + k, end), subtree_root(nodes, start, start + k)]

    return path(index, 0, size)


def consistency_proof(nodes: Nodes, old: int, new: int) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(old, D[0:new]); empty when old is 0 or equal to new; raises ValueError if old > new."""
    if not 0 <= old <= new:
        raise ValueError("a tree is only consistent with a tree at least as large")
    if old in (0, new):
        return []

    def subproof(m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [subtree_root(nodes, start, end)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, start, start + k, complete), subtree_root(nodes, start + k, end)]
        return [*subproof(m - k, start + k, end, False), subtree_root(nodes, start, start + k)]

    return subproof(old, 0, new, True)


def tile_of(level: int, index: int) -> tuple[TileKey, int, int]:
    """Which tile holds the hashes a node is made of: (tile key, first position in it, how many)."""
    tile_level, height = divmod(level, TILE_HEIGHT)
    first = index << height
    return (tile_level, first // TILE_WIDTH), first % TILE_WIDTH, 1 << height


def fold(hashes: list[bytes]) -> bytes:
    """The root of a complete subtree given its 2^h bottom hashes."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def edge_tiles(size: int) -> dict[TileKey, int]:
    """The rightmost partial tile of every level of a tree of `size` leaves, with its width (what appending extends)."""
    widths = {}
    level, count = 0, size
    while count > 0:
        if count % TILE_WIDTH:
            widths[(level, count // TILE_WIDTH)] = count % TILE_WIDTH
        level, count = level + 1, count // TILE_WIDTH
    return widths


class MissingTile(KeyError):
    """A node needs a tile that is not loaded; `key` names it."""

    def __init__(self, key: TileKey) -> None:
        super().__init__(key)
        self.key = key


class TileSet:
    """Tiles in memory, addressed as RFC 9162 nodes; appending keeps the tiles of every level up to date."""

    def __init__(self, size: int = 0, tiles: dict[TileKey, bytes] | None = None) -> None:
        self.size = size
        self.tiles: dict[TileKey, bytearray] = {key: bytearray(value) for key, value in (tiles or {}).items()}
        self.changed: set[TileKey] = set()

    def node(self, level: int, index: int) -> bytes:
        """The root of a complete subtree; raises MissingTile when its tile is not loaded."""
        key, first, count = tile_of(level, index)
        tile = self.tiles.get(key)
        if tile is None or len(tile) < (first + count) * HASH_SIZE:
            raise MissingTile(key)
        return fold([bytes(tile[(first + i) * HASH_SIZE:(first + i + 1) * HASH_SIZE]) for i in range(count)])

    def root(self) -> bytes:
        """MTH of the whole tree."""
        return subtree_root(self, 0, self.size)

    def append(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaves (their hashes) on the right; every full tile is hashed into the level above."""
        for value in leaf_hashes:
            level, index = 0, self.size
            self.size += 1
            while True:
                key = (level, index // TILE_WIDTH)
                tile = self.tiles.setdefault(key, bytearray())
                if len(tile) != (index % TILE_WIDTH) * HASH_SIZE:
                    raise MissingTile(key)  # the right edge was not loaded before appending
                tile += value
                self.changed.add(key)
                if len(tile) < TILE_WIDTH * HASH_SIZE:
                    break
                value = fold([bytes(tile[i:i + HASH_SIZE]) for i in range(0, len(tile), HASH_SIZE)])
                level, index = level + 1, index // TILE_WIDTH

    def width(self, key: TileKey) -> int:
        """How many hashes a tile holds."""
        return len(self.tiles.get(key, b"")) // HASH_SIZE

    def full(self, key: TileKey) -> bool:
        """Whether a tile holds all 256 hashes (it never changes again)."""
        return self.width(key) == TILE_WIDTH
