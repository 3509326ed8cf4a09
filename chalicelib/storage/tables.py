"""The DynamoDB tables as PynamoDB models; only `chalicelib.storage` imports this module.

Table names come from settings: `configure_tables()` sets each model's `Meta.table_name` when the
storage is first used (PynamoDB reads `Meta` lazily on connection; class creation must not read env).
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection, LocalSecondaryIndex
from pynamodb.models import Model

from chalicelib.settings import Settings
from chalicelib.storage.retention import enable_log_ttl


class _Meta:
    table_name = "unconfigured"
    billing_mode = "PAY_PER_REQUEST"


class CertificateMap(MapAttribute[str, Any]):
    """A certificate as docs/api.md shows it."""

    serial = UnicodeAttribute()
    pem = UnicodeAttribute()
    not_before = UnicodeAttribute()
    not_after = UnicodeAttribute()
    issuer = UnicodeAttribute()


class AccountModel(Model):
    """An account: its settings and the public halves of its CAs and TSA."""

    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    created_at = UnicodeAttribute()
    teams_enabled = BooleanAttribute(default=False)
    require_keypair_profile = BooleanAttribute(default=False)
    public_tsa = BooleanAttribute(default=False)
    production_ca_pem = UnicodeAttribute()
    test_ca_pem = UnicodeAttribute()
    tsa_pem = UnicodeAttribute()
    ca_storage = UnicodeAttribute(default="disk")
    log_public_key_pem = UnicodeAttribute(null=True)  # the Ed25519 key that signs transparency checkpoints
    version = VersionAttribute()


class AccountNameClaim(Model):
    """Makes account names unique: `name#<lower name>` written with attribute_not_exists."""

    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()


class UserModel(Model):
    """A user of an account."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    email = UnicodeAttribute(null=True)
    roles = ListAttribute(of=UnicodeAttribute, default=list)
    permissions = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UnicodeAttribute()
    deleted_at = UnicodeAttribute(null=True)
    version = VersionAttribute()


class ApiKeysByUser(GlobalSecondaryIndex["ApiKeyModel"]):
    """A user's API keys, newest first."""

    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_key = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class ApiKeyModel(Model):
    """An API key: looked up by key id, holding only the SHA-256 of its secret."""

    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    account = UnicodeAttribute()
    user_id = UnicodeAttribute()
    user_key = UnicodeAttribute()  # account#user, the index partition
    name = UnicodeAttribute(null=True)
    secret_sha256 = BinaryAttribute(legacy_encoding=False)
    created_at = UnicodeAttribute()
    expires_at = UnicodeAttribute(null=True)
    revoked_at = UnicodeAttribute(null=True)
    last_used_at = UnicodeAttribute(null=True)
    failures_audited_for = UnicodeAttribute(null=True)  # start of the window whose failures are audited
    by_user = ApiKeysByUser()


class DueIndex(GlobalSecondaryIndex["KeypairModel"]):
    """Sparse: live dynamic keypairs by next_refresh_at (what the scheduler reads)."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    next_refresh_at = UnicodeAttribute(range_key=True)


class KeypairModel(Model):
    """A keypair: parameters, current generation and certificate. Never key material."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    alias = UnicodeAttribute()
    type = UnicodeAttribute()
    algorithm = UnicodeAttribute()
    key_size = NumberAttribute(null=True)
    curve = UnicodeAttribute(null=True)
    category = UnicodeAttribute()
    storage = UnicodeAttribute()
    status = UnicodeAttribute()
    access = UnicodeAttribute()
    allowed_users = ListAttribute(of=UnicodeAttribute, default=list)
    allowed_groups = ListAttribute(of=UnicodeAttribute, default=list)
    team_id = UnicodeAttribute(null=True)
    profile_id = UnicodeAttribute(null=True)
    generate_certificate = BooleanAttribute(default=True)
    refresh_after_sign = BooleanAttribute(default=False)
    key_id = UnicodeAttribute()
    key_ref = UnicodeAttribute()  # key-material id (disk) or token label (hsm) of this generation
    generation = NumberAttribute()
    public_key = UnicodeAttribute()
    certificate = CertificateMap(null=True)
    created_at = UnicodeAttribute()
    created_by = UnicodeAttribute()
    refreshed_at = UnicodeAttribute(null=True)
    next_refresh_at = UnicodeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    deleted_at = UnicodeAttribute(null=True)
    version = VersionAttribute()
    due = DueIndex()


