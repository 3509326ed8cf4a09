"""The OpenAPI 3.1 document of the whole HTTP API, built from the tables below (`openapi.py` serves it).

One source of truth: request schemas name exactly the fields the parsers in this package accept (objects
refuse unknown fields: `additionalProperties: false`), response schemas the fields `render.py` writes, and
every operation lists the error statuses it can answer, each with the error shape. A test compares the
document's operations with `app.routes`, and the fuzz test drives the running stack from this document.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import chalicelib
from chalicelib.api.keypairs import CHANGE_FIELDS, CREATE_FIELDS
from chalicelib.api.logs import AUDIT_FILTERS, SIGNATURE_FILTERS
from chalicelib.api.release_windows import MAX_SIGNATURES
from chalicelib.api.signing import MAX_MESSAGE
from chalicelib.domain.identity import PERMISSIONS, ROLES
from chalicelib.domain.keypairs import Access, Category, KeypairType, Status, Storage
from chalicelib.domain.keyspec import ALGORITHMS, EC_CURVE_NAMES, ED_CURVE, HASH_LENGTHS, RSA_KEY_SIZES
from chalicelib.domain.profiles import PROFILE_FIELDS, ProfileMode
from chalicelib.services.pagination import DEFAULT_LIMIT, MAX_LIMIT
from chalicelib.services.sign_requests import MAX_BATCH, MAX_LABEL
from chalicelib.storage.accounts import SETTINGS

V1 = "/api/v1"
Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
TIME: Schema = {"type": "string", "format": "date-time"}
# Request times: the parser takes RFC 3339 (ISO 8601 with an offset); no `format`, so no stricter reading.
TIME_IN: Schema = {"type": "string", "description": "An RFC 3339 time with an offset, e.g. 2026-11-29T12:00:00Z."}
BOOLEAN: Schema = {"type": "boolean"}
INTEGER: Schema = {"type": "integer"}
PEM: Schema = {"type": "string", "description": "PEM"}
BASE64: Schema = {"type": "string", "contentEncoding": "base64"}
ALIAS: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$", "minLength": 1, "maxLength": 64,
                 "not": {"pattern": r"^[A-Za-z]+_[0-9A-Za-z]{26}$"},
                 "description": "1 to 64 letters, digits, dots, dashes or underscores; may not look like an id."}


def nullable(schema: Schema) -> Schema:
    """The schema or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def strings(values: Any) -> Schema:
    """One of `values` (strings or string enums)."""
    return {"type": "string", "enum": [str(v) for v in values]}


def id_of(prefix: str) -> Schema:
    """A prefixed ULID such as `kp_01J...`."""
    return {"type": "string", "pattern": f"^{prefix}_[0-9A-HJKMNP-TV-Z]{{26}}$"}


def ids_of(prefix: str) -> Schema:
    """A list of up to 100 ids (duplicates are kept once)."""
    return {"type": "array", "items": id_of(prefix), "maxItems": 100}


def text(max_length: int, **extra: Any) -> Schema:
    """A string of 1..max_length characters."""
    return {"type": "string", "minLength": 1, "maxLength": max_length, **extra}


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema) -> Schema:
    """A JSON array."""
    return {"type": "array", "items": items}


def obj(properties: dict[str, Schema], required: tuple[str, ...] | None = None, *, closed: bool = True,
        **extra: Any) -> Schema:
    """A JSON object; `required` defaults to every property (what a response always carries)."""
    schema: Schema = {"type": "object", "properties": properties,
                      "required": list(properties if required is None else required)}
    if closed:
        schema["additionalProperties"] = False
    schema.update(extra)
    return schema


def page_of(item: str) -> Schema:
    """A list page: `{"items": [...], "next": token | null}`."""
    return obj({"items": array(ref(item)), "next": nullable(STRING)})


