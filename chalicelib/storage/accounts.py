"""Accounts and their unique names."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.domain.identity import Account
from chalicelib.errors import Conflict
from chalicelib.storage.errors import guarded
from chalicelib.storage.tables import AccountModel, AccountNameClaim
from chalicelib.storage.transaction import OnFail, Transaction

SETTINGS = ("teams_enabled", "require_keypair_profile", "public_tsa")


class AccountExists(Conflict):
    """The bootstrap refuses an account name that exists (names are unique case-insensitively)."""

    code = "account_exists"
    default_message = "An account with this name already exists."


def _account(row: AccountModel) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        production_ca_pem=row.production_ca_pem,
        test_ca_pem=row.test_ca_pem,
        tsa_pem=row.tsa_pem,
        ca_storage=row.ca_storage,
        teams_enabled=bool(row.teams_enabled),
        require_keypair_profile=bool(row.require_keypair_profile),
        public_tsa=bool(row.public_tsa),
        version=int(row.version or 0),
        log_public_key=row.log_public_key_pem,
    )


class AccountRepository:
    """The accounts and account_names tables."""

    @guarded
    def get(self, account_id: str) -> Account | None:
        """The account, or None."""
        try:
            return _account(AccountModel.get(account_id))
        except DoesNotExist:
            return None

    def stage_create(self, tx: Transaction, account: Account) -> None:
        """Claim the name and write the account; AccountExists when the name is taken."""
        tx.put(AccountNameClaim(f"name#{account.name.lower()}", account_id=account.id),
               AccountNameClaim.id.does_not_exist(), on_fail=lambda: AccountExists(details={"name": account.name}))
        tx.put(
            AccountModel(account.id, name=account.name, created_at=account.created_at,
                         production_ca_pem=account.production_ca_pem, test_ca_pem=account.test_ca_pem,
                         tsa_pem=account.tsa_pem, ca_storage=account.ca_storage,
                         log_public_key_pem=account.log_public_key),
            AccountModel.id.does_not_exist(),
        )

    def stage_settings(self, tx: Transaction, account: Account, changes: dict[str, bool]) -> Account:
        """Change boolean settings; the version condition makes a concurrent change a Conflict."""
        row = AccountModel(account.id, version=account.version)
        tx.update(row, [getattr(AccountModel, name).set(value) for name, value in changes.items()],
                  AccountModel.id.exists())
        values: dict[str, Any] = dict(changes)
        return replace(account, version=account.version + 1, **values)

    def stage_log_key(self, tx: Transaction, account: Account, public_key_pem: str, *, on_fail: OnFail) -> None:
        """Record the log key of an account made before it had one; `on_fail()` when one was recorded meanwhile."""
        # Not conditioned on the version (a settings change may race it), but it moves the version on.
        row = AccountModel(account.id, version=account.version)
        tx.update(row, [AccountModel.log_public_key_pem.set(public_key_pem)],
                  AccountModel.id.exists() & AccountModel.log_public_key_pem.does_not_exist(),
                  on_fail=on_fail, add_version_condition=False)

    @guarded
    def ids(self) -> list[str]:
        """Every account id (a scan of the small accounts table, for the scheduled checkpointer)."""
        return [row.id for row in AccountModel.scan(attributes_to_get=["id"])]
