"""Users and their API keys (looked up by key id; only the SHA-256 of a secret is stored)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.domain.identity import ADMIN, ApiKey, User
from chalicelib.storage.errors import guarded
from chalicelib.storage.paging import Position, newest_first
from chalicelib.storage.tables import ApiKeyModel, UserModel
from chalicelib.storage.transaction import OnFail, Transaction

_CHANGEABLE = ("name", "email", "roles", "permissions")


def _user(row: UserModel) -> User:
    return User(account=row.account, id=row.id, name=row.name, created_at=row.created_at, email=row.email,
                roles=tuple(str(r) for r in row.roles or ()), permissions=tuple(str(p) for p in row.permissions or ()),
                deleted_at=row.deleted_at, version=int(row.version or 0))


def _versioned(user: User) -> UserModel:
    """The row's key and the version read (0: a row written before users were versioned)."""
    version: dict[str, Any] = {"version": user.version} if user.version else {}
    return UserModel(user.account, user.id, **version)


def _api_key(row: ApiKeyModel) -> ApiKey:
    return ApiKey(id=row.id, account=row.account, user_id=row.user_id, secret_sha256=bytes(row.secret_sha256),
                  created_at=row.created_at, name=row.name, expires_at=row.expires_at, revoked_at=row.revoked_at,
                  last_used_at=row.last_used_at)


class IdentityRepository:
    """The users and api_keys tables."""

    @guarded
    def user(self, account: str, user_id: str) -> User | None:
        """A user (deleted ones included), or None."""
        try:
            return _user(UserModel.get(account, user_id))
        except DoesNotExist:
            return None

    @guarded
    def live_user_ids(self, account: str, user_ids: Iterable[str]) -> set[str]:
        """Which of `user_ids` are users of the account that are not deleted."""
        keys = [(account, uid) for uid in dict.fromkeys(user_ids)]
        return {u.id for u in UserModel.batch_get(keys) if not u.deleted_at} if keys else set()

    @guarded
    def users(self, account: str, user_ids: Iterable[str]) -> dict[str, User]:
        """The live users among `user_ids`, by id."""
        keys = [(account, uid) for uid in dict.fromkeys(user_ids)]
        return {u.id: _user(u) for u in UserModel.batch_get(keys, consistent_read=True) if not u.deleted_at}

    @guarded
    def users_page(self, account: str, limit: int, start: Position | None) -> tuple[list[User], Position | None]:
        """Live users of the account, newest first (ids are time-ordered), read consistently."""
        rows, position = newest_first(UserModel, account, limit, start, lambda row: not row.deleted_at)
        return [_user(row) for row in rows], position

    @guarded
    def another_admin(self, account: str, user_id: str) -> str | None:
        """A live admin of the account other than `user_id`, or None (a query of the account's users)."""
        condition = (UserModel.roles.contains(ADMIN) & UserModel.deleted_at.does_not_exist()
                     & (UserModel.id != user_id))
        for row in UserModel.query(account, filter_condition=condition, consistent_read=True,
                                   attributes_to_get=["id"]):
            return str(row.id)
        return None

    def stage_user(self, tx: Transaction, user: User) -> None:
        """Write a new user."""
        tx.put(UserModel(user.account, user.id, name=user.name, email=user.email, roles=list(user.roles),
                         permissions=list(user.permissions), created_at=user.created_at),
               UserModel.id.does_not_exist())

    def stage_user_update(self, tx: Transaction, user: User, changed: User, *, on_fail: OnFail) -> User:
        """Write the fields that differ; fails (`on_fail()`) unless the user is live and as read (its version)."""
        actions: list[Action] = []
        for name in _CHANGEABLE:
            value = getattr(changed, name)
            if value != getattr(user, name):
                attr = getattr(UserModel, name)
                stored = list(value) if isinstance(value, tuple) else value
                actions.append(attr.remove() if stored is None else attr.set(stored))
        tx.update(_versioned(user), actions, UserModel.deleted_at.does_not_exist(), on_fail=on_fail)
        return replace(changed, version=user.version + 1)

    def stage_user_delete(self, tx: Transaction, user: User, at: str, *, on_fail: OnFail) -> None:
        """Tombstone a user (kept so that log entries still name someone); fails unless live and as read."""
        tx.update(_versioned(user), [UserModel.deleted_at.set(at)], UserModel.deleted_at.does_not_exist(),
                  on_fail=on_fail)

    def stage_still_admin(self, tx: Transaction, account: str, user_id: str, *, on_fail: OnFail) -> None:
        """Require that another user is still a live admin when the change commits (the last-admin rule).

        Two admins removing each other at once both name the other here: DynamoDB serialises the two
        transactions, so the second one's check fails.
        """
        tx.check(UserModel, account, user_id, condition=UserModel.roles.contains(ADMIN)
                 & UserModel.deleted_at.does_not_exist(), on_fail=on_fail)

    @guarded
    def api_key(self, key_id: str) -> ApiKey | None:
        """An API key by its id, or None."""
        try:
            return _api_key(ApiKeyModel.get(key_id))
        except DoesNotExist:
            return None

    @guarded
    def api_keys_of(self, account: str, user_id: str) -> list[ApiKey]:
        """A user's API keys, newest first."""
        return [_api_key(row) for row in ApiKeyModel.by_user.query(f"{account}#{user_id}", scan_index_forward=False)]

    def stage_api_key(self, tx: Transaction, key: ApiKey) -> None:
        """Write a new API key."""
        tx.put(ApiKeyModel(key.id, account=key.account, user_id=key.user_id, user_key=f"{key.account}#{key.user_id}",
                           name=key.name, secret_sha256=key.secret_sha256, created_at=key.created_at,
                           expires_at=key.expires_at),
               ApiKeyModel.id.does_not_exist())

    def stage_revoke(self, tx: Transaction, key: ApiKey, at: str, *, on_fail: OnFail | None = None) -> None:
        """Revoke a key (once: a second revocation fails its condition)."""
        tx.update(ApiKeyModel(key.id), [ApiKeyModel.revoked_at.set(at)], ApiKeyModel.revoked_at.does_not_exist(),
                  on_fail=on_fail)

    def stage_failure_window(self, tx: Transaction, key_id: str, window: str, *, on_fail: OnFail) -> None:
        """Mark a key's failures of the window starting at `window` as audited; `on_fail()` if they are."""
        done = ApiKeyModel.failures_audited_for.exists() & (ApiKeyModel.failures_audited_for >= window)
        tx.update(ApiKeyModel(key_id), [ApiKeyModel.failures_audited_for.set(window)],
                  ApiKeyModel.id.exists() & ~done, on_fail=on_fail)

    @guarded
    def record_use(self, key_id: str, at: str, unless_since: str) -> bool:
        """Set `last_used_at` unless it is at or after `unless_since`; False when another process did.

        A plain update off the signing path's write budget; never creates an item.
        """
        recent = ApiKeyModel.last_used_at.exists() & (ApiKeyModel.last_used_at >= unless_since)
        try:
            ApiKeyModel(key_id).update(actions=[ApiKeyModel.last_used_at.set(at)],
                                       condition=ApiKeyModel.id.exists() & ~recent)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
