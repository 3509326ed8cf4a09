"""Release windows: create, read, change, close; and the gate the sign path asks about offline keypairs.

Reading windows is for anyone who may view keypairs; a reader outside a team does not see that team's
keypairs in a window, nor a window that names only such keypairs.

The gate keeps each account's open-or-future windows for at most the state-cache bound (one consistent
query of the `by_end` index per account and bound); the count itself is never trusted from it: the
signing write re-checks time, names and budget on the window item (storage/release_windows.py).
A window opened a moment ago is found at once: a signer that finds no window in its cached list reads
again before refusing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.cache import TtlCache
from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Principal
from chalicelib.domain.keypairs import Keypair
from chalicelib.domain.releases import ReleaseWindow
from chalicelib.errors import Conflict, NotFound, ValidationError
from chalicelib.ids import looks_like_id, new_id
from chalicelib.services.audited import AuditedChange, changes, plain, require_known
from chalicelib.services.pagination import Page, Pager, PageRequest
from chalicelib.services.users import check_users

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

LIST_ROUTE = "release-windows"
_FIELDS = ("name", "keypair_ids", "user_ids", "starts_at", "ends_at", "max_signatures")


@dataclass(frozen=True)
class WindowValues:
    """A validated POST or PATCH /release-windows body: the fields in `sent` (None clears `max_signatures`)."""

    sent: frozenset[str]
    name: str | None = None
    keypair_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    max_signatures: int | None = None


class ReleaseGate:
    """Which open windows let a caller sign with an offline keypair now (per account, at most the bound old)."""

    def __init__(self, deps: Deps, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._deps = deps
        self._cache: TtlCache[str, list[ReleaseWindow]] = TtlCache(deps.settings.state_cache_seconds,
                                                                   clock=monotonic)

    def candidates(self, principal: Principal, kp: Keypair, at: datetime, count: int, *,
                   fresh: bool = False) -> list[ReleaseWindow]:
        """The windows open at `at` that name the keypair and the caller and have room, soonest end first."""
        windows = None if fresh else self._cache.get(principal.account)
        if windows is None:
            windows = self._deps.store.windows.ending_after(principal.account, at)
            self._cache.put(principal.account, windows)
        return [w for w in windows if w.open_at(at) and w.admits(kp.id, principal.user_id) and w.has_room(count)]

    def forget(self, account: str) -> None:
        """Drop what this process knows of an account's windows (after a change, or a spent budget)."""
        self._cache.pop(account)


