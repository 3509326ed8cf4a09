"""Log routes: the audit log and the signature log (read-only; no route changes a log entry)."""

from __future__ import annotations

import re
from typing import Any

from chalice.app import Blueprint

from chalicelib.api import render
from chalicelib.api.http import endpoint, principal, query
from chalicelib.api.parsing import Params
from chalicelib.domain.keypairs import ALIAS_RE
from chalicelib.domain.logs import AuditFilter, SignatureFilter, TimeRange
from chalicelib.errors import ValidationError
from chalicelib.services.container import get_services

bp = Blueprint(__name__)

AUDIT_FILTERS = ("type", "action", "resource_id", "actor", "outcome", "from", "to")
SIGNATURE_FILTERS = ("keypair_alias", "keypair_id", "status", "signer", "from", "to")
_WORD_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ACTOR_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_RESOURCE_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,200}")


def _time_range(p: Params) -> TimeRange:
    """`from` and `to` (RFC 3339, both inclusive); raises ValidationError when reversed."""
    window = TimeRange(p.time("from"), p.time("to"))
    if window.start is not None and window.end is not None and window.start > window.end:
        raise ValidationError("from must not be later than to.", details={"field": "from"})
    return window


def parse_audit(params: dict[str, str]) -> tuple[AuditFilter, Params]:
    """GET /audit-logs query → AuditFilter."""
    p = Params(params, AUDIT_FILTERS)
    word = "a lower-case word such as dynamic or refresh"
    return AuditFilter(
        type=p.match("type", _WORD_RE, word),
        action=p.match("action", _WORD_RE, word),
        resource_id=p.match("resource_id", _RESOURCE_RE, "an object id"),
        actor=p.match("actor", _ACTOR_RE, "a user id or a system actor such as system:scheduler"),
        outcome=p.choice("outcome", ("success", "failure")),
        time=_time_range(p),
    ), p


def parse_signatures(params: dict[str, str]) -> tuple[SignatureFilter, Params]:
    """GET /signature-logs query → SignatureFilter."""
    p = Params(params, SIGNATURE_FILTERS)
    return SignatureFilter(
        keypair_id=p.id("keypair_id", "kp", "a keypair id"),
        keypair_alias=p.match("keypair_alias", ALIAS_RE, "1 to 64 letters, digits, dots, dashes or underscores"),
        status=p.choice("status", ("success", "failed")),
        signer=p.id("signer", "usr", "a user id"),
        time=_time_range(p),
    ), p


@bp.route("/audit-logs", methods=["GET"])
@endpoint("view_audit_log")
def list_audit_logs() -> dict[str, Any]:
    """Audit entries, newest first, filtered by type, action, resource_id, actor, outcome, from, to."""
    f, p = parse_audit(query(bp.current_request))
    return render.page(get_services().logs.audit(principal(), f, p.page()), render.audit_entry)


@bp.route("/signature-logs", methods=["GET"])
@endpoint("view_audit_log")
def list_signature_logs() -> dict[str, Any]:
    """Signature-log entries, newest first, filtered by keypair_alias, keypair_id, status, signer, from, to."""
    f, p = parse_signatures(query(bp.current_request))
    return render.page(get_services().logs.signatures(principal(), f, p.page()), render.signature_entry)


@bp.route("/audit-logs/{entry_id}", methods=["GET"])
@endpoint("view_audit_log")
def get_audit_entry(entry_id: str) -> dict[str, Any]:
    """One audit entry by id (the transparency log hashes exactly this body)."""
    return render.audit_entry(get_services().logs.audit_entry(principal(), entry_id))


@bp.route("/signature-logs/{entry_id}", methods=["GET"])
@endpoint("view_audit_log")
def get_signature_entry(entry_id: str) -> dict[str, Any]:
    """One signature-log entry by id, with its time-stamp token and certificate serial when it succeeded."""
    return render.signature_entry(get_services().logs.signature_entry(principal(), entry_id))
