"""What a sign request asks for, what it answers, and the signature-log entries that record it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Principal
from chalicelib.domain.keypairs import Keypair
from chalicelib.domain.logs import LogKey, SignatureEntry
from chalicelib.errors import RotasignError
from chalicelib.ids import looks_like_id

MAX_BATCH = 100
MAX_LABEL = 256  # file_name and tool: free text kept in the log, bounded so one entry stays small


@dataclass(frozen=True)
class SignItem:
    """One validated thing to sign: `digest` is what the log records, `data_for()` what the key signs."""

    hash_algorithm: str
    digest: bytes
    sig_alg: str | None = None
    message: bytes | None = field(default=None, repr=False)
    file_name: str | None = None
    tool: str | None = None

    def data_for(self, algorithm: str) -> bytes:
        """Ed25519 signs the message itself when there is one (RFC 8419); everything else the digest."""
        if algorithm == "EdDSA" and self.message is not None:
            return self.message
        return self.digest


@dataclass(frozen=True)
class SignCall:
    """A sign request as the edge hands it over.

    `refused` is the error of a body that did not parse; a single request is still logged as a failed
    attempt (naming the keypair and echoing what was `sent`), a batch with a bad item writes nothing.
    """

    ref: str
    client_ip: str | None
    items: tuple[SignItem, ...] = ()
    batch: bool = False
    refused: RotasignError | None = None
    sent: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Signed:
    """One signature as the API returns it."""

    signature: bytes
    sig_alg: str
    keypair: Keypair
    chain: tuple[str, ...]
    timestamp_token: str
    entry: SignatureEntry


def success_entry(principal: Principal, kp: Keypair, item: SignItem, sig_alg: str, signature: bytes,
                  token: str, at: datetime, expires: datetime | None, client_ip: str | None) -> SignatureEntry:
    """The signature-log entry of a signature made at `at`."""
    return SignatureEntry(
        account=principal.account,
        key=LogKey.new(at),
        signed_at=rfc3339(at),
        status="success",
        signer=principal.user_id,
        keypair_id=kp.id,
        keypair_alias=kp.alias,
        keypair_type=kp.type.value,
        key_id=kp.key_id,
        generation=kp.generation,
        algorithm=kp.spec.algorithm,
        sig_alg=sig_alg,
        signature_type=kp.category.value,
        hash_algorithm=item.hash_algorithm,
        hash=base64.b64encode(item.digest).decode(),
        signature=base64.b64encode(signature).decode(),
        file_name=item.file_name,
        tool=item.tool,
        client_ip=client_ip,
        timestamp_token=token,
        certificate_serial=kp.certificate.serial if kp.certificate is not None else None,
        expires=expires,
    )


def failure_entry(principal: Principal, call: SignCall, kp: Keypair | None, sig_alg: str | None, error: str,
                  at: datetime, expires: datetime | None) -> SignatureEntry:
    """The signature-log entry of a refused request (what it sent, bounded; never parsed further)."""
    item = call.items[0] if len(call.items) == 1 else None
    sent = call.sent
    alias = kp.alias if kp is not None else (None if looks_like_id(call.ref, "kp") else call.ref[:64])
    return SignatureEntry(
        account=principal.account,
        key=LogKey.new(at),
        signed_at=rfc3339(at),
        status="failed",
        signer=principal.user_id,
        keypair_id=kp.id if kp is not None else None,
        keypair_alias=alias,
        keypair_type=kp.type.value if kp is not None else None,
        key_id=kp.key_id if kp is not None else None,
        generation=kp.generation if kp is not None else None,
        algorithm=kp.spec.algorithm if kp is not None else None,
        sig_alg=sig_alg or _bounded(sent.get("sig_alg")),
        signature_type=kp.category.value if kp is not None else None,
        hash_algorithm=item.hash_algorithm if item else _bounded(sent.get("hash_algorithm")),
        hash=base64.b64encode(item.digest).decode() if item else _bounded(sent.get("hash")),
        file_name=item.file_name if item else _bounded(sent.get("file_name")),
        tool=item.tool if item else _bounded(sent.get("tool")),
        client_ip=call.client_ip,
        error=error,
        expires=expires,
    )


def _bounded(value: str | None) -> str | None:
    return value[:MAX_LABEL] if value is not None else None