CERTIFICATE = obj({"serial": STRING, "pem": PEM, "not_before": TIME, "not_after": TIME, "issuer": STRING})
KEYPAIR_FIELDS: dict[str, Schema] = {
    "alias": ALIAS,
    "type": strings(KeypairType),
    "algorithm": strings(ALGORITHMS),
    "key_size": {"type": "integer", "enum": list(RSA_KEY_SIZES)},
    "curve": strings((*EC_CURVE_NAMES, ED_CURVE)),
    "category": strings(Category),
    "storage": strings(Storage),
    "status": strings(Status),
    "access": strings(Access),
    "allowed_users": ids_of("usr"),
    "allowed_groups": ids_of("grp"),
    "team_id": nullable(id_of("team")),
    "profile_id": nullable(id_of("prof")),
    "generate_certificate": BOOLEAN,
    "refresh_after_sign": BOOLEAN,
}
_NULLABLE_KEY_FIELDS = ("algorithm", "key_size", "curve")
SIGN_ITEM_FIELDS: dict[str, Schema] = {
    "hash": {**BASE64, "description": "The digest, as long as hash_algorithm's (32, 48 or 64 bytes)."},
    "message": {**BASE64, "description": f"Instead of hash: 1 to {MAX_MESSAGE} bytes the service hashes "
                                         "(Ed25519 signs them as they are)."},
    # null means "not given" for these two, as the parser reads them.
    "hash_algorithm": {**nullable(strings(HASH_LENGTHS)), "default": "SHA-256"},
    "sig_alg": nullable({"type": "string", "description": "SHA256withRSA, SHA256withRSA/PSS, SHA256withECDSA, "
                                                          "Ed25519, ...; default by algorithm."}),
    "file_name": text(MAX_LABEL),
    "tool": text(MAX_LABEL),
}
SIGN_ITEM = obj(SIGN_ITEM_FIELDS, (), oneOf=[{"required": ["hash"]}, {"required": ["message"]}])
PROFILE_VALUES: dict[str, Schema] = {
    "type": nullable(strings(KeypairType)),
    "algorithm": nullable(strings(ALGORITHMS)),
    "key_size": nullable({"type": "integer", "minimum": 1, "maximum": 16384}),
    "curve": nullable(text(16)),
    "category": nullable(strings(Category)),
    "storage": nullable(strings(Storage)),
    "status": nullable(strings(Status)),
}
WINDOW_FIELDS: dict[str, Schema] = {
    "name": text(100),
    "keypair_ids": ids_of("kp"),
    "user_ids": ids_of("usr"),
    "starts_at": TIME_IN,
    "ends_at": TIME_IN,
    "max_signatures": nullable({"type": "integer", "minimum": 1, "maximum": MAX_SIGNATURES}),
}
USER_FIELDS: dict[str, Schema] = {
    "name": text(100),
    "email": nullable(text(254, pattern=r"^[^@\s]{1,64}@[^@\s]{1,189}$")),
    "roles": array(strings(ROLES)),
    "permissions": array(strings(PERMISSIONS)),
}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": obj({
        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "message": STRING,
        "details": {"type": "object", "description": "`field` names the field at fault, `index` a batch item."},
    })}),
    "Health": obj({"status": {"const": "ok"}, "version": STRING}),
    "Certificate": CERTIFICATE,
    "Keypair": obj({
        "id": id_of("kp"), "alias": STRING, "type": strings(KeypairType), "algorithm": strings(ALGORITHMS),
        "key_size": nullable(INTEGER), "curve": nullable(STRING), "category": strings(Category),
        "storage": strings(Storage), "status": strings(Status), "access": strings(Access),
        "allowed_users": array(STRING), "allowed_groups": array(STRING), "team_id": nullable(STRING),
        "profile_id": nullable(STRING), "generate_certificate": BOOLEAN, "refresh_after_sign": BOOLEAN,
        "key_id": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "generation": INTEGER, "public_key": PEM,
        "certificate": nullable(ref("Certificate")), "created_at": TIME, "created_by": STRING,
        "refreshed_at": nullable(TIME), "next_refresh_at": nullable(TIME),
    }),
    "NewKeypair": obj({name: nullable(KEYPAIR_FIELDS[name]) if name in _NULLABLE_KEY_FIELDS else KEYPAIR_FIELDS[name]
                       for name in CREATE_FIELDS}, ("alias",),
                      description="type and algorithm are required unless the keypair profile sets them; "
                                  "RSA takes key_size, ECDSA curve, EdDSA neither (its curve is Ed25519)."),
    "KeypairChange": obj({name: KEYPAIR_FIELDS[name] for name in CHANGE_FIELDS}, ()),
    "Generation": obj({"generation": INTEGER, "key_id": STRING, "public_key": PEM,
                       "certificate": nullable(ref("Certificate")), "created_at": TIME,
                       "retired_at": nullable(TIME)}),
    "SignItem": SIGN_ITEM,
    "SignBatch": obj({"items": {"type": "array", "items": ref("SignItem"), "minItems": 1, "maxItems": MAX_BATCH}}),
    "Signed": obj({"signature": BASE64, "sig_alg": STRING, "keypair_id": STRING, "alias": STRING, "key_id": STRING,
                   "generation": INTEGER, "certificate": nullable(ref("Certificate")), "chain": array(PEM),
                   "timestamp_token": nullable(BASE64), "signature_log_id": STRING, "signed_at": TIME}),
    "SignedBatch": obj({"items": array(ref("Signed"))}),
    "AuditEntry": obj({"id": STRING, "at": TIME, "actor": STRING, "type": STRING, "action": STRING,
                       "resource_id": nullable(STRING), "resource_alias": nullable(STRING),
                       "outcome": strings(("success", "failure")), "error": nullable(STRING),
                       "details": {"type": "object"}, "source_ip": nullable(STRING)}),
    "SignatureEntry": obj({
        "id": STRING, "signed_at": TIME, "status": strings(("success", "failed")), "signer": STRING,
        **{name: nullable(STRING) for name in ("keypair_id", "keypair_alias", "keypair_type", "key_id")},
        "generation": nullable(INTEGER),
        **{name: nullable(STRING) for name in ("algorithm", "sig_alg", "signature_type", "hash_algorithm", "hash",
                                               "signature", "file_name", "tool", "client_ip", "error")},
        "timestamp_token": nullable(STRING), "certificate_serial": nullable(STRING),
    }, ("id", "signed_at", "status", "signer"), description="A success also carries timestamp_token and "
                                                            "certificate_serial."),
    "Proof": obj({"leaf_index": INTEGER, "tree_size": INTEGER, "leaf_data": BASE64, "hashes": array(BASE64),
                  "checkpoint": STRING}),
    "Consistency": obj({"from": INTEGER, "to": INTEGER, "hashes": array(BASE64)}),
    "Account": obj({"id": STRING, "name": STRING, "teams_enabled": BOOLEAN, "require_keypair_profile": BOOLEAN,
                    "public_tsa": BOOLEAN, "created_at": TIME}),
    "AccountChange": obj({name: BOOLEAN for name in SETTINGS}, ()),
    "Me": obj({
        "user": obj({"id": STRING, "name": STRING, "roles": array(STRING), "group_ids": array(STRING),
                     "team_ids": array(STRING)}),
        "account": ref("Account"), "permissions": array(STRING), "api_key_id": STRING,
    }),
    "TrustAnchors": obj({"production": PEM, "test": PEM, "tsa": PEM}),
    "Trust": obj({"account_id": STRING, "name": STRING, "production": PEM, "test": PEM, "tsa": PEM,
                  "log_public_key": nullable(PEM), "log_origins": obj({"signatures": STRING, "audit": STRING}),
                  "log_verifier_keys": nullable(obj({"signatures": STRING, "audit": STRING}))}),
    "User": obj({"id": STRING, "name": STRING, "email": nullable(STRING), "roles": array(STRING),
                 "permissions": array(STRING), "effective_permissions": array(STRING), "group_ids": array(STRING),
                 "created_at": TIME}),
    "NewUser": obj(USER_FIELDS, ("name",)),
    "UserChange": obj(USER_FIELDS, ()),
    "ApiKey": obj({"id": STRING, "name": nullable(STRING), "prefix": STRING, "created_at": TIME,
                   "expires_at": nullable(TIME), "last_used_at": nullable(TIME), "revoked_at": nullable(TIME)}),
    "ApiKeyList": obj({"items": array(ref("ApiKey")), "next": {"type": "null"}}),
    "NewApiKey": obj({"name": nullable(text(100)), "expires_at": nullable(TIME_IN)}, ()),
    "IssuedApiKey": obj({"id": STRING, "key": {"type": "string", "description": "rsk_<key id>_<secret>, shown once"},
                         "name": nullable(STRING), "created_at": TIME, "expires_at": nullable(TIME)}),
    "Group": obj({"id": STRING, "name": STRING, "member_ids": array(STRING), "created_at": TIME}),
    "NewGroup": obj({"name": text(100), "member_ids": ids_of("usr")}, ("name",)),
    "GroupChange": obj({"name": text(100), "member_ids": ids_of("usr")}, ()),
    "Team": obj({"id": STRING, "name": STRING, "member_ids": array(STRING), "group_ids": array(STRING),
                 "profile_ids": array(STRING), "created_at": TIME}),
    "NewTeam": obj({"name": text(100), "member_ids": ids_of("usr"), "group_ids": ids_of("grp")}, ("name",)),
    "TeamChange": obj({"name": text(100), "member_ids": ids_of("usr"), "group_ids": ids_of("grp")}, ()),
    "Profile": obj({"id": STRING, "name": STRING, "mode": strings(ProfileMode),
                    **{name: nullable(INTEGER if name == "key_size" else STRING) for name in PROFILE_FIELDS},
                    "team_ids": array(STRING), "created_at": TIME}),
    "NewProfile": obj({"name": text(100), "mode": strings(ProfileMode), **PROFILE_VALUES, "team_ids": ids_of("team")},
                      ("name", "mode")),
    "ProfileChange": obj({"name": text(100), "mode": strings(ProfileMode), **PROFILE_VALUES,
                          "team_ids": ids_of("team")}, ()),
    "ReleaseWindow": obj({"id": STRING, "name": STRING, "keypair_ids": array(STRING), "user_ids": array(STRING),
                          "starts_at": TIME, "ends_at": TIME, "max_signatures": nullable(INTEGER),
                          "signatures_used": INTEGER, "created_at": TIME, "created_by": STRING}),
    "NewReleaseWindow": obj(WINDOW_FIELDS, ("name", "keypair_ids", "starts_at", "ends_at")),
    "ReleaseWindowChange": obj(WINDOW_FIELDS, ()),
}
for _name in ("Keypair", "Generation", "AuditEntry", "SignatureEntry", "User", "Group", "Team", "Profile",
              "ReleaseWindow"):
    SCHEMAS[f"{_name}Page"] = page_of(_name)

