"""The transparency table: each account's trees (state, C2SP tiles, leaf index), written only by the checkpointer.

Items of one tree share the prefix `<log>/`: `<log>/state` (size, root, settled key bound, signed
checkpoint), `<log>/tile/<L>/<N>` (up to 256 hashes) and `<log>/leaves/<key of its first leaf>` (the log
keys of one level-0 tile's leaves). Full tiles and full leaf blocks never change once written; the
rightmost ones grow, and a write never shrinks them, so a slow or retried run cannot undo a faster one.
The state is the commit point: nothing past its `size` counts until it is written.
"""

from __future__ import annotations

from collections.abc import Iterable

from pynamodb.exceptions import PutError

from chalicelib.domain.merkle import HASH_SIZE, TileKey
from chalicelib.domain.transparency import LeafBlock, TreeState
from chalicelib.storage.errors import error_code, guarded
from chalicelib.storage.tables import TransparencyModel

BATCH_GET = 100  # BatchGetItem takes at most 100 keys


def _state_item(log: str) -> str:
    return f"{log}/state"


def _tile_item(log: str, key: TileKey) -> str:
    # Zero-padded so a tree's tiles sort by level and index.
    return f"{log}/tile/{key[0]}/{key[1]:012d}"


def _leaves_prefix(log: str) -> str:
    return f"{log}/leaves/"


def _tile_row(account: str, log: str, key: TileKey, hashes: bytes) -> TransparencyModel:
    return TransparencyModel(account, _tile_item(log, key), hashes=hashes, width=len(hashes) // HASH_SIZE)


def _leaves_row(account: str, log: str, block: LeafBlock) -> TransparencyModel:
    return TransparencyModel(account, _leaves_prefix(log) + block.keys[0], start=block.start, keys=list(block.keys),
                             width=len(block.keys))


def _block(row: TransparencyModel) -> LeafBlock:
    return LeafBlock(int(row.start or 0), tuple(str(key) for key in row.keys or ()))


def _never_shrinks(width: int) -> object:
    return TransparencyModel.item.does_not_exist() | (TransparencyModel.width <= width)


class TreeStore:
    """Reads and writes of the transparency table."""

    @guarded
    def state(self, account: str, log: str) -> TreeState | None:
        """The committed state of a tree (read consistently), or None before its first checkpoint."""
        try:
            row = TransparencyModel.get(account, _state_item(log), consistent_read=True)
        except TransparencyModel.DoesNotExist:
            return None
        return TreeState(int(row.size or 0), bytes(row.root or b""), row.settled or "", row.checkpoint or "",
                         row.updated_at or "", row.edge_key)

    @guarded
    def tiles(self, account: str, log: str, keys: Iterable[TileKey]) -> dict[TileKey, bytes]:
        """The stored hashes of some tiles (missing tiles are left out), in BatchGetItems of 100."""
        wanted = {_tile_item(log, key): key for key in keys}
        found: dict[TileKey, bytes] = {}
        names = list(wanted)
        for i in range(0, len(names), BATCH_GET):
            for row in TransparencyModel.batch_get([(account, name) for name in names[i:i + BATCH_GET]],
                                                   consistent_read=True):
                found[wanted[row.item]] = bytes(row.hashes or b"")
        return found

    @guarded
    def edge_block(self, account: str, log: str, first_key: str) -> LeafBlock | None:
        """The leaf block that starts with `first_key` (the one a tree is filling), read consistently."""
        try:
            row = TransparencyModel.get(account, _leaves_prefix(log) + first_key, consistent_read=True)
        except TransparencyModel.DoesNotExist:
            return None
        return _block(row)

    @guarded
    def leaf_block(self, account: str, log: str, key: str) -> LeafBlock | None:
        """The leaf block that would hold an entry key: the last block starting at or before it."""
        prefix = _leaves_prefix(log)
        rows = TransparencyModel.query(account, TransparencyModel.item.between(prefix, prefix + key),
                                       scan_index_forward=False, limit=1, consistent_read=True)
        row = next(iter(rows), None)
        if row is None:
            return None
        return _block(row)

    @guarded
    def write_full(self, account: str, log: str, tiles: dict[TileKey, bytes], blocks: list[LeafBlock]) -> None:
        """Write tiles and leaf blocks that are full (their content is final) in BatchWriteItems."""
        with TransparencyModel.batch_write() as batch:
            for key, hashes in tiles.items():
                batch.save(_tile_row(account, log, key, hashes))
            for block in blocks:
                batch.save(_leaves_row(account, log, block))

    @guarded
    def write_tile(self, account: str, log: str, key: TileKey, hashes: bytes) -> None:
        """Write a growing tile unless a wider one is already stored."""
        self._put_growing(_tile_row(account, log, key, hashes))

    @guarded
    def write_leaves(self, account: str, log: str, block: LeafBlock) -> None:
        """Write a growing leaf block unless a longer one is already stored."""
        self._put_growing(_leaves_row(account, log, block))

    @staticmethod
    def _put_growing(row: TransparencyModel) -> None:
        try:
            row.save(condition=_never_shrinks(int(row.width or 0)))  # type: ignore[arg-type]
        except PutError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            # Another run stored a longer version of the same hashes: keep it.

    @guarded
    def commit(self, account: str, log: str, seen: TreeState | None, state: TreeState) -> bool:
        """Store a new state if the tree is still at the size this run started from; False when it is not."""
        condition = (TransparencyModel.item.does_not_exist() if seen is None
                     else TransparencyModel.size == seen.size)
        row = TransparencyModel(account, _state_item(log), size=state.size, root=state.root, settled=state.settled,
                                edge_key=state.edge_key, checkpoint=state.checkpoint, updated_at=state.updated_at)
        try:
            row.save(condition=condition)
        except PutError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True