class ReleaseWindowService:
    """/release-windows: every change with its audit entry, in one transaction."""

    def __init__(self, deps: Deps, gate: ReleaseGate) -> None:
        self.deps = deps
        self.gate = gate

    def get(self, principal: Principal, window_id: str) -> ReleaseWindow:
        """GET /release-windows/{id} as the caller may see it; raises NotFound."""
        return self._seen(principal, self._window(principal, window_id))

    def list(self, principal: Principal, request: PageRequest) -> Page[ReleaseWindow]:
        """GET /release-windows: newest first, with sealed `next` tokens."""
        pager = Pager(self.deps.token_key(), principal.account, LIST_ROUTE, {})

        def keep(window: ReleaseWindow) -> bool:
            return _as_seen(principal, window) is not None

        items, position = self.deps.store.windows.page(principal.account, request.limit, pager.start(request),
                                                        None if principal.is_admin else keep)
        return pager.page([w for w in (_as_seen(principal, i) for i in items) if w is not None], position)

    def create(self, principal: Principal, req: WindowValues, source_ip: str | None) -> ReleaseWindow:
        """POST /release-windows; raises ValidationError naming the field."""
        for name in ("name", "keypair_ids", "starts_at", "ends_at"):
            if name not in req.sent:
                raise ValidationError(f"{name} is required.", details={"field": name})
        change = AuditedChange(self.deps, principal, source_ip)
        assert req.name is not None and req.starts_at is not None and req.ends_at is not None
        window = ReleaseWindow(
            account=principal.account, id=new_id("rw"), name=req.name, keypair_ids=req.keypair_ids,
            starts_at=req.starts_at, ends_at=req.ends_at, created_at=rfc3339(change.at),
            created_by=principal.user_id, user_ids=req.user_ids, max_signatures=req.max_signatures,
        )
        window = self._checked(principal, window, window.keypair_ids, window.user_ids, change.at)
        self.deps.store.windows.stage_create(change.tx, window)
        change.commit(type="release_window", action="create", resource_id=window.id, name=window.name,
                      details={name: plain(getattr(window, name)) for name in _FIELDS if name != "name"})
        self.gate.forget(principal.account)
        return window

    def update(self, principal: Principal, window_id: str, req: WindowValues, source_ip: str | None
               ) -> ReleaseWindow:
        """PATCH /release-windows/{id}; a budget below what is used already is a 409."""
        stored = self._window(principal, window_id)  # with the keypairs this caller cannot see
        window = self._seen(principal, stored)
        values = {name: getattr(req, name) for name in _FIELDS if name in req.sent}
        if "keypair_ids" in values:
            # Keypairs the caller cannot see are not the caller's to remove.
            values["keypair_ids"] = (*values["keypair_ids"], *sorted(_hidden(principal, stored)))
        changed = replace(stored, **values)
        diff = changes(stored, changed, _FIELDS)
        if not diff:
            return window
        change = AuditedChange(self.deps, principal, source_ip)
        added_keypairs = tuple(k for k in changed.keypair_ids if k not in stored.keypair_ids)
        added_users = tuple(u for u in changed.user_ids if u not in stored.user_ids)
        changed = self._checked(principal, changed, added_keypairs, added_users, None)
        self.deps.store.windows.stage_update(change.tx, stored, changed, on_fail=lambda: Conflict(
            "The window is gone, or has used more signatures than the new max_signatures.",
            details={"field": "max_signatures", "signatures_used": stored.signatures_used}))
        change.commit(type="release_window", action="update", resource_id=window.id, name=changed.name,
                      details={"changes": diff})
        self.gate.forget(principal.account)
        return _as_seen(principal, changed) or changed

    def delete(self, principal: Principal, window_id: str, source_ip: str | None) -> None:
        """DELETE /release-windows/{id}: signing in it stops at once."""
        window = self._window(principal, window_id)
        self._seen(principal, window)
        change = AuditedChange(self.deps, principal, source_ip)
        self.deps.store.windows.stage_delete(change.tx, window, on_fail=Conflict)
        change.commit(type="release_window", action="delete", resource_id=window.id, name=window.name,
                      details={"keypair_ids": list(window.keypair_ids), "signatures_used": window.signatures_used})
        self.gate.forget(principal.account)

    @staticmethod
    def _seen(principal: Principal, window: ReleaseWindow) -> ReleaseWindow:
        visible = _as_seen(principal, window)
        if visible is None:
            raise NotFound("No such release window.")
        return visible

    def _window(self, principal: Principal, window_id: str) -> ReleaseWindow:
        window = self.deps.store.windows.get(principal.account, window_id) if looks_like_id(window_id, "rw") else None
        if window is None:
            raise NotFound("No such release window.")
        return window

    def _checked(self, principal: Principal, window: ReleaseWindow, new_keypairs: tuple[str, ...],
                 new_users: tuple[str, ...], now: datetime | None) -> ReleaseWindow:
        """Validate a window to be written; returns it with the teams of its new keypairs recorded."""
        if not window.keypair_ids:
            raise ValidationError("keypair_ids must name at least one keypair.", details={"field": "keypair_ids"})
        if window.ends_at <= window.starts_at:
            raise ValidationError("ends_at must be after starts_at.", details={"field": "ends_at"})
        if now is not None and window.ends_at <= now:
            raise ValidationError("ends_at must be in the future.", details={"field": "ends_at"})
        if window.max_signatures is not None and window.max_signatures < 1:
            raise ValidationError("max_signatures must be at least 1.", details={"field": "max_signatures"})
        teams = dict(window.keypair_teams)
        if new_keypairs:
            found = self.deps.store.keypairs.live_teams(principal.account, list(new_keypairs))
            seen = {kp for kp, team in found.items()
                    if team is None or principal.is_admin or team in principal.team_ids}
            require_known(new_keypairs, seen, "keypair", "keypair_ids")
            teams.update({kp: team for kp in new_keypairs if (team := found[kp]) is not None})
        check_users(self.deps, principal.account, new_users, "user_ids")
        kept = {kp: team for kp, team in teams.items() if kp in window.keypair_ids}
        return replace(window, keypair_teams=tuple(sorted(kept.items())))


def _hidden(principal: Principal, window: ReleaseWindow) -> frozenset[str]:
    """The keypairs of the window that belong to teams the caller is outside (none for an admin)."""
    return frozenset() if principal.is_admin else window.hidden_from(principal.team_ids)


def _as_seen(principal: Principal, window: ReleaseWindow) -> ReleaseWindow | None:
    """The window without the keypairs of teams the caller is outside; None when nothing is left."""
    hidden = _hidden(principal, window)
    if not hidden:
        return window
    shown = tuple(k for k in window.keypair_ids if k not in hidden)
    return replace(window, keypair_ids=shown, keypair_teams=()) if shown else None
