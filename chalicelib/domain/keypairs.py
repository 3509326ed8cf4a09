"""Keypairs, their generations and certificates as the services see them (never a storage row)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from chalicelib.domain.keyspec import KeySpec

ALIAS_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Any prefixed-ULID shape, in any case: an alias may not look like an id, so `{keypair}` is never ambiguous.
ID_SHAPE_RE = re.compile(r"[a-z]+_[0-9a-z]{26}", re.IGNORECASE)


def valid_alias(value: str) -> bool:
    """1..64 of [A-Za-z0-9._-], not shaped like an id (use fullmatch: `$` would allow a trailing newline)."""
    return ALIAS_RE.fullmatch(value) is not None and ID_SHAPE_RE.fullmatch(value) is None


class KeypairType(StrEnum):
    """`static` keys live until deleted; `dynamic` keys are replaced on every quarter hour."""

    STATIC = "static"
    DYNAMIC = "dynamic"


class Storage(StrEnum):
    """Where the private key lives."""

    HSM = "hsm"
    DISK = "disk"


class Status(StrEnum):
    """`offline` keypairs sign only inside a release window that names them."""

    ONLINE = "online"
    OFFLINE = "offline"


class Access(StrEnum):
    """`restricted` keypairs sign only for their allowed users and groups."""

    OPEN = "open"
    RESTRICTED = "restricted"


class Category(StrEnum):
    """Which of the account's two CAs issues the keypair's certificates."""

    PRODUCTION = "production"
    TEST = "test"


@dataclass(frozen=True)
class Certificate:
    """An issued certificate as docs/api.md shows it."""

    serial: str
    pem: str
    not_before: str
    not_after: str
    issuer: str

    def as_dict(self) -> dict[str, str]:
        """The docs/api.md form."""
        return {"serial": self.serial, "pem": self.pem, "not_before": self.not_before,
                "not_after": self.not_after, "issuer": self.issuer}


@dataclass(frozen=True)
class KeyRef:
    """`<keypair id>/<generation>/<unix time>`: names one generation's key (token label, KMS context)."""

    keypair_id: str
    generation: int
    created: int

    def __str__(self) -> str:
        return f"{self.keypair_id}/{self.generation}/{self.created}"

    @classmethod
    def parse(cls, ref: str) -> KeyRef | None:
        """The parts of a keypair key reference, or None for anything else (CA and TSA references)."""
        from chalicelib.ids import looks_like_id

        parts = ref.split("/")
        if len(parts) != 3 or not looks_like_id(parts[0], "kp") or not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]))


@dataclass(frozen=True)
class Keypair:
    """A keypair: its parameters, rules and current generation. Times are RFC 3339 strings."""

    account: str
    id: str
    alias: str
    type: KeypairType
    spec: KeySpec
    category: Category
    storage: Storage
    status: Status
    access: Access
    key_id: str
    key_ref: str
    generation: int
    public_key: str
    certificate: Certificate | None
    created_at: str
    created_by: str
    refreshed_at: str | None = None
    next_refresh_at: str | None = None
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    team_id: str | None = None
    profile_id: str | None = None
    generate_certificate: bool = True
    refresh_after_sign: bool = False
    deleted_at: str | None = None
    version: int = 1

    @property
    def dynamic(self) -> bool:
        """Whether the keypair is refreshed on the schedule."""
        return self.type is KeypairType.DYNAMIC

    @property
    def single_use(self) -> bool:
        """A dynamic keypair whose every generation makes at most one signature."""
        return self.dynamic and self.refresh_after_sign


@dataclass(frozen=True)
class Generation:
    """One key of a keypair: kept (public key, certificate) after its private key is destroyed.

    `retired_at` is when the generation stopped being usable: a refresh or delete committed at T sets
    it to T plus the retirement grace, so every signature it made is time-stamped before it.
    `signed_by` is set on a single-use generation by the transaction of its one signature.
    """

    keypair_id: str
    generation: int
    account: str
    key_id: str
    public_key: str
    certificate: Certificate | None
    created_at: str
    retired_at: str | None = None
    signed_by: str | None = None


@dataclass(frozen=True)
class NewGeneration:
    """A key just made and certified, with everything its commit writes."""

    keypair_id: str
    generation: int
    key_ref: str
    key_id: str
    public_key: str
    certificate: Certificate | None
    created_at: str
    next_refresh_at: str | None
    sealed: SealedKey | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SealedKey:
    """A private key as AES-256-GCM ciphertext under a KMS-wrapped data key (what disk storage keeps)."""

    ciphertext: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    wrapped_key: bytes = field(repr=False)
