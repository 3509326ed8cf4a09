"""Release windows: when an offline keypair may sign, for whom, and how many times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReleaseWindow:
    """Between `starts_at` (inclusive) and `ends_at` (exclusive) the listed offline keypairs sign.

    An empty `user_ids` lets every user with access sign; `max_signatures` None sets no budget.
    `signatures_used` is counted in the same write as each signature's log entry. `keypair_teams`
    records the team of each team keypair named (a keypair's team never changes), so that a reader
    outside a team is shown the window without that keypair.
    """

    account: str
    id: str
    name: str
    keypair_ids: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    created_at: str
    created_by: str
    user_ids: tuple[str, ...] = ()
    max_signatures: int | None = None
    signatures_used: int = 0
    keypair_teams: tuple[tuple[str, str], ...] = ()

    def open_at(self, at: datetime) -> bool:
        """Whether `at` lies inside the window."""
        return self.starts_at <= at < self.ends_at

    def admits(self, keypair_id: str, user_id: str) -> bool:
        """Whether the window names the keypair, and the user when it names users."""
        return keypair_id in self.keypair_ids and (not self.user_ids or user_id in self.user_ids)

    def hidden_from(self, team_ids: frozenset[str]) -> frozenset[str]:
        """The keypairs named that belong to a team outside `team_ids`."""
        return frozenset(kp for kp, team in self.keypair_teams if team not in team_ids)

    def has_room(self, count: int) -> bool:
        """Whether `count` more signatures fit the budget (as last read; the write checks it exactly)."""
        return self.max_signatures is None or self.signatures_used + count <= self.max_signatures
