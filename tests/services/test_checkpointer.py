"""The checkpointer under faults, races and deadlines: the tree stays consistent and every entry enters once.

Faults are injected at the botocore boundary of the real DynamoDB client (tests/support/faults.py) on each
kind of write the checkpointer makes; trees are checked with the outside verifier (tests/support/tlog).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.clock import rfc3339
from chalicelib.domain.logs import LogKey, SignatureEntry
from chalicelib.domain.transparency import TreeState, origin
from chalicelib.errors import RotasignError
from chalicelib.storage.connection import client as dynamodb
from tests.support import tlog
from tests.support.api import Account
from tests.support.faults import failing

SETTLE = timedelta(seconds=60)


def base_time() -> datetime:
    """A day ahead, so that nothing another test wrote at the real time is in the way."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def write(services: Any, account: Account, start: datetime, count: int) -> datetime:
    """`count` signature-log entries 7 ms apart from `start`, as the signing path writes them; returns the last time."""
    at = start
    for i in range(count):
        at = start + timedelta(milliseconds=7 * i)
        services.deps.store.signatures.append(SignatureEntry(
            account.id, LogKey.new(at), rfc3339(at), "success", account.user_id, keypair_id="kp_x", keypair_alias="x",
            hash_algorithm="SHA-256", hash=f"h{i}", signature=f"s{i}", file_name=f"f{i}.bin"))
    return at


def state(services: Any, account: Account) -> TreeState | None:
    return services.deps.store.trees.state(account.id, "signatures")


def assert_tree_holds_every_settled_entry_once(services: Any, account: Account) -> tlog.Checkpoint:
    """Open the stored checkpoint with the account's log key and rebuild it from the log itself; sample proofs."""
    store = services.deps.store
    current = state(services, account)
    assert current is not None
    public_key = store.accounts.get(account.id).log_public_key
    checkpoint = tlog.open_checkpoint(current.checkpoint, origin(account.id, "signatures"), public_key)
    entries = list(store.signatures.between(account.id, "0", current.settled))
    assert checkpoint.size == current.size == len(entries)
    assert tlog.mth([tlog.leaf(tlog.jcs(e.as_dict())) for e in entries]) == checkpoint.root
    who = services.auth.authenticate(account.api_key, None)
    for entry in {entries[0].id: entries[0], entries[len(entries) // 2].id: entries[len(entries) // 2],
                  entries[-1].id: entries[-1]}.values():
        proof = services.transparency.proof(who, "signatures", entry.id)
        assert tlog.root_from_path(tlog.leaf(proof.leaf_data), proof.leaf_index, proof.tree_size,
                                   proof.hashes) == checkpoint.root
    return checkpoint


def _item(params: dict[str, Any]) -> str:
    return str(params.get("Item", {}).get("item", {}).get("S", ""))


# One case per write the checkpointer makes, and the read it starts from: (operation, which call, entries).
FAULTS: dict[str, tuple[str, Any, int]] = {
    "full tiles": ("BatchWriteItem", None, 260),  # more than a full tile
    "growing tile": ("PutItem", lambda p: "/tile/" in _item(p), 30),
    "growing leaf block": ("PutItem", lambda p: "/leaves/" in _item(p), 30),
    "state": ("PutItem", lambda p: _item(p).endswith("/state"), 30),
    "reading entries": ("Query", lambda p: p.get("TableName", "").endswith("signature_log"), 30),
}


@pytest.mark.parametrize(("fault", "failure"), [*((name, "internal") for name in sorted(FAULTS)),
                                                ("growing tile", "throttled"), ("state", "dropped")])
def test_a_failed_write_leaves_the_tree_as_it_was_and_the_next_run_completes_it(
    services: Any, account: Account, fault: str, failure: str
) -> None:
    operation, when, count = FAULTS[fault]
    start = base_time()
    write(services, account, start, 40)
    services.checkpointer.run_account(account.id, start + SETTLE)
    before = state(services, account)
    assert before is not None and before.size == 40
    last = write(services, account, start + SETTLE + timedelta(seconds=1), count)

    with failing(dynamodb(), operation, failure, when=when) as failed, pytest.raises(RotasignError):
        services.checkpointer.run_account(account.id, last + SETTLE)
    assert failed, "the fault was never reached"
    assert state(services, account) == before

    runs = services.checkpointer.run_account(account.id, last + SETTLE)
    assert [(r.size, r.appended) for r in runs if r.origin.endswith("/signatures")] == [(40 + count, count)]
    assert_tree_holds_every_settled_entry_once(services, account)


def test_two_runs_at_once_leave_one_consistent_tree(services: Any, account: Account) -> None:
    start = base_time()
    last = write(services, account, start, 260)
    nows = [last + SETTLE, last + SETTLE + timedelta(seconds=2), last + SETTLE]
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda now: services.checkpointer.run_account(account.id, now), nows))
    committed = [r for rs in runs for r in rs if r.origin.endswith("/signatures") and r.committed]
    assert committed and sum(r.appended for r in committed) == 260
    assert assert_tree_holds_every_settled_entry_once(services, account).size == 260


