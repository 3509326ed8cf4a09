"""Reading the transparency log: the latest signed checkpoints, inclusion proofs of entries, consistency proofs.

Proofs are computed from the stored tiles: a dry run of the proof records which tiles it needs, one
BatchGetItem fetches them, and the proof is computed from them (no entry is read but the one proven).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from chalicelib.domain.identity import Principal
from chalicelib.domain.jcs import canonical
from chalicelib.domain.merkle import (
    HASH_SIZE,
    MissingTile,
    Nodes,
    TileKey,
    TileSet,
    consistency_proof,
    inclusion_proof,
    tile_of,
)
from chalicelib.domain.transparency import TreeState
from chalicelib.errors import Conflict, NotFound, StorageUnavailable, ValidationError

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

T = TypeVar("T")


class NotYetInLog(Conflict):
    """The entry exists but no checkpoint covers it yet (checkpoints are made on the quarter-hour schedule)."""

    code = "not_yet_in_log"
    default_message = "The entry is not in a signed checkpoint yet; checkpoints are made every quarter hour."


@dataclass(frozen=True)
class InclusionProof:
    """An entry's RFC 9162 inclusion proof against the latest signed checkpoint."""

    leaf_index: int
    tree_size: int
    leaf_data: bytes
    hashes: list[bytes]
    checkpoint: str


class _Recorder:
    """A stand-in tree that notes which tiles a computation reads."""

    def __init__(self) -> None:
        self.keys: set[TileKey] = set()

    def node(self, level: int, index: int) -> bytes:
        self.keys.add(tile_of(level, index)[0])
        return bytes(HASH_SIZE)


class TransparencyService:
    """GET /{signature,audit}-logs/checkpoint, /{id}/proof and /consistency."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def checkpoint(self, principal: Principal, log: str) -> str:
        """The latest signed checkpoint of one of the caller's trees; raises NotFound before the first."""
        return self._state(principal.account, log).checkpoint

    def proof(self, principal: Principal, log: str, entry_id: str) -> InclusionProof:
        """Inclusion proof of one entry; raises NotFound (no such entry), NotYetInLog."""
        account = principal.account
        store = self.deps.store
        entry = store.signatures.get(account, entry_id) if log == "signatures" else store.audit.get(account, entry_id)
        if entry is None:
            raise NotFound("No such log entry.")
        state = store.trees.state(account, log)
        block = store.trees.leaf_block(account, log, entry.key.sort_key) if state is not None else None
        index = block.index_of(entry.key.sort_key) if block is not None else None
        if state is None or index is None or index >= state.size:
            raise NotYetInLog(details={"id": entry_id})
        hashes = self._with_tiles(account, log, state.size, lambda nodes: inclusion_proof(nodes, index, state.size))
        return InclusionProof(index, state.size, canonical(entry.as_dict()), hashes, state.checkpoint)

    def consistency(self, principal: Principal, log: str, old: int, new: int | None) -> tuple[int, list[bytes]]:
        """Consistency proof between the trees of sizes `old` and `new` (default: the latest size).

        Raises NotFound (no checkpoint yet), ValidationError.
        """
        state = self._state(principal.account, log)
        new = state.size if new is None else new
        if new > state.size:
            raise ValidationError(f"to must not exceed the latest tree size, {state.size}.", details={"field": "to"})
        if old > new:
            raise ValidationError("from must not exceed to.", details={"field": "from"})
        return new, self._with_tiles(principal.account, log, new, lambda nodes: consistency_proof(nodes, old, new))

    def _state(self, account: str, log: str) -> TreeState:
        state = self.deps.store.trees.state(account, log)
        if state is None:
            raise NotFound("This log has no checkpoint yet; checkpoints are made every quarter hour.")
        return state

    def _with_tiles(self, account: str, log: str, size: int, compute: Callable[[Nodes], T]) -> T:
        recorder = _Recorder()
        compute(recorder)
        tiles = self.deps.store.trees.tiles(account, log, recorder.keys)
        try:
            return compute(TileSet(size, tiles))
        except MissingTile as exc:
            raise StorageUnavailable("The transparency log's stored tree is incomplete.") from exc
