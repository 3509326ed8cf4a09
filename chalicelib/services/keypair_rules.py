"""Validation of keypair requests: every field and every combination rule of API.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ValidationError
from chalicelib.ids import looks_like_id
from chalicelib.keys.algorithms import KeySpec

ALIAS_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Any prefixed-ULID shape, in any case, so `{keypair}` in a path is never ambiguous.
ID_SHAPE_RE = re.compile(r"^[a-z]+_[0-9a-z]{26}$", re.IGNORECASE)
TYPES = ("static", "dynamic")
CATEGORIES = ("production", "test")
STORAGES = ("hsm", "disk")
STATUSES = ("online", "offline")
ACCESSES = ("open", "restricted")
CREATE_FIELDS = frozenset(
    {
        "alias", "type", "algorithm", "key_size", "curve", "category", "storage", "status", "access",
        "allowed_users", "allowed_groups", "team_id", "profile_id", "generate_certificate",
        "refresh_after_sign",
    }
)
PATCH_FIELDS = frozenset({"alias", "status", "access", "allowed_users", "allowed_groups"})


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(message, details={"field": field})


def check_alias(value: Any) -> str:
    """1..64 of [A-Za-z0-9._-], and not shaped like a keypair id."""
    if not isinstance(value, str):
        raise _bad("alias", "alias must be a string.")
    # fullmatch: `$` in match() also accepts a trailing newline.
    if not ALIAS_RE.fullmatch(value):
        raise _bad("alias", "alias must be 1 to 64 letters, digits, dots, dashes or underscores.")
    if ID_SHAPE_RE.fullmatch(value):
        raise _bad("alias", "alias may not look like a keypair id.")
    return value


def _choice(body: dict[str, Any], field: str, choices: tuple[str, ...], default: str | None) -> str:
    value = body.get(field, default)
    if value is None:
        raise _bad(field, f"{field} is required.")
    if not isinstance(value, str) or value not in choices:
        raise _bad(field, f"{field} must be one of {', '.join(choices)}.")
    return value


def _bool(body: dict[str, Any], field: str, default: bool) -> bool:
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise _bad(field, f"{field} must be true or false.")
    return value


def check_id_list(value: Any, field: str, prefix: str) -> list[str]:
    """A list of distinct ids with the given prefix (at most 100)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(field, f"{field} must be a list of ids.")
    if len(value) > 100:
        raise _bad(field, f"{field} holds at most 100 ids.")
    for v in value:
        if not looks_like_id(v, prefix):
            raise _bad(field, f"{field} must hold {prefix}_ ids; {v[:40]!r} is not one.")
    return list(dict.fromkeys(value))


def check_fields(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """A JSON object with only known fields."""
    if not isinstance(body, dict):
        raise ValidationError("The body must be a JSON object.")
    extra = sorted(set(body) - allowed)
    if extra:
        raise ValidationError(f"Unknown field {extra[0]!r}.", details={"field": extra[0]})
    return body


@dataclass(frozen=True)
class KeypairRequest:
    """A validated create request."""

    alias: str
    type: str
    spec: KeySpec
    category: str
    storage: str
    status: str
    access: str
    allowed_users: list[str]
    allowed_groups: list[str]
    team_id: str | None
    profile_id: str | None
    generate_certificate: bool
    refresh_after_sign: bool


def parse_create(body: Any, *, teams_enabled: bool, require_profile: bool) -> KeypairRequest:
    """Validate a POST /keypairs body; raises ValidationError / UnsupportedAlgorithm."""
    body = check_fields(body, CREATE_FIELDS)
    if "alias" not in body:
        raise _bad("alias", "alias is required.")
    alias = check_alias(body["alias"])
    kind = _choice(body, "type", TYPES, None)
    if "algorithm" not in body:
        raise _bad("algorithm", "algorithm is required.")
    spec = KeySpec.build(body.get("algorithm"), body.get("key_size"), body.get("curve"))
    category = _choice(body, "category", CATEGORIES, "production")
    storage = _choice(body, "storage", STORAGES, "disk")
    status = _choice(body, "status", STATUSES, "online")
    access = _choice(body, "access", ACCESSES, "open")
    users = check_id_list(body.get("allowed_users", []), "allowed_users", "usr")
    groups = check_id_list(body.get("allowed_groups", []), "allowed_groups", "grp")
    if access == "open" and (users or groups):
        raise _bad("access", "allowed_users and allowed_groups need access restricted.")
    team_id = body.get("team_id")
    if team_id is not None:
        if not teams_enabled:
            raise _bad("team_id", "This account does not have teams enabled.")
        if not isinstance(team_id, str) or not looks_like_id(team_id, "team"):
            raise _bad("team_id", "team_id must be a team id.")
    profile_id = body.get("profile_id")
    if profile_id is not None:
        if not isinstance(profile_id, str) or not looks_like_id(profile_id, "prof"):
            raise _bad("profile_id", "profile_id must be a keypair profile id.")
        raise _bad("profile_id", "No such keypair profile in this account.")
    if require_profile:
        raise _bad("profile_id", "This account requires a keypair profile.")
    generate_certificate = _bool(body, "generate_certificate", True)
    refresh_after_sign = _bool(body, "refresh_after_sign", False)
    if refresh_after_sign and kind != "dynamic":
        raise _bad("refresh_after_sign", "refresh_after_sign needs a dynamic keypair.")
    return KeypairRequest(
        alias, kind, spec, category, storage, status, access, users, groups, team_id, profile_id,
        generate_certificate, refresh_after_sign,
    )