ERRORS: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "validation_error, invalid_json, unsupported_algorithm or invalid_pagination_token; "
                          "`details.field` names the field."),
    "401": ("Unauthenticated", "unauthenticated: a missing, unknown, revoked or expired API key."),
    "403": ("Forbidden", "forbidden (a permission is missing), keypair_offline or not_allowed."),
    "404": ("NotFound", "not_found: no such object in the caller's account."),
    "409": ("Conflict", "alias_taken, not_dynamic, teams_disabled, not_yet_in_log or conflict."),
    "413": ("PayloadTooLarge", "payload_too_large: a body over 64 KiB."),
    "415": ("UnsupportedMediaType", "unsupported_media_type: send application/json (UTF-8)."),
    "429": ("Throttled", "throttled: a backend throttled and retries ran out (see Retry-After)."),
    "503": ("Unavailable", "hsm_unavailable or storage_unavailable: a dependency is down; nothing was changed."),
}


def _error_response(description: str, status: str) -> Schema:
    response: Schema = {"description": description, "content": {"application/json": {"schema": ref("Error")}}}
    if status == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}}
    return response


PUBLIC = "public"
PAGE_PARAMS: list[Schema] = [
    {"name": "limit", "in": "query", "description": f"Page size (default {DEFAULT_LIMIT}).",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
    {"name": "next", "in": "query", "description": "The `next` token of the previous page.", "schema": STRING},
]


def query_param(name: str, schema: Schema, description: str = "", required: bool = False) -> Schema:
    """A query parameter (an empty value is a 400: leave a filter out to not filter on it)."""
    if schema.get("type") == "string" and "enum" not in schema and "pattern" not in schema:
        schema = {**schema, "minLength": 1}
    param: Schema = {"name": name, "in": "query", "schema": schema, "required": required}
    if description:
        param["description"] = description
    return param


LIST_KEYPAIRS = [query_param("alias", STRING), query_param("type", strings(KeypairType)),
                 query_param("status", strings(Status)), query_param("storage", strings(Storage)),
                 query_param("algorithm", strings(ALGORITHMS)), query_param("category", strings(Category))]
_AUDIT_SCHEMAS: dict[str, Schema] = {
    "type": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
    "action": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
    "resource_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,200}$"},
    "actor": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
    "outcome": strings(("success", "failure")),
    "from": {**TIME_IN, "minLength": 1},
    "to": {**TIME_IN, "minLength": 1},
}
_SIGNATURE_SCHEMAS: dict[str, Schema] = {
    "keypair_alias": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"},
    "keypair_id": id_of("kp"),
    "status": strings(("success", "failed")),
    "signer": id_of("usr"),
    "from": {**TIME_IN, "minLength": 1},
    "to": {**TIME_IN, "minLength": 1},
}
LIST_AUDIT = [query_param(name, _AUDIT_SCHEMAS[name]) for name in AUDIT_FILTERS]
LIST_SIGNATURES = [query_param(name, _SIGNATURE_SCHEMAS[name]) for name in SIGNATURE_FILTERS]
TREE_SIZE: Schema = {"type": "integer", "minimum": 0, "maximum": 10**20 - 1}
CONSISTENCY = [query_param("from", TREE_SIZE, "The older tree size.", required=True),
               query_param("to", TREE_SIZE, "The newer tree size (default: the latest).")]


