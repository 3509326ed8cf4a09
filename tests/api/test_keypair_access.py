"""Restricted keypairs: allowed users and members of allowed groups sign; nobody else, admins included.

Every refusal is a 403 with a failed signature-log entry and a `sign_denied` audit entry. Removing a
user from a group, revoking a key or changing a keypair's access in another process takes effect within
the 5-second cache bound (the caches run on a fake clock here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.storage.tables import AuditLogModel, SignatureLogModel
from tests.support.api import Account, Api, check_signed, digest_body
from tests.support.clock import FakeMonotonic, on_cache_clock

EC = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    return on_cache_clock(monkeypatch)


@pytest.fixture
def cast(api: Api) -> dict[str, Any]:
    """A restricted keypair allowing one user and one group; a group member, and an outsider."""
    listed = api.new_user("listed", roles=("developer",))
    member = api.new_user("member", roles=("developer",))
    outsider = api.new_user("outsider", roles=("developer",))
    group = api.ok("POST", "/groups", {"name": "release", "member_ids": [member.user_id]}, 201)
    kp = api.ok("POST", "/keypairs", {"alias": "guarded", **EC, "access": "restricted",
                                      "allowed_users": [listed.user_id], "allowed_groups": [group["id"]]}, 201)
    return {"listed": listed, "member": member, "outsider": outsider, "group": group, "kp": kp}


def refused(api: Api, as_: Account, ref: str, code: str, status: int = 403) -> SignatureLogModel:
    """A refused signature: its status and code, one failed log entry and one sign_denied audit entry."""
    before = {e.sk for e in SignatureLogModel.query(as_.id, consistent_read=True)}
    denied_before = {e.sk for e in AuditLogModel.query(as_.id, consistent_read=True) if e.action == "sign_denied"}
    error = api.as_(as_).error("POST", f"/keypairs/{ref}/sign", digest_body(b"x"), status, code)
    assert "signature" not in error
    new = [e for e in SignatureLogModel.query(as_.id, consistent_read=True) if e.sk not in before]
    assert len(new) == 1 and (new[0].status, new[0].error, new[0].signature, new[0].signer) == (
        "failed", code, None, as_.user_id)
    denied = [e for e in AuditLogModel.query(as_.id, consistent_read=True)
              if e.action == "sign_denied" and e.sk not in denied_before]
    assert len(denied) == 1 and denied[0].details["signature_log_id"] == new[0].id
    return new[0]


def test_listed_users_and_group_members_sign_and_nobody_else(
    api: Api, account: Account, cast: dict[str, Any], tmp_path: Path
) -> None:
    kp = cast["kp"]
    for who in ("listed", "member"):
        for ref in (kp["id"], kp["alias"]):
            data = f"{who} {ref}".encode()
            signed = api.as_(cast[who]).ok("POST", f"/keypairs/{ref}/sign", digest_body(data))
            check_signed(tmp_path, signed, data)
            entry = next(e for e in SignatureLogModel.query(account.id) if e.id == signed["signature_log_id"])
            assert (entry.status, entry.signer) == ("success", cast[who].user_id)
    entry = refused(api, cast["outsider"], kp["id"], "not_allowed")
    assert entry.keypair_id == kp["id"]  # the outsider sees the keypair (same account, no team): it is named
    # The admin is no exception: not listed, not a member.
    refused(api, account, kp["alias"], "not_allowed")


def test_removal_from_the_group_takes_effect_within_five_seconds(
    api: Api, cast: dict[str, Any], clock: FakeMonotonic
) -> None:
    member, kp = cast["member"], cast["kp"]
    api.as_(member).ok("POST", f"/keypairs/{kp['id']}/sign", digest_body(b"before"))
    api.ok("PATCH", f"/groups/{cast['group']['id']}", {"member_ids": []})
    clock.advance(5.001)
    refused(api, member, kp["id"], "not_allowed")


def test_revoking_the_key_takes_effect_within_five_seconds(
    api: Api, account: Account, cast: dict[str, Any], clock: FakeMonotonic
) -> None:
    listed, kp = cast["listed"], cast["kp"]
    api.as_(listed).ok("POST", f"/keypairs/{kp['id']}/sign", digest_body(b"before"))
    key_id = listed.api_key.split("_")[1]
    api.ok("DELETE", f"/users/{listed.user_id}/api-keys/{key_id}", status=204)
    clock.advance(5.001)
    api.as_(listed).error("POST", f"/keypairs/{kp['id']}/sign", digest_body(b"after"), 401, "unauthenticated")


def test_an_access_change_in_another_process_takes_effect_within_five_seconds(
    api: Api, cast: dict[str, Any], clock: FakeMonotonic
) -> None:
    from chalicelib.services.container import build_services, get_services
    from chalicelib.services.keypairs import KeypairChange

    listed, kp = cast["listed"], cast["kp"]
    api.as_(listed).ok("POST", f"/keypairs/{kp['id']}/sign", digest_body(b"cached"))
    # Another warm process (its own caches) takes the user off the list; this one keeps its state a while.
    other = build_services(get_services().deps)
    admin = other.auth.authenticate(api.account.api_key, None)
    other.keypairs.update(admin, kp["id"], KeypairChange(allowed_users=()), None)
    clock.advance(5.001)
    refused(api, listed, kp["id"], "not_allowed")


def test_allowed_groups_must_be_groups_of_the_account(api: Api) -> None:
    from chalicelib.ids import new_id

    for body in ({"alias": "x", **EC, "access": "restricted", "allowed_groups": [new_id("grp")]},):
        error = api.error("POST", "/keypairs", body, 400, "validation_error")
        assert error["details"]["field"] == "allowed_groups"
    kp = api.ok("POST", "/keypairs", {"alias": "y", **EC, "access": "restricted"}, 201)
    error = api.error("PATCH", f"/keypairs/{kp['id']}", {"allowed_groups": [new_id("grp")]}, 400,
                      "validation_error")
    assert error["details"]["field"] == "allowed_groups"


def test_access_changes_are_audited(api: Api, account: Account, cast: dict[str, Any]) -> None:
    kp, group = cast["kp"], cast["group"]
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"allowed_groups": []})
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"access": "open"})
    entries = [e for e in AuditLogModel.query(account.id) if e.resource_id == kp["id"] and e.action == "update"]
    assert [dict(e.details["changes"]) for e in entries] == [
        {"allowed_groups": {"from": [group["id"]], "to": []}},
        {"access": {"from": "restricted", "to": "open"}, "allowed_users": {"from": [cast["listed"].user_id],
                                                                           "to": []}},
    ]
    generated = next(e for e in AuditLogModel.query(account.id) if e.resource_id == kp["id"]
                     and e.action == "generate")
    assert generated.details["access"] == "restricted" and generated.details["allowed_groups"] == [group["id"]]
