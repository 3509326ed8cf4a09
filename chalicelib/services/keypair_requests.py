"""A create-keypair request as sent, and the keypair it asks for once its profile is applied.

A `fixed` profile's values win: a request value that contradicts one is a 400 naming the field.
A `customizable` profile's values fill in what the request left out; the profile's key size or curve
belongs to its algorithm, so a request that picks another algorithm does not inherit them. Whatever is
still missing then takes the API's default (or is required: `type`, `algorithm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain.keypairs import Access, Category, KeypairType, Status, Storage
from chalicelib.domain.keyspec import KeySpec
from chalicelib.domain.profiles import KeypairProfile
from chalicelib.errors import ValidationError

# The fields a profile can set, as they come in a request (key_size and curve as sent, validated by KeySpec).
_PROFILED = ("type", "algorithm", "key_size", "curve", "category", "storage", "status")


@dataclass(frozen=True)
class NewKeypair:
    """A keypair to create: every parameter decided."""

    alias: str
    type: KeypairType
    spec: KeySpec
    category: Category = Category.PRODUCTION
    storage: Storage = Storage.DISK
    status: Status = Status.ONLINE
    access: Access = Access.OPEN
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    team_id: str | None = None
    profile_id: str | None = None
    generate_certificate: bool = True
    refresh_after_sign: bool = False


@dataclass(frozen=True)
class KeypairRequest:
    """A POST /keypairs body as sent: None where a field was left out (or null), for a profile to fill.

    `algorithm`, `key_size` and `curve` are kept as sent and validated together by `KeySpec.build`
    once the profile is applied; every other field is already of its type.
    """

    alias: str
    type: KeypairType | None = None
    algorithm: object = None
    key_size: object = None
    curve: object = None
    category: Category | None = None
    storage: Storage | None = None
    status: Status | None = None
    access: Access = Access.OPEN
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    team_id: str | None = None
    profile_id: str | None = None
    generate_certificate: bool = True
    refresh_after_sign: bool = False

    def sent(self) -> dict[str, Any]:
        """The profile-able fields the request gave, as plain values."""
        return {name: _plain(getattr(self, name)) for name in _PROFILED if getattr(self, name) is not None}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, KeypairType | Category | Storage | Status) else value


def _merge(req: KeypairRequest, profile: KeypairProfile | None) -> dict[str, Any]:
    sent = req.sent()
    if profile is None:
        return sent
    preset = profile.values()
    if profile.fixed:
        for name, value in preset.items():
            if name in sent and sent[name] != value:
                raise ValidationError(f"The keypair profile {profile.name!r} fixes {name} to {value}.",
                                      details={"field": name, "profile_id": profile.id})
        return {**sent, **preset}
    if "algorithm" in sent and sent["algorithm"] != preset.get("algorithm"):
        preset = {k: v for k, v in preset.items() if k not in ("key_size", "curve")}
    return {**preset, **sent}


def resolve(req: KeypairRequest, profile: KeypairProfile | None) -> NewKeypair:
    """The keypair `req` asks for under `profile`; raises ValidationError / UnsupportedAlgorithm naming a field."""
    values = _merge(req, profile)
    for name in ("type", "algorithm"):
        if name not in values:
            raise ValidationError(f"{name} is required.", details={"field": name})
    spec = KeySpec.build(values["algorithm"], values.get("key_size"), values.get("curve"))
    kind = KeypairType(values["type"])
    if req.refresh_after_sign and kind is not KeypairType.DYNAMIC:
        raise ValidationError("refresh_after_sign needs a dynamic keypair.", details={"field": "refresh_after_sign"})
    return NewKeypair(
        alias=req.alias, type=kind, spec=spec,
        category=Category(values.get("category", Category.PRODUCTION.value)),
        storage=Storage(values.get("storage", Storage.DISK.value)),
        status=Status(values.get("status", Status.ONLINE.value)),
        access=req.access, allowed_users=req.allowed_users, allowed_groups=req.allowed_groups,
        team_id=req.team_id, profile_id=req.profile_id,
        generate_certificate=req.generate_certificate, refresh_after_sign=req.refresh_after_sign,
    )
