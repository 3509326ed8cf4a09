"""Who may see and who may use a keypair: the team rule and the access rule, on domain values only."""

from __future__ import annotations

from chalicelib.domain.identity import Principal
from chalicelib.domain.keypairs import Access, Keypair


def can_see(principal: Principal, kp: Keypair) -> bool:
    """A team keypair exists only for its team's members (directly or through a group) and for admins."""
    return kp.team_id is None or principal.is_admin or kp.team_id in principal.team_ids


def may_use(principal: Principal, kp: Keypair) -> bool:
    """`open`: anyone in the account; `restricted`: the allowed users and members of the allowed groups.

    Admins are no exception: a restricted keypair signs for an admin only when the admin is listed.
    """
    if kp.access is Access.OPEN:
        return True
    return principal.user_id in kp.allowed_users or not principal.group_ids.isdisjoint(kp.allowed_groups)
