"""The signing route: one item, or a batch of up to 100 items, each parsed here into a SignItem."""

from __future__ import annotations

import hashlib
from typing import Any

from chalice.app import Blueprint

from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, source_ip
from chalicelib.api.parsing import Fields
from chalicelib.domain.keyspec import HASH_LENGTHS
from chalicelib.errors import RotasignError
from chalicelib.services.container import get_services
from chalicelib.services.sign_requests import MAX_BATCH, MAX_LABEL, SignCall, SignItem

bp = Blueprint(__name__)

ITEM_FIELDS = ("hash", "message", "hash_algorithm", "sig_alg", "file_name", "tool")
MAX_MESSAGE = 4096
_ECHO = ("sig_alg", "hash_algorithm", "hash", "file_name", "tool")


def parse_item(body: Any, index: int | None = None) -> SignItem:
    """One sign request (or batch item) → SignItem; raises ValidationError / UnsupportedAlgorithm."""
    f = Fields(body, ITEM_FIELDS, index=index)
    hash_algorithm = f.raw("hash_algorithm")
    if hash_algorithm is None:
        hash_algorithm = "SHA-256"
    if not isinstance(hash_algorithm, str) or hash_algorithm not in HASH_LENGTHS:
        raise f.unsupported("hash_algorithm", "hash_algorithm must be SHA-256, SHA-384 or SHA-512.")
    sig_alg = f.raw("sig_alg")
    if sig_alg is not None and not isinstance(sig_alg, str):
        raise f.error("sig_alg", "sig_alg must be a string.")
    if f.has("hash") == f.has("message"):
        raise f.error("hash", "Send exactly one of hash and message.")
    message = None
    if f.has("hash"):
        digest = f.binary("hash", required=True)
        assert digest is not None
        if len(digest) != HASH_LENGTHS[hash_algorithm]:
            expected = HASH_LENGTHS[hash_algorithm]
            raise f.error("hash", f"A {hash_algorithm} digest is {expected} bytes; got {len(digest)}.")
    else:
        message = f.binary("message", required=True)
        assert message is not None
        if not 1 <= len(message) <= MAX_MESSAGE:
            raise f.error("message", f"message must be 1 to {MAX_MESSAGE} bytes.")
        digest = hashlib.new(hash_algorithm.replace("-", "").lower(), message).digest()
    return SignItem(hash_algorithm, digest, sig_alg, message, f.text("file_name", max_length=MAX_LABEL),
                    f.text("tool", max_length=MAX_LABEL))


def parse_call(ref: str, body: Any, client_ip: str | None) -> SignCall:
    """The whole body: `{"items": [...]}` (1..100) or one item; a bad item is a 400 naming its index."""
    if isinstance(body, dict) and "items" in body:
        f = Fields(body, ("items",))
        items = f.raw("items")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise f.error("items", f"items must be a list of 1 to {MAX_BATCH} sign requests.")
        return SignCall(ref, client_ip, tuple(parse_item(item, i) for i, item in enumerate(items)), batch=True)
    return SignCall(ref, client_ip, (parse_item(body),))


def _echo(body: Any) -> dict[str, str]:
    """What a refused single request sent, for its log entry (text fields only, never parsed further)."""
    if not isinstance(body, dict):
        return {}
    return {name: value for name in _ECHO if isinstance(value := body.get(name), str)}


@bp.route("/keypairs/{keypair}/sign", methods=["POST"])
@endpoint(None)  # the service checks `sign` itself, so that a refusal is logged like any other attempt
def sign(keypair: str) -> dict[str, Any]:
    """Sign a digest (or a short message) — or a batch of them — with the keypair's current key."""
    request = bp.current_request
    client_ip = source_ip(request)
    body: Any = None
    try:
        body = json_body(request)
        call = parse_call(keypair, body, client_ip)
    except RotasignError as exc:
        batch = isinstance(body, dict) and "items" in body
        if batch and exc.status == 400:
            raise  # a bad batch item: 400 naming its index, nothing signed, nothing written
        call = SignCall(keypair, client_ip, batch=batch, refused=exc, sent=_echo(body))
    results = get_services().signing.sign(principal(), call)
    if call.batch:
        return {"items": [render.signed(r) for r in results]}
    return render.signed(results[0])
