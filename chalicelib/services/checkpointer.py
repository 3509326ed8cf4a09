"""The checkpointer: appends every settled log entry to its account's tree, once, in key order, and signs a checkpoint.

An entry's key is `<at, to the millisecond>#<ulid>`, where `at` is taken before the entry is written, and
a request writes its entries before it ends. So once the clock is `ROTASIGN_MAX_REQUEST_SECONDS` (plus a
clock-skew margin) past a key, no entry with an older key can still appear: the entry is *settled*.
Each run reads the entries whose keys lie between the tree's `settled` bound and the new bound (now -
settle time), oldest first, and appends them in that order. Entries written late by a slow request carry
keys the previous run did not settle yet, so they join the next run; no key range is read twice, so no
entry is appended twice. The tree therefore holds exactly the entries with keys below `settled`, in key
order: anyone with the entries can rebuild it.

A run writes the new tiles and leaf blocks first and the tree's state (size, root, signed checkpoint)
last, on the condition that the size is still the one it started from. A run that fails part way leaves
the state as it was and the next run redoes the same range; two runs at once compute the same hashes,
and the one that commits second finds the size moved and changes nothing.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib import metrics
from chalicelib.clock import rfc3339, rfc3339_ms
from chalicelib.domain.identity import Account
from chalicelib.domain.jcs import canonical
from chalicelib.domain.merkle import TILE_WIDTH, TileSet, edge_tiles, leaf_hash
from chalicelib.domain.transparency import LOGS, START_KEY, LeafBlock, TreeState, origin
from chalicelib.errors import RotasignError, StorageUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chalicelib.domain.logs import AuditEntry, SignatureEntry
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.container import Deps
    from chalicelib.services.log_keys import LogKeys

log = logging.getLogger("rotasign.transparency")
FLUSH_TILES = 50  # full tiles (and their leaf blocks) held before they are written out
ACCOUNT_WORKERS = 8  # accounts checkpointed at once (DynamoDB round trips overlap; HSM calls are serialized)
# Past the last key read: every key that sorts after it sorts after this too (keys have a fixed width).
AFTER = "~"


@dataclass(frozen=True)
class TreeRun:
    """What one run did to one tree."""

    origin: str
    size: int
    appended: int
    committed: bool
    complete: bool = True  # False when the run stopped at its deadline with settled entries left to read


@dataclass
class CheckpointSummary:
    """What one scheduled checkpoint pass did over every account."""

    accounts: int = 0
    appended: int = 0
    checkpoints: int = 0
    incomplete: int = 0
    failures: int = 0
    runs: list[TreeRun] = field(default_factory=list)


class Checkpointer:
    """Grows the accounts' trees from their logs and signs their checkpoints."""

    def __init__(self, deps: Deps, accounts: AccountCache, log_keys: LogKeys) -> None:
        self.deps = deps
        self.accounts = accounts
        self.log_keys = log_keys

    def settled_bound(self, now: datetime) -> str:
        """The key bound below which no entry can still be written at `now`."""
        return rfc3339_ms(now - timedelta(seconds=self.deps.settings.log_settle_seconds))

    def run_account(self, account_id: str, now: datetime, deadline: float | None = None) -> list[TreeRun]:
        """Checkpoint both trees of one account (making its log key first if it has none).

        Raises NotFound, StorageUnavailable, Throttled, HsmUnavailable.
        """
        account = self.log_keys.ensure(self.accounts.get(account_id))
        return [self.run_tree(account, name, now, deadline) for name in LOGS]

    def run_tree(self, account: Account, name: str, now: datetime, deadline: float | None = None) -> TreeRun:
        """Append the entries of one log settled since the last run, then commit and sign the new tree."""
        trees = self.deps.store.trees
        seen = trees.state(account.id, name)
        start = seen.settled if seen is not None else START_KEY
        size = seen.size if seen is not None else 0
        bound = self.settled_bound(now)
        tree_origin = origin(account.id, name)
        if seen is not None and bound <= start:
            return TreeRun(tree_origin, size, 0, False)
        widths = edge_tiles(size)
        stored = trees.tiles(account.id, name, widths)
        # A stored edge tile may hold hashes a failed run wrote past the committed size: keep the committed part.
        tiles = TileSet(size, {key: stored.get(key, b"")[:width * 32] for key, width in widths.items()})
        keys = self._edge_keys(account.id, name, seen)
        writer = _Writer(self.deps, account.id, name, tiles)
        settled, complete = bound, True
        last: str | None = None
        for entry in self._entries(account.id, name, start, bound):
            tiles.append([leaf_hash(canonical(entry.as_dict()))])
            last = entry.key.sort_key
            keys.append(last)
            if len(keys) == TILE_WIDTH:
                writer.block(LeafBlock(tiles.size - TILE_WIDTH, tuple(keys)))
                keys = []
            if deadline is not None and time.monotonic() > deadline:
                settled, complete = last + AFTER, False
                break
        appended = tiles.size - size
        if seen is not None and appended == 0:
            return TreeRun(tree_origin, size, 0, False)
        open_block = LeafBlock(tiles.size - len(keys), tuple(keys)) if keys else None
        writer.finish(open_block)
        root = tiles.root()
        checkpoint = self.log_keys.signer(account).checkpoint(tree_origin, tiles.size, root)
        edge_key = open_block.keys[0] if open_block is not None else None
        state = TreeState(tiles.size, root, settled, checkpoint, rfc3339(now), edge_key)
        committed = trees.commit(account.id, name, seen, state)
        if committed:
            log.info("checkpoint", extra={"event": "checkpoint", "account": account.id, "log": name,
                                          "size": tiles.size, "appended": appended, "complete": complete})
        else:
            log.info("checkpoint lost to another run", extra={"event": "checkpoint", "account": account.id,
                                                              "log": name, "outcome": "skipped"})
        return TreeRun(tree_origin, tiles.size if committed else size, appended if committed else 0, committed,
                       complete)

    def run_all(self, now: datetime, budget_seconds: float | None = None) -> CheckpointSummary:
        """Checkpoint every account, a few at a time, within a time budget; failures are counted, not raised."""
        budget = self.deps.settings.checkpoint_seconds if budget_seconds is None else budget_seconds
        deadline = time.monotonic() + budget
        summary = CheckpointSummary()
        try:
            account_ids = self.deps.store.accounts.ids()
        except RotasignError as exc:
            log.warning("checkpoint pass skipped", extra={"event": "checkpoint", "outcome": "failure",
                                                          "error": exc.code})
            summary.failures += 1
            return summary
        # Shuffled, so that when the budget runs out it is not always the same accounts that wait.
        random.shuffle(account_ids)
        summary.accounts = len(account_ids)

        def one(account_id: str) -> list[TreeRun] | None:
            if time.monotonic() > deadline:
                return []
            try:
                return self.run_account(account_id, now, deadline)
            except RotasignError as exc:
                log.warning("checkpoint failed", extra={"event": "checkpoint", "account": account_id,
                                                        "outcome": "failure", "error": exc.code})
            except Exception:
                # One account's unexpected failure must not stop the others' checkpoints (or the tick).
                log.error("checkpoint failed", exc_info=True, extra={"event": "checkpoint", "account": account_id,
                                                                     "outcome": "failure"})
            return None

        with ThreadPoolExecutor(ACCOUNT_WORKERS, thread_name_prefix="checkpoint") as pool:
            for runs in pool.map(one, account_ids):
                if runs is None:
                    summary.failures += 1
                    continue
                summary.runs += [run for run in runs if run.committed]
                summary.appended += sum(run.appended for run in runs)
                summary.checkpoints += sum(run.committed for run in runs)
                summary.incomplete += sum(not run.complete for run in runs)
        metrics.emit("transparency_entries", summary.appended)
        # Alarm on these: failures, or trees that keep stopping at the deadline (the budget is too small).
        metrics.emit("checkpoint_failures", summary.failures)
        metrics.emit("checkpoint_incomplete", summary.incomplete)
        return summary

    def _edge_keys(self, account_id: str, name: str, seen: TreeState | None) -> list[str]:
        """The keys of the leaf block the tree is filling (its committed part)."""
        if seen is None or seen.edge_key is None or seen.size % TILE_WIDTH == 0:
            return []
        block = self.deps.store.trees.edge_block(account_id, name, seen.edge_key)
        if block is None:
            raise StorageUnavailable("The transparency log's stored tree is incomplete.")
        return list(block.keys[:seen.size % TILE_WIDTH])

    def _entries(self, account_id: str, name: str, low: str, high: str) -> Iterator[AuditEntry | SignatureEntry]:
        store = self.deps.store
        if name == "signatures":
            return store.signatures.between(account_id, low, high)
        return store.audit.between(account_id, low, high)


