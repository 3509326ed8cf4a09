"""First light: health, me, create a keypair."""

from __future__ import annotations

import json
from typing import Any


def test_health_needs_no_key(client: Any) -> None:
    response = client.http.get("/api/v1/health")
    assert response.status_code == 200
    assert json.loads(response.body)["status"] == "ok"


def test_me_and_create(api: Any) -> None:
    me = api.ok("GET", "/me")
    assert me["user"]["id"] == api.account.user_id
    kp = api.ok("POST", "/keypairs", {"alias": "rel", "type": "static", "algorithm": "ECDSA", "curve": "P-256"}, 201)
    assert kp["generation"] == 1 and kp["certificate"]["pem"].startswith("-----BEGIN CERTIFICATE")
    assert api.ok("GET", "/keypairs/rel")["id"] == kp["id"]
