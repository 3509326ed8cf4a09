"""Keypair profiles: fixed values are imposed, customizable ones are defaults, team allocation holds,
and an account that requires a profile refuses a keypair without one."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chalicelib.ids import new_id
from chalicelib.storage.tables import KeypairModel
from tests.support.api import Api

FIXED = {"name": "release standard", "mode": "fixed", "type": "dynamic", "algorithm": "ECDSA", "curve": "P-384",
         "category": "production", "storage": "disk", "status": "online"}
CUSTOM = {"name": "rsa default", "mode": "customizable", "type": "static", "algorithm": "RSA", "key_size": 3072,
          "category": "test"}


def public_key(kp: dict[str, Any]) -> Any:
    return serialization.load_pem_public_key(kp["public_key"].encode())


def test_a_fixed_profile_imposes_its_values(api: Api) -> None:
    profile = api.ok("POST", "/keypair-profiles", FIXED, 201)
    assert {k: profile[k] for k in FIXED} == FIXED and profile["key_size"] is None and profile["team_ids"] == []
    kp = api.ok("POST", "/keypairs", {"alias": "from-profile", "profile_id": profile["id"]}, 201)
    assert (kp["type"], kp["algorithm"], kp["curve"], kp["category"], kp["profile_id"]) == (
        "dynamic", "ECDSA", "P-384", "production", profile["id"])
    key = public_key(kp)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    # Sending a value the profile fixes is fine when it agrees, a 400 naming the field when it does not.
    api.ok("POST", "/keypairs", {"alias": "agrees", "profile_id": profile["id"], "algorithm": "ECDSA",
                                 "curve": "P-384", "type": "dynamic"}, 201)
    before = sum(1 for _ in KeypairModel.query(api.account.id))
    for field, value in [("type", "static"), ("algorithm", "EdDSA"), ("curve", "P-256"), ("storage", "hsm"),
                         ("category", "test"), ("status", "offline")]:
        body = {"alias": f"contradicts-{field}", "profile_id": profile["id"], field: value}
        error = api.error("POST", "/keypairs", body, 400, "validation_error")
        assert error["details"]["field"] == field and "fixes" in error["message"]
    assert sum(1 for _ in KeypairModel.query(api.account.id)) == before


def test_a_customizable_profile_supplies_defaults(api: Api) -> None:
    profile = api.ok("POST", "/keypair-profiles", CUSTOM, 201)
    kp = api.ok("POST", "/keypairs", {"alias": "defaults", "profile_id": profile["id"]}, 201)
    assert (kp["type"], kp["algorithm"], kp["key_size"], kp["category"], kp["storage"], kp["status"]) == (
        "static", "RSA", 3072, "test", "disk", "online")
    key = public_key(kp)
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    # The request's own values win; another algorithm does not inherit the profile's key size.
    kp = api.ok("POST", "/keypairs", {"alias": "own", "profile_id": profile["id"], "key_size": 2048,
                                      "category": "production"}, 201)
    assert (kp["key_size"], kp["category"]) == (2048, "production")
    kp = api.ok("POST", "/keypairs", {"alias": "other-alg", "profile_id": profile["id"], "algorithm": "EdDSA"}, 201)
    assert (kp["algorithm"], kp["key_size"], kp["curve"]) == ("EdDSA", None, "Ed25519")


def test_a_team_keypair_uses_only_profiles_allocated_to_its_team(api: Api) -> None:
    api.ok("PATCH", "/account", {"teams_enabled": True})
    web = api.ok("POST", "/teams", {"name": "web"}, 201)
    ops = api.ok("POST", "/teams", {"name": "ops"}, 201)
    profile = api.ok("POST", "/keypair-profiles", {**FIXED, "team_ids": [web["id"]]}, 201)
    assert api.ok("GET", f"/teams/{web['id']}")["profile_ids"] == [profile["id"]]
    assert api.ok("GET", f"/teams/{ops['id']}")["profile_ids"] == []
    api.ok("POST", "/keypairs", {"alias": "web-kp", "team_id": web["id"], "profile_id": profile["id"]}, 201)
    error = api.error("POST", "/keypairs", {"alias": "ops-kp", "team_id": ops["id"], "profile_id": profile["id"]},
                      400, "validation_error")
    assert error["details"]["field"] == "profile_id"
    # Allocated to ops as well: now it may.
    api.ok("PATCH", f"/keypair-profiles/{profile['id']}", {"team_ids": [web["id"], ops["id"]]})
    api.ok("POST", "/keypairs", {"alias": "ops-kp", "team_id": ops["id"], "profile_id": profile["id"]}, 201)
    listed = {t["id"]: t["profile_ids"] for t in api.ok("GET", "/teams")["items"]}
    assert listed == {web["id"]: [profile["id"]], ops["id"]: [profile["id"]]}
    # Deleting a team deallocates its profiles in the same transaction.
    api.ok("DELETE", f"/teams/{ops['id']}", status=204)
    assert api.ok("GET", f"/keypair-profiles/{profile['id']}")["team_ids"] == [web["id"]]
    error = api.error("PATCH", f"/keypair-profiles/{profile['id']}", {"team_ids": [new_id("team")]}, 400,
                      "validation_error")
    assert error["details"]["field"] == "team_ids"


def test_require_keypair_profile(api: Api) -> None:
    profile = api.ok("POST", "/keypair-profiles", CUSTOM, 201)
    api.ok("PATCH", "/account", {"require_keypair_profile": True})
    error = api.error("POST", "/keypairs", {"alias": "bare", "type": "static", "algorithm": "EdDSA"}, 400,
                      "validation_error")
    assert error["details"]["field"] == "profile_id"
    api.ok("POST", "/keypairs", {"alias": "with-profile", "profile_id": profile["id"]}, 201)
    error = api.error("POST", "/keypairs", {"alias": "nope", "profile_id": new_id("prof")}, 400, "validation_error")
    assert error["details"]["field"] == "profile_id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CUSTOM, "curve": "P-256"}, "curve"),
        ({**CUSTOM, "key_size": 1024}, "key_size"),
        ({"name": "size only", "mode": "fixed", "key_size": 2048}, "key_size"),
        ({**FIXED, "key_size": 256}, "key_size"),
        ({**FIXED, "algorithm": "DSA"}, "algorithm"),
        ({**FIXED, "mode": "loose"}, "mode"),
        ({"mode": "fixed"}, "name"),
        ({"name": "no mode"}, "mode"),
        ({**FIXED, "storage": "cloud"}, "storage"),
        ({**FIXED, "team_ids": [new_id("team")]}, "team_ids"),
    ],
)
def test_bad_profiles_are_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = api.call("POST", "/keypair-profiles", body)
    assert response.status_code == 400, response.body
    import json

    assert json.loads(response.body)["error"]["details"]["field"] == field
    assert api.ok("GET", "/keypair-profiles")["items"] == []


def test_profiles_are_listed_changed_and_deleted(api: Api) -> None:
    first = api.ok("POST", "/keypair-profiles", FIXED, 201)
    second = api.ok("POST", "/keypair-profiles", CUSTOM, 201)
    assert [p["id"] for p in api.ok("GET", "/keypair-profiles")["items"]] == [second["id"], first["id"]]
    page = api.ok("GET", "/keypair-profiles?limit=1")
    assert [p["id"] for p in page["items"]] == [second["id"]] and page["next"]
    assert [p["id"] for p in api.ok("GET", f"/keypair-profiles?limit=1&next={page['next']}")["items"]] == [
        first["id"]]
    changed = api.ok("PATCH", f"/keypair-profiles/{second['id']}", {"key_size": None, "mode": "fixed"})
    assert (changed["key_size"], changed["mode"], changed["algorithm"]) == (None, "fixed", "RSA")
    # A keypair made with a profile keeps its parameters when the profile changes or goes.
    kp = api.ok("POST", "/keypairs", {"alias": "kept", "profile_id": first["id"]}, 201)
    api.ok("PATCH", f"/keypair-profiles/{first['id']}", {"curve": "P-521"})
    api.ok("DELETE", f"/keypair-profiles/{first['id']}", status=204)
    assert api.ok("GET", f"/keypairs/{kp['id']}")["curve"] == "P-384"
    api.error("GET", f"/keypair-profiles/{first['id']}", None, 404, "not_found")
