"""Identity routes: the caller, the account, API keys, the CA certificates, health."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

import chalicelib
from chalicelib.api.http import endpoint, json_body, principal, source_ip
from chalicelib.services.accounts import account_dict, update_account
from chalicelib.services.registry import get_services

bp = Blueprint(__name__)


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
        "user": {"id": who.user_id, "name": who.name, "roles": list(who.roles)},
        "account": account_dict(account),
        "permissions": sorted(who.permissions),
        "api_key_id": who.api_key_id,
    }


@bp.route("/account", methods=["GET"])
@endpoint("manage_account")
def get_account() -> dict[str, Any]:
    """The account's settings."""
    return account_dict(get_services().accounts.get(principal().account))


@bp.route("/account", methods=["PATCH"])
@endpoint("manage_account")
def patch_account() -> dict[str, Any]:
    """Change the account's settings (teams_enabled, require_keypair_profile, public_tsa)."""
    request = bp.current_request
    services = get_services()
    return update_account(services.deps, services.accounts, principal(), json_body(request), source_ip(request))


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
    body = get_services().api_keys.create(principal(), user_id, json_body(request), source_ip(request))
    return Response(body=body, status_code=201)


@bp.route("/users/{user_id}/api-keys", methods=["GET"])
@endpoint("manage_users")
def list_api_keys(user_id: str) -> dict[str, Any]:
    """A user's API keys (never the secrets)."""
    return get_services().api_keys.list(principal(), user_id)


@bp.route("/users/{user_id}/api-keys/{key_id}", methods=["DELETE"])
@endpoint("manage_users")
def revoke_api_key(user_id: str, key_id: str) -> Response:
    """Revoke an API key; effective within 5 seconds."""
    request = bp.current_request
    get_services().api_keys.revoke(principal(), user_id, key_id, source_ip(request))
    return Response(body="", status_code=204)
