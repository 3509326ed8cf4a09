"""Accounts, users, API keys, the authenticated caller, and the permission tables of docs/api.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.errors import Forbidden

PERMISSIONS: tuple[str, ...] = (
    "generate_keypair",
    "view_keypair",
    "manage_keypair",
    "sign",
    "view_audit_log",
    "manage_users",
    "manage_teams",
    "manage_profiles",
    "manage_releases",
    "manage_account",
)
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "lead": frozenset(PERMISSIONS) - {"manage_account", "manage_users"},
    "developer": frozenset({"view_keypair", "generate_keypair", "sign", "view_audit_log"}),
    "auditor": frozenset({"view_keypair", "view_audit_log"}),
}
ADMIN = "admin"


def effective_permissions(roles: tuple[str, ...] | list[str], extra: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Union of the roles' permissions and the user's own (unknown names grant nothing)."""
    granted: set[str] = set(extra) & set(PERMISSIONS)
    for role in roles:
        granted |= ROLES.get(role, frozenset())
    return frozenset(granted)


@dataclass(frozen=True)
class Account:
    """An account: its settings and the public halves of its CAs and TSA."""

    id: str
    name: str
    created_at: str
    production_ca_pem: str
    test_ca_pem: str
    tsa_pem: str
    ca_storage: str = "disk"
    teams_enabled: bool = False
    require_keypair_profile: bool = False
    public_tsa: bool = False
    version: int = 1
    log_public_key: str | None = None  # PEM of the Ed25519 key that signs the transparency log's checkpoints

    def ca_pem(self, category: str) -> str:
        """The issuing CA certificate of a keypair category (`production` or `test`)."""
        return self.test_ca_pem if category == "test" else self.production_ca_pem


@dataclass(frozen=True)
class User:
    """A user of an account."""

    account: str
    id: str
    name: str
    created_at: str
    email: str | None = None
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    deleted_at: str | None = None
    version: int = 0

    @property
    def effective_permissions(self) -> frozenset[str]:
        """What the user may do: its roles' permissions and its own."""
        return effective_permissions(self.roles, self.permissions)

    @property
    def is_admin(self) -> bool:
        """Whether the user has the admin role (the one the last-admin rule protects)."""
        return ADMIN in self.roles


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: only the SHA-256 of its secret."""

    id: str
    account: str
    user_id: str
    secret_sha256: bytes = field(repr=False)
    created_at: str = ""
    name: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    account: str
    user_id: str
    name: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    api_key_id: str
    key_expires_at: str | None = None
    group_ids: frozenset[str] = frozenset()
    team_ids: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        """Admins see every team's keypairs (but sign restricted ones only when listed)."""
        return ADMIN in self.roles

    def require(self, permission: str) -> None:
        """Raise Forbidden unless the caller holds `permission`."""
        if permission not in self.permissions:
            raise Forbidden(f"This needs the {permission} permission.", details={"permission": permission})


@dataclass(frozen=True)
class Group:
    """A user group: its members are stored here only (a user's group ids are derived from groups)."""

    account: str
    id: str
    name: str
    created_at: str
    member_ids: tuple[str, ...] = ()
    version: int = 0


@dataclass(frozen=True)
class Team:
    """A team: members directly or through groups; a team keypair is seen and used by them (and admins)."""

    account: str
    id: str
    name: str
    created_at: str
    member_ids: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()
    version: int = 0

    def includes(self, user_id: str, group_ids: frozenset[str]) -> bool:
        """Whether a user with these groups is a member."""
        return user_id in self.member_ids or not group_ids.isdisjoint(self.group_ids)
