"""Keypair profiles: named presets of keypair parameters, `fixed` (imposed) or `customizable` (defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chalicelib.domain.keyspec import EC_CURVE_NAMES, ED_CURVE, RSA_KEY_SIZES
from chalicelib.errors import ValidationError


class ProfileMode(StrEnum):
    """`fixed`: the profile's values win and a request may not contradict them; `customizable`: defaults."""

    FIXED = "fixed"
    CUSTOMIZABLE = "customizable"


# The keypair fields a profile can set, in the order the API shows them.
PROFILE_FIELDS: tuple[str, ...] = ("type", "algorithm", "key_size", "curve", "category", "storage", "status")


@dataclass(frozen=True)
class KeypairProfile:
    """A profile; a field left None is not set by the profile. `team_ids`: the teams it is allocated to."""

    account: str
    id: str
    name: str
    mode: ProfileMode
    created_at: str
    type: str | None = None
    algorithm: str | None = None
    key_size: int | None = None
    curve: str | None = None
    category: str | None = None
    storage: str | None = None
    status: str | None = None
    team_ids: tuple[str, ...] = ()
    version: int = 0

    def __post_init__(self) -> None:
        """A key size or curve must fit the profile's algorithm (either may be left to the request)."""
        allowed: dict[str | None, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
            None: ((None,), (None,)),
            "RSA": ((None, *RSA_KEY_SIZES), (None,)),
            "ECDSA": ((None,), (None, *EC_CURVE_NAMES)),
            "EdDSA": ((None,), (None, ED_CURVE)),
        }
        sizes, curves = allowed.get(self.algorithm, ((None,), (None,)))
        for name, value, choices in (("key_size", self.key_size, sizes), ("curve", self.curve, curves)):
            if value not in choices:
                fits = ", ".join(str(c) for c in choices if c is not None) or "none"
                raise ValidationError(f"{name} {value} does not fit algorithm {self.algorithm}; it takes: {fits}.",
                                      details={"field": name})

    @property
    def fixed(self) -> bool:
        """Whether the profile imposes its values."""
        return self.mode is ProfileMode.FIXED

    def values(self) -> dict[str, Any]:
        """The fields the profile sets (not None)."""
        return {name: getattr(self, name) for name in PROFILE_FIELDS if getattr(self, name) is not None}