@dataclass(frozen=True)
class Operation:
    """One route and method: who may call it, what it takes, what it answers."""

    method: str
    path: str
    summary: str
    tag: str
    permission: str | None
    ok: tuple[int, Schema | None] = (200, None)
    body: str | Schema | None = None
    query: list[Schema] = field(default_factory=list)
    content: str = "application/json"
    errors: tuple[str, ...] = ()
    description: str = ""


def _op(method: str, path: str, summary: str, tag: str, permission: str | None, ok: int = 200,
        result: str | Schema | None = None, **kwargs: Any) -> Operation:
    schema = ref(result) if isinstance(result, str) else result
    return Operation(method, V1 + path if path.startswith("/") and not path.startswith("/console") else path,
                     summary, tag, permission, (ok, schema), **kwargs)


KP = "/keypairs/{keypair}"
OPERATIONS: tuple[Operation, ...] = (
    _op("GET", "/health", "Liveness (no key, no account data)", "service", PUBLIC, result="Health"),
    _op("GET", "/openapi.json", "This document (no key)", "service", PUBLIC, result={"type": "object"}),
    _op("GET", "/me", "The caller, its account and permissions", "identity", None, result="Me"),
    _op("GET", "/account", "The account's settings", "identity", "manage_account", result="Account"),
    _op("PATCH", "/account", "Change the account's settings", "identity", "manage_account", result="Account",
        body="AccountChange"),
    _op("GET", "/ca", "The account's CA certificates and TSA certificate", "certificates", None,
        result="TrustAnchors"),
    _op("GET", "/trust/{account_id}", "An account's public trust material (no key)", "certificates", PUBLIC,
        result="Trust"),
    _op("GET", "/trust/{account_id}/{certificate}", "production.cer, test.cer or tsa.cer in DER (no key)",
        "certificates", PUBLIC, result={"type": "string", "contentMediaType": "application/pkix-cert"},
        content="application/pkix-cert"),
    _op("POST", "/timestamp", "An RFC 3161 time-stamp (TimeStampReq in, TimeStampResp out)", "trusted time", None,
        result={"type": "string", "contentMediaType": "application/timestamp-reply"},
        content="application/timestamp-reply",
        body={"type": "string", "contentMediaType": "application/timestamp-query"},
        query=[query_param("account", STRING, "A public TSA's account id: then no key is needed.")],
        errors=("415",), description="A malformed request gets a `rejection` reply with status 200."),
    _op("POST", "/keypairs", "Create a keypair", "keypairs", "generate_keypair", 201, "Keypair", body="NewKeypair",
        errors=("409",)),
    _op("GET", "/keypairs", "List keypairs, newest first", "keypairs", "view_keypair", result="KeypairPage",
        query=LIST_KEYPAIRS + PAGE_PARAMS),
    _op("GET", KP, "One keypair by id or alias", "keypairs", "view_keypair", result="Keypair"),
    _op("PATCH", KP, "Change alias, status, access or the allowed lists", "keypairs", "manage_keypair",
        result="Keypair", body="KeypairChange", errors=("409",)),
    _op("DELETE", KP, "Delete a keypair: its key is destroyed, a tombstone stays", "keypairs", "manage_keypair",
        204, errors=("409",)),
    _op("POST", KP + "/refresh", "Replace a dynamic keypair's key and certificate now", "keypairs",
        "manage_keypair", result="Keypair", errors=("409",)),
    _op("GET", KP + "/generations", "Every generation, newest first (a deleted keypair's too, by id)", "keypairs",
        "view_keypair", result="GenerationPage", query=PAGE_PARAMS),
    _op("GET", KP + "/generations/{generation}", "One generation", "keypairs", "view_keypair",
        result="Generation"),
    _op("POST", KP + "/sign", "Sign a digest or a short message, or a batch of up to 100", "signing", "sign",
        result={"oneOf": [ref("Signed"), ref("SignedBatch")]}, body={"oneOf": [ref("SignItem"), ref("SignBatch")]},
        errors=("409",)),
    _op("GET", "/audit-logs", "Audit entries, newest first", "logs", "view_audit_log", result="AuditEntryPage",
        query=LIST_AUDIT + PAGE_PARAMS),
    _op("GET", "/audit-logs/{entry_id}", "One audit entry", "logs", "view_audit_log", result="AuditEntry"),
    _op("GET", "/audit-logs/checkpoint", "The audit log's signed checkpoint (C2SP tlog-checkpoint)", "logs",
        "view_audit_log", result=STRING, content="text/plain"),
    _op("GET", "/audit-logs/{entry_id}/proof", "An inclusion proof of an audit entry", "logs", "view_audit_log",
        result="Proof", errors=("409",)),
    _op("GET", "/audit-logs/consistency", "A consistency proof between two audit-log tree sizes", "logs",
        "view_audit_log", result="Consistency", query=CONSISTENCY),
    _op("GET", "/signature-logs", "Signature-log entries, newest first", "logs", "view_audit_log",
        result="SignatureEntryPage", query=LIST_SIGNATURES + PAGE_PARAMS),
    _op("GET", "/signature-logs/{entry_id}", "One signature-log entry", "logs", "view_audit_log",
        result="SignatureEntry"),
    _op("GET", "/signature-logs/checkpoint", "The signature log's signed checkpoint (C2SP tlog-checkpoint)", "logs",
        "view_audit_log", result=STRING, content="text/plain"),
    _op("GET", "/signature-logs/{entry_id}/proof", "An inclusion proof of a signature-log entry", "logs",
        "view_audit_log", result="Proof", errors=("409",)),
    _op("GET", "/signature-logs/consistency", "A consistency proof between two signature-log tree sizes", "logs",
        "view_audit_log", result="Consistency", query=CONSISTENCY),
    _op("POST", "/users", "Create a user", "users", "manage_users", 201, "User", body="NewUser", errors=("409",)),
    _op("GET", "/users", "Users, newest first", "users", "manage_users", result="UserPage", query=PAGE_PARAMS),
    _op("GET", "/users/{user_id}", "One user", "users", "manage_users", result="User"),
    _op("PATCH", "/users/{user_id}", "Change a user's name, email, roles or permissions", "users", "manage_users",
        result="User", body="UserChange", errors=("409",)),
    _op("DELETE", "/users/{user_id}", "Delete a user (its keys are revoked)", "users", "manage_users", 204,
        errors=("409",)),
    _op("POST", "/users/{user_id}/api-keys", "Issue an API key (shown once)", "users", "manage_users", 201,
        "IssuedApiKey", body="NewApiKey", errors=("409",)),
    _op("GET", "/users/{user_id}/api-keys", "A user's API keys (never the secrets)", "users", "manage_users",
        result="ApiKeyList"),
    _op("DELETE", "/users/{user_id}/api-keys/{key_id}", "Revoke an API key", "users", "manage_users", 204,
        errors=("409",)),
    _op("POST", "/groups", "Create a group", "groups", "manage_users", 201, "Group", body="NewGroup",
        errors=("409",)),
    _op("GET", "/groups", "Groups, newest first", "groups", "view_keypair", result="GroupPage", query=PAGE_PARAMS),
    _op("GET", "/groups/{group_id}", "One group", "groups", "view_keypair", result="Group"),
    _op("PATCH", "/groups/{group_id}", "Rename a group or replace its members", "groups", "manage_users",
        result="Group", body="GroupChange", errors=("409",)),
    _op("DELETE", "/groups/{group_id}", "Delete a group", "groups", "manage_users", 204, errors=("409",)),
    _op("POST", "/teams", "Create a team", "teams", "manage_teams", 201, "Team", body="NewTeam", errors=("409",)),
    _op("GET", "/teams", "Teams, newest first", "teams", "view_keypair", result="TeamPage", query=PAGE_PARAMS,
        errors=("409",)),
    _op("GET", "/teams/{team_id}", "One team", "teams", "view_keypair", result="Team", errors=("409",)),
    _op("PATCH", "/teams/{team_id}", "Rename a team or replace its members or groups", "teams", "manage_teams",
        result="Team", body="TeamChange", errors=("409",)),
    _op("DELETE", "/teams/{team_id}", "Delete a team", "teams", "manage_teams", 204, errors=("409",)),
    _op("POST", "/keypair-profiles", "Create a keypair profile", "profiles", "manage_profiles", 201, "Profile",
        body="NewProfile", errors=("409",)),
    _op("GET", "/keypair-profiles", "Keypair profiles, newest first", "profiles", "view_keypair",
        result="ProfilePage", query=PAGE_PARAMS),
    _op("GET", "/keypair-profiles/{profile_id}", "One keypair profile", "profiles", "view_keypair",
        result="Profile"),
    _op("PATCH", "/keypair-profiles/{profile_id}", "Change a keypair profile", "profiles", "manage_profiles",
        result="Profile", body="ProfileChange", errors=("409",)),
    _op("DELETE", "/keypair-profiles/{profile_id}", "Delete a keypair profile", "profiles", "manage_profiles", 204,
        errors=("409",)),
    _op("POST", "/release-windows", "Open a release window for offline keypairs", "release windows",
        "manage_releases", 201, "ReleaseWindow", body="NewReleaseWindow", errors=("409",)),
    _op("GET", "/release-windows", "Release windows, newest first", "release windows", "view_keypair",
        result="ReleaseWindowPage", query=PAGE_PARAMS),
    _op("GET", "/release-windows/{window_id}", "One release window", "release windows", "view_keypair",
        result="ReleaseWindow"),
    _op("PATCH", "/release-windows/{window_id}", "Change a release window", "release windows", "manage_releases",
        result="ReleaseWindow", body="ReleaseWindowChange", errors=("409",)),
    _op("DELETE", "/release-windows/{window_id}", "Close a release window now", "release windows",
        "manage_releases", 204, errors=("409",)),
    _op("GET", "/console", "The web console (redirects to /console/)", "console", PUBLIC, 302),
    _op("GET", "/console/{asset}", "A file of the web console (HTML, CSS, JavaScript, SVG)", "console", PUBLIC,
        result=STRING, content="text/html"),
)