class AliasClaim(Model):
    """Makes an alias unique in its account (key: account + lower-case alias)."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    alias_key = UnicodeAttribute(range_key=True)
    keypair_id = UnicodeAttribute()


class KeyMaterialModel(Model):
    """A private key as AES-256-GCM ciphertext under a KMS-wrapped data key (disk storage).

    Keyed by owner: a keypair id (its current generation's key, replaced by each refresh, so a signer
    reads it in the same BatchGetItem as the keypair row) or an account authority reference.
    """

    class Meta(_Meta):
        pass

    id = UnicodeAttribute(hash_key=True)
    key_ref = UnicodeAttribute()
    account = UnicodeAttribute()
    ciphertext = BinaryAttribute(legacy_encoding=False)
    nonce = BinaryAttribute(legacy_encoding=False)
    wrapped_key = BinaryAttribute(legacy_encoding=False)
    created_at = UnicodeAttribute()


class GenerationModel(Model):
    """One generation of a keypair: kept (public key + certificate) after its private key is gone."""

    class Meta(_Meta):
        pass

    keypair_id = UnicodeAttribute(hash_key=True)
    generation = NumberAttribute(range_key=True)
    account = UnicodeAttribute()
    key_id = UnicodeAttribute()
    public_key = UnicodeAttribute()
    certificate = CertificateMap(null=True)
    created_at = UnicodeAttribute()
    retired_at = UnicodeAttribute(null=True)
    signed_by = UnicodeAttribute(null=True)  # single-use keypairs: the log id of the one signature


def _log_index(name: str, hash_attr: str) -> type[GlobalSecondaryIndex[Any]]:
    meta = type("Meta", (), {"index_name": name, "projection": AllProjection()})
    attrs = {
        "Meta": meta,
        hash_attr: UnicodeAttribute(hash_key=True),
        "sk": UnicodeAttribute(range_key=True),
        "__doc__": f"Log entries by {hash_attr}, newest first.",
    }
    return type(f"Index_{name}", (GlobalSecondaryIndex,), attrs)


class AuditLogModel(Model):
    """An audit entry, append-only; sort key `at#ulid`."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    at = UnicodeAttribute()
    actor = UnicodeAttribute()
    type = UnicodeAttribute()
    action = UnicodeAttribute()
    resource_id = UnicodeAttribute(null=True)
    resource_alias = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute()
    error = UnicodeAttribute(null=True)
    details: MapAttribute[str, Any] = MapAttribute(default=dict)
    source_ip = UnicodeAttribute(null=True)
    expires = TTLAttribute(null=True)
    k_type_action = UnicodeAttribute()
    k_type = UnicodeAttribute()
    k_action = UnicodeAttribute()
    k_resource = UnicodeAttribute(null=True)
    k_actor = UnicodeAttribute()
    by_type_action = _log_index("by_type_action", "k_type_action")()
    by_type = _log_index("by_type", "k_type")()
    by_action = _log_index("by_action", "k_action")()
    by_resource = _log_index("by_resource", "k_resource")()
    by_actor = _log_index("by_actor", "k_actor")()


