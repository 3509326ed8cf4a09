"""The DynamoDB tables as PynamoDB models; only `chalicelib.storage` imports this module.

Table names come from settings: `configure_tables()` sets each model's `Meta.table_name` when the
storage is first used (PynamoDB reads `Meta` lazily on connection; class creation must not read env).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
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
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    IncludeProjection,
    KeysOnlyProjection,
    LocalSecondaryIndex,
)
from pynamodb.models import Model

from chalicelib.settings import Settings
from chalicelib.storage.retention import enable_log_ttl
from chalicelib.storage.shards import ShardReader, logical, merged, sharded


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


# What a log list renders: each index that serves a list projects these, so a page is Queries alone.
AUDIT_RENDERED = ["at", "actor", "type", "action", "resource_id", "resource_alias", "outcome", "error", "details",
                  "source_ip"]
SIGNATURE_RENDERED = ["signed_at", "status", "signer", "keypair_id", "keypair_alias", "keypair_type", "key_id",
                      "generation", "algorithm", "sig_alg", "signature_type", "hash_algorithm", "hash", "signature",
                      "file_name", "tool", "client_ip", "error", "timestamp_token", "certificate_serial"]


def _log_index(name: str, hash_attr: str, rendered: list[str]) -> type[GlobalSecondaryIndex[Any]]:
    # INCLUDE, not ALL: an index copy leaves out the other indexes' keys and `expires`, which no list
    # reads. Not KEYS_ONLY: every list renders whole entries and is served by Queries alone (a
    # KEYS_ONLY index would save write units but add a BatchGetItem round trip to every page; the
    # figures are in bench/log_wcu.py and README "Limits and cost at scale").
    meta = type("Meta", (), {"index_name": name, "projection": IncludeProjection(rendered)})
    attrs = {
        "Meta": meta,
        hash_attr: UnicodeAttribute(hash_key=True),
        "sk": UnicodeAttribute(range_key=True),
        "__doc__": f"Log entries by {hash_attr} (`<account>#<value>#<shard>`), newest first.",
    }
    return type(f"Index_{name}", (GlobalSecondaryIndex,), attrs)


class ShardedLogModel(Model):
    """A log table: partition key `pk` = `<account>#<shard>`, sort key `sk` = `<at>#<ulid>` (chalicelib.storage.shards).

    `query` takes the logical partition (an account, or an index value without its shard) and returns the
    rows of every shard merged in sort-key order, as one partition would. The repositories page shard by
    shard themselves; `shard_query` reads one shard.
    """

    shards = 1  # set from ROTASIGN_LOG_SHARDS by configure_tables

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    @property
    def account(self) -> str:
        """The account the entry belongs to (its partition key without the shard)."""
        return logical(self.pk)

    @property
    def id(self) -> str:
        """The entry's public id, `log_<ulid>`."""
        return f"log_{self.sk.split('#', 1)[1]}"

    @classmethod
    def shard_query(cls, physical: str, **kwargs: Any) -> Any:
        """A PynamoDB query of one shard's partition (`physical` carries the shard)."""
        return super().query(physical, **kwargs)

    @classmethod
    def query(  # type: ignore[override]  # merges shards: an iterator, not one query's ResultIterator
        cls,
        hash_key: Any,
        range_key_condition: Any = None,
        filter_condition: Any = None,
        consistent_read: bool = False,
        index_name: str | None = None,
        scan_index_forward: bool | None = None,
        limit: int | None = None,
        last_evaluated_key: Any = None,
        attributes_to_get: Any = None,
        page_size: int | None = None,
        rate_limit: float | None = None,
    ) -> Iterator[Any]:
        """Rows of a logical partition over every shard, in sort-key order (ascending unless told otherwise)."""
        if last_evaluated_key is not None:
            raise ValueError("a merged query has no single position to resume from")
        readers = [ShardReader(shard, cls.shard_query(
            sharded(str(hash_key), shard), range_key_condition=range_key_condition, filter_condition=filter_condition,
            consistent_read=consistent_read, index_name=index_name, scan_index_forward=scan_index_forward,
            attributes_to_get=attributes_to_get, page_size=page_size, rate_limit=rate_limit))
            for shard in range(cls.shards)]
        rows = merged(readers, key=lambda row: row.sk, newest_first=scan_index_forward is False)
        return islice(rows, limit) if limit is not None else rows


class AuditLogModel(ShardedLogModel):
    """An audit entry, append-only; sort key `at#ulid`. Index keys are `<account>#<value>#<shard>`."""

    class Meta(_Meta):
        pass

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
    # Audit entries are small (one write unit whatever the projection); INCLUDE keeps large `details`
    # (an update's changes) from crossing into a second unit in five copies.
    by_type_action = _log_index("by_type_action", "k_type_action", AUDIT_RENDERED)()
    by_type = _log_index("by_type", "k_type", AUDIT_RENDERED)()
    by_action = _log_index("by_action", "k_action", AUDIT_RENDERED)()
    by_resource = _log_index("by_resource", "k_resource", AUDIT_RENDERED)()  # sparse: entries with a resource
    by_actor = _log_index("by_actor", "k_actor", AUDIT_RENDERED)()


class SignatureLogModel(ShardedLogModel):
    """A signature-log entry, append-only; sort key `at#ulid`. Index keys are `<account>#<value>#<shard>`.

    `timestamp_token` is stored compressed (chalicelib.storage.signature_log): it is most of the entry.
    """

    class Meta(_Meta):
        pass

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
    timestamp_token = BinaryAttribute(null=True, legacy_encoding=False)
    certificate_serial = UnicodeAttribute(null=True)
    expires = TTLAttribute(null=True)
    k_keypair_id = UnicodeAttribute(null=True)
    k_alias = UnicodeAttribute(null=True)
    k_signer = UnicodeAttribute()
    k_status = UnicodeAttribute(null=True)
    # Each of these serves a list that renders whole entries, so each copies what the list renders.
    by_keypair_id = _log_index("by_keypair_id", "k_keypair_id", SIGNATURE_RENDERED)()
    by_alias = _log_index("by_alias", "k_alias", SIGNATURE_RENDERED)()
    by_signer = _log_index("by_signer", "k_signer", SIGNATURE_RENDERED)()
    # Sparse: only refusals carry k_status. `status=success` (nearly every entry) reads the table with a
    # filter that nearly every entry passes, so a success costs no write here.
    by_status = _log_index("by_status", "k_status", SIGNATURE_RENDERED)()


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
    AuditLogModel.shards = SignatureLogModel.shards = settings.log_shards
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
