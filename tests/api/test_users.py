"""Users: create, read, change and delete; the grant and manage rules; the last admin; deletion revokes keys."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.errors import RotasignError
from chalicelib.ids import new_id
from chalicelib.storage.tables import ApiKeyModel, AuditLogModel, UserModel
from tests.support.api import Account, Api
from tests.support.clock import FakeMonotonic, on_cache_clock


@pytest.fixture
def frozen_auth(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """The principal cache on a clock the test moves."""
    return on_cache_clock(monkeypatch)


def test_a_user_is_created_read_changed_listed_and_deleted(api: Api, account: Account) -> None:
    made = api.ok("POST", "/users", {"name": "Grace", "email": "grace@example.com", "roles": ["developer"]}, 201)
    assert made["id"].startswith("usr_") and made["name"] == "Grace" and made["email"] == "grace@example.com"
    assert made["roles"] == ["developer"] and made["permissions"] == [] and made["group_ids"] == []
    assert made["effective_permissions"] == ["generate_keypair", "sign", "view_audit_log", "view_keypair"]
    assert api.ok("GET", f"/users/{made['id']}") == made

    changed = api.ok("PATCH", f"/users/{made['id']}", {"roles": ["auditor"], "permissions": ["sign"],
                                                       "email": None})
    assert (changed["roles"], changed["permissions"], changed["email"]) == (["auditor"], ["sign"], None)
    assert changed["effective_permissions"] == ["sign", "view_audit_log", "view_keypair"]
    listed = api.ok("GET", "/users")["items"]
    assert [u["id"] for u in listed] == [made["id"], account.user_id]  # newest first
    assert listed[0] == changed

    api.ok("DELETE", f"/users/{made['id']}", status=204)
    api.error("GET", f"/users/{made['id']}", None, 404, "not_found")
    api.error("PATCH", f"/users/{made['id']}", {"name": "x"}, 404, "not_found")
    api.error("DELETE", f"/users/{made['id']}", None, 404, "not_found")
    assert [u["id"] for u in api.ok("GET", "/users")["items"]] == [account.user_id]
    actions = [(e.action, e.resource_id) for e in AuditLogModel.query(account.id) if e.type == "user"]
    assert actions[-3:] == [("create", made["id"]), ("update", made["id"]), ("delete", made["id"])]


def test_the_new_user_works_with_its_key(api: Api) -> None:
    developer = api.new_user("dev", roles=("developer",))
    me = api.as_(developer).ok("GET", "/me")
    assert me["user"]["id"] == developer.user_id and me["user"]["roles"] == ["developer"]
    api.as_(developer).ok("POST", "/keypairs", {"alias": "devs", "type": "static", "algorithm": "EdDSA"}, 201)
    api.as_(developer).error("GET", "/users", None, 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a", "email": "not an email"}, "email"),
        ({"name": "a", "roles": "admin"}, "roles"),
        ({"name": "a", "roles": ["owner"]}, "roles"),
        ({"name": "a", "permissions": ["sign", "fly"]}, "permissions"),
        ({"name": "a", "group_ids": []}, "group_ids"),
        ({"name": "a", "id": new_id("usr")}, "id"),
    ],
)
def test_bad_user_bodies_are_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    before = sum(1 for _ in UserModel.query(api.account.id))
    assert api.error("POST", "/users", body, 400, "validation_error")["details"]["field"] == field
    assert sum(1 for _ in UserModel.query(api.account.id)) == before


def test_a_user_cannot_grant_permissions_it_does_not_hold(api: Api, account: Account) -> None:
    # A user manager that is no admin: a developer with manage_users on top.
    manager = api.as_(api.new_user("manager", roles=("developer",), permissions=("manage_users",)))
    developer = manager.ok("POST", "/users", {"name": "dev", "roles": ["developer"]}, 201)
    refused = manager.error("POST", "/users", {"name": "boss", "roles": ["admin"]}, 403, "forbidden")
    assert refused["details"] == {"permission": "manage_account", "field": "roles"}
    refused = manager.error("POST", "/users", {"name": "x", "permissions": ["manage_teams"]}, 403, "forbidden")
    assert refused["details"] == {"permission": "manage_teams", "field": "permissions"}
    refused = manager.error("PATCH", f"/users/{developer['id']}", {"roles": ["lead"]}, 403, "forbidden")
    assert refused["details"]["permission"] == "manage_keypair"
    # What it holds it may grant: manage_users itself, on top of a developer.
    assert manager.ok("PATCH", f"/users/{developer['id']}", {"permissions": ["manage_users"]})["permissions"] == [
        "manage_users"]
    # Nor may it act on (or as) a user holding more than it does: the admin.
    for method, path, body in [("PATCH", f"/users/{account.user_id}", {"name": "x"}),
                               ("DELETE", f"/users/{account.user_id}", None),
                               ("POST", f"/users/{account.user_id}/api-keys", {}),
                               ("GET", f"/users/{account.user_id}", None)]:
        if method == "GET":
            manager.ok(method, path)  # reading is fine
            continue
        assert manager.error(method, path, body, 403, "forbidden")["details"]["permission"] == "manage_account"
    assert api.ok("GET", f"/users/{account.user_id}")["name"] == "admin"


def test_the_last_admin_cannot_be_removed(api: Api, account: Account, frozen_auth: FakeMonotonic) -> None:
    assert api.error("PATCH", f"/users/{account.user_id}", {"roles": ["lead"]}, 409, "last_admin")
    assert api.error("DELETE", f"/users/{account.user_id}", None, 409, "last_admin")
    second = api.ok("POST", "/users", {"name": "second admin", "roles": ["admin"]}, 201)
    api.ok("PATCH", f"/users/{account.user_id}", {"roles": ["admin", "lead"]})  # still an admin: fine
    assert api.ok("PATCH", f"/users/{account.user_id}", {"roles": ["lead"]})["roles"] == ["lead"]
    # The second is now the last admin: even a caller still holding admin rights (its principal cached
    # from before its demotion) cannot remove it...
    api.error("DELETE", f"/users/{second['id']}", None, 409, "last_admin")
    # ...and once the demotion reaches the cache, the lead cannot manage an admin at all.
    frozen_auth.advance(5.001)
    api.error("DELETE", f"/users/{second['id']}", None, 403, "forbidden")
    roles = {u.id: list(u.roles) for u in UserModel.query(account.id)}
    assert roles[second["id"]] == ["admin"]


def test_two_admins_removing_each_other_at_once_leave_one(api: Api, account: Account) -> None:
    from chalicelib.services.container import get_services

    services = get_services()
    other = api.new_user("other admin", roles=("admin",))
    principals = {
        account.user_id: services.auth.authenticate(account.api_key, None),
        other.user_id: services.auth.authenticate(other.api_key, None),
    }

    def remove(barrier: threading.Barrier, results: dict[str, str], actor: str, target: str) -> None:
        barrier.wait()
        try:
            services.users.update(principals[actor], target, _demote(), None)
            results[actor] = "ok"
        except RotasignError as exc:
            results[actor] = exc.code

    for round_ in range(5):
        barrier = threading.Barrier(2)
        results: dict[str, str] = {}
        threads = [threading.Thread(target=remove, args=(barrier, results, a, b)) for a, b in
                   ((account.user_id, other.user_id), (other.user_id, account.user_id))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == ["last_admin", "ok"], (round_, results)
        admins = [u.id for u in UserModel.query(account.id) if "admin" in (u.roles or [])]
        assert len(admins) == 1
        # Make the demoted one an admin again for the next round.
        demoted = account.user_id if admins == [other.user_id] else other.user_id
        services.users.update(principals[admins[0]], demoted, _promote(), None)


def _demote() -> Any:
    from chalicelib.services.users import UserChange

    return UserChange(frozenset({"roles"}), roles=("lead",))


def _promote() -> Any:
    from chalicelib.services.users import UserChange

    return UserChange(frozenset({"roles"}), roles=("admin",))


def test_deleting_a_user_revokes_its_keys_and_ends_its_memberships(
    api: Api, account: Account, frozen_auth: FakeMonotonic
) -> None:
    api.ok("PATCH", "/account", {"teams_enabled": True})
    leaver = api.new_user("leaver", roles=("developer",))
    second_key = api.ok("POST", f"/users/{leaver.user_id}/api-keys", {"name": "ci"}, 201)
    group = api.ok("POST", "/groups", {"name": "g", "member_ids": [leaver.user_id, account.user_id]}, 201)
    team = api.ok("POST", "/teams", {"name": "t", "member_ids": [leaver.user_id]}, 201)
    assert api.ok("GET", f"/users/{leaver.user_id}")["group_ids"] == [group["id"]]
    api.as_(leaver).ok("GET", "/me")  # cached in this process

    api.ok("DELETE", f"/users/{leaver.user_id}", status=204)
    keys = list(ApiKeyModel.by_user.query(f"{account.id}#{leaver.user_id}"))
    assert len(keys) == 2 and all(k.revoked_at for k in keys)
    assert api.ok("GET", f"/groups/{group['id']}")["member_ids"] == [account.user_id]
    assert api.ok("GET", f"/teams/{team['id']}")["member_ids"] == []
    entry = next(e for e in AuditLogModel.query(account.id) if e.type == "user" and e.action == "delete")
    assert sorted(entry.details["revoked_api_keys"]) == sorted(k.id for k in keys)
    assert entry.details["removed_from_groups"] == [group["id"]]
    assert entry.details["removed_from_teams"] == [team["id"]]
    # Both keys stop working within the principal cache bound.
    frozen_auth.advance(5.001)
    for key in (leaver.api_key, second_key["key"]):
        api.as_(Account(account.id, account.name, leaver.user_id, key)).error("GET", "/me", None, 401,
                                                                               "unauthenticated")


def test_group_ids_are_derived_from_the_groups(api: Api, frozen_auth: FakeMonotonic) -> None:
    member = api.new_user("member", roles=("developer",))
    first = api.ok("POST", "/groups", {"name": "first", "member_ids": [member.user_id]}, 201)
    second = api.ok("POST", "/groups", {"name": "second"}, 201)
    api.ok("PATCH", f"/groups/{second['id']}", {"member_ids": [member.user_id]})
    assert api.ok("GET", f"/users/{member.user_id}")["group_ids"] == sorted([first["id"], second["id"]])
    listed = next(u for u in api.ok("GET", "/users")["items"] if u["id"] == member.user_id)
    assert listed["group_ids"] == sorted([first["id"], second["id"]])
    assert api.as_(member).ok("GET", "/me")["user"]["group_ids"] == sorted([first["id"], second["id"]])
    # Stored once: the user's row has no group list to fall out of step.
    assert "group_ids" not in UserModel.get(api.account.id, member.user_id).attribute_values
    api.ok("PATCH", f"/groups/{first['id']}", {"member_ids": []})
    assert api.ok("GET", f"/users/{member.user_id}")["group_ids"] == [second["id"]]
    frozen_auth.advance(5.001)
    assert api.as_(member).ok("GET", "/me")["user"]["group_ids"] == [second["id"]]
    api.error("POST", "/groups", {"name": "ghosts", "member_ids": [new_id("usr")]}, 400, "validation_error")


def test_a_user_holds_at_most_fifty_live_keys(api: Api) -> None:
    from chalicelib.services.api_keys import MAX_LIVE_KEYS

    user = api.ok("POST", "/users", {"name": "many keys", "roles": ["developer"]}, 201)
    made = [api.ok("POST", f"/users/{user['id']}/api-keys", {}, 201) for _ in range(MAX_LIVE_KEYS)]
    api.error("POST", f"/users/{user['id']}/api-keys", {}, 409, "too_many_api_keys")
    api.ok("DELETE", f"/users/{user['id']}/api-keys/{made[0]['id']}", status=204)
    api.ok("POST", f"/users/{user['id']}/api-keys", {}, 201)
    # Deleting the user still revokes every key in its one transaction.
    api.ok("DELETE", f"/users/{user['id']}", status=204)
    keys = list(ApiKeyModel.by_user.query(f"{api.account.id}#{user['id']}"))
    assert len(keys) == MAX_LIVE_KEYS + 1 and all(k.revoked_at for k in keys)
