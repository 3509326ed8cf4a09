"""Transparency routes of both logs: the latest signed checkpoint, an entry's inclusion proof, consistency proofs.

`/signature-logs/checkpoint` and `/signature-logs/consistency` are literal paths beside
`/signature-logs/{entry_id}`: API Gateway (and Chalice's local router) try literal segments first, and
an entry id never reads `checkpoint` or `consistency`.
"""

from __future__ import annotations

import base64
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.http import endpoint, principal, query
from chalicelib.api.parsing import Params
from chalicelib.errors import ValidationError
from chalicelib.services.container import get_services

bp = Blueprint(__name__)

SIGNATURES, AUDIT = "signatures", "audit"


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(value).decode() for value in values]


def _checkpoint(log: str) -> Response:
    text = get_services().transparency.checkpoint(principal(), log)
    return Response(body=text, headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"})


def _proof(log: str, entry_id: str) -> dict[str, Any]:
    proof = get_services().transparency.proof(principal(), log, entry_id)
    return {
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree_size,
        "leaf_data": base64.b64encode(proof.leaf_data).decode(),
        "hashes": _b64(proof.hashes),
        "checkpoint": proof.checkpoint,
    }


def _consistency(log: str) -> dict[str, Any]:
    p = Params(query(bp.current_request), ("from", "to"))
    old = p.count("from")
    if old is None:
        raise ValidationError("from is required.", details={"field": "from"})
    new, hashes = get_services().transparency.consistency(principal(), log, old, p.count("to"))
    return {"from": old, "to": new, "hashes": _b64(hashes)}


@bp.route("/signature-logs/checkpoint", methods=["GET"])
@endpoint("view_audit_log")
def signature_checkpoint() -> Response:
    """The signature log's latest signed checkpoint (C2SP tlog-checkpoint, text/plain)."""
    return _checkpoint(SIGNATURES)


@bp.route("/audit-logs/checkpoint", methods=["GET"])
@endpoint("view_audit_log")
def audit_checkpoint() -> Response:
    """The audit log's latest signed checkpoint (C2SP tlog-checkpoint, text/plain)."""
    return _checkpoint(AUDIT)


@bp.route("/signature-logs/{entry_id}/proof", methods=["GET"])
@endpoint("view_audit_log")
def signature_proof(entry_id: str) -> dict[str, Any]:
    """`{leaf_index, tree_size, leaf_data, hashes, checkpoint}`; 409 not_yet_in_log before its first checkpoint."""
    return _proof(SIGNATURES, entry_id)


@bp.route("/audit-logs/{entry_id}/proof", methods=["GET"])
@endpoint("view_audit_log")
def audit_proof(entry_id: str) -> dict[str, Any]:
    """`{leaf_index, tree_size, leaf_data, hashes, checkpoint}`; 409 not_yet_in_log before its first checkpoint."""
    return _proof(AUDIT, entry_id)


@bp.route("/signature-logs/consistency", methods=["GET"])
@endpoint("view_audit_log")
def signature_consistency() -> dict[str, Any]:
    """`?from=N&to=M` (to: default the latest size) → `{from, to, hashes}`, an RFC 9162 consistency proof."""
    return _consistency(SIGNATURES)


@bp.route("/audit-logs/consistency", methods=["GET"])
@endpoint("view_audit_log")
def audit_consistency() -> dict[str, Any]:
    """`?from=N&to=M` (to: default the latest size) → `{from, to, hashes}`, an RFC 9162 consistency proof."""
    return _consistency(AUDIT)
