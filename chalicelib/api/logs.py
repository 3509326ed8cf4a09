"""Log routes: the audit log and the signature log (read-only; no route changes a log entry)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib.api.http import endpoint, principal, query
from chalicelib.services.registry import get_services

bp = Blueprint(__name__)


@bp.route("/audit-logs", methods=["GET"])
@endpoint("view_audit_log")
def list_audit_logs() -> dict[str, Any]:
    """Audit entries, newest first, filtered by type, action, resource_id, actor, outcome, from, to."""
    return get_services().logs.audit(principal(), query(bp.current_request))


@bp.route("/signature-logs", methods=["GET"])
@endpoint("view_audit_log")
def list_signature_logs() -> dict[str, Any]:
    """Signature-log entries, newest first, filtered by keypair_alias, keypair_id, status, signer, from, to."""
    return get_services().logs.signatures(principal(), query(bp.current_request))
