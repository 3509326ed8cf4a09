"""Nothing a verifier needs is lost: generations and their certificates stay readable after the keypair is deleted."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from tests.support.api import Api, add_user, make_account
from tests.support.openssl import verify_chain, verify_digest

DYNAMIC = {"type": "dynamic", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


def test_generations_and_certificates_outlive_the_keypair(api: Api, client: Any, tmp_path: Path) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": "short-lived", **DYNAMIC}, 201)
    digest = hashlib.sha256(b"artifact").digest()
    signed = api.ok("POST", "/keypairs/short-lived/sign", {"hash": base64.b64encode(digest).decode()})
    api.ok("POST", "/keypairs/short-lived/refresh")
    api.ok("POST", "/keypairs/short-lived/refresh")
    before = api.ok("GET", f"/keypairs/{kp['id']}/generations")["items"]
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)

    assert api.call("GET", f"/keypairs/{kp['id']}").status_code == 404
    after = api.every(f"/keypairs/{kp['id']}/generations")
    assert [g["generation"] for g in after] == [3, 2, 1]
    assert [{**g, "retired_at": None} for g in after] == [{**g, "retired_at": None} for g in before]
    assert all(g["retired_at"] for g in after)  # the delete retired the last one too
    first = api.ok("GET", f"/keypairs/{kp['id']}/generations/1")
    assert first == after[-1] and first["key_id"] == signed["key_id"]
    assert first["certificate"]["serial"] == signed["certificate"]["serial"]

    # The signature's log entry names that certificate and keeps the token; the certificate still chains.
    entry = api.ok("GET", f"/signature-logs/{signed['signature_log_id']}")
    assert entry["certificate_serial"] == first["certificate"]["serial"]
    assert entry["timestamp_token"] == signed["timestamp_token"]
    ca = json.loads(client.http.get(f"/api/v1/trust/{api.account.id}").body)["production"]
    assert verify_chain(tmp_path, ca, first["certificate"]["pem"]).returncode == 0
    verify_digest(tmp_path, first["public_key"], "SHA256withECDSA", digest, base64.b64decode(signed["signature"]))

    # The alias is free again and names the new keypair only; the old id keeps its history.
    api.ok("POST", "/keypairs", {"alias": "short-lived", **DYNAMIC}, 201)
    assert [g["generation"] for g in api.ok("GET", "/keypairs/short-lived/generations")["items"]] == [1]


def test_one_generation_is_readable_by_members_with_view_keypair_only(api: Api, client: Any) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": "guarded-history", **DYNAMIC}, 201)
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)
    path = f"/keypairs/{kp['id']}/generations/1"
    auditor = {"X-API-Key": add_user(api.account, "auditor", roles=("auditor",)).api_key}
    signer = {"X-API-Key": add_user(api.account, "signer", permissions=("sign",)).api_key}
    assert api.call("GET", path, headers=auditor).status_code == 200
    assert api.call("GET", f"/keypairs/{kp['id']}/generations", headers=auditor).status_code == 200
    assert api.call("GET", path, headers=signer).status_code == 403
    other = Api(client, make_account())
    for caller, missing in ((other, path), (other, f"/keypairs/{kp['id']}/generations"),
                            (api, f"/keypairs/{kp['id']}/generations/2"), (api, f"/keypairs/{kp['id']}/generations/x"),
                            (api, f"/keypairs/{kp['id']}/generations/-1"),
                            (api, "/keypairs/guarded-history/generations/1")):  # a deleted keypair's alias is free
        response = caller.call("GET", missing)
        assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found", missing
