"""All repositories in one object, as the services receive them."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.storage.accounts import AccountRepository
from chalicelib.storage.audit_log import AuditLog
from chalicelib.storage.generations import GenerationRepository
from chalicelib.storage.identity import IdentityRepository
from chalicelib.storage.keypairs import KeypairRepository
from chalicelib.storage.memberships import GroupRepository, TeamRepository
from chalicelib.storage.profiles import ProfileRepository
from chalicelib.storage.release_windows import ReleaseWindowRepository
from chalicelib.storage.signature_log import SignatureLog
from chalicelib.storage.transaction import Transaction
from chalicelib.storage.transparency import TreeStore


@dataclass(frozen=True)
class Store:
    """The service's persistent state; the only way services reach DynamoDB."""

    accounts: AccountRepository = field(default_factory=AccountRepository)
    identity: IdentityRepository = field(default_factory=IdentityRepository)
    keypairs: KeypairRepository = field(default_factory=KeypairRepository)
    generations: GenerationRepository = field(default_factory=GenerationRepository)
    audit: AuditLog = field(default_factory=AuditLog)
    signatures: SignatureLog = field(default_factory=SignatureLog)
    groups: GroupRepository = field(default_factory=GroupRepository)
    teams: TeamRepository = field(default_factory=TeamRepository)
    profiles: ProfileRepository = field(default_factory=ProfileRepository)
    windows: ReleaseWindowRepository = field(default_factory=ReleaseWindowRepository)
    trees: TreeStore = field(default_factory=TreeStore)

    @staticmethod
    def transaction() -> Transaction:
        """A new atomic write of several items."""
        return Transaction()
