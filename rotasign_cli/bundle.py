"""The signature bundle `FILE.rsig.json`: everything a verifier needs, in one self-describing file.

Binary values are standard base64 and certificates PEM, as in the API. `signed_at` is what the
service reported and is informational only: a verifier takes the time from the time-stamp token.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass
from typing import Any

from rotasign_cli.algorithms import DIGEST_SIZES, HASH_ALGORITHMS, SIG_ALGS

MEDIA_TYPE = "application/vnd.rotasign.bundle+json;version=1"
SUFFIX = ".rsig.json"


class BundleError(ValueError):
    """A bundle that is not valid JSON or lacks a field a verifier needs."""


@dataclass(frozen=True)
class Bundle:
    """A signature over one file's digest, with its certificate chain and time-stamp token."""

    file_name: str | None
    hash_algorithm: str
    digest: bytes
    sig_alg: str
    signature: bytes
    certificate: str | None
    chain: tuple[str, ...]
    keypair_id: str
    keypair_alias: str | None
    key_id: str
    generation: int
    timestamp_token: bytes | None
    signature_log_id: str | None
    account_id: str | None
    signed_at: str | None
    tool: str | None = None

    def __post_init__(self) -> None:
        if self.hash_algorithm not in HASH_ALGORITHMS:
            raise BundleError(f"hash_algorithm must be one of {', '.join(HASH_ALGORITHMS)}.")
        if len(self.digest) != DIGEST_SIZES[self.hash_algorithm]:
            raise BundleError(f"digest is not a {self.hash_algorithm} digest.")
        if self.sig_alg not in SIG_ALGS:
            raise BundleError(f"unknown sig_alg {self.sig_alg!r}.")

    @classmethod
    def from_sign_response(
        cls, answer: dict[str, Any], *, file_name: str | None, hash_algorithm: str, digest: bytes,
        account_id: str | None, tool: str,
    ) -> Bundle:
        """The bundle of one sign answer of the API."""
        certificate = answer.get("certificate") or {}
        token = answer.get("timestamp_token")
        return cls(
            file_name=file_name,
            hash_algorithm=hash_algorithm,
            digest=digest,
            sig_alg=str(answer["sig_alg"]),
            signature=base64.b64decode(answer["signature"]),
            certificate=certificate.get("pem"),
            chain=tuple(answer.get("chain") or ()),
            keypair_id=str(answer["keypair_id"]),
            keypair_alias=answer.get("alias"),
            key_id=str(answer["key_id"]),
            generation=int(answer["generation"]),
            timestamp_token=base64.b64decode(token) if token else None,
            signature_log_id=answer.get("signature_log_id"),
            account_id=account_id,
            signed_at=answer.get("signed_at"),
            tool=tool,
        )

    def to_json(self) -> str:
        """The bundle file's text."""
        data = asdict(self)
        data["digest"] = _b64(self.digest)
        data["signature"] = _b64(self.signature)
        data["timestamp_token"] = _b64(self.timestamp_token) if self.timestamp_token else None
        data["chain"] = list(self.chain)
        return json.dumps({"media_type": MEDIA_TYPE, **data}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Bundle:
        """Parse and check a bundle file; raises BundleError saying what is wrong."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError("not JSON.") from exc
        if not isinstance(data, dict):
            raise BundleError("not a JSON object.")
        if data.get("media_type") != MEDIA_TYPE:
            raise BundleError(f"media_type is not {MEDIA_TYPE}.")
        try:
            generation = data["generation"]
            if isinstance(generation, bool) or not isinstance(generation, int):
                raise BundleError("generation must be an integer.")
            chain = data.get("chain") or []
            if not isinstance(chain, list) or not all(isinstance(pem, str) for pem in chain):
                raise BundleError("chain must be a list of PEM strings.")
            token = data.get("timestamp_token")
            return cls(
                file_name=_opt_str(data, "file_name"),
                hash_algorithm=_str(data, "hash_algorithm"),
                digest=_unb64(data, "digest"),
                sig_alg=_str(data, "sig_alg"),
                signature=_unb64(data, "signature"),
                certificate=_opt_str(data, "certificate"),
                chain=tuple(chain),
                keypair_id=_str(data, "keypair_id"),
                keypair_alias=_opt_str(data, "keypair_alias"),
                key_id=_str(data, "key_id"),
                generation=generation,
                timestamp_token=_unb64(data, "timestamp_token") if token is not None else None,
                signature_log_id=_opt_str(data, "signature_log_id"),
                account_id=_opt_str(data, "account_id"),
                signed_at=_opt_str(data, "signed_at"),
                tool=_opt_str(data, "tool"),
            )
        except KeyError as exc:
            raise BundleError(f"{exc.args[0]} is missing.") from None


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise BundleError(f"{name} must be a non-empty string.")
    return value


def _opt_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise BundleError(f"{name} must be a string.")
    return value


def _unb64(data: dict[str, Any], name: str) -> bytes:
    value = _str(data, name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"{name} is not base64.") from exc
