"""What a warm process knows about a keypair it signs with: its row, its key object, for a bounded time.

A state is trusted for at most `ROTASIGN_STATE_CACHE_SECONDS` (≤ 5 s) after the read that made it;
then the row (and, for disk keys, the sealed material) is read again in one BatchGetItem. When the row
still names the same key, the key object already loaded is reused (no second KMS Decrypt); a key object
nobody has used for `KEY_IDLE_SECONDS` is dropped, so a warm process does not keep old keys around.

`read_at` is the wall-clock time taken *before* the read: a refresh that retires the generation this
state names commits after it, so `read_at` + the retirement grace is no later than the generation's
`retired_at`, and a signature time-stamped before that bound is time-stamped before `retired_at`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.domain.keypairs import Keypair, Storage
from chalicelib.errors import NotFound, StorageUnavailable
from chalicelib.ids import looks_like_id
from chalicelib.storage.keypairs import StoredMaterial, alias_key

if TYPE_CHECKING:
    from chalicelib.keys.algorithms import PrivateKey
    from chalicelib.services.container import Deps

KEY_IDLE_SECONDS = 60.0
MAX_ENTRIES = 10_000
_READ_TRIES = 3


class KeypairGone(NotFound):
    """The keypair was deleted: a 404 like any other, but the refusal's log entry can still name it."""

    def __init__(self, tombstone: Keypair) -> None:
        super().__init__("No such keypair.")
        self.tombstone = tombstone


class _Key:
    """A keypair's private-key object, loaded on first use (a refused request never decrypts a key)."""

    def __init__(self, load: Callable[[], PrivateKey]) -> None:
        self._load: Callable[[], PrivateKey] | None = load
        self._key: PrivateKey | None = None
        self._lock = threading.Lock()

    def get(self) -> PrivateKey:
        with self._lock:
            if self._key is None:
                assert self._load is not None
                self._key = self._load()
                self._load = None
            return self._key


@dataclass(frozen=True)
class SignState:
    """A keypair as read at `read_at`, with its key object (loaded when first needed)."""

    keypair: Keypair
    read_at: datetime
    fresh_until: float  # monotonic
    key: _Key = field(repr=False, compare=False)

    def private_key(self) -> PrivateKey:
        """The private key of the state's generation; raises StorageUnavailable / HsmUnavailable / KMS errors."""
        return self.key.get()


@dataclass
class _Entry:
    state: SignState
    last_used: float


class SignStates:
    """The per-process cache of sign states, by (account, keypair id or alias)."""

    def __init__(self, deps: Deps, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._deps = deps
        self._monotonic = monotonic
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, account: str, ref: str, *, fresh: bool = False) -> SignState:
        """The state of the live keypair named by `ref`; raises NotFound, StorageUnavailable, Throttled.

        `fresh` forces a read (after a race, and for single-use keypairs, whose key changes each time).
        """
        key = (account, ref if looks_like_id(ref, "kp") else "alias:" + alias_key(ref))
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry.last_used > KEY_IDLE_SECONDS:
                del self._entries[key]
                entry = None
        previous = entry.state if entry is not None else None
        if previous is not None and not fresh and now < previous.fresh_until:
            entry.last_used = now  # type: ignore[union-attr]
            return previous
        state = self._read(account, ref, previous)
        with self._lock:
            self._entries[key] = _Entry(state, now)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return state

    def forget(self, kp: Keypair) -> None:
        """Drop what this process knows of a keypair it just changed (other processes follow within the bound)."""
        with self._lock:
            self._entries.pop((kp.account, kp.id), None)
            self._entries.pop((kp.account, "alias:" + alias_key(kp.alias)), None)

    def clear(self) -> None:
        """Drop every state."""
        with self._lock:
            self._entries.clear()

    def _read(self, account: str, ref: str, previous: SignState | None) -> SignState:
        repo = self._deps.store.keypairs
        by_alias = not looks_like_id(ref, "kp")
        if by_alias and len(ref) > 64:
            raise NotFound("No such keypair.")
        for _ in range(_READ_TRIES):
            read_at = self._deps.clock()
            started = self._monotonic()
            # An alias resolved before is trusted while the row read consistently still carries it: the
            # claim and the row change in one transaction.
            keypair_id: str | None = previous.keypair.id if previous is not None else (None if by_alias else ref)
            if keypair_id is None:
                keypair_id = repo.resolve_alias(account, ref)
                if keypair_id is None:
                    raise NotFound("No such keypair.")
            kp, material = repo.read_with_material(account, keypair_id)
            if kp is not None and by_alias and alias_key(kp.alias) != alias_key(ref):
                if previous is None:
                    raise NotFound("No such keypair.")
                previous = None  # the alias moved to another keypair: resolve it again
                continue
            if kp is None:
                raise NotFound("No such keypair.")
            if kp.deleted_at:
                raise KeypairGone(kp)
            if kp.storage is Storage.DISK and (material is None or material.key_ref != kp.key_ref):
                continue  # the two reads straddled a refresh: read both again
            reuse = previous is not None and previous.keypair.key_ref == kp.key_ref
            holder = previous.key if reuse and previous is not None else _Key(self._loader(kp, material))
            fresh_until = started + self._deps.settings.state_cache_seconds
            return SignState(kp, read_at, fresh_until, holder)
        raise StorageUnavailable("The keypair kept changing while it was read; try again.")

    def _loader(self, kp: Keypair, material: StoredMaterial | None) -> Callable[[], PrivateKey]:
        sealed = material.sealed if material is not None else None
        return lambda: self._deps.backend(kp.storage.value).load(kp.account, kp.key_ref, sealed)
