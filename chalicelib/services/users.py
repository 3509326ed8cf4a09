"""Users: create, read, change and delete, with the rules that keep an account governable.

- A caller cannot grant a permission it does not hold (a role grants its permissions), and cannot
  change, delete or issue keys for a user who holds permissions the caller does not (that would be a
  way to act with them).
- The account's last admin cannot lose the role or be deleted: the change commits only while another
  admin is still one (a condition on that admin's row in the same transaction).
- Deleting a user tombstones it, revokes its API keys and removes it from its groups and teams, in one
  transaction with its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Principal, User, effective_permissions
from chalicelib.errors import Conflict, Forbidden, NotFound
from chalicelib.ids import looks_like_id, new_id
from chalicelib.services.audited import MAX_TRANSACTION_ITEMS, AuditedChange, changes, plain, require_known
from chalicelib.services.pagination import Page, Pager, PageRequest

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

LIST_ROUTE = "users"
_FIELDS = ("name", "email", "roles", "permissions")


class LastAdmin(Conflict):
    """The account would be left without an admin."""

    code = "last_admin"
    default_message = "The account's last admin cannot be removed; make another user an admin first."


class ChangeTooLarge(Conflict):
    """One change would write more items than one DynamoDB transaction holds."""

    code = "change_too_large"
    default_message = "This change touches too many objects at once; make it in smaller steps."


@dataclass(frozen=True)
class NewUser:
    """A validated POST /users body."""

    name: str
    email: str | None = None
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserChange:
    """A validated PATCH /users/{id} body: only the fields in `sent` change (email may be cleared)."""

    sent: frozenset[str]
    name: str | None = None
    email: str | None = None
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserView:
    """A user with the ids of the groups it belongs to (derived from the groups)."""

    user: User
    group_ids: tuple[str, ...] = field(default=())


def require_grantable(principal: Principal, before: frozenset[str], roles: tuple[str, ...],
                      permissions: tuple[str, ...]) -> None:
    """Raise Forbidden (naming the field that grants it) when `roles` + `permissions` add a permission the
    caller does not hold to what the user had (`before`)."""
    missing = sorted((effective_permissions(roles, permissions) - before) - principal.permissions)
    if missing:
        field = "roles" if missing[0] in effective_permissions(roles, ()) else "permissions"
        raise Forbidden(f"You cannot grant {missing[0]}: you do not hold it.",
                        details={"permission": missing[0], "field": field})


def require_manageable(principal: Principal, user: User) -> None:
    """Raise Forbidden when `user` holds a permission the caller does not (keys, changes, deletion)."""
    missing = sorted(user.effective_permissions - principal.permissions)
    if missing:
        raise Forbidden(f"This user holds {missing[0]}, which you do not; you cannot manage them.",
                        details={"permission": missing[0]})


class UserService:
    """/users: every change with its audit entry, in one transaction."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def live(self, account: str, user_id: str) -> User:
        """A live user of the account; raises NotFound."""
        user = self.deps.store.identity.user(account, user_id) if looks_like_id(user_id, "usr") else None
        if user is None or user.deleted_at or user.account != account:
            raise NotFound("No such user.")
        return user

    def get(self, principal: Principal, user_id: str) -> UserView:
        """GET /users/{id}."""
        user = self.live(principal.account, user_id)
        return UserView(user, tuple(sorted(self.deps.store.groups.of_member(principal.account, user.id))))

    def list(self, principal: Principal, request: PageRequest) -> Page[UserView]:
        """GET /users: newest first, with sealed `next` tokens; each user with its group ids."""
        pager = Pager(self.deps.token_key(), principal.account, LIST_ROUTE, {})
        users, position = self.deps.store.identity.users_page(principal.account, request.limit,
                                                                pager.start(request))
        groups = self.deps.store.groups.memberships(principal.account) if users else {}
        return pager.page([UserView(u, tuple(sorted(groups.get(u.id, ())))) for u in users], position)

    def create(self, principal: Principal, req: NewUser, source_ip: str | None) -> UserView:
        """POST /users; raises Forbidden when it would grant what the caller does not hold."""
        require_grantable(principal, frozenset(), req.roles, req.permissions)
        change = AuditedChange(self.deps, principal, source_ip)
        user = User(principal.account, new_id("usr"), req.name, rfc3339(change.at), email=req.email,
                    roles=req.roles, permissions=req.permissions, version=1)
        self.deps.store.identity.stage_user(change.tx, user)
        change.commit(type="user", action="create", resource_id=user.id, name=user.name,
                      details={"roles": list(user.roles), "permissions": list(user.permissions)})
        return UserView(user)

    def update(self, principal: Principal, user_id: str, req: UserChange, source_ip: str | None) -> UserView:
        """PATCH /users/{id}; raises Forbidden, LastAdmin, Conflict (changed meanwhile)."""
        user = self.live(principal.account, user_id)
        require_manageable(principal, user)
        values = {name: getattr(req, name) for name in _FIELDS if name in req.sent}
        changed = replace(user, **values)
        require_grantable(principal, user.effective_permissions, changed.roles, changed.permissions)
        group_ids = tuple(sorted(self.deps.store.groups.of_member(principal.account, user.id)))
        diff = changes(user, changed, _FIELDS)
        if not diff:
            return UserView(user, group_ids)
        change = AuditedChange(self.deps, principal, source_ip)
        if user.is_admin and not changed.is_admin:
            self._keep_an_admin(change, user)
        updated = self.deps.store.identity.stage_user_update(change.tx, user, changed, on_fail=Conflict)
        change.commit(type="user", action="update", resource_id=user.id, name=changed.name,
                      details={"changes": diff})
        return UserView(updated, group_ids)

    def delete(self, principal: Principal, user_id: str, source_ip: str | None) -> None:
        """DELETE /users/{id}: tombstone, revoke every key, leave every group and team; one transaction."""
        store = self.deps.store
        user = self.live(principal.account, user_id)
        require_manageable(principal, user)
        keys = [k for k in store.identity.api_keys_of(principal.account, user.id) if not k.revoked_at]
        groups = store.groups.containing(principal.account, "member_ids", user.id)
        teams = store.teams.containing(principal.account, "member_ids", user.id)
        # The tombstone, its audit entry, the other admin's check, then one item per key, group and team.
        if 3 + len(keys) + len(groups) + len(teams) > MAX_TRANSACTION_ITEMS:
            raise ChangeTooLarge("This user has too many API keys, groups and teams to delete at once; revoke "
                                 "some keys or remove them from some groups first.")
        change = AuditedChange(self.deps, principal, source_ip)
        if user.is_admin:
            self._keep_an_admin(change, user)
        at = rfc3339(change.at)
        store.identity.stage_user_delete(change.tx, user, at, on_fail=Conflict)
        for key in keys:
            store.identity.stage_revoke(change.tx, key, at, on_fail=Conflict)
        for group in groups:
            store.groups.stage_update(change.tx, group, replace(group, member_ids=_without(group.member_ids, user.id)),
                                      on_fail=Conflict)
        for team in teams:
            store.teams.stage_update(change.tx, team, replace(team, member_ids=_without(team.member_ids, user.id)),
                                     on_fail=Conflict)
        change.commit(type="user", action="delete", resource_id=user.id, name=user.name, details={
            "roles": plain(user.roles), "revoked_api_keys": [k.id for k in keys],
            "removed_from_groups": [g.id for g in groups], "removed_from_teams": [t.id for t in teams],
        })

    def _keep_an_admin(self, change: AuditedChange, user: User) -> None:
        other = self.deps.store.identity.another_admin(user.account, user.id)
        if other is None:
            raise LastAdmin()
        self.deps.store.identity.stage_still_admin(change.tx, user.account, other, on_fail=LastAdmin)


def _without(ids: tuple[str, ...], gone: str) -> tuple[str, ...]:
    return tuple(i for i in ids if i != gone)


def check_users(deps: Deps, account: str, user_ids: tuple[str, ...], field: str) -> None:
    """Raise a 400 naming `field` unless every id is a live user of the account."""
    if user_ids:
        require_known(user_ids, deps.store.identity.live_user_ids(account, user_ids), "user", field)
