"""The private key never leaves its sealed row: not in a response, a log record, an audit entry or a table row."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.storage.tables import AuditLogModel, GenerationModel, KeyMaterialModel, KeypairModel
from chalicelib.structured_logging import JsonFormatter
from tests.support.api import KEY_SPECS

SPECS = KEY_SPECS


class Capture(logging.Handler):
    """Keeps every record it sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.paused:
            self.records.append(record)


@dataclass
class Secrets:
    """What the service made and said while making it, and the key material recovered by the test."""

    account: Any
    keypairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    der: dict[str, bytes] = field(default_factory=dict)
    data_keys: dict[str, bytes] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)


def unseal(account: str, kp: KeypairModel) -> tuple[bytes, bytes]:
    """The PKCS#8 DER of a disk key and its data key, decrypted here as DiskKeyStore.load does."""
    material = KeyMaterialModel.get(kp.id)
    assert material.key_ref == kp.key_ref
    context = {"account": account, "keypair": kp.id, "generation": str(int(kp.generation))}
    data_key = boto3.client("kms").decrypt(CiphertextBlob=bytes(material.wrapped_key), EncryptionContext=context)
    plain = data_key["Plaintext"]
    der = AESGCM(plain).decrypt(bytes(material.nonce), bytes(material.ciphertext), kp.key_ref.encode())
    return der, plain


def capture_points() -> list[logging.Logger]:
    """The root logger and every logger that does not propagate to it (`rotasign`, `rotasign.metrics`, ...)."""
    known = logging.root.manager.loggerDict.values()
    quiet = [lg for lg in known if isinstance(lg, logging.Logger) and not lg.propagate]
    return [logging.getLogger(), logging.getLogger("rotasign"), *[lg for lg in quiet if lg.name != "rotasign"]]


@pytest.fixture(scope="module")
def secrets(shared_account: Any) -> Iterator[Secrets]:
    """Create a keypair of every algorithm and exercise every keypair route, capturing all output."""
    from chalice.test import Client

    from app import app

    capture = Capture()
    loggers = capture_points()
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    out = Secrets(shared_account)
    headers = {"X-API-Key": shared_account.api_key, "Content-Type": "application/json"}
    try:
        with Client(app, stage_name="local") as client:

            def send(method: str, path: str, body: Any = None) -> Any:
                fn = getattr(client.http, method.lower())
                kwargs = {"headers": headers} | ({} if body is None else {"body": json.dumps(body)})
                response = fn(f"/api/v1{path}", **kwargs)
                out.bodies.append(response.body)
                return json.loads(response.body) if response.body else None

            for name, spec in SPECS.items():
                kind = "dynamic" if name in ("rsa-2048", "p-256", "ed25519") else "static"
                category = "test" if name in ("p-384", "rsa-3072") else "production"
                body = {"alias": f"secret-{name}", "type": kind, "category": category, **spec}
                out.keypairs[name] = send("POST", "/keypairs", body)
                send("POST", "/keypairs", body)  # 409: the error path says nothing either
            for name, kp in out.keypairs.items():
                send("GET", f"/keypairs/{kp['id']}")
                send("GET", f"/keypairs/secret-{name}")
                send("PATCH", f"/keypairs/{kp['id']}", {"alias": f"renamed-{name}", "status": "offline"})
                send("PATCH", f"/keypairs/{kp['id']}", {"status": "online"})
            for query in ("", "?limit=2", "?algorithm=RSA", "?alias=renamed-p-256"):
                send("GET", f"/keypairs{query}")
            send("GET", "/me")
            send("GET", "/ca")
            send("POST", "/keypairs", {"alias": "broken", "type": "static", "algorithm": "RSA", "key_size": 1})
            # A failed authentication with this account's key id writes an audit entry; it must not echo the secret.
            kid = shared_account.api_key.split("_")[1]
            failed = client.http.get("/api/v1/keypairs", headers={"X-API-Key": f"rsk_{kid}_{'a' * 52}"})
            out.bodies.append(failed.body)
            # Recover each key (the test's own KMS calls are not the service's logs) before deleting one;
            # the delete path must be quiet too.
            capture.paused = True
            for name, kp in out.keypairs.items():
                stored = KeypairModel.get(shared_account.id, kp["id"])
                out.der[name], out.data_keys[name] = unseal(shared_account.id, stored)
            capture.paused = False
            send("DELETE", f"/keypairs/{out.keypairs['ed25519']['id']}")
    finally:
        for lg, level in saved:
            lg.removeHandler(capture)
            lg.setLevel(level)
    out.records = capture.records
    yield out