def test_a_run_that_reaches_its_deadline_commits_what_it_read_and_the_next_goes_on(
    services: Any, account: Account
) -> None:
    start = base_time()
    last = write(services, account, start, 5)
    checkpointer = services.checkpointer
    sizes = []
    for _ in range(5):
        current = services.deps.store.accounts.get(account.id)
        run = checkpointer.run_tree(current, "signatures", last + SETTLE, deadline=time.monotonic() - 1)
        assert run.committed and run.appended == 1 and not run.complete
        sizes.append(run.size)
        assert_tree_holds_every_settled_entry_once(services, account)
    assert sizes == [1, 2, 3, 4, 5]
    final = checkpointer.run_tree(services.deps.store.accounts.get(account.id), "signatures", last + SETTLE)
    assert (final.appended, final.committed) == (0, False)


def test_a_quiet_log_is_checkpointed_once_and_then_left_alone(services: Any, account: Account) -> None:
    now = base_time()
    first = services.checkpointer.run_account(account.id, now)
    assert [r.committed for r in first] == [True, True]  # the signature log's size 0, the audit log's bootstrap
    empty = state(services, account)
    assert empty is not None and empty.size == 0
    assert tlog.open_checkpoint(empty.checkpoint, origin(account.id, "signatures"),
                                services.deps.store.accounts.get(account.id).log_public_key).root == tlog.mth([])
    again = services.checkpointer.run_account(account.id, now + timedelta(minutes=15))
    assert [r.committed for r in again] == [False, False]
    assert state(services, account) == empty


def test_the_tick_checkpoints_every_account_and_one_failing_account_stops_no_other(
    services: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.services.log_keys import log_key_ref
    from chalicelib.services.scheduler import run_tick
    from chalicelib.storage.tables import KeyMaterialModel
    from tests.support.api import make_account

    broken = make_account()
    KeyMaterialModel(log_key_ref(broken.id)).delete()  # its log key can no longer be loaded
    # The pass walks every account in the tables, and the module's other tests left theirs there: when
    # walking them used up the pass's time budget, an account of this test was sometimes never reached.
    # The directory is still read from the table; the tick sees this test's accounts and a third, healthy one.
    other = make_account()
    mine = {account.id, broken.id, other.id}
    directory = services.deps.store.accounts
    every_id = directory.ids
    monkeypatch.setattr(directory, "ids", lambda: [i for i in every_id() if i in mine])
    start = base_time()
    last = write(services, account, start, 3)
    write(services, broken, start, 3)
    result = run_tick(services, last + SETTLE)
    assert result.logged >= 3 and result.checkpoints >= 1
    assert_tree_holds_every_settled_entry_once(services, account)
    assert state(services, broken) is None
    assert services.deps.store.trees.state(other.id, "audit") is not None
    summary = services.checkpointer.run_all(last + SETTLE + timedelta(minutes=15))
    assert (summary.accounts, summary.failures) == (3, 1)
