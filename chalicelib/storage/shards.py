"""Write shards of the log tables: which shard an entry lives in, and reading shards back as one sequence.

One partition key takes at most 1,000 write units per second, so each account's log entries are spread
over `shards` partitions: the table's partition key is `<account>#<shard>` and each index's is
`<value>#<shard>` (the entry's shard, so an index partition is no hotter than the table's). The shard is a
hash of the entry's ULID, so the public id `log_<ulid>` names it: reading one entry reads one shard.
Every shard is ordered by the `<at>#<ulid>` sort key, so merging the shards' queries by that key gives
the account's entries in time order, each once.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Shards whose first page is read at once: a page's latency is that of ~shards/PRIMERS round trips, and
# botocore's connection pool holds 10 connections by default.
PRIMERS = 8


def shard_of(ulid: str, shards: int) -> int:
    """The shard of the entry with this ULID (a log id without its `log_` prefix)."""
    return int.from_bytes(hashlib.sha256(ulid.encode()).digest()[:4], "big") % shards


def sharded(value: str, shard: int) -> str:
    """A partition key value of one shard: the logical value (account, or index value) and the shard."""
    return f"{value}#{shard}"


def logical(value: str) -> str:
    """The logical value of a sharded partition key (the text before its last `#`)."""
    return value.rsplit("#", 1)[0]


class ShardReader:
    """One shard's rows, read lazily; remembers whether the shard ran out."""

    def __init__(self, shard: int, rows: Iterable[Any]) -> None:
        self.shard = shard
        self.exhausted = False
        self._rows = iter(rows)
        self._head: list[Any] = []

    def prime(self) -> ShardReader:
        """Read the shard's first row now (its first request), so several shards can be primed at once."""
        for row in self._rows:
            self._head.append(row)
            break
        else:
            self.exhausted = True
        return self

    def __iter__(self) -> Iterator[Any]:
        yield from self._head
        self._head = []
        if self.exhausted:
            return
        yield from self._rows
        self.exhausted = True


def merged(readers: list[ShardReader], key: Callable[[Any], str], newest_first: bool) -> Iterator[Any]:
    """The rows of every shard in sort-key order, after reading each shard's first page concurrently."""
    if len(readers) > 1:
        with ThreadPoolExecutor(min(PRIMERS, len(readers)), thread_name_prefix="shard") as pool:
            list(pool.map(ShardReader.prime, readers))
    return heapq.merge(*readers, key=key, reverse=newest_first)
