"""Identity routes: the caller, the account, API keys, the CA certificates, health."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

import chalicelib
from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, source_ip
from chalicelib.api.parsing import Fields
from chalicelib.services.accounts import update_settings
from chalicelib.services.api_keys import NewApiKey
from chalicelib.services.container import get_services
from chalicelib.storage.accounts import SETTINGS

bp = Blueprint(__name__)


def parse_settings(body: Any) -> dict[str, bool]:
    """PATCH /account body → the boolean settings to change."""
    f = Fields(body, SETTINGS)
    return {name: f.flag(name, False) for name in SETTINGS if f.has(name)}


def parse_new_api_key(body: Any) -> NewApiKey:
    """POST /users/{id}/api-keys body → NewApiKey."""
    f = Fields(body, ("name", "expires_at"))
    return NewApiKey(f.text("name", max_length=100, nullable=True), f.time("expires_at", nullable=True))


@bp.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    """Liveness; no account data."""
    return {"status": "ok", "version": chalicelib.__version__}


@bp.route("/me", methods=["GET"])
@endpoint(None)
def me() -> dict[str, Any]:
    """The caller, its account and permissions."""
    who = principal()
    account = get_services().accounts.get(who.account)
    return {
        "user": {"id": who.user_id, "name": who.name, "roles": list(who.roles),
                 "group_ids": sorted(who.group_ids), "team_ids": sorted(who.team_ids)},
        "account": render.account(account),
        "permissions": sorted(who.permissions),
        "api_key_id": who.api_key_id,
    }


@bp.route("/account", methods=["GET"])
@endpoint("manage_account")
def get_account() -> dict[str, Any]:
    """The account's settings."""
    return render.account(get_services().accounts.get(principal().account))


@bp.route("/account", methods=["PATCH"])
@endpoint("manage_account")
def patch_account() -> dict[str, Any]:
    """Change the account's settings (teams_enabled, require_keypair_profile, public_tsa)."""
    request = bp.current_request
    changes = parse_settings(json_body(request))
    services = get_services()
    return render.account(update_settings(services.deps, services.accounts, principal(), changes, source_ip(request)))


@bp.route("/ca", methods=["GET"])
@endpoint(None)
def trust_anchors() -> dict[str, str]:
    """The production and test CA certificates and the TSA certificate."""
    account = get_services().accounts.get(principal().account)
    return {"production": account.production_ca_pem, "test": account.test_ca_pem, "tsa": account.tsa_pem}


@bp.route("/users/{user_id}/api-keys", methods=["POST"])
@endpoint("manage_users")
def create_api_key(user_id: str) -> Response:
    """Issue an API key for a user; the key is shown once."""
    request = bp.current_request
    issued = get_services().api_keys.create(principal(), user_id, parse_new_api_key(json_body(request)),
                                            source_ip(request))
    key = issued.key
    body = {"id": key.id, "key": issued.secret, "name": key.name, "created_at": key.created_at,
            "expires_at": key.expires_at}
    return Response(body=body, status_code=201)


@bp.route("/users/{user_id}/api-keys", methods=["GET"])
@endpoint("manage_users")
def list_api_keys(user_id: str) -> dict[str, Any]:
    """A user's API keys (never the secrets)."""
    return {"items": [render.api_key(k) for k in get_services().api_keys.list(principal(), user_id)], "next": None}


@bp.route("/users/{user_id}/api-keys/{key_id}", methods=["DELETE"])
@endpoint("manage_users")
def revoke_api_key(user_id: str, key_id: str) -> Response:
    """Revoke an API key; effective within 5 seconds."""
    request = bp.current_request
    get_services().api_keys.revoke(principal(), user_id, key_id, source_ip(request))
    return Response(body="", status_code=204)
