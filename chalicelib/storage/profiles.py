"""Keypair profiles; a profile's `team_ids` is the only record of its allocation to teams."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.update import Action

from chalicelib.domain.profiles import PROFILE_FIELDS, KeypairProfile, ProfileMode
from chalicelib.storage.errors import guarded
from chalicelib.storage.paging import Position, newest_first
from chalicelib.storage.tables import ProfileModel
from chalicelib.storage.transaction import OnFail, Transaction

_CHANGEABLE = ("name", "mode", *PROFILE_FIELDS, "team_ids")


def _profile(row: ProfileModel) -> KeypairProfile:
    return KeypairProfile(
        account=row.account, id=row.id, name=row.name, mode=ProfileMode(row.mode), created_at=row.created_at,
        type=row.type, algorithm=row.algorithm, key_size=int(row.key_size) if row.key_size is not None else None,
        curve=row.curve, category=row.category, storage=row.storage, status=row.status,
        team_ids=tuple(str(t) for t in row.team_ids or ()), version=int(row.version or 0),
    )


def _stored(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value.value if isinstance(value, ProfileMode) else value


def _versioned(profile: KeypairProfile) -> ProfileModel:
    return ProfileModel(profile.account, profile.id, version=profile.version or None)


class ProfileRepository:
    """The keypair_profiles table (versioned: a change is conditioned on the profile as read)."""

    @guarded
    def get(self, account: str, profile_id: str) -> KeypairProfile | None:
        """One profile, read consistently; None when there is none."""
        try:
            return _profile(ProfileModel.get(account, profile_id, consistent_read=True))
        except DoesNotExist:
            return None

    @guarded
    def page(self, account: str, limit: int, start: Position | None
             ) -> tuple[list[KeypairProfile], Position | None]:
        """Newest first, read consistently."""
        rows, position = newest_first(ProfileModel, account, limit, start)
        return [_profile(row) for row in rows], position

    @guarded
    def allocated_to(self, account: str, team_id: str) -> list[KeypairProfile]:
        """The profiles allocated to a team (a query of the account's profiles)."""
        rows = ProfileModel.query(account, filter_condition=ProfileModel.team_ids.contains(team_id),
                                  consistent_read=True)
        return [_profile(row) for row in rows]

    @guarded
    def allocations(self, account: str) -> dict[str, list[str]]:
        """Team id → the ids of the profiles allocated to it, for every team of the account."""
        found: dict[str, list[str]] = {}
        for row in ProfileModel.query(account, consistent_read=True, attributes_to_get=["id", "team_ids"]):
            for team_id in row.team_ids or ():
                found.setdefault(str(team_id), []).append(row.id)
        return found

    def stage_create(self, tx: Transaction, profile: KeypairProfile) -> KeypairProfile:
        """Write a new profile."""
        values = {name: _stored(getattr(profile, name)) for name in _CHANGEABLE}
        tx.put(ProfileModel(profile.account, profile.id, created_at=profile.created_at, **values),
               ProfileModel.id.does_not_exist())
        return replace(profile, version=1)

    def stage_update(self, tx: Transaction, profile: KeypairProfile, changed: KeypairProfile, *,
                     on_fail: OnFail) -> KeypairProfile:
        """Write what differs from `profile` as read; fails (`on_fail()`) when it changed or went meanwhile."""
        actions: list[Action] = []
        for name in _CHANGEABLE:
            new = _stored(getattr(changed, name))
            if new != _stored(getattr(profile, name)):
                attr = getattr(ProfileModel, name)
                actions.append(attr.remove() if new is None else attr.set(new))
        tx.update(_versioned(profile), actions, ProfileModel.id.exists(), on_fail=on_fail)
        return replace(changed, version=profile.version + 1)

    def stage_delete(self, tx: Transaction, profile: KeypairProfile, *, on_fail: OnFail) -> None:
        """Delete a profile as read."""
        tx.delete(_versioned(profile), ProfileModel.id.exists(), on_fail=on_fail, add_version_condition=True)

    def stage_exists(self, tx: Transaction, account: str, profile_id: str, *, on_fail: OnFail) -> None:
        """Require that a profile still exists when the transaction commits."""
        tx.check(ProfileModel, account, profile_id, condition=ProfileModel.id.exists(), on_fail=on_fail)