def _parameters(op: Operation) -> list[Schema]:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    params: list[Schema] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                            for name in names]
    return params + op.query


def _responses(op: Operation) -> dict[str, Schema]:
    status, schema = op.ok
    responses: dict[str, Schema] = {}
    if status == 204:
        responses["204"] = {"description": "Done; no body."}
    elif status == 302:
        responses["302"] = {"description": "To /console/.", "headers": {"Location": {"schema": STRING}}}
    else:
        responses[str(status)] = {"description": "OK", "content": {op.content: {"schema": schema or {}}}}
    if op.path.startswith("/console"):
        if op.path.endswith("{asset}"):
            responses[str(status)]["content"] = {kind: {"schema": STRING} for kind in (
                "text/html", "text/javascript", "text/css", "image/svg+xml")}
            responses["304"] = {"description": "Not modified (If-None-Match)."}
            responses["404"] = _error_response(ERRORS["404"][1], "404")
        return responses
    codes = {"400", "404", "413", "429", "503", *op.errors}
    if op.permission != PUBLIC:
        codes.add("401")
    if op.permission not in (PUBLIC, None) or op.path.endswith("/sign"):
        codes.add("403")
    if op.body is not None and op.content == "application/json":
        codes.add("415")
    for code in sorted(codes):
        responses[code] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    return responses


