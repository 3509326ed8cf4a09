"""Reading the audit and signature logs of the caller's account; nothing here writes or changes an entry."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Principal
from chalicelib.domain.logs import AuditEntry, AuditFilter, SignatureEntry, SignatureFilter, TimeRange
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
    """GET /audit-logs and GET /signature-logs."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def audit(self, principal: Principal, f: AuditFilter, request: PageRequest) -> Page[AuditEntry]:
        """One page of audit entries, newest first; raises InvalidPaginationToken."""
        pager = Pager(self.deps.token_key(), principal.account, AUDIT_ROUTE, _token_filters(f))
        items, position = self.deps.store.audit.query(principal.account, f, request.limit, pager.start(request))
        return pager.page(items, position)

    def signatures(self, principal: Principal, f: SignatureFilter, request: PageRequest) -> Page[SignatureEntry]:
        """One page of signature-log entries, newest first; raises InvalidPaginationToken."""
        pager = Pager(self.deps.token_key(), principal.account, SIGNATURE_ROUTE, _token_filters(f))
        items, position = self.deps.store.signatures.query(principal.account, f, request.limit,
                                                           pager.start(request))
        return pager.page(items, position)
