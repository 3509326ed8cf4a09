"""API keys of a user: issue (shown once), list (never the secret), revoke."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError

from chalicelib.clock import parse_rfc3339, rfc3339
from chalicelib.errors import NotFound, ValidationError
from chalicelib.ids import looks_like_id
from chalicelib.services.access import Principal, new_api_key
from chalicelib.services.audit import Actor, audit_item
from chalicelib.services.deps import Deps
from chalicelib.services.keypair_rules import check_fields
from chalicelib.storage.models import ApiKeyModel, AuditLogModel, UserModel
from chalicelib.storage.tx import storage_error, transaction


def api_key_dict(item: ApiKeyModel) -> dict[str, Any]:
    """The listing form of a key: its id and prefix, never its secret or hash."""
    return {
        "id": item.id,
        "name": item.name,
        "prefix": f"rsk_{item.id}_",
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "last_used_at": item.last_used_at,
        "revoked_at": item.revoked_at,
    }


class ApiKeyService:
    """Issue, list and revoke API keys, each change audited in its transaction."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _user(self, account: str, user_id: str) -> UserModel:
        if not looks_like_id(user_id, "usr"):
            raise NotFound("No such user.")
        try:
            user = UserModel.get(account, user_id)
        except DoesNotExist:
            raise NotFound("No such user.") from None
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        if user.deleted_at:
            raise NotFound("No such user.")
        return user

    def create(self, who: Principal, user_id: str, body: Any, source_ip: str | None) -> dict[str, Any]:
        """POST /users/{id}/api-keys → {id, key, name, created_at, expires_at}."""
        body = check_fields(body, frozenset({"name", "expires_at"}))
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 100):
            raise ValidationError("name must be 1 to 100 characters.", details={"field": "name"})
        expires_at = body.get("expires_at")
        now = self.deps.clock()
        if expires_at is not None:
            try:
                when = parse_rfc3339(expires_at) if isinstance(expires_at, str) else None
            except ValueError:
                when = None
            if when is None or when <= now:
                raise ValidationError("expires_at must be a future RFC 3339 time.", details={"field": "expires_at"})
            expires_at = rfc3339(when)
        user = self._user(who.account, user_id)
        issued = new_api_key(who.account, user.id, now, name, expires_at)
        try:
            with transaction() as tx:
                tx.save(issued.item, condition=ApiKeyModel.id.does_not_exist())
                tx.save(
                    audit_item(Actor(who.account, who.user_id, source_ip), now, type="api_key", action="create",
                               resource_id=issued.item.id, retention_days=self.deps.settings.log_retention_days,
                               details={"user_id": user.id, "name": name, "expires_at": expires_at}),
                    condition=AuditLogModel.sk.does_not_exist(),
                )
        except TransactWriteError as exc:
            raise storage_error(exc) from exc
        return {"id": issued.item.id, "key": issued.key, "name": name, "created_at": issued.item.created_at,
                "expires_at": expires_at}

    def list(self, who: Principal, user_id: str) -> dict[str, Any]:
        """GET /users/{id}/api-keys."""
        user = self._user(who.account, user_id)
        try:
            items = list(ApiKeyModel.by_user.query(f"{who.account}#{user.id}", scan_index_forward=False))
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        return {"items": [api_key_dict(item) for item in items], "next": None}

    def revoke(self, who: Principal, user_id: str, key_id: str, source_ip: str | None) -> None:
        """DELETE /users/{id}/api-keys/{key id}: idempotent; audited once."""
        user = self._user(who.account, user_id)
        # Key ids are bare ULIDs; anything else (DynamoDB refuses keys over 2 KiB) names no key.
        if not looks_like_id(f"key_{key_id}", "key"):
            raise NotFound("No such API key.")
        try:
            item = ApiKeyModel.get(key_id)
        except DoesNotExist:
            raise NotFound("No such API key.") from None
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        if item.account != who.account or item.user_id != user.id:
            raise NotFound("No such API key.")
        if item.revoked_at:
            return
        now = self.deps.clock()
        try:
            with transaction() as tx:
                tx.update(item, actions=[ApiKeyModel.revoked_at.set(rfc3339(now))],
                          condition=ApiKeyModel.revoked_at.does_not_exist())
                tx.save(
                    audit_item(Actor(who.account, who.user_id, source_ip), now, type="api_key", action="revoke",
                               resource_id=item.id, retention_days=self.deps.settings.log_retention_days,
                               details={"user_id": user.id}),
                    condition=AuditLogModel.sk.does_not_exist(),
                )
        except TransactWriteError as exc:
            raise storage_error(exc) from exc
