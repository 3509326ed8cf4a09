"""GET /signature-logs/{id} and /audit-logs/{id}: one entry, as the list shows it, only in the caller's account."""

from __future__ import annotations

import base64
import json

from tests.support.api import Api, make_account


def test_an_entry_by_id_is_the_entry_the_list_shows(api: Api) -> None:
    api.ok("POST", "/keypairs", {"alias": "by-id", "type": "static", "algorithm": "EdDSA"}, 201)
    signed = api.ok("POST", "/keypairs/by-id/sign", {"hash": base64.b64encode(b"\x01" * 32).decode()})
    assert api.call("POST", "/keypairs/by-id/sign", {"hash": "AA=="}).status_code == 400
    for entry in api.every("/signature-logs"):
        assert api.ok("GET", f"/signature-logs/{entry['id']}") == entry
    success = api.ok("GET", f"/signature-logs/{signed['signature_log_id']}")
    assert success["timestamp_token"] == signed["timestamp_token"]
    assert success["certificate_serial"] == signed["certificate"]["serial"]
    failed = next(e for e in api.every("/signature-logs") if e["status"] == "failed")
    assert "timestamp_token" not in failed
    for entry in api.every("/audit-logs"):
        assert api.ok("GET", f"/audit-logs/{entry['id']}") == entry


def test_another_accounts_entry_or_a_bad_id_is_404(api: Api, client: object) -> None:
    other = Api(client, make_account())
    theirs = other.every("/audit-logs")[0]["id"]
    for path in (f"/audit-logs/{theirs}", f"/signature-logs/{theirs}", "/audit-logs/log_01ARZ3NDEKTSV4RRFFQ69G5FAV",
                 "/audit-logs/kp_01ARZ3NDEKTSV4RRFFQ69G5FAV", "/signature-logs/nonsense"):
        response = api.call("GET", path)
        assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found", path
