"""User groups and teams: the only record of who belongs to what.

A user's groups and teams are derived by querying the account's partition of these tables (read
consistently, so a removal is seen at once): there is no second copy of a membership on the user.
Both tables are versioned, so two concurrent changes of one group or team cannot lose either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Generic, TypeVar

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.update import Action

from chalicelib.domain.identity import Group, Team
from chalicelib.storage.errors import guarded
from chalicelib.storage.paging import Position, newest_first
from chalicelib.storage.tables import GroupModel, TeamModel
from chalicelib.storage.transaction import OnFail, Transaction

V = TypeVar("V", Group, Team)


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())


def _group(row: GroupModel) -> Group:
    return Group(row.account, row.id, row.name, row.created_at, _strings(row.member_ids), int(row.version or 0))


def _team(row: TeamModel) -> Team:
    return Team(row.account, row.id, row.name, row.created_at, _strings(row.member_ids), _strings(row.group_ids),
                int(row.version or 0))


class _Sets(Generic[V]):
    """What the two tables share: one row per set, keyed by account + id, with list attributes."""

    model: Any
    lists: tuple[str, ...]
    to_value: Callable[[Any], V]

    @guarded
    def get(self, account: str, set_id: str) -> V | None:
        """One group or team, read consistently; None when there is none."""
        try:
            return self.to_value(self.model.get(account, set_id, consistent_read=True))
        except DoesNotExist:
            return None

    @guarded
    def page(self, account: str, limit: int, start: Position | None) -> tuple[list[V], Position | None]:
        """Newest first (ids are time-ordered), read consistently."""
        rows, position = newest_first(self.model, account, limit, start)
        return [self.to_value(row) for row in rows], position

    @guarded
    def existing(self, account: str, set_ids: Iterable[str]) -> set[str]:
        """Which of `set_ids` exist in the account."""
        keys = [(account, sid) for sid in dict.fromkeys(set_ids)]
        return {row.id for row in self.model.batch_get(keys, attributes_to_get=["id"])} if keys else set()

    @guarded
    def containing(self, account: str, list_name: str, member: str) -> list[V]:
        """The sets whose `list_name` holds `member` (a query of the account's sets, read consistently)."""
        condition = getattr(self.model, list_name).contains(member)
        return [self.to_value(row) for row in self.model.query(account, filter_condition=condition,
                                                                consistent_read=True)]

    def stage_create(self, tx: Transaction, value: V) -> V:
        """Write a new set."""
        values = {name: list(getattr(value, name)) for name in self.lists}
        tx.put(self.model(value.account, value.id, name=value.name, created_at=value.created_at, **values),
               self.model.id.does_not_exist())
        return replace(value, version=1)

    def stage_update(self, tx: Transaction, value: V, changed: V, *, on_fail: OnFail) -> V:
        """Write what differs from `value` as read; fails (`on_fail()`) when it changed or went meanwhile."""
        actions: list[Action] = []
        for name in ("name", *self.lists):
            new = getattr(changed, name)
            if new != getattr(value, name):
                actions.append(getattr(self.model, name).set(list(new) if isinstance(new, tuple) else new))
        tx.update(self._versioned(value), actions, self.model.id.exists(), on_fail=on_fail)
        return replace(changed, version=value.version + 1)

    def stage_delete(self, tx: Transaction, value: V, *, on_fail: OnFail) -> None:
        """Delete a set as read (its version)."""
        tx.delete(self._versioned(value), self.model.id.exists(), on_fail=on_fail, add_version_condition=True)

    def stage_exists(self, tx: Transaction, account: str, set_id: str, *, on_fail: OnFail) -> None:
        """Require that a set still exists when the transaction commits."""
        tx.check(self.model, account, set_id, condition=self.model.id.exists(), on_fail=on_fail)

    def _versioned(self, value: V) -> Any:
        return self.model(value.account, value.id, version=value.version or None)


class GroupRepository(_Sets[Group]):
    """The groups table."""

    model = GroupModel
    lists = ("member_ids",)
    to_value = staticmethod(_group)

    def of_member(self, account: str, user_id: str) -> frozenset[str]:
        """The ids of the groups a user belongs to."""
        return frozenset(g.id for g in self.containing(account, "member_ids", user_id))

    @guarded
    def memberships(self, account: str) -> dict[str, list[str]]:
        """User id → the ids of its groups, for every member of a group of the account (one query)."""
        found: dict[str, list[str]] = {}
        for row in GroupModel.query(account, consistent_read=True, attributes_to_get=["id", "member_ids"]):
            for user_id in row.member_ids or ():
                found.setdefault(str(user_id), []).append(row.id)
        return found


class TeamRepository(_Sets[Team]):
    """The teams table."""

    model = TeamModel
    lists = ("member_ids", "group_ids")
    to_value = staticmethod(_team)

    @guarded
    def of_member(self, account: str, user_id: str, group_ids: frozenset[str]) -> frozenset[str]:
        """The ids of the teams a user belongs to, directly or through one of its groups.

        Reads the account's teams (few, and read consistently); a filter could not express "any of
        these groups" for a user in many groups.
        """
        rows = TeamModel.query(account, consistent_read=True, attributes_to_get=["id", "member_ids", "group_ids"])
        return frozenset(row.id for row in rows
                         if user_id in (row.member_ids or ()) or not group_ids.isdisjoint(row.group_ids or ()))
