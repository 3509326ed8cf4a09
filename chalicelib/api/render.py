"""Domain values in their docs/api.md form."""

from __future__ import annotations

from typing import Any

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Account, ApiKey, Group
from chalicelib.domain.keypairs import Certificate, Generation, Keypair
from chalicelib.domain.logs import AuditEntry, SignatureEntry
from chalicelib.domain.profiles import PROFILE_FIELDS, KeypairProfile
from chalicelib.domain.releases import ReleaseWindow
from chalicelib.services.pagination import Page
from chalicelib.services.sign_requests import Signed
from chalicelib.services.teams import TeamView
from chalicelib.services.users import UserView


def certificate(cert: Certificate | None) -> dict[str, str] | None:
    """`{serial, pem, not_before, not_after, issuer}` or null."""
    return cert.as_dict() if cert is not None else None


def keypair(kp: Keypair) -> dict[str, Any]:
    """The Keypair object."""
    return {
        "id": kp.id,
        "alias": kp.alias,
        "type": kp.type.value,
        "algorithm": kp.spec.algorithm,
        "key_size": kp.spec.key_size,
        "curve": kp.spec.curve,
        "category": kp.category.value,
        "storage": kp.storage.value,
        "status": kp.status.value,
        "access": kp.access.value,
        "allowed_users": list(kp.allowed_users),
        "allowed_groups": list(kp.allowed_groups),
        "team_id": kp.team_id,
        "profile_id": kp.profile_id,
        "generate_certificate": kp.generate_certificate,
        "refresh_after_sign": kp.refresh_after_sign,
        "key_id": kp.key_id,
        "generation": kp.generation,
        "public_key": kp.public_key,
        "certificate": certificate(kp.certificate),
        "created_at": kp.created_at,
        "created_by": kp.created_by,
        "refreshed_at": kp.refreshed_at,
        "next_refresh_at": kp.next_refresh_at if kp.dynamic else None,
    }


def generation(gen: Generation) -> dict[str, Any]:
    """One generation of a keypair."""
    return {
        "generation": gen.generation,
        "key_id": gen.key_id,
        "public_key": gen.public_key,
        "certificate": certificate(gen.certificate),
        "created_at": gen.created_at,
        "retired_at": gen.retired_at,
    }


def signed(result: Signed) -> dict[str, Any]:
    """The sign response of one signature."""
    import base64

    kp = result.keypair
    return {
        "signature": base64.b64encode(result.signature).decode(),
        "sig_alg": result.sig_alg,
        "keypair_id": kp.id,
        "alias": kp.alias,
        "key_id": kp.key_id,
        "generation": kp.generation,
        "certificate": certificate(kp.certificate),
        "chain": list(result.chain),
        "timestamp_token": result.timestamp_token,
        "signature_log_id": result.entry.id,
        "signed_at": result.entry.signed_at,
    }


def audit_entry(entry: AuditEntry) -> dict[str, Any]:
    """An audit-log entry (the transparency log hashes exactly this)."""
    return entry.as_dict()


def signature_entry(entry: SignatureEntry) -> dict[str, Any]:
    """A signature-log entry (the transparency log hashes exactly this)."""
    return entry.as_dict()


def account(acct: Account) -> dict[str, Any]:
    """The account's settings."""
    return {
        "id": acct.id,
        "name": acct.name,
        "teams_enabled": acct.teams_enabled,
        "require_keypair_profile": acct.require_keypair_profile,
        "public_tsa": acct.public_tsa,
        "created_at": acct.created_at,
    }


def api_key(key: ApiKey) -> dict[str, Any]:
    """A key as listed: its id and prefix, never its secret or hash."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": f"rsk_{key.id}_",
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }


def page(result: Page[Any], render: Any) -> dict[str, Any]:
    """`{"items": [...], "next": token | null}`."""
    return {"items": [render(item) for item in result.items], "next": result.next}


def user(view: UserView) -> dict[str, Any]:
    """A user: `permissions` are its own (beyond its roles), `effective_permissions` all it may do."""
    u = view.user
    return {
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "roles": list(u.roles),
        "permissions": list(u.permissions),
        "effective_permissions": sorted(u.effective_permissions),
        "group_ids": list(view.group_ids),
        "created_at": u.created_at,
    }


def group(g: Group) -> dict[str, Any]:
    """A user group."""
    return {"id": g.id, "name": g.name, "member_ids": list(g.member_ids), "created_at": g.created_at}


def team(view: TeamView) -> dict[str, Any]:
    """A team, with the profiles allocated to it."""
    t = view.team
    return {"id": t.id, "name": t.name, "member_ids": list(t.member_ids), "group_ids": list(t.group_ids),
            "profile_ids": list(view.profile_ids), "created_at": t.created_at}


def profile(p: KeypairProfile) -> dict[str, Any]:
    """A keypair profile (a null field is left to the request)."""
    body: dict[str, Any] = {"id": p.id, "name": p.name, "mode": p.mode.value}
    body.update({name: getattr(p, name) for name in PROFILE_FIELDS})
    body.update(team_ids=list(p.team_ids), created_at=p.created_at)
    return body


def release_window(w: ReleaseWindow) -> dict[str, Any]:
    """A release window and how much of its budget is used."""
    return {
        "id": w.id,
        "name": w.name,
        "keypair_ids": list(w.keypair_ids),
        "user_ids": list(w.user_ids),
        "starts_at": rfc3339(w.starts_at),
        "ends_at": rfc3339(w.ends_at),
        "max_signatures": w.max_signatures,
        "signatures_used": w.signatures_used,
        "created_at": w.created_at,
        "created_by": w.created_by,
    }
