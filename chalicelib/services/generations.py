"""The generation history of a keypair: every key it had, newest first, kept after the keys are gone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain.identity import Principal
from chalicelib.domain.keypairs import Generation
from chalicelib.services.pagination import Page, Pager, PageRequest

if TYPE_CHECKING:
    from chalicelib.services.container import Deps
    from chalicelib.services.keypairs import KeypairService

ROUTE = "generations"


class GenerationHistory:
    """GET /keypairs/{keypair}/generations."""

    def __init__(self, deps: Deps, keypairs: KeypairService) -> None:
        self.deps = deps
        self.keypairs = keypairs

    def list(self, principal: Principal, ref: str, request: PageRequest) -> Page[Generation]:
        """Newest first, with sealed `next` tokens; raises NotFound, InvalidPaginationToken."""
        kp = self.keypairs.resolve(principal.account, ref)
        pager = Pager(self.deps.token_key(), principal.account, ROUTE, {"keypair": kp.id})
        items, position = self.deps.store.generations.list(kp.id, request.limit, pager.start(request))
        return pager.page(items, position)
