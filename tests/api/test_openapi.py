"""The OpenAPI document: it names every route of the app and no other, validates as OpenAPI 3.1, is served
without a key, and its request bodies take exactly the fields the parsers take.

Whether the running service answers as the document says is the fuzz test's job (tests/e2e/test_fuzz_api.py).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from chalicelib.api import groups, keypairs, profiles, release_windows, signing, teams, users
from chalicelib.api.openapi_spec import built
from chalicelib.storage.accounts import SETTINGS

# Each request-body schema and the fields its parser accepts (chalicelib/api/*.py).
PARSED_FIELDS: dict[str, tuple[str, ...]] = {
    "NewKeypair": keypairs.CREATE_FIELDS,
    "KeypairChange": keypairs.CHANGE_FIELDS,
    "SignItem": signing.ITEM_FIELDS,
    "SignBatch": ("items",),
    "AccountChange": SETTINGS,
    "NewApiKey": ("name", "expires_at"),
    "NewUser": users.FIELDS,
    "UserChange": users.FIELDS,
    "NewGroup": groups.FIELDS,
    "GroupChange": groups.FIELDS,
    "NewTeam": teams.FIELDS,
    "TeamChange": teams.FIELDS,
    "NewProfile": profiles.FIELDS,
    "ProfileChange": profiles.FIELDS,
    "NewReleaseWindow": release_windows.FIELDS,
    "ReleaseWindowChange": release_windows.FIELDS,
}


def document() -> dict[str, Any]:
    """A copy of the served document, for a test to change."""
    return copy.deepcopy(built())


def app_operations() -> set[tuple[str, str]]:
    from app import app

    return {(method, path) for path, methods in app.routes.items() for method in methods}


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def test_every_route_of_the_app_is_in_the_document_and_no_other() -> None:
    in_app, in_document = app_operations(), document_operations(document())
    assert in_app - in_document == set(), "routes of the app missing from the OpenAPI document"
    assert in_document - in_app == set(), "operations in the OpenAPI document that the app lacks"


def test_a_route_missing_from_the_document_is_noticed() -> None:
    doc = document()
    del doc["paths"]["/api/v1/keypairs/{keypair}/sign"]
    assert app_operations() - document_operations(doc) == {("POST", "/api/v1/keypairs/{keypair}/sign")}


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)


def test_every_operation_states_its_errors_in_the_error_shape() -> None:
    doc = document()
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not path.startswith("/api/v1"):
                continue
            codes = set(op["responses"])
            assert {"400", "404", "503"} <= codes, (method, path)
            secured = op.get("security", doc["security"])
            assert ("401" in codes) == (secured != []), (method, path)
            for code in codes - {"200", "201", "204"}:
                target = op["responses"][code]["$ref"].rsplit("/", 1)[-1]
                schema = doc["components"]["responses"][target]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize("name", sorted(PARSED_FIELDS))
def test_request_bodies_take_exactly_the_parsed_fields(name: str) -> None:
    schema = document()["components"]["schemas"][name]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(PARSED_FIELDS[name])


def test_every_json_request_body_is_a_documented_schema() -> None:
    doc = document()
    named = set()
    for item in doc["paths"].values():
        for op in item.values():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                refs = [body["schema"]] if "$ref" in body["schema"] else body["schema"]["oneOf"]
                named |= {r["$ref"].rsplit("/", 1)[-1] for r in refs}
    assert named == set(PARSED_FIELDS)


def test_served_without_a_key(client: Any) -> None:
    response = client.http.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == document()
