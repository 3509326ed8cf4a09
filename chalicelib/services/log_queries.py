"""Reading the audit and signature logs of the caller's account; nothing here writes or changes an entry."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from chalicelib.clock import rfc3339
from chalicelib.domain.access import can_see
from chalicelib.domain.identity import Principal
from chalicelib.domain.logs import AuditEntry, AuditFilter, SignatureEntry, SignatureFilter, TimeRange
from chalicelib.errors import NotFound
from chalicelib.ids import looks_like_id
from chalicelib.services.pagination import Page, Pager, PageRequest

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

AUDIT_ROUTE = "audit-logs"
SIGNATURE_ROUTE = "signature-logs"


def _token_filters(f: AuditFilter | SignatureFilter) -> dict[str, Any]:
    """The filters a pagination token is sealed over (so a token works only with the same filters)."""
    values = {k: v for k, v in asdict(f).items() if k != "time" and v is not None}
    window: TimeRange = f.time
    if window.start is not None:
        values["from"] = rfc3339(window.start)
    if window.end is not None:
        values["to"] = rfc3339(window.end)
    return values


class LogService:
    """GET /audit-logs and GET /signature-logs, and one entry of each by id."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _require_visible(self, principal: Principal, keypair_id: str | None, alias: str | None) -> None:
        """A keypair filter naming another team's keypair is NotFound, as for the keypair itself.

        Admins see every team, so their queries cost no extra read.
        """
        if principal.is_admin or (keypair_id is None and alias is None):
            return
        repo = self.deps.store.keypairs
        if keypair_id is None and alias is not None:
            keypair_id = repo.resolve_alias(principal.account, alias)
        kp = repo.get(principal.account, keypair_id) if keypair_id is not None else None
        if kp is not None and not can_see(principal, kp):
            raise NotFound("No such keypair.")

    def audit(self, principal: Principal, f: AuditFilter, request: PageRequest) -> Page[AuditEntry]:
        """One page of audit entries, newest first; raises InvalidPaginationToken, NotFound."""
        if f.resource_id is not None and looks_like_id(f.resource_id, "kp"):
            self._require_visible(principal, f.resource_id, None)
        pager = Pager(self.deps.token_key(), principal.account, AUDIT_ROUTE, _token_filters(f))
        items, position = self.deps.store.audit.query(principal.account, f, request.limit, pager.start(request))
        return pager.page(items, position)

    def signatures(self, principal: Principal, f: SignatureFilter, request: PageRequest) -> Page[SignatureEntry]:
        """One page of signature-log entries, newest first; raises InvalidPaginationToken, NotFound."""
        self._require_visible(principal, f.keypair_id, f.keypair_alias)
        pager = Pager(self.deps.token_key(), principal.account, SIGNATURE_ROUTE, _token_filters(f))
        items, position = self.deps.store.signatures.query(principal.account, f, request.limit,
                                                           pager.start(request))
        return pager.page(items, position)

    def audit_entry(self, principal: Principal, entry_id: str) -> AuditEntry:
        """One audit entry of the caller's account; raises NotFound."""
        entry = self.deps.store.audit.get(principal.account, entry_id)
        if entry is None:
            raise NotFound("No such log entry.")
        return entry

    def signature_entry(self, principal: Principal, entry_id: str) -> SignatureEntry:
        """One signature-log entry of the caller's account; raises NotFound."""
        entry = self.deps.store.signatures.get(principal.account, entry_id)
        if entry is None:
            raise NotFound("No such log entry.")
        return entry