class _Writer:
    """Writes a run's tiles and leaf blocks: full ones in batches as they fill, growing ones at the end."""

    def __init__(self, deps: Deps, account_id: str, name: str, tiles: TileSet) -> None:
        self._trees = deps.store.trees
        self._account, self._name, self._tiles = account_id, name, tiles
        self._blocks: list[LeafBlock] = []

    def block(self, block: LeafBlock) -> None:
        """A leaf block just filled: write it (and the full tiles) when enough have gathered."""
        self._blocks.append(block)
        if len(self._blocks) >= FLUSH_TILES:
            self._flush()

    def _flush(self) -> None:
        tiles = self._tiles
        full = {key: bytes(tiles.tiles[key]) for key in tiles.changed if tiles.full(key)}
        self._trees.write_full(self._account, self._name, full, self._blocks)
        for key in full:
            # A full tile was folded into the level above when it filled; appending never reads it again.
            del tiles.tiles[key]
            tiles.changed.discard(key)
        self._blocks = []

    def finish(self, open_block: LeafBlock | None) -> None:
        """Write what is left: full tiles and blocks, then the growing (rightmost) tiles and block."""
        self._flush()
        tiles = self._tiles
        for key in sorted(tiles.changed):
            self._trees.write_tile(self._account, self._name, key, bytes(tiles.tiles[key]))
        tiles.changed.clear()
        if open_block is not None:
            self._trees.write_leaves(self._account, self._name, open_block)