class SignatureLogModel(Model):
    """A signature-log entry, append-only; sort key `at#ulid`."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    signed_at = UnicodeAttribute()
    status = UnicodeAttribute()
    signer = UnicodeAttribute()
    keypair_id = UnicodeAttribute(null=True)
    keypair_alias = UnicodeAttribute(null=True)
    keypair_type = UnicodeAttribute(null=True)
    key_id = UnicodeAttribute(null=True)
    generation = NumberAttribute(null=True)
    algorithm = UnicodeAttribute(null=True)
    sig_alg = UnicodeAttribute(null=True)
    signature_type = UnicodeAttribute(null=True)
    hash_algorithm = UnicodeAttribute(null=True)
    hash = UnicodeAttribute(null=True)
    signature = UnicodeAttribute(null=True)
    file_name = UnicodeAttribute(null=True)
    tool = UnicodeAttribute(null=True)
    client_ip = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    timestamp_token = UnicodeAttribute(null=True)
    certificate_serial = UnicodeAttribute(null=True)
    expires = TTLAttribute(null=True)
    k_keypair_id = UnicodeAttribute(null=True)
    k_alias = UnicodeAttribute(null=True)
    k_signer = UnicodeAttribute()
    k_status = UnicodeAttribute()
    by_keypair_id = _log_index("by_keypair_id", "k_keypair_id")()
    by_alias = _log_index("by_alias", "k_alias")()
    by_signer = _log_index("by_signer", "k_signer")()
    by_status = _log_index("by_status", "k_status")()


class GroupModel(Model):
    """A user group; its member list is the only record of membership (a user's groups are derived)."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    member_ids = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UnicodeAttribute()
    version = VersionAttribute()


class TeamModel(Model):
    """A team: its members and member groups (a user's teams are derived from these lists)."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    member_ids = ListAttribute(of=UnicodeAttribute, default=list)
    group_ids = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UnicodeAttribute()
    version = VersionAttribute()


class ProfileModel(Model):
    """A keypair profile; `team_ids` is the only record of which teams it is allocated to."""

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    mode = UnicodeAttribute()
    type = UnicodeAttribute(null=True)
    algorithm = UnicodeAttribute(null=True)
    key_size = NumberAttribute(null=True)
    curve = UnicodeAttribute(null=True)
    category = UnicodeAttribute(null=True)
    storage = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    team_ids = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UnicodeAttribute()
    version = VersionAttribute()


class WindowsByEnd(LocalSecondaryIndex["ReleaseWindowModel"]):
    """An account's release windows by end time: the open ones are those ending after now (read consistently)."""

    class Meta:
        index_name = "by_end"
        projection = AllProjection()

    account = UnicodeAttribute(hash_key=True)
    ends_at = UnicodeAttribute(range_key=True)


class ReleaseWindowModel(Model):
    """A release window. Not versioned: signers add to `signatures_used` under a condition instead.

    Times are fixed-width RFC 3339 (milliseconds), so the signing write compares them as strings.
    """

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    keypair_ids = ListAttribute(of=UnicodeAttribute, default=list)
    user_ids = ListAttribute(of=UnicodeAttribute, null=True)  # absent: any user with access
    starts_at = UnicodeAttribute()
    ends_at = UnicodeAttribute()
    max_signatures = NumberAttribute(null=True)  # absent: no budget
    signatures_used = NumberAttribute(default=0)
    keypair_teams: MapAttribute[str, Any] = MapAttribute(default=dict)  # team keypair id → its team
    created_at = UnicodeAttribute()
    created_by = UnicodeAttribute()
    by_end = WindowsByEnd()


class TransparencyModel(Model):
    """The transparency logs' trees, per account: `<log>/state`, `<log>/tile/<L>/<N>`, `<log>/leaves/<first key>`.

    Only the checkpointer writes here. Tiles hold C2SP tlog-tiles hashes; a leaves item holds the log
    keys of one level-0 tile's leaves, so an entry's leaf index is one Query away.
    """

    class Meta(_Meta):
        pass

    account = UnicodeAttribute(hash_key=True)
    item = UnicodeAttribute(range_key=True)
    size = NumberAttribute(null=True)
    root = BinaryAttribute(null=True, legacy_encoding=False)
    settled = UnicodeAttribute(null=True)
    edge_key = UnicodeAttribute(null=True)
    checkpoint = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    hashes = BinaryAttribute(null=True, legacy_encoding=False)
    width = NumberAttribute(null=True)  # hashes in a tile, keys in a leaves item
    start = NumberAttribute(null=True)
    keys = ListAttribute(of=UnicodeAttribute, null=True)


MODELS: dict[str, type[Model]] = {
    "accounts": AccountModel,
    "account_names": AccountNameClaim,
    "users": UserModel,
    "api_keys": ApiKeyModel,
    "keypairs": KeypairModel,
    "aliases": AliasClaim,
    "key_material": KeyMaterialModel,
    "generations": GenerationModel,
    "audit_log": AuditLogModel,
    "signature_log": SignatureLogModel,
    "groups": GroupModel,
    "teams": TeamModel,
    "keypair_profiles": ProfileModel,
    "release_windows": ReleaseWindowModel,
    "transparency": TransparencyModel,
}


def configure_tables(settings: Settings) -> Connection:
    """Point every model at its table for this stage, all through one new shared connection.

    Left alone, PynamoDB gives each model its own Connection, botocore session and client: ten
    clients cost seconds of CPU at cold start. Sharing one also lets tests count requests in one place.
    """
    conn = Connection(region=settings.region)
    conn.client  # noqa: B018 -- build the client now: PynamoDB builds it lazily, which is not thread-safe
    for table, model in MODELS.items():
        model.Meta.table_name = settings.table_name(table)
        model.Meta.region = settings.region
        model._connection = None
        table_connection = model._get_connection()
        conn.add_meta_table(table_connection.get_meta_table())
        table_connection.connection = conn
    return conn


def create_tables(settings: Settings) -> list[str]:
    """Create every table that does not exist yet (tests, `make run`, first deploy); returns names."""
    from chalicelib.storage.connection import configure

    configure(settings)
    created = []
    for model in MODELS.values():
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
            created.append(model.Meta.table_name)
    enable_log_ttl(settings)
    return created
