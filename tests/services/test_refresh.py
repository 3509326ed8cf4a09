"""Dynamic refresh: the schedule and its queue, one refresh, races, crashes, the sweep, signing alongside."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chalicelib.api import render
from chalicelib.api.keypairs import parse_new_keypair
from chalicelib.api.signing import parse_call
from chalicelib.clock import next_tick, parse_rfc3339, rfc3339
from chalicelib.domain.logs import SCHEDULER, Actor
from chalicelib.errors import Conflict, StorageUnavailable
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, PrivateKey, key_id_of, verify_signature
from chalicelib.keys.backend import KeyBackend, NewKey, SealedKey
from chalicelib.services.container import Deps, Services, build_services, get_deps, set_deps
from chalicelib.services.pagination import PageRequest
from chalicelib.services.refresh import sweep_min_age
from chalicelib.services.refresh_queue import RefreshFailed, RefreshMessage
from chalicelib.services.sweep import sweep_orphans
from chalicelib.storage.keypairs import DUE_SHARDS
from chalicelib.storage.tables import AuditLogModel, GenerationModel, KeyMaterialModel, KeypairModel
from tests.support.clock import FakeClock
from tests.support.schedule import tick

INTERVAL = 900
# Tests run on a fake clock a day ahead, on a quarter-hour grid: keypairs other tests make in this
# process (at the real time) are due too, so assertions look at this test's account only.
T0 = next_tick(datetime.now(UTC) + timedelta(days=1), INTERVAL)


class Crash(BaseException):
    """A process dying at an injected point (BaseException: no `except Exception` swallows it)."""


@dataclass
class Faults:
    """What the fault-injecting backend does: wait at a barrier, crash after generating or destroying."""

    barrier: threading.Barrier | None = None
    crash_after_generate: bool = False
    crash_on_destroy: bool = False
    fail_generate: Exception | None = None
    generated: list[str] = field(default_factory=list)


class FaultyBackend:
    """Wraps a real key backend and injects `Faults`."""

    def __init__(self, inner: KeyBackend, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults
        self.storage = inner.storage

    def generate(self, account: str, key_ref: str, spec: KeySpec) -> NewKey:
        if self.faults.fail_generate is not None:
            raise self.faults.fail_generate
        new = self.inner.generate(account, key_ref, spec)
        self.faults.generated.append(key_ref)
        barrier = self.faults.barrier
        if barrier is not None:
            barrier.wait(timeout=30)
            self.faults.barrier = None  # only the first round races
        if self.faults.crash_after_generate:
            self.faults.crash_after_generate = False
            raise Crash("after key generation")
        return new

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        return self.inner.load(account, key_ref, sealed)

    def destroy(self, key_ref: str) -> None:
        if self.faults.crash_on_destroy:
            self.faults.crash_on_destroy = False
            raise Crash("after the transaction")
        self.inner.destroy(key_ref)


@dataclass
class FaultyDeps(Deps):
    """The process's real dependencies, with every key backend wrapped in a FaultyBackend."""

    faults: Faults = field(default_factory=Faults)

    def backend(self, storage: str) -> KeyBackend:
        return FaultyBackend(super().backend(storage), self.faults)


def faulty_services(real: Deps, clock: Any, faults: Faults) -> Services:
    """Services wired around the real dependencies with injected faults and the given clock."""
    real.hsm()  # share the process's HSM session instead of opening another
    values = {f.name: getattr(real, f.name) for f in dataclasses.fields(Deps) if f.name != "_lock"}
    values["clock"] = clock
    return build_services(FaultyDeps(**values, faults=faults))


@pytest.fixture
def svc(aws: dict[str, str]) -> Services:
    from chalicelib.services.container import get_services

    return get_services()


@pytest.fixture
def clock(svc: Services) -> Iterator[FakeClock]:
    real = svc.deps.clock
    fake = FakeClock(T0 + timedelta(seconds=30))
    svc.deps.clock = fake
    yield fake
    svc.deps.clock = real


@pytest.fixture
def who(svc: Services, account: Any) -> Any:
    return svc.auth.authenticate(account.api_key, None)