def _operation(op: Operation) -> Schema:
    who = "No API key needed." if op.permission == PUBLIC else (
        "Any API key." if op.permission is None else f"Permission `{op.permission}`.")
    spec: Schema = {
        "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
                       .replace("-", "_").replace(".", "_"),
        "summary": op.summary,
        "description": " ".join(filter(None, (who, op.description))),
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.permission == PUBLIC:
        spec["security"] = []
    elif op.path.endswith("/timestamp"):
        spec["security"] = [{"apiKey": []}, {}]
    if op.body is not None:
        media = "application/timestamp-query" if op.path.endswith("/timestamp") else "application/json"
        schema = ref(op.body) if isinstance(op.body, str) else op.body
        spec["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    if not spec["parameters"]:
        del spec["parameters"]
    return spec


@functools.cache
def built() -> Schema:
    """The document, built once per process (callers must not change it)."""
    paths: dict[str, dict[str, Schema]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rotasign",
            "version": chalicelib.__version__,
            "description": "Signing keys that rotate: create keypairs, sign digests, read the audit and signature "
                           "logs. Every route but the public ones needs an `X-API-Key` header. Errors always have "
                           "the body `{\"error\": {\"code\", \"message\", \"details\"}}`. docs/api.md in the "
                           "repository is the guide to this reference.",
        },
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                           "description": "rsk_<key id>_<secret>, issued per user."}},
            "schemas": SCHEMAS,
            "responses": {name: _error_response(description, status) for status, (name, description) in ERRORS.items()},
        },
    }
