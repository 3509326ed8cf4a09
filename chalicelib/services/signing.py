"""Signing: check the caller and the keypair, sign a digest or a short message, log every attempt.

The path per signature (DESIGN.md "The signing path"): one BatchGetItem of the keypair row with its
key material, the signature, then one TransactWriteItems holding the signature-log entry and a
ConditionCheck that the keypair is still at the generation that signed. A refusal writes its failed
signature-log entry and its `sign_denied` audit entry in one transaction instead. No log entry, no
signature: if the entry cannot be written the caller gets an error and never sees the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import GetError, PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import metrics
from chalicelib.clock import rfc3339
from chalicelib.errors import (
    Conflict,
    KeypairOffline,
    NotAllowed,
    NotFound,
    RotasignError,
    StorageUnavailable,
    Throttled,
    UnsupportedAlgorithm,
    ValidationError,
)
from chalicelib.ids import looks_like_id
from chalicelib.keys.algorithms import HASH_ALGORITHMS, HASH_LENGTHS, PrivateKey, SigAlg, resolve_sig_alg, sign
from chalicelib.keys.backend import KeyBackend, SealedKey
from chalicelib.services.access import Principal
from chalicelib.services.accounts import AccountCache
from chalicelib.services.audit import Actor, audit_item, log_sort_key
from chalicelib.services.authorities import sealed_of
from chalicelib.services.deps import Deps
from chalicelib.services.keypairs import alias_key, cert_dict, spec_of
from chalicelib.storage.models import (
    AliasClaim,
    AuditLogModel,
    GenerationModel,
    KeyMaterialModel,
    KeypairModel,
    SignatureLogModel,
)
from chalicelib.storage.tx import cancellation_codes, connection, transaction

log = logging.getLogger("rotasign.signing")

SIGN_FIELDS = frozenset({"hash", "message", "hash_algorithm", "sig_alg", "file_name", "tool"})
MAX_MESSAGE = 4096
MAX_LABEL = 256  # file_name and tool: free text kept in the log, bounded so one entry stays small
_CACHE_LIMIT = 10_000
_COMMIT_TRIES = 3  # TransactionConflict: another transaction held the keypair item for a moment
_SINGLE_USE_ROUNDS = 16  # sign rounds of a refresh_after_sign keypair before 409 conflict
_THROTTLING = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}

Transaction = Callable[[], AbstractContextManager[TransactWrite]]
RefreshIfOverdue = Callable[[KeypairModel], bool]
AfterSign = Callable[[KeypairModel, SignatureLogModel], None]
Timestamper = Callable[[str, bytes], str]


@dataclass(frozen=True)
class SignRequest:
    """A validated sign request: `data_for()` is what the key signs, `digest` what the log records."""

    hash_algorithm: str
    sig_alg: str | None
    digest: bytes
    message: bytes | None
    file_name: str | None
    tool: str | None

    def data_for(self, sig_alg: SigAlg) -> bytes:
        """Ed25519 signs the message itself when there is one (RFC 8419); everything else the digest."""
        if sig_alg.algorithm == "EdDSA" and self.message is not None:
            return self.message
        return self.digest


def _b64(body: dict[str, Any], field: str) -> bytes:
    value = body[field]
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a base64 string.", details={"field": field})
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{field} is not valid base64.", details={"field": field}) from None


def _label(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_LABEL:
        raise ValidationError(f"{field} must be a string of 1 to {MAX_LABEL} characters.", details={"field": field})
    return value


def parse_sign_request(body: Any) -> SignRequest:
    """Validate a sign body; raises ValidationError or UnsupportedAlgorithm (API.md: both are 400)."""
    if not isinstance(body, dict):
        raise ValidationError("The body must be a JSON object.")
    extra = sorted(set(body) - SIGN_FIELDS)
    if extra:
        raise ValidationError(f"Unknown field {extra[0]!r}.", details={"field": extra[0]})
    hash_algorithm = body.get("hash_algorithm", "SHA-256")
    if not isinstance(hash_algorithm, str) or hash_algorithm not in HASH_ALGORITHMS:
        raise UnsupportedAlgorithm(
            "hash_algorithm must be SHA-256, SHA-384 or SHA-512.", details={"field": "hash_algorithm"}
        )
    sig_alg = body.get("sig_alg")
    if sig_alg is not None and not isinstance(sig_alg, str):
        raise ValidationError("sig_alg must be a string.", details={"field": "sig_alg"})
    if ("hash" in body) == ("message" in body):
        raise ValidationError("Send exactly one of hash and message.", details={"field": "hash"})
    message = None
    if "hash" in body:
        digest = _b64(body, "hash")
        if len(digest) != HASH_LENGTHS[hash_algorithm]:
            raise ValidationError(
                f"A {hash_algorithm} digest is {HASH_LENGTHS[hash_algorithm]} bytes; got {len(digest)}.",
                details={"field": "hash"},
            )
    else:
        message = _b64(body, "message")
        if not 1 <= len(message) <= MAX_MESSAGE:
            raise ValidationError(f"message must be 1 to {MAX_MESSAGE} bytes.", details={"field": "message"})
        digest = hashlib.new(hash_algorithm.replace("-", "").lower(), message).digest()
    return SignRequest(hash_algorithm, sig_alg, digest, message, _label(body, "file_name"), _label(body, "tool"))


@dataclass
class Attempt:
    """What one sign request has learnt so far: everything its signature-log entry records."""

    principal: Principal
    ref: str
    client_ip: str | None
    at: datetime
    body: Any = None
    request: SignRequest | None = None
    keypair: KeypairModel | None = None
    sig_alg: str | None = None
    signature: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def log_entry(self, retention_days: int, error: str | None = None) -> SignatureLogModel:
        """The signature-log entry of this attempt (`status: failed` when `error` is given)."""
        kp, req = self.keypair, self.request
        sk = log_sort_key(self.at)
        account = self.principal.account
        alias = kp.alias if kp is not None else (None if looks_like_id(self.ref, "kp") else self.ref[:64])
        kp_id = kp.id if kp is not None else None
        sent = self.body if isinstance(self.body, dict) else {}
        return SignatureLogModel(
            account,
            sk,
            id=f"log_{sk.split('#')[1]}",
            signed_at=rfc3339(self.at),
            status="failed" if error else "success",
            signer=self.principal.user_id,
            keypair_id=kp_id,
            keypair_alias=alias,
            keypair_type=kp.type if kp is not None else None,
            key_id=kp.key_id if kp is not None else None,
            generation=int(kp.generation) if kp is not None else None,
            algorithm=kp.algorithm if kp is not None else None,
            sig_alg=self.sig_alg or _sent_text(sent, "sig_alg"),
            signature_type=kp.category if kp is not None else None,
            hash_algorithm=req.hash_algorithm if req else _sent_text(sent, "hash_algorithm"),
            hash=base64.b64encode(req.digest).decode() if req else _sent_text(sent, "hash"),
            signature=base64.b64encode(self.signature).decode() if self.signature and not error else None,
            file_name=req.file_name if req else _sent_text(sent, "file_name"),
            tool=req.tool if req else _sent_text(sent, "tool"),
            client_ip=self.client_ip,
            error=error,
            expires=(self.at + timedelta(days=retention_days)) if retention_days > 0 else None,
            k_keypair_id=f"{account}#{kp_id}" if kp_id else None,
            k_alias=f"{account}#{alias_key(alias)}" if alias else None,
            k_signer=f"{account}#{self.principal.user_id}",
            k_status=f"{account}#{'failed' if error else 'success'}",
        )


def _sent_text(body: dict[str, Any], field: str) -> str | None:
    """What a refused request sent in a text field, bounded, for the log (never parsed further)."""
    value = body.get(field)
    return value[:MAX_LABEL] if isinstance(value, str) else None


class _Raced(Exception):
    """The keypair moved on (refresh, delete) between the read and the log write."""


@dataclass(frozen=True)
class _Read:
    keypair: KeypairModel | None
    material: KeyMaterialModel | None


class KeypairReader:
    """Reads a keypair row together with its key material in one BatchGetItem."""

    def read(self, account: str, kp_id: str, material_ref: str | None) -> _Read:
        """Strongly consistent reads of the row and (when named) its material; raises PynamoDBException.

        PynamoDB's `batch_get` spans one model, so the two-table request is built here.
        """
        kp_table, mat_table = KeypairModel.Meta.table_name, KeyMaterialModel.Meta.table_name
        request: dict[str, Any] = {
            kp_table: {"Keys": [{"account": {"S": account}, "id": {"S": kp_id}}], "ConsistentRead": True}
        }
        if material_ref is not None:
            request[mat_table] = {"Keys": [{"id": {"S": material_ref}}], "ConsistentRead": True}
        found: dict[str, list[dict[str, Any]]] = {}
        for _ in range(4):
            try:
                data = connection().dispatch("BatchGetItem", {"RequestItems": request})
            except (BotoCoreError, ClientError) as exc:
                raise GetError("BatchGetItem of a keypair failed", exc) from exc
            for table, items in data.get("Responses", {}).items():
                found.setdefault(table, []).extend(items)
            request = data.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(random.uniform(0.01, 0.05))
        else:
            raise Throttled("Storage is throttling requests; retry later.")
        kp_items, mat_items = found.get(kp_table, []), found.get(mat_table, [])
        return _Read(
            KeypairModel.from_raw_data(kp_items[0]) if kp_items else None,
            KeyMaterialModel.from_raw_data(mat_items[0]) if mat_items else None,
        )

    def material(self, ref: str) -> KeyMaterialModel | None:
        """The key material row `ref` alone (after a refresh moved the row past the hinted key)."""
        try:
            return KeyMaterialModel.get(ref, consistent_read=True)
        except KeyMaterialModel.DoesNotExist:
            return None


class SigningService:
    """POST /keypairs/{keypair}/sign. Outside capabilities come in through the constructor.

    Seams for later issues, all optional:
    - `refresh_if_overdue(kp)`: called with the row just read, before signing; returns True when it
      refreshed the keypair, and the row is read again (the refresh service plugs in here).
    - `after_sign(kp, entry)`: called after the log entry committed (refresh_after_sign plugs in here);
      its failures are logged, never returned: the signature exists and is logged already.
    - `timestamper(account, sha256(signature))`: the base64 RFC 3161 token for the response.
    """

    def __init__(
        self,
        deps: Deps,
        accounts: AccountCache,
        *,
        backend: Callable[[str], KeyBackend] | None = None,
        transaction: Transaction = transaction,
        reader: KeypairReader | None = None,
        refresh_if_overdue: RefreshIfOverdue | None = None,
        after_sign: AfterSign | None = None,
        timestamper: Timestamper | None = None,
    ) -> None:
        self.deps = deps
        self.accounts = accounts
        self.backend = backend or deps.backend
        self.transaction = transaction
        self.reader = reader or KeypairReader()
        self.refresh_if_overdue = refresh_if_overdue
        self.after_sign = after_sign
        self.timestamper = timestamper
        # Hints only: every hint is checked against the row read consistently on each request.
        self._alias_ids: dict[tuple[str, str], str] = {}
        self._key_refs: dict[tuple[str, str], str] = {}
        # (storage, key_ref) -> (expiry, the backend that loaded it, key object); a key_ref names one generation.
        self._keys: dict[tuple[str, str], tuple[float, KeyBackend, PrivateKey]] = {}
        self._lock = threading.Lock()

    # -- the request -------------------------------------------------------------------------

    def sign(
        self,
        principal: Principal,
        ref: str,
        body: Any,
        client_ip: str | None,
        *,
        body_error: RotasignError | None = None,
    ) -> dict[str, Any]:
        """Sign and log; every outcome writes one signature-log entry. Raises the refusal's RotasignError."""
        attempt = Attempt(principal, ref, client_ip, self.deps.clock(), body=body)
        try:
            rounds = 0
            while True:
                rounds += 1
                try:
                    return self._try(attempt, body_error)
                except _Raced:
                    # A refresh (or delete) committed between our read and our write: the signature made
                    # with the retired key is dropped, and the request runs once more from the read. A
                    # single-use keypair (refresh_after_sign) makes one winner per generation, so N concurrent
                    # signers need up to N rounds; any other keypair retries once.
                    kp = attempt.keypair
                    limit = _SINGLE_USE_ROUNDS if kp is not None and kp.refresh_after_sign else 2
                    if rounds >= limit:
                        raise Conflict("The keypair changed while signing; try again.") from None
                    log.info("sign raced a keypair change",
                             extra={"event": "sign_raced", "keypair_id": kp.id if kp is not None else None})
                    attempt = replace(attempt, keypair=None, sig_alg=None, signature=None, at=self.deps.clock())
        except RotasignError as exc:
            self._refuse(attempt, exc.code)
            raise
        except Exception:
            self._refuse(attempt, "internal_error")
            raise

    def _try(self, attempt: Attempt, body_error: RotasignError | None) -> dict[str, Any]:
        principal = attempt.principal
        # The keypair is read first, even for requests that fail later, so their log entries name it.
        attempt.keypair, material = self._read(principal.account, attempt.ref)
        principal.require("sign")
        if body_error is not None:
            raise body_error
        kp = attempt.keypair
        if kp is None or kp.deleted_at:
            raise NotFound("No such keypair.")
        if kp.access != "open" and principal.user_id not in (kp.allowed_users or []):
            # allowed_groups match nobody until groups exist (their membership is not stored yet).
            raise NotAllowed(details={"keypair": kp.id})
        if kp.status != "online":
            # Release windows (which let an offline keypair sign) arrive with their own issue.
            raise KeypairOffline(details={"keypair": kp.id})
        attempt.request = parse_sign_request(attempt.body)
        sig_alg = resolve_sig_alg(spec_of(kp), attempt.request.hash_algorithm, attempt.request.sig_alg)
        attempt.sig_alg = sig_alg.name
        if self.refresh_if_overdue is not None and self.refresh_if_overdue(kp):
            attempt.keypair, material = self._read(principal.account, kp.id)
            kp = attempt.keypair
            if kp is None or kp.deleted_at:
                raise NotFound("No such keypair.")
        account = self.accounts.get(principal.account)
        sealed = self._sealed(kp, material)
        attempt.at = self.deps.clock()
        attempt.signature = sign(self._key(principal.account, kp, sealed), sig_alg, attempt.request.data_for(sig_alg))
        token = None
        if self.timestamper is not None:
            token = self.timestamper(principal.account, hashlib.sha256(attempt.signature).digest())
        entry = attempt.log_entry(self.deps.settings.log_retention_days)
        self._commit_success(entry, kp)
        log.info("signed", extra={"event": "sign", "account": principal.account, "keypair_id": kp.id,
                                  "generation": int(kp.generation), "sig_alg": sig_alg.name, "outcome": "success"})
        metrics.emit("signatures", 1, outcome="success", storage=kp.storage)
        if self.after_sign is not None:
            try:
                self.after_sign(kp, entry)
            except Exception:
                log.warning("after_sign hook failed", exc_info=True,
                            extra={"event": "after_sign_failed", "keypair_id": kp.id})
        ca_pem = account.test_ca_pem if kp.category == "test" else account.production_ca_pem
        return {
            "signature": base64.b64encode(attempt.signature).decode(),
            "sig_alg": sig_alg.name,
            "keypair_id": kp.id,
            "alias": kp.alias,
            "key_id": kp.key_id,
            "generation": int(kp.generation),
            "certificate": cert_dict(kp.certificate),
            "chain": [ca_pem] if kp.certificate is not None else [],
            "timestamp_token": token,
            "signature_log_id": entry.id,
            "signed_at": entry.signed_at,
        }

    # -- reading -------------------------------------------------------------------------------

    def _read(self, account: str, ref: str) -> tuple[KeypairModel | None, KeyMaterialModel | None]:
        """The row named by `ref` (id or alias) and, for disk keys, its current key material.

        An alias costs one more read, unless this process has seen it: the alias hint is trusted only
        when the row read consistently still carries that alias (claim and row change in one transaction).
        """
        if looks_like_id(ref, "kp"):
            return self._read_id(account, ref)
        if not isinstance(ref, str) or len(ref) > 64:
            return None, None
        hinted = self._hint(self._alias_ids, (account, alias_key(ref)))
        if hinted is not None:
            kp, material = self._read_id(account, hinted)
            if kp is not None and not kp.deleted_at and alias_key(kp.alias) == alias_key(ref):
                return kp, material
        kp_id = self._resolve_alias(account, ref)
        if kp_id is None:
            return None, None
        kp, material = self._read_id(account, kp_id)
        if kp is not None and not kp.deleted_at:
            self._remember(self._alias_ids, (account, alias_key(ref)), kp_id)
        return kp, material

    def _read_id(self, account: str, kp_id: str) -> tuple[KeypairModel | None, KeyMaterialModel | None]:
        """The row, with the key material this process last saw it use (the hint) in the same request."""
        hinted = self._hint(self._key_refs, (account, kp_id))
        try:
            got = self.reader.read(account, kp_id, hinted)
        except PynamoDBException as exc:
            raise _storage_error(exc) from exc
        kp = got.keypair
        if kp is None or kp.deleted_at or kp.storage != "disk":
            return kp, None
        self._remember(self._key_refs, (account, kp_id), kp.key_ref)
        return kp, got.material

    def _resolve_alias(self, account: str, alias: str) -> str | None:
        try:
            return str(AliasClaim.get(account, alias_key(alias), consistent_read=True).keypair_id)
        except AliasClaim.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _storage_error(exc) from exc

    def _key(self, account: str, kp: KeypairModel, sealed: SealedKey | None) -> PrivateKey:
        """The key object of the row's generation, kept for `key_cache_seconds` while the same backend serves it."""
        backend = self.backend(kp.storage)
        now = time.monotonic()
        with self._lock:
            hit = self._keys.get((kp.storage, kp.key_ref))
        if hit is not None and hit[0] > now and hit[1] is backend:
            return hit[2]
        key = backend.load(account, kp.key_ref, sealed)
        with self._lock:
            if len(self._keys) > _CACHE_LIMIT:
                self._keys.clear()
            self._keys[(kp.storage, kp.key_ref)] = (now + self.deps.settings.key_cache_seconds, backend, key)
        return key

    def _sealed(self, kp: KeypairModel, material: KeyMaterialModel | None) -> SealedKey | None:
        """The sealed key of the row's current generation, read now if the batch did not bring it."""
        if kp.storage != "disk":
            return None
        if material is None or material.id != kp.key_ref:
            # First use of this keypair in this process, or a refresh moved it to a new key. Read only now,
            # after the checks, so a refused request never pays for it.
            try:
                material = self.reader.material(kp.key_ref)
            except PynamoDBException as exc:
                raise _storage_error(exc) from exc
        if material is None:
            # The row names key material that is gone: a refresh deleted it after our row read.
            raise _Raced()
        return sealed_of(material)

    def _hint(self, table: dict[tuple[str, str], str], key: tuple[str, str]) -> str | None:
        with self._lock:
            return table.get(key)

    def _remember(self, table: dict[tuple[str, str], str], key: tuple[str, str], value: str) -> None:
        with self._lock:
            if len(table) > _CACHE_LIMIT:
                table.clear()
            table[key] = value

    # -- writing -------------------------------------------------------------------------------

    def _commit_success(self, entry: SignatureLogModel, kp: KeypairModel) -> None:
        """Log entry + ConditionCheck (same generation and key, not deleted); raises _Raced or 503/429.

        For a single-use keypair the same transaction also retires the generation that signed.
        """
        still_current = (
            (KeypairModel.generation == int(kp.generation))
            & (KeypairModel.key_id == kp.key_id)
            & KeypairModel.deleted_at.does_not_exist()
        )
        for tries in range(1, _COMMIT_TRIES + 1):
            try:
                with self.transaction() as tx:
                    tx.save(entry, condition=SignatureLogModel.sk.does_not_exist())
                    tx.condition_check(KeypairModel, kp.account, kp.id, condition=still_current)
                    if kp.refresh_after_sign:
                        # Single-use: the signature retires its generation, so a second signer on it fails
                        # here and retries on the next key (the refresh service's hooks make that key).
                        tx.update(GenerationModel(kp.id, int(kp.generation)),
                                  actions=[GenerationModel.retired_at.set(entry.signed_at)],
                                  condition=GenerationModel.generation.exists()
                                  & GenerationModel.retired_at.does_not_exist())
                return
            except TransactWriteError as exc:
                codes = cancellation_codes(exc)
                if "ConditionalCheckFailed" in codes:
                    # The ConditionCheck failed (PynamoDB orders items itself, so no index is trusted; the
                    # log entry's own condition cannot fail on a fresh ULID): read again and retry once.
                    raise _Raced() from exc
                if "TransactionConflict" in codes and tries < _COMMIT_TRIES:
                    time.sleep(random.uniform(0.005, 0.02) * tries)
                    continue
                raise _log_write_error(exc) from exc
            except PynamoDBException as exc:
                raise _log_write_error(exc) from exc

    def _refuse(self, attempt: Attempt, error: str) -> None:
        """Write the failed signature-log entry and its `sign_denied` audit entry in one transaction."""
        entry = attempt.log_entry(self.deps.settings.log_retention_days, error=error)
        kp = attempt.keypair
        who = Actor(attempt.principal.account, attempt.principal.user_id, attempt.client_ip)
        denied = audit_item(
            who,
            attempt.at,
            type=kp.type if kp is not None else "static",
            action="sign_denied",
            resource_id=kp.id if kp is not None else None,
            resource_alias=entry.keypair_alias,
            outcome="failure",
            error=error,
            details={k: v for k, v in (("signature_log_id", entry.id), ("keypair", attempt.ref[:100]),
                                       ("sig_alg", entry.sig_alg)) if v is not None},
            retention_days=self.deps.settings.log_retention_days,
        )
        try:
            with self.transaction() as tx:
                tx.save(entry, condition=SignatureLogModel.sk.does_not_exist())
                tx.save(denied, condition=AuditLogModel.sk.does_not_exist())
        except PynamoDBException as exc:
            log.error("could not log a refused signature", extra={"event": "sign_log_failed", "error": error})
            raise _log_write_error(exc) from exc
        log.info("sign refused", extra={"event": "sign", "account": attempt.principal.account,
                                        "keypair_id": entry.keypair_id, "outcome": "failure", "error": error})
        metrics.emit("signatures", 1, outcome="failure", error=error)


def _storage_error(exc: PynamoDBException) -> RotasignError:
    if exc.cause_response_code in _THROTTLING:
        return Throttled("Storage is throttling requests; retry later.")
    return StorageUnavailable()


def _log_write_error(exc: PynamoDBException) -> RotasignError:
    """Any failure to write a log entry: the client gets no signature and a retryable error."""
    codes = set(cancellation_codes(exc)) if isinstance(exc, TransactWriteError) else set()
    if exc.cause_response_code in _THROTTLING or codes & _THROTTLING:
        return Throttled("Storage is throttling requests; retry later.")
    return StorageUnavailable("The signature log could not be written; no signature was made available.")