def rendered(record: logging.LogRecord) -> str:
    """Everything a log record could put on a line: JSON form, plain form, raw args and extras."""
    plain = logging.Formatter("%(message)s").format(record)
    return "\n".join([JsonFormatter().format(record), plain, repr(record.args), repr(record.__dict__)])


def haystacks(out: Secrets) -> dict[str, bytes]:
    """Every response, log record, audit entry and keypair/generation row of the account, as bytes."""
    account = out.account.id
    rows: list[str] = []
    for model in (KeypairModel, AuditLogModel):
        rows += [json.dumps(item.serialize(), default=repr) for item in model.query(account)]
    rows += [json.dumps(g.serialize(), default=repr) for g in GenerationModel.scan(GenerationModel.account == account)]
    return {
        "responses": b"\n".join(out.bodies),
        "logs": "\n".join(rendered(r) for r in out.records).encode(),
        "audit and keypair rows": "\n".join(rows).encode(),
    }


def forms(secret: bytes) -> dict[str, bytes]:
    """The ways a secret could be written down."""
    return {
        "raw": secret,
        "base64": base64.b64encode(secret),
        "urlsafe base64": base64.urlsafe_b64encode(secret).rstrip(b"="),
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "repr": repr(secret).encode()[2:-1],
    }


def test_the_test_recovered_the_real_keys(secrets: Secrets) -> None:
    for name, der in secrets.der.items():
        private = serialization.load_der_private_key(der, password=None)
        public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        assert public.decode() == secrets.keypairs[name]["public_key"]
    assert len(secrets.records) > 20 and any(r.name.startswith("rotasign") for r in secrets.records)


@pytest.mark.parametrize("name", list(SPECS))
def test_private_key_appears_nowhere(secrets: Secrets, name: str) -> None:
    der = secrets.der[name]
    private = serialization.load_der_private_key(der, password=None)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    needles = {f"DER {form}": value for form, value in forms(der).items()}
    needles["PEM"] = pem
    # Each PEM line on its own, in case something re-wrapped it.
    needles.update({f"PEM line {n}": line for n, line in enumerate(pem.splitlines()[1:-2], 1) if len(line) == 64})
    if hasattr(private, "private_numbers") and hasattr(private.private_numbers(), "private_value"):
        scalar = private.private_numbers().private_value
        needles["EC scalar"] = str(scalar).encode()
        needles["EC scalar hex"] = format(scalar, "x").encode()
    for where, haystack in haystacks(secrets).items():
        for what, needle in needles.items():
            assert needle not in haystack, f"{what} of the {name} key found in {where}"


def test_kms_data_keys_appear_nowhere(secrets: Secrets) -> None:
    places = haystacks(secrets)
    for name, data_key in secrets.data_keys.items():
        for where, haystack in places.items():
            for form, needle in forms(data_key).items():
                assert needle not in haystack, f"the data key of the {name} key ({form}) found in {where}"


def test_api_key_secret_appears_nowhere(secrets: Secrets) -> None:
    key = secrets.account.api_key
    secret = key.split("_")[2]
    needles = {"API key": key.encode(), "secret": secret.encode(), "secret upper": secret.upper().encode()}
    for where, haystack in haystacks(secrets).items():
        for what, needle in needles.items():
            assert needle not in haystack, f"{what} found in {where}"


def test_the_key_material_row_holds_only_ciphertext(secrets: Secrets) -> None:
    for name, kp in secrets.keypairs.items():
        if name == "ed25519":
            continue
        stored = KeypairModel.get(secrets.account.id, kp["id"])
        row = KeyMaterialModel.get(stored.id).serialize()
        raw = json.dumps(row, default=repr).encode() + b"".join(
            v.get("B", b"") for v in row.values() if isinstance(v, dict)
        )
        for form, needle in forms(secrets.der[name]).items():
            assert needle not in raw, form
        for form, needle in forms(secrets.data_keys[name]).items():
            assert needle not in raw, form
