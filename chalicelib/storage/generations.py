"""Keypair generations: the public key and certificate of every key a keypair ever had."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.domain.keypairs import Generation, NewGeneration
from chalicelib.storage.errors import guarded
from chalicelib.storage.keypairs import certificate_map, certificate_of
from chalicelib.storage.paging import Position, page
from chalicelib.storage.tables import GenerationModel
from chalicelib.storage.transaction import OnFail, Transaction


def _generation(row: GenerationModel) -> Generation:
    return Generation(
        keypair_id=row.keypair_id,
        generation=int(row.generation),
        account=row.account,
        key_id=row.key_id,
        public_key=row.public_key,
        certificate=certificate_of(row.certificate),
        created_at=row.created_at,
        retired_at=row.retired_at,
        signed_by=row.signed_by,
    )


class GenerationRepository:
    """The generations table (kept after keys are destroyed and keypairs deleted)."""

    @guarded
    def get(self, keypair_id: str, generation: int) -> Generation | None:
        """One generation, read consistently; None when there is none."""
        try:
            return _generation(GenerationModel.get(keypair_id, generation, consistent_read=True))
        except DoesNotExist:
            return None

    @guarded
    def first(self, keypair_id: str) -> Generation | None:
        """The oldest generation of a keypair (which tells its account), or None."""
        return next((_generation(row) for row in GenerationModel.query(keypair_id, limit=1)), None)

    @guarded
    def list(self, keypair_id: str, limit: int, start: Position | None) -> tuple[list[Generation], Position | None]:
        """Newest first, up to `limit`, from an exclusive start position."""

        def run(start_key: Position | None) -> Any:
            return GenerationModel.query(keypair_id, scan_index_forward=False, last_evaluated_key=start_key,
                                         page_size=min(limit + 1, 500))

        rows, position = page(run, limit, start, ("keypair_id", "generation"))
        return [_generation(row) for row in rows], position

    def stage_add(self, tx: Transaction, account: str, gen: NewGeneration) -> None:
        """Record a new generation (it must not exist yet)."""
        tx.put(
            GenerationModel(gen.keypair_id, gen.generation, account=account, key_id=gen.key_id,
                            public_key=gen.public_key, certificate=certificate_map(gen.certificate),
                            created_at=gen.created_at),
            GenerationModel.generation.does_not_exist(),
        )

    def stage_retire(self, tx: Transaction, keypair_id: str, generation: int, retired_at: str) -> None:
        """Set when a generation stops being usable (a retirement already recorded is kept)."""
        tx.update(GenerationModel(keypair_id, generation),
                  [GenerationModel.retired_at.set(GenerationModel.retired_at | retired_at)],
                  GenerationModel.generation.exists())

    def stage_signed(self, tx: Transaction, keypair_id: str, generation: int, log_id: str, *, on_fail: OnFail) -> None:
        """Record the one signature of a single-use generation; `on_fail()` when it has signed already."""
        tx.update(GenerationModel(keypair_id, generation), [GenerationModel.signed_by.set(log_id)],
                  GenerationModel.generation.exists() & GenerationModel.signed_by.does_not_exist()
                  & GenerationModel.retired_at.does_not_exist(),
                  on_fail=on_fail)
