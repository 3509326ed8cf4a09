"""Accounts, users and a JSON client over Chalice's test client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Every algorithm and size of docs/api.md, as POST /keypairs fields.
KEY_SPECS: dict[str, dict[str, Any]] = {
    "rsa-2048": {"algorithm": "RSA", "key_size": 2048},
    "rsa-3072": {"algorithm": "RSA", "key_size": 3072},
    "rsa-4096": {"algorithm": "RSA", "key_size": 4096},
    "p-256": {"algorithm": "ECDSA", "curve": "P-256"},
    "p-384": {"algorithm": "ECDSA", "curve": "P-384"},
    "p-521": {"algorithm": "ECDSA", "curve": "P-521"},
    "ed25519": {"algorithm": "EdDSA"},
}


@dataclass
class Account:
    """A bootstrapped account and its admin's key."""

    id: str
    name: str
    user_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key, "Content-Type": "application/json"}


def make_account(name: str | None = None) -> Account:
    """Bootstrap a fresh account (unique name)."""
    import uuid

    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.container import get_deps

    name = name or f"acme-{uuid.uuid4().hex[:10]}"
    result = bootstrap_account(get_deps(), name)
    return Account(result.account_id, name, result.user_id, result.api_key)


class Api:
    """A small JSON helper over the Chalice test client."""

    def __init__(self, client: Any, account: Account) -> None:
        self.client = client
        self.account = account

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        hdrs = dict(self.account.headers)
        hdrs.update(headers or {})
        raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        fn = getattr(self.client.http, method.lower())
        return fn(f"/api/v1{path}", headers=hdrs, body=raw) if raw is not None else fn(f"/api/v1{path}", headers=hdrs)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == status, (response.status_code, response.body[:500])
        return json.loads(response.body) if response.body else None

    def error(self, method: str, path: str, body: Any, status: int, code: str) -> dict[str, Any]:
        """A refusal with `status` and `code` in the docs/api.md error shape; its `error` object."""
        response = self.call(method, path, body)
        assert response.status_code == status, (method, path, response.status_code, response.body[:500])
        parsed = json.loads(response.body)
        assert set(parsed) == {"error"} and set(parsed["error"]) == {"code", "message", "details"}, parsed
        assert parsed["error"]["code"] == code and parsed["error"]["message"], parsed
        return dict(parsed["error"])

    def as_(self, account: Account) -> Api:
        """The same client, calling as another user."""
        return Api(self.client, account)

    def new_user(self, name: str, *, roles: tuple[str, ...] = (), permissions: tuple[str, ...] = ()) -> Account:
        """A user made through POST /users, with an API key from POST /users/{id}/api-keys."""
        user = self.ok("POST", "/users", {"name": name, "roles": list(roles), "permissions": list(permissions)}, 201)
        key = self.ok("POST", f"/users/{user['id']}/api-keys", {"name": "test"}, 201)
        return Account(self.account.id, self.account.name, user["id"], key["key"])
    def every(self, route: str) -> list[Any]:
        """Every item of a list route (`/audit-logs`, ...), following `next` to the end."""
        items: list[Any] = []
        token = None
        while True:
            separator = "&" if "?" in route else "?"
            body = self.ok("GET", f"{route}{separator}limit=500" + (f"&next={token}" if token else ""))
            items += body["items"]
            token = body["next"]
            if token is None:
                return items


def add_user(account: Account, name: str, *, roles: tuple[str, ...] = (), permissions: tuple[str, ...] = (),
             expires_at: str | None = None) -> Account:
    """Another user of `account` with an API key, written straight to storage (`Api.new_user` uses the routes)."""
    from chalicelib.clock import rfc3339
    from chalicelib.domain.identity import User
    from chalicelib.ids import new_id
    from chalicelib.services.authentication import issue_api_key
    from chalicelib.services.container import get_deps

    store = get_deps().store
    now = rfc3339(get_deps().clock())
    user = User(account.id, new_id("usr"), name, now, roles=roles, permissions=permissions)
    issued = issue_api_key(account.id, user.id, now, "test", expires_at)
    tx = store.transaction()
    store.identity.stage_user(tx, user)
    store.identity.stage_api_key(tx, issued.key)
    tx.commit()
    return Account(account.id, account.name, user.id, issued.secret)


def sign_in_process(principal: Any, ref: str, body: Any, client_ip: str = "127.0.0.1") -> dict[str, Any]:
    """What POST /keypairs/{ref}/sign answers, by calling the signing service the route calls.

    For threads: Chalice's test client is not thread-safe (it swaps os.environ and sets
    app.current_request per request).
    """
    from chalicelib.api import render
    from chalicelib.api.signing import parse_call
    from chalicelib.services.container import get_services

    results = get_services().signing.sign(principal, parse_call(ref, body, client_ip))
    if isinstance(body, dict) and "items" in body:
        return {"items": [render.signed(r) for r in results]}
    return render.signed(results[0])


def digest_body(data: bytes) -> dict[str, str]:
    """A sign request for the SHA-256 of `data`."""
    import base64
    import hashlib

    return {"hash": base64.b64encode(hashlib.sha256(data).digest()).decode(), "hash_algorithm": "SHA-256"}


def check_signed(tmp: Any, signed: dict[str, Any], data: bytes) -> None:
    """A sign response over SHA-256 of `data` verifies with `cryptography` and with `openssl`."""
    import base64
    import hashlib

    from cryptography import x509

    from chalicelib.keys.algorithms import SIG_ALGS, verify_signature
    from tests.support.openssl import verify_digest

    digest = hashlib.sha256(data).digest()
    signature = base64.b64decode(signed["signature"])
    certificate = x509.load_pem_x509_certificate(signed["certificate"]["pem"].encode())
    verify_signature(certificate.public_key(), SIG_ALGS[signed["sig_alg"]], signature, digest)  # type: ignore[arg-type]
    verify_digest(tmp, signed["certificate"]["pem"], signed["sig_alg"], digest, signature)
@contextmanager
def cas_on_the_hsm() -> Iterator[Any]:
    """The process runs with `ca_storage=hsm` (new accounts keep their CA, TSA and log keys on the token) meanwhile."""
    import dataclasses

    from chalicelib.services.container import build_deps, get_deps, reset_services, set_deps
    from chalicelib.settings import get_settings

    original = get_deps()
    deps = build_deps(dataclasses.replace(get_settings(), ca_storage="hsm"))
    set_deps(deps)
    reset_services()
    try:
        yield deps
    finally:
        set_deps(original)
        reset_services()
