"""RFC 9162 trees kept as C2SP tiles: roots and proofs checked against the RFC's recursive definitions."""

from __future__ import annotations

import hashlib
import random

import pytest

from chalicelib.domain.merkle import (
    EMPTY_ROOT,
    MissingTile,
    TileSet,
    consistency_proof,
    edge_tiles,
    inclusion_proof,
    leaf_hash,
    node_hash,
)
from tests.support import tlog

LEAVES = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1100)]


def grown(size: int, step: int = 1) -> TileSet:
    tiles = TileSet()
    for i in range(0, size, step):
        tiles.append(LEAVES[i:min(i + step, size)])
    return tiles


def test_hashing_is_rfc_9162() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == TileSet().root()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 255, 256, 257, 511, 512, 513, 767, 1024, 1025, 1100])
def test_roots_and_every_proof_match_the_rfc(size: int) -> None:
    tiles = grown(size, step=37)
    leaves = LEAVES[:size]
    assert tiles.root() == tlog.mth(leaves)
    for index in sorted({0, size // 2, size - 1, *random.Random(size).sample(range(size), min(size, 20))}):
        path = inclusion_proof(tiles, index, size)
        assert tlog.root_from_path(leaves[index], index, size, path) == tlog.mth(leaves)
    olds = {0, 1, size // 3, size - 1, size, *random.Random(-size).sample(range(1, size + 1), min(size, 10))}
    for old in sorted(olds):
        proof = consistency_proof(tiles, old, size)
        if old in (0, size):
            assert proof == []
        else:
            assert tlog.roots_from_consistency(tlog.mth(leaves[:old]), old, size, proof) == (
                tlog.mth(leaves[:old]), tlog.mth(leaves))


def test_tiles_are_laid_out_as_c2sp_tlog_tiles() -> None:
    # The spec's example: 70,000 leaves are 273 full level-0 tiles, a level-0 tile of width 112, one full
    # level-1 tile, a level-1 tile of width 17 and a level-2 tile of width 1.
    assert edge_tiles(70_000) == {(0, 273): 112, (1, 1): 17, (2, 0): 1}
    assert edge_tiles(256) == {(1, 0): 1}
    tiles = grown(1100, step=100)
    assert sorted(tiles.tiles) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]
    assert tiles.width((0, 4)) == 1100 - 1024 and tiles.width((1, 0)) == 4
    # Level 1 holds the roots of the full level-0 tiles.
    assert bytes(tiles.tiles[(1, 0)][32:64]) == tlog.mth(LEAVES[256:512])


def test_appending_needs_only_the_right_edge() -> None:
    full = grown(1100)
    edge = {key: bytes(full.tiles[key])[:width * 32] for key, width in edge_tiles(1000).items()}
    resumed = TileSet(1000, edge)
    resumed.append(LEAVES[1000:1100])
    assert resumed.root() == full.root()
    with pytest.raises(MissingTile):
        TileSet(1000, {}).append(LEAVES[:1])
    with pytest.raises(ValueError):
        inclusion_proof(full, 1100, 1100)
