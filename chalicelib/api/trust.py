"""Public trust material, served without an API key: an account's CA, TSA and log keys, and its certificates in DER.

Both routes answer only with what the account publishes anyway, and an unknown or malformed account id
gets the same 404 as any missing object, so they reveal nothing else. Responses may be cached (a CDN in
front of them takes the load off the API; see the README).
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import endpoint
from chalicelib.domain.transparency import LOGS, origin, verifier_key
from chalicelib.services.container import get_services
from chalicelib.services.log_keys import raw_public_key
from chalicelib.services.trust import certificate_der, public_account

bp = Blueprint(__name__)

CERTIFICATE_TYPE = "application/pkix-cert"
CACHE_CONTROL = "public, max-age=300"


@bp.route("/trust/{account_id}", methods=["GET"])
@endpoint(None)
def trust(account_id: str) -> Response:
    """`{account_id, name, production, test, tsa, log_public_key, log_origins, log_verifier_keys}`."""
    account = public_account(get_services().accounts, account_id)
    origins = {name: origin(account.id, name) for name in LOGS}
    raw = raw_public_key(account.log_public_key) if account.log_public_key else None
    body = {
        "account_id": account.id,
        "name": account.name,
        "production": account.production_ca_pem,
        "test": account.test_ca_pem,
        "tsa": account.tsa_pem,
        "log_public_key": account.log_public_key,
        "log_origins": origins,
        # The same key as C2SP note verifier keys (key name = origin), for tools that take that form.
        "log_verifier_keys": {name: verifier_key(o, raw) for name, o in origins.items()} if raw else None,
    }
    return Response(body=body, headers={"Content-Type": "application/json", "Cache-Control": CACHE_CONTROL})


@bp.route("/trust/{account_id}/{certificate}", methods=["GET"])
@endpoint(None)
def certificate(account_id: str, certificate: str) -> Response:
    """`production.cer`, `test.cer` or `tsa.cer` in DER (what the certificates' AIA `caIssuers` URLs name)."""
    der = certificate_der(public_account(get_services().accounts, account_id), certificate)
    return Response(body=der, headers={"Content-Type": CERTIFICATE_TYPE, "Cache-Control": CACHE_CONTROL})
