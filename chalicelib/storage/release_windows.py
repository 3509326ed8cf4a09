"""Release windows, and the conditional counter a windowed signature adds to in its own transaction.

Times are stored as fixed-width RFC 3339 strings (milliseconds), so conditions compare them as
strings. The signing write is `ADD signatures_used :n` under a condition that re-checks, on the item
as it is at commit, everything the signer relied on: the window is open at the signature's time, names
the keypair (and the signer, when it names users), and has room for `n` more under the budget the signer
read. A window deleted or changed meanwhile fails that condition; nothing is counted without its entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.clock import parse_rfc3339, rfc3339_ms
from chalicelib.domain.releases import ReleaseWindow
from chalicelib.storage.errors import guarded
from chalicelib.storage.paging import Position, newest_first
from chalicelib.storage.tables import ReleaseWindowModel
from chalicelib.storage.transaction import OnFail, Transaction

_CHANGEABLE = ("name", "keypair_ids", "user_ids", "starts_at", "ends_at", "max_signatures", "keypair_teams")


def _window(row: ReleaseWindowModel) -> ReleaseWindow:
    teams: Any = row.keypair_teams
    pairs = dict(teams.as_dict() if hasattr(teams, "as_dict") else teams or {})
    return ReleaseWindow(
        account=row.account, id=row.id, name=row.name, keypair_ids=tuple(str(k) for k in row.keypair_ids or ()),
        starts_at=parse_rfc3339(row.starts_at), ends_at=parse_rfc3339(row.ends_at), created_at=row.created_at,
        created_by=row.created_by, user_ids=tuple(str(u) for u in row.user_ids or ()),
        max_signatures=int(row.max_signatures) if row.max_signatures is not None else None,
        signatures_used=int(row.signatures_used or 0),
        keypair_teams=tuple(sorted((str(k), str(v)) for k, v in pairs.items())),
    )


def _stored(window: ReleaseWindow, name: str) -> Any:
    value = getattr(window, name)
    if isinstance(value, datetime):
        return rfc3339_ms(value)
    if name == "keypair_teams":
        return dict(value)
    if isinstance(value, tuple):
        return list(value) or None  # an empty list is stored as no attribute (user_ids: anyone)
    return value


class ReleaseWindowRepository:
    """The release_windows table and its `by_end` local index (consistent reads of the open windows)."""

    @guarded
    def get(self, account: str, window_id: str) -> ReleaseWindow | None:
        """One window, read consistently; None when there is none."""
        try:
            return _window(ReleaseWindowModel.get(account, window_id, consistent_read=True))
        except DoesNotExist:
            return None

    @guarded
    def page(self, account: str, limit: int, start: Position | None,
             keep: Callable[[ReleaseWindow], bool] | None = None) -> tuple[list[ReleaseWindow], Position | None]:
        """Newest first, read consistently; only the windows `keep` accepts count towards `limit`."""
        rows, position = newest_first(ReleaseWindowModel, account, limit, start,
                                      None if keep is None else lambda row: keep(_window(row)))
        return [_window(row) for row in rows], position

    @guarded
    def ending_after(self, account: str, at: datetime) -> list[ReleaseWindow]:
        """The account's windows that end after `at` (open now or later), soonest end first.

        A query of the local index, read consistently: a window opened a moment ago is in the answer.
        """
        rows = ReleaseWindowModel.by_end.query(account, ReleaseWindowModel.ends_at > rfc3339_ms(at),
                                               consistent_read=True)
        return [_window(row) for row in rows]

    def stage_create(self, tx: Transaction, window: ReleaseWindow) -> None:
        """Write a new window (nothing used yet)."""
        values = {name: _stored(window, name) for name in _CHANGEABLE}
        tx.put(ReleaseWindowModel(window.account, window.id, created_at=window.created_at,
                                  created_by=window.created_by, signatures_used=0, **values),
               ReleaseWindowModel.id.does_not_exist())

    def stage_update(self, tx: Transaction, window: ReleaseWindow, changed: ReleaseWindow, *,
                     on_fail: OnFail) -> None:
        """Write what differs; a budget lowered below what is used fails (`on_fail()`), as does a gone window."""
        actions: list[Action] = []
        for name in _CHANGEABLE:
            new = _stored(changed, name)
            if new != _stored(window, name):
                attr = getattr(ReleaseWindowModel, name)
                actions.append(attr.remove() if new is None else attr.set(new))
        condition: Condition = ReleaseWindowModel.id.exists()
        if changed.max_signatures is not None:
            condition &= ReleaseWindowModel.signatures_used <= changed.max_signatures
        tx.update(ReleaseWindowModel(window.account, window.id), actions, condition, on_fail=on_fail)

    def stage_delete(self, tx: Transaction, window: ReleaseWindow, *, on_fail: OnFail) -> None:
        """Delete a window (signing in it stops at once: the counter's condition needs the item)."""
        tx.delete(ReleaseWindowModel(window.account, window.id), ReleaseWindowModel.id.exists(), on_fail=on_fail)

    def stage_use(self, tx: Transaction, window: ReleaseWindow, count: int, at: datetime, keypair_id: str,
                  user_id: str, *, on_fail: OnFail) -> None:
        """Count `count` signatures made at `at` against the window, in the transaction of their log entries.

        `window` is what the signer read (its budget may be a few seconds old): the condition requires
        the stored budget to be that one, so a budget changed meanwhile fails rather than being overrun.
        """
        m = ReleaseWindowModel
        when = rfc3339_ms(at)
        condition = ((m.starts_at <= when) & (m.ends_at > when) & m.keypair_ids.contains(keypair_id)
                     & (m.user_ids.does_not_exist() | m.user_ids.contains(user_id)))
        if window.max_signatures is None:
            condition &= m.max_signatures.does_not_exist()
        else:
            condition &= ((m.max_signatures == window.max_signatures)
                          & (m.signatures_used <= window.max_signatures - count))
        tx.update(m(window.account, window.id), [m.signatures_used.add(count)], condition, on_fail=on_fail)

    @staticmethod
    def counted(window: ReleaseWindow, count: int) -> ReleaseWindow:
        """The window as a committed use of `count` left it."""
        return replace(window, signatures_used=window.signatures_used + count)
