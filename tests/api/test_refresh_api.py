"""POST /keypairs/{keypair}/refresh and GET /keypairs/{keypair}/generations over the HTTP API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509

from chalicelib.keys.algorithms import key_id_of

DYNAMIC = {"type": "dynamic", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


def error_code(response: Any) -> str:
    return str(json.loads(response.body)["error"]["code"])


def test_manual_refresh_returns_a_newer_key_and_certificate(api: Any) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": "manual", **DYNAMIC}, 201)
    refreshed = api.ok("POST", "/keypairs/manual/refresh")
    assert refreshed["id"] == kp["id"] and refreshed["generation"] == 2
    assert refreshed["key_id"] != kp["key_id"] and refreshed["public_key"] != kp["public_key"]
    assert refreshed["certificate"]["serial"] != kp["certificate"]["serial"]
    cert = x509.load_pem_x509_certificate(refreshed["certificate"]["pem"].encode())
    assert key_id_of(cert.public_key()) == refreshed["key_id"]
    assert refreshed["next_refresh_at"] and refreshed["refreshed_at"] >= kp["refreshed_at"]
    assert api.ok("GET", f"/keypairs/{kp['id']}") == refreshed

    [entry] = api.ok("GET", "/audit-logs?type=dynamic&action=refresh")["items"]
    assert (entry["actor"], entry["resource_id"], entry["resource_alias"], entry["outcome"]) == (
        api.account.user_id, kp["id"], "manual", "success")
    assert (entry["details"]["old_key_id"], entry["details"]["new_key_id"]) == (kp["key_id"], refreshed["key_id"])
    assert (entry["details"]["old_generation"], entry["details"]["new_generation"]) == (1, 2)


def test_refresh_of_a_static_keypair_is_409_not_dynamic(api: Any) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": "static", **DYNAMIC, "type": "static"}, 201)
    response = api.call("POST", f"/keypairs/{kp['id']}/refresh")
    assert response.status_code == 409 and error_code(response) == "not_dynamic"
    assert api.ok("GET", f"/keypairs/{kp['id']}")["generation"] == 1
    assert api.ok("GET", "/audit-logs?type=static&action=refresh")["items"] == []


def test_refresh_of_a_missing_or_deleted_keypair_is_404(api: Any) -> None:
    assert api.call("POST", "/keypairs/nothing-here/refresh").status_code == 404
    kp = api.ok("POST", "/keypairs", {"alias": "gone", **DYNAMIC}, 201)
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)
    for path in (f"/keypairs/{kp['id']}/refresh", "/keypairs/gone/generations"):
        response = api.call("POST" if path.endswith("refresh") else "GET", path)
        assert response.status_code == 404 and error_code(response) == "not_found"
    # By id, its generations stay readable: its signatures must still verify.
    assert [g["generation"] for g in api.ok("GET", f"/keypairs/{kp['id']}/generations")["items"]] == [1]


def test_refresh_needs_manage_keypair(api: Any) -> None:
    from tests.support.api import add_user

    kp = api.ok("POST", "/keypairs", {"alias": "guarded", **DYNAMIC}, 201)
    # No user route exists yet, so the auditor is written through the data layer.
    headers = {"X-API-Key": add_user(api.account, "auditor", roles=("auditor",)).api_key}
    response = api.call("POST", f"/keypairs/{kp['id']}/refresh", headers=headers)
    assert response.status_code == 403 and error_code(response) == "forbidden"
    history = api.call("GET", f"/keypairs/{kp['id']}/generations", headers=headers)
    assert history.status_code == 200 and len(json.loads(history.body)["items"]) == 1


def test_generations_are_listed_newest_first_in_sealed_pages(api: Any) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": "history", **DYNAMIC}, 201)
    versions = [kp] + [api.ok("POST", "/keypairs/history/refresh") for _ in range(3)]
    first = api.ok("GET", "/keypairs/history/generations?limit=2")
    assert [g["generation"] for g in first["items"]] == [4, 3] and first["next"]
    second = api.ok("GET", f"/keypairs/history/generations?limit=2&next={first['next']}")
    assert [g["generation"] for g in second["items"]] == [2, 1] and second["next"] is None
    listed = {g["generation"]: g for g in first["items"] + second["items"]}
    for version in versions:
        generation = listed[version["generation"]]
        assert generation["key_id"] == version["key_id"] and generation["public_key"] == version["public_key"]
        assert generation["certificate"] == version["certificate"]
        assert generation["created_at"] == version["refreshed_at"]
    assert [listed[n]["retired_at"] is None for n in (1, 2, 3, 4)] == [False, False, False, True]
    assert api.ok("GET", f"/keypairs/{kp['id']}/generations")["items"] == first["items"] + second["items"]


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "since=1", "next=not-a-token"])
def test_generations_reject_bad_parameters(api: Any, query: str) -> None:
    api.ok("POST", "/keypairs", {"alias": "bad-params", **DYNAMIC}, 201)
    response = api.call("GET", f"/keypairs/bad-params/generations?{query}")
    expected = "invalid_pagination_token" if query.startswith("next") else "validation_error"
    assert response.status_code == 400 and error_code(response) == expected


def test_a_generations_token_only_works_for_its_keypair(api: Any) -> None:
    for alias in ("tok-a", "tok-b"):
        api.ok("POST", "/keypairs", {"alias": alias, **DYNAMIC}, 201)
        api.ok("POST", f"/keypairs/{alias}/refresh")
    token = api.ok("GET", "/keypairs/tok-a/generations?limit=1")["next"]
    assert api.ok("GET", f"/keypairs/tok-a/generations?limit=1&next={token}")["items"][0]["generation"] == 1
    response = api.call("GET", f"/keypairs/tok-b/generations?limit=1&next={token}")
    assert response.status_code == 400 and error_code(response) == "invalid_pagination_token"
