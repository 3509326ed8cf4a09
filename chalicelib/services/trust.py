"""Public trust material: what anyone needs to verify an account's signatures, time-stamps and transparency log.

Served without authentication at `/api/v1/trust/{account_id}`; each issued certificate names its issuing
CA's certificate under that route in an Authority Information Access `caIssuers` URL, when the
deployment publishes a base URL (`ROTASIGN_PUBLIC_BASE_URL`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain.identity import Account
from chalicelib.errors import NotFound
from chalicelib.ids import looks_like_id
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.services.accounts import AccountCache

TRUST_PATH = "/api/v1/trust"
# The certificates served under an account's trust route, by file name (DER, for AIA fetchers).
CERTIFICATES: dict[str, str] = {"production.cer": "production", "test.cer": "test", "tsa.cer": "tsa"}


def issuer_url(settings: Settings, account_id: str, category: str) -> str | None:
    """Where the issuing CA of a `production` or `test` certificate is published, or None without a base URL."""
    base = settings.public_base_url
    return f"{base}{TRUST_PATH}/{account_id}/{category}.cer" if base else None


def public_account(accounts: AccountCache, account_id: str) -> Account:
    """The account behind a public trust request; raises NotFound alike for unknown and malformed ids."""
    if not looks_like_id(account_id, "acct"):
        raise NotFound("No such account.")
    return accounts.get(account_id)


def certificate_der(account: Account, name: str) -> bytes:
    """One of the account's CA or TSA certificates in DER, by its file name; raises NotFound."""
    from cryptography.hazmat.primitives import serialization

    from chalicelib.pki.certificates import load_pem

    role = CERTIFICATES.get(name)
    if role is None:
        raise NotFound("No such certificate.")
    pem = {"production": account.production_ca_pem, "test": account.test_ca_pem, "tsa": account.tsa_pem}[role]
    return load_pem(pem).public_bytes(serialization.Encoding.DER)