def create(svc: Services, principal: Any, alias: str, **spec: Any) -> dict[str, Any]:
    body = {"alias": alias, "type": "dynamic", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"} | spec
    body = {k: v for k, v in body.items() if v is not None}
    return render.keypair(svc.keypairs.create(principal, parse_new_keypair(body), None))


def row(account: str, kp_id: str) -> KeypairModel:
    return KeypairModel.get(account, kp_id, consistent_read=True)


def refresh_entries(account: str) -> list[AuditLogModel]:
    return list(AuditLogModel.by_type_action.query(f"{account}#dynamic#refresh"))


def sign(svc: Services, principal: Any, kp_id: str, data: bytes) -> dict[str, Any]:
    body = {"hash": base64.b64encode(hashlib.sha256(data).digest()).decode(), "hash_algorithm": "SHA-256"}
    return render.signed(svc.signing.sign(principal, parse_call(kp_id, body, None))[0])


def verifies(response: dict[str, Any], data: bytes) -> bool:
    """The signature verifies against the certificate returned with it, which names the returned key_id."""
    cert = x509.load_pem_x509_certificate(response["certificate"]["pem"].encode())
    assert key_id_of(cert.public_key()) == response["key_id"]
    verify_signature(cert.public_key(), SIG_ALGS[response["sig_alg"]],
                     base64.b64decode(response["signature"]), hashlib.sha256(data).digest())
    return True


def openssl_verifies(response: dict[str, Any], data: bytes, tmp: Path) -> bool:
    (tmp / "cert.pem").write_text(response["certificate"]["pem"])
    (tmp / "digest").write_bytes(hashlib.sha256(data).digest())
    (tmp / "sig").write_bytes(base64.b64decode(response["signature"]))
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-certin", "-inkey", tmp / "cert.pem",
                           "-in", tmp / "digest", "-sigfile", tmp / "sig"], capture_output=True, text=True)
    return done.returncode == 0 and "Signature Verified Successfully" in done.stdout


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message on the queue (deleted as read), as parsed bodies."""
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def token_refs(svc: Services, kp_id: str) -> list[str]:
    return svc.deps.hsm().list_refs(f"{kp_id}/")


# -- the schedule ----------------------------------------------------------------------------------


def test_tick_then_queue_refreshes_exactly_the_due_dynamic_keypairs(
    client: Any, svc: Services, clock: FakeClock, who: Any, account: Any
) -> None:
    due = [create(svc, who, "due-a"), create(svc, who, "due-b", algorithm="EdDSA", curve=None)]
    static = create(svc, who, "static", type="static")
    clock.now = T0 + timedelta(seconds=INTERVAL - 30)
    later = create(svc, who, "not-yet-due")
    assert {kp["next_refresh_at"] for kp in due} == {rfc3339(T0 + timedelta(seconds=INTERVAL))}
    sqs, url = svc.deps.queue()
    drain_queue(sqs, url)

    clock.now = T0 + timedelta(seconds=INTERVAL, milliseconds=350)  # the quarter-hour tick fires a little late
    result = tick(client, sqs, url)  # the tick queues slices; each slice queues its shard's refresh messages
    assert 1 <= result["slices"] == result["due_shards"] <= DUE_SHARDS and result["lag_seconds"] >= 0
    mine = [m for m in drain_queue(sqs, url) if m["account"] == account.id]
    assert sorted(mine, key=lambda m: m["keypair_id"]) == sorted(
        ({"account": account.id, "keypair_id": kp["id"], "expected_generation": 1} for kp in due),
        key=lambda m: m["keypair_id"])

    event = client.events.generate_sqs_event(message_bodies=[json.dumps(m) for m in mine],
                                             queue_name="rotasign-refresh")
    assert client.lambda_.invoke("refresh_worker", event).payload == {"refreshed": 2, "skipped": 0}

    for kp in due:
        after = row(account.id, kp["id"])
        assert int(after.generation) == 2 and after.key_id != kp["key_id"]
        assert after.next_refresh_at == rfc3339(T0 + timedelta(seconds=2 * INTERVAL))
    for kp in (static, later):
        assert int(row(account.id, kp["id"]).generation) == 1
    entries = refresh_entries(account.id)
    assert sorted(e.resource_id for e in entries) == sorted(kp["id"] for kp in due)
    assert {e.actor for e in entries} == {SCHEDULER} and {e.outcome for e in entries} == {"success"}
    for entry in entries:
        before = next(kp for kp in due if kp["id"] == entry.resource_id)
        details = entry.details.as_dict()
        assert details["old_key_id"] == before["key_id"]
        assert details["new_key_id"] == row(account.id, before["id"]).key_id
        assert (details["old_generation"], details["new_generation"]) == (1, 2)


def test_same_message_twice_refreshes_once(client: Any, svc: Services, clock: FakeClock, who: Any,
                                           account: Any) -> None:
    kp = create(svc, who, "twice")
    body = RefreshMessage(account.id, kp["id"], 1).body()
    for _ in range(2):
        event = client.events.generate_sqs_event(message_bodies=[body], queue_name="rotasign-refresh")
        client.lambda_.invoke("refresh_worker", event)
    both = client.events.generate_sqs_event(message_bodies=[body, body], queue_name="rotasign-refresh")
    assert client.lambda_.invoke("refresh_worker", both).payload == {"refreshed": 0, "skipped": 2}
    assert int(row(account.id, kp["id"]).generation) == 2
    assert len(refresh_entries(account.id)) == 1


def test_a_message_failing_on_its_last_receive_is_audited_and_raised(
    client: Any, svc: Services, clock: FakeClock, who: Any, account: Any
) -> None:
    kp = create(svc, who, "failing")
    faults = Faults(fail_generate=StorageUnavailable("The key service is unavailable; nothing was changed."))
    real = get_deps()
    set_deps(faulty_services(real, clock, faults).deps)
    try:
        event = client.events.generate_sqs_event(message_bodies=[RefreshMessage(account.id, kp["id"], 1).body()],
                                                 queue_name="rotasign-refresh")
        with pytest.raises(RefreshFailed):
            client.lambda_.invoke("refresh_worker", event)  # first receive: retried, not audited yet
        assert refresh_entries(account.id) == []
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"
        with pytest.raises(RefreshFailed):
            client.lambda_.invoke("refresh_worker", event)
    finally:
        set_deps(real)
    [entry] = refresh_entries(account.id)
    assert (entry.outcome, entry.error, entry.actor, entry.resource_id) == (
        "failure", "storage_unavailable", SCHEDULER, kp["id"])
    assert entry.details.as_dict()["receive_count"] == 5
    assert int(row(account.id, kp["id"]).generation) == 1


# -- one refresh -----------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["disk", "hsm"])
def test_after_a_refresh_the_old_key_is_gone_and_its_history_stays(
    svc: Services, clock: FakeClock, who: Any, account: Any, storage: str, tmp_path: Path
) -> None:
    kp = create(svc, who, f"history-{storage}", storage=storage)
    before = row(account.id, kp["id"])
    signed = sign(svc, who, kp["id"], b"release 1.0")
    assert signed["generation"] == 1

    outcome = svc.refresh.refresh(account.id, kp["id"], Actor(account.id, SCHEDULER), trigger="schedule")
    assert outcome.refreshed and (outcome.old_generation, outcome.new_generation) == (1, 2)

    after = row(account.id, kp["id"])
    assert int(after.generation) == 2
    assert after.key_id != before.key_id and after.public_key != before.public_key
    assert after.certificate.pem != before.certificate.pem and after.certificate.serial != before.certificate.serial
    if storage == "disk":
        # One sealed key per keypair, overwritten by the refresh: the old ciphertext is gone.
        material = KeyMaterialModel.get(kp["id"], consistent_read=True)
        assert (material.key_ref, material.account) == (after.key_ref, account.id)
        assert material.key_ref != before.key_ref
    else:
        assert token_refs(svc, kp["id"]) == [after.key_ref]

    history = render.page(svc.generations.list(who, kp["id"], PageRequest()), render.generation)
    assert [g["generation"] for g in history["items"]] == [2, 1] and history["next"] is None
    old = history["items"][1]
    assert (old["key_id"], old["public_key"], old["certificate"]["pem"]) == (
        before.key_id, before.public_key, before.certificate.pem)
    assert old["retired_at"] is not None and history["items"][0]["retired_at"] is None

    # The signature made before the refresh still verifies against its own certificate.
    assert signed["certificate"]["pem"] == old["certificate"]["pem"]
    assert verifies(signed, b"release 1.0") and openssl_verifies(signed, b"release 1.0", tmp_path)
    fresh = sign(svc, who, kp["id"], b"release 1.1")
    assert fresh["generation"] == 2 and verifies(fresh, b"release 1.1")


@pytest.mark.parametrize("storage", ["disk", "hsm"])
def test_two_racing_refreshes_one_wins_and_the_loser_key_is_destroyed(
    svc: Services, who: Any, account: Any, storage: str
) -> None:
    kp = create(svc, who, f"race-{storage}", storage=storage)
    # Both racers generate before either commits; the stepping clock gives their keys distinct labels.
    faults = Faults(barrier=threading.Barrier(2))
    racing = faulty_services(get_deps(), FakeClock(T0 + timedelta(seconds=60), step=timedelta(seconds=1)), faults)

    def refresh() -> Any:
        return racing.refresh.refresh(account.id, kp["id"], Actor(account.id, SCHEDULER), seen_generation=1,
                                      trigger="schedule")

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: refresh(), range(2)))
    assert sorted(o.reason for o in outcomes) == ["already_refreshed", "refreshed"]
    after = row(account.id, kp["id"])
    assert int(after.generation) == 2 and len(refresh_entries(account.id)) == 1
    assert len(faults.generated) == 2 and after.key_ref in faults.generated
    [loser] = [ref for ref in faults.generated if ref != after.key_ref]
    if storage == "hsm":
        assert token_refs(svc, kp["id"]) == [after.key_ref]
    else:
        assert KeyMaterialModel.get(kp["id"], consistent_read=True).key_ref == after.key_ref != loser


def test_racing_refreshes_in_the_same_second_share_nothing_on_the_hsm(svc: Services, who: Any, account: Any) -> None:
    kp = create(svc, who, "same-second", storage="hsm")
    racing = faulty_services(get_deps(), FakeClock(T0 + timedelta(seconds=60)), Faults())
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: racing.refresh.refresh(
            account.id, kp["id"], Actor(account.id, SCHEDULER), seen_generation=1, trigger="schedule"), range(4)))
    assert sorted(o.reason for o in outcomes) == ["already_refreshed"] * 3 + ["refreshed"]
    after = row(account.id, kp["id"])
    assert int(after.generation) == 2 and token_refs(svc, kp["id"]) == [after.key_ref]
    assert sign(svc, who, kp["id"], b"x")["generation"] == 2


def test_a_static_keypair_is_never_refreshed_by_a_message(svc: Services, clock: FakeClock, who: Any,
                                                          account: Any) -> None:
    kp = create(svc, who, "static-msg", type="static")
    outcome = svc.queue.handle_message(RefreshMessage(account.id, kp["id"], 1))
    assert not outcome.refreshed and int(row(account.id, kp["id"]).generation) == 1


# -- crashes and the sweep ---------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["disk", "hsm"])
@pytest.mark.parametrize("crash", ["after_generate", "after_commit"])
def test_a_crash_leaves_nothing_the_sweep_cannot_clean_and_the_keypair_signs(
    svc: Services, clock: FakeClock, who: Any, account: Any, storage: str, crash: str
) -> None:
    kp = create(svc, who, f"crash-{storage}-{crash}", storage=storage)
    first_ref = row(account.id, kp["id"]).key_ref
    faults = Faults(crash_after_generate=crash == "after_generate", crash_on_destroy=crash == "after_commit")
    crashing = faulty_services(get_deps(), clock, faults)
    with pytest.raises(Crash):
        crashing.refresh.refresh(account.id, kp["id"], Actor(account.id, SCHEDULER), trigger="schedule")
    current = row(account.id, kp["id"])
    assert int(current.generation) == (1 if crash == "after_generate" else 2)
    orphan = faults.generated[0] if crash == "after_generate" else first_ref
    if storage == "hsm":
        assert sorted(token_refs(svc, kp["id"])) == sorted([current.key_ref, orphan])

    assert orphan not in sweep_orphans(svc.deps).removed  # too young to judge yet
    clock.advance(sweep_min_age(svc.deps) + timedelta(seconds=1))
    swept = sweep_orphans(svc.deps).removed
    if storage == "hsm":
        assert orphan in swept and token_refs(svc, kp["id"]) == [current.key_ref]
        [entry] = AuditLogModel.by_type_action.query(f"{account.id}#dynamic#sweep")
        assert (entry.actor, entry.resource_id, entry.details.as_dict()["key_ref"]) == (SCHEDULER, kp["id"], orphan)
    else:
        assert not [ref for ref in swept if ref.startswith(kp["id"])]
    signed = sign(svc, who, kp["id"], b"after the crash")
    assert signed["generation"] == int(current.generation) and verifies(signed, b"after the crash")


def test_the_sweep_keeps_account_authority_keys_and_current_keys(svc: Services, clock: FakeClock, who: Any,
                                                                 account: Any) -> None:
    kp = create(svc, who, "kept", storage="hsm")
    svc.deps.hsm().generate(account.id, f"{account.id}/ca/production-probe", KeySpec("ECDSA", None, "P-256"))
    try:
        clock.advance(timedelta(hours=1))
        swept = sweep_orphans(svc.deps).removed
        assert not [ref for ref in swept if ref.startswith((account.id, kp["id"]))]
        assert token_refs(svc, kp["id"]) == [row(account.id, kp["id"]).key_ref]
    finally:
        svc.deps.hsm().destroy(f"{account.id}/ca/production-probe")


# -- signing and refresh together --------------------------------------------------------------------


def test_signing_racing_refreshes_never_uses_a_retired_generation(svc: Services, who: Any, account: Any) -> None:
    clock = FakeClock(T0 + timedelta(seconds=60))
    racing = faulty_services(get_deps(), clock, Faults())
    kp = create(racing, who, "busy")
    progress = threading.Condition()
    done: list[tuple[dict[str, Any], bytes]] = []
    conflicts = 0
    refreshes = 0
    signers, per_signer = 4, 50

    def refresher() -> None:
        nonlocal refreshes
        seen = 0
        while True:
            with progress:
                # One refresh per few signatures, while the signers keep going: paced by progress, not time.
                progress.wait_for(lambda last=seen: len(done) >= last + 8 or len(done) == signers * per_signer)
                seen = len(done)
                if seen == signers * per_signer:
                    return
            if racing.refresh.refresh(account.id, kp["id"], Actor(account.id, SCHEDULER)).refreshed:
                refreshes += 1
            # Time moves only after a refresh committed: a signature stamped later than a retirement
            # was made after it, so `retired_at >= signed_at` is exactly "not retired when made".
            clock.advance(timedelta(seconds=1))

    def signer() -> None:
        nonlocal conflicts
        for i in range(per_signer):
            data = f"artifact {threading.get_ident()} {i}".encode()
            while True:
                try:
                    response = sign(racing, who, kp["id"], data)
                    break
                except Conflict:
                    conflicts += 1  # lost twice to refreshes: a client retries a 409
            with progress:
                done.append((response, data))
                progress.notify_all()

    with ThreadPoolExecutor(signers + 1) as pool:
        futures = [pool.submit(refresher)] + [pool.submit(signer) for _ in range(signers)]
        for future in futures:
            future.result()
    assert len(done) == signers * per_signer and refreshes >= 10
    retired = {int(g.generation): g.retired_at for g in GenerationModel.query(kp["id"])}
    assert len({r["generation"] for r, _ in done}) > 10
    for response, data in done:
        assert verifies(response, data)
        gone = retired[response["generation"]]
        assert gone is None or parse_rfc3339(gone) >= parse_rfc3339(response["signed_at"])


def test_an_overdue_keypair_is_refreshed_before_it_signs(svc: Services, clock: FakeClock, who: Any,
                                                         account: Any) -> None:
    kp = create(svc, who, "overdue")
    clock.now = parse_rfc3339(kp["next_refresh_at"]) + timedelta(seconds=INTERVAL // 2)
    signed = sign(svc, who, kp["id"], b"late")
    assert signed["generation"] == 2 and verifies(signed, b"late")
    cert = x509.load_pem_x509_certificate(signed["certificate"]["pem"].encode())
    assert cert.not_valid_after_utc > clock.now + timedelta(seconds=INTERVAL)
    [entry] = refresh_entries(account.id)
    assert entry.details.as_dict()["trigger"] == "overdue"


def test_single_use_keypair_signs_once_per_generation(svc: Services, clock: FakeClock, who: Any,
                                                      account: Any) -> None:
    kp = create(svc, who, "single-use", refresh_after_sign=True)
    count = 6
    with ThreadPoolExecutor(count) as pool:
        signed = list(pool.map(lambda i: (sign(svc, who, kp["id"], b"one %d" % i), b"one %d" % i), range(count)))
    generations = [r["generation"] for r, _ in signed]
    assert len(set(generations)) == count
    assert len({r["key_id"] for r, _ in signed}) == count
    assert all(verifies(r, data) for r, data in signed)
    # Each generation recorded its one signature, and the next request finds a fresh key.
    assert int(row(account.id, kp["id"]).generation) > max(generations)
    used = {int(g.generation): g.signed_by for g in GenerationModel.query(kp["id"])}
    assert sorted(used[g] for g in generations) == sorted(r["signature_log_id"] for r, _ in signed)


def test_the_sweep_age_scales_with_the_interval(svc: Services) -> None:
    def age(**settings: Any) -> timedelta:
        return sweep_min_age(dataclasses.replace(svc.deps, settings=dataclasses.replace(svc.deps.settings, **settings)))

    assert age(schedule_seconds=900, sweep_min_age_seconds=None) == timedelta(minutes=5)
    assert age(schedule_seconds=10, sweep_min_age_seconds=None) == timedelta(seconds=60)
    assert age(schedule_seconds=10, sweep_min_age_seconds=2.0) == timedelta(seconds=2)
