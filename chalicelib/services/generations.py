"""The generation history of a keypair: every key it had, newest first, kept after the keys are gone.

It stays readable after the keypair is deleted (by id: a deleted keypair's alias is free for others),
so that the public keys and certificates of its signatures can still be fetched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain.access import can_see
from chalicelib.domain.identity import Principal
from chalicelib.domain.keypairs import Generation, Keypair
from chalicelib.errors import NotFound
from chalicelib.ids import looks_like_id
from chalicelib.services.pagination import Page, Pager, PageRequest

if TYPE_CHECKING:
    from chalicelib.services.container import Deps
    from chalicelib.services.keypairs import KeypairService

ROUTE = "generations"


class GenerationHistory:
    """GET /keypairs/{keypair}/generations and /generations/{n}."""

    def __init__(self, deps: Deps, keypairs: KeypairService) -> None:
        self.deps = deps
        self.keypairs = keypairs

    def list(self, principal: Principal, ref: str, request: PageRequest) -> Page[Generation]:
        """Newest first, with sealed `next` tokens; raises NotFound, InvalidPaginationToken."""
        kp = self._keypair(principal, ref)
        pager = Pager(self.deps.token_key(), principal.account, ROUTE, {"keypair": kp.id})
        items, position = self.deps.store.generations.list(kp.id, request.limit, pager.start(request))
        return pager.page(items, position)

    def get(self, principal: Principal, ref: str, generation: int) -> Generation:
        """One generation of a keypair (deleted ones too, by id); raises NotFound."""
        kp = self._keypair(principal, ref)
        found = self.deps.store.generations.get(kp.id, generation)
        if found is None or found.account != principal.account:
            raise NotFound("No such generation.")
        return found

    def _keypair(self, principal: Principal, ref: str) -> Keypair:
        """A live keypair by id or alias, or a deleted one by id, that the caller may see; raises NotFound
        (another team's keypair is NotFound, like one that does not exist)."""
        if not looks_like_id(ref, "kp"):
            return self.keypairs.find(principal, ref)
        kp = self.deps.store.keypairs.get(principal.account, ref)
        if kp is None or not can_see(principal, kp):
            raise NotFound("No such keypair.")
        return kp
