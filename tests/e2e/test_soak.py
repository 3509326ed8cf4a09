"""Concurrent clients over real HTTP against the local stack (out of process, tests/support/stack.py).

The stack serves HTTP on several threads against its DynamoDB emulator; DynamoDB's atomicity and isolation
must hold whatever the HTTP concurrency. First three races a user would notice if they did not (many creates
of one alias, many refreshes of one keypair, many signers of one single-use keypair), then a ~30 s soak that
mixes creates of one alias, deletes, signatures, manual and scheduled refreshes and single-use signatures,
after which every invariant is checked from the outside: one keypair per alias, every signature verifies
(`cryptography` and `openssl`) against the certificate of its generation as GET /generations reports it,
one signature per single-use generation, no keypair stuck, no refresh left failing or dead-lettered.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from localdev.poller import DEAD_LETTER_QUEUE
from localdev.state import read_state
from tests.support.api import check_signed
from tests.support.stack import StackClient, StackProcess, running_stack

pytestmark = pytest.mark.e2e

SOAK_SECONDS = 30.0
# Short enough that the stack's own timer and queue poller refresh the dynamic keypairs during the soak.
SCHEDULE_SECONDS = 10
EC = {"algorithm": "ECDSA", "curve": "P-256"}
QUEUE_SETTLE = 45.0  # a failed refresh message stays invisible for 30 s: the queue is never empty meanwhile


class Client(StackClient):
    """One HTTP client as the stack's admin."""

    def __init__(self, stack: StackProcess) -> None:
        super().__init__(stack.endpoint, stack.api_key)


def digest_of(text: str) -> tuple[bytes, dict[str, str]]:
    """The data and a sign request for its SHA-256."""
    data = text.encode()
    return data, {"hash": base64.b64encode(hashlib.sha256(data).digest()).decode(), "hash_algorithm": "SHA-256"}


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in range(count) on as many threads, released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def generations(c: Client, keypair_id: str) -> dict[int, dict[str, Any]]:
    return {g["generation"]: g for g in c.every(f"/keypairs/{keypair_id}/generations")}


def verify_against_generations(c: Client, tmp: Path, signed: list[tuple[bytes, dict[str, Any]]]) -> int:
    """Every signature verifies against its generation's certificate (cryptography and openssl); returns the count."""
    by_keypair: dict[str, dict[int, dict[str, Any]]] = {}
    for data, body in signed:
        gens = by_keypair.get(body["keypair_id"]) or by_keypair.setdefault(
            body["keypair_id"], generations(c, body["keypair_id"]))
        gen = gens[body["generation"]]
        assert gen["key_id"] == body["key_id"], (body, gen)
        check_signed(tmp, {**body, "certificate": gen["certificate"]}, data)
    return len(signed)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("soak"), SCHEDULE_SECONDS, "soak") as running:
        yield running


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_creates_of_one_alias_make_exactly_one_keypair(stack: StackProcess, round_: int) -> None:
    clients = [Client(stack) for _ in range(12)]
    alias = f"contested-{round_}"
    body = {"alias": alias, "type": "static", "storage": "disk", **EC}
    answers = together(len(clients), lambda i: clients[i].call("POST", "/keypairs", body))
    created = [answer for status, answer in answers if status == 201]
    assert len(created) == 1, answers
    assert sorted(answer["error"]["code"] for status, answer in answers if status != 201) == ["alias_taken"] * 11
    c = clients[0]
    assert c.ok("GET", f"/keypairs/{created[0]['id']}")["alias"] == alias
    assert c.ok("GET", f"/keypairs/{alias}")["id"] == created[0]["id"]
    assert [kp["id"] for kp in c.every(f"/keypairs?alias={alias}")] == [created[0]["id"]]


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_refreshes_all_succeed_and_the_keypair_still_signs(stack: StackProcess, tmp_path: Path,
                                                                      round_: int) -> None:
    clients = [Client(stack) for _ in range(8)]
    c = clients[0]
    kp = c.ok("POST", "/keypairs", {"alias": f"refreshed-at-once-{round_}", "type": "dynamic", "storage": "hsm",
                                    **EC}, 201)
    answers = together(len(clients), lambda i: clients[i].call("POST", f"/keypairs/{kp['id']}/refresh"))
    assert [status for status, _ in answers] == [200] * len(clients), answers
    assert all(answer["generation"] > kp["generation"] for _, answer in answers)
    after = c.ok("GET", f"/keypairs/{kp['id']}")
    assert after["generation"] == max(answer["generation"] for _, answer in answers)
    data, body = digest_of("after the refreshes")
    signed = c.ok("POST", f"/keypairs/{kp['id']}/sign", body)
    assert signed["generation"] == after["generation"]
    verify_against_generations(c, tmp_path, [(data, signed)])
    assert c.ok("POST", f"/keypairs/{kp['id']}/refresh")["generation"] == after["generation"] + 1


def test_concurrent_single_use_signers_never_share_a_generation(stack: StackProcess, tmp_path: Path) -> None:
    clients = [Client(stack) for _ in range(6)]
    c = clients[0]
    kp = c.ok("POST", "/keypairs", {"alias": "single-use-at-once", "type": "dynamic", "storage": "disk",
                                    "refresh_after_sign": True, **EC}, 201)
    answers = together(len(clients), lambda i: (i, clients[i].call("POST", f"/keypairs/{kp['id']}/sign",
                                                                    digest_of(f"once {i}")[1])))
    signed = [(digest_of(f"once {i}")[0], answer) for i, (status, answer) in answers if status == 200]
    assert all(status in (200, 409) for _, (status, _) in answers), answers
    assert signed, answers
    assert len({answer["key_id"] for _, answer in signed}) == len(signed), "two signatures with one single-use key"
    verify_against_generations(c, tmp_path, signed)


@dataclass
class Soak:
    """What the clients did, by action: statuses and the signatures made."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    signed: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, action: str, status: int) -> None:
        with self.lock:
            self.statuses.setdefault(action, Counter())[status] += 1


def test_soak_mixed_clients_keep_every_invariant(stack: StackProcess, tmp_path: Path) -> None:
    c = Client(stack)
    dynamic = c.ok("POST", "/keypairs", {"alias": "soak-dynamic", "type": "dynamic", "storage": "hsm", **EC}, 201)
    once = c.ok("POST", "/keypairs", {"alias": "soak-once", "type": "dynamic", "storage": "disk",
                                      "refresh_after_sign": True, **EC}, 201)
    soak = Soak()
    deadline = time.monotonic() + SOAK_SECONDS

    def creator(me: Client, n: int) -> None:
        status, answer = me.call("POST", "/keypairs", {"alias": "soak-alias", "type": "static", "storage": "disk",
                                                      **EC})
        soak.record("create", status)
        if status == 201:
            with soak.lock:
                soak.created.append(answer["id"])

    def deleter(me: Client, n: int) -> None:
        soak.record("delete", me.call("DELETE", "/keypairs/soak-alias")[0])

    def signer(keypair_id: str, action: str) -> Callable[[Client, int], None]:
        def sign(me: Client, n: int) -> None:
            data, body = digest_of(f"{action} {threading.get_ident()} {n}")
            status, answer = me.call("POST", f"/keypairs/{keypair_id}/sign", body)
            soak.record(action, status)
            if status == 200:
                with soak.lock:
                    soak.signed.append((data, answer))
        return sign

    def refresher(me: Client, n: int) -> None:
        soak.record("refresh", me.call("POST", f"/keypairs/{dynamic['id']}/refresh")[0])

    def client(work: Callable[[Client, int], None]) -> None:
        me, n = Client(stack), 0
        while time.monotonic() < deadline:
            work(me, n)
            n += 1

    workers = [creator, creator, deleter, signer(dynamic["id"], "sign"), signer(dynamic["id"], "sign"),
               signer(dynamic["id"], "sign"), refresher, signer(once["id"], "sign single-use"),
               signer(once["id"], "sign single-use"), signer(once["id"], "sign single-use")]
    threads = [threading.Thread(target=client, args=(work,)) for work in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # No request failed on the server's side; refreshes never fail each other; a lost race is a 409, never a 5xx.
    allowed = {"create": {201, 409}, "delete": {204, 404}, "sign": {200}, "refresh": {200},
               "sign single-use": {200, 409}}
    for action, counts in soak.statuses.items():
        assert set(counts) <= allowed[action], (action, counts)

    # One keypair per alias, and every create matched by exactly one delete but the one alive.
    keypairs = c.every("/keypairs")
    assert max(Counter(kp["alias"] for kp in keypairs).values()) == 1
    alive = [kp["id"] for kp in keypairs if kp["alias"] == "soak-alias"]
    assert soak.statuses["create"][201] - soak.statuses.get("delete", Counter())[204] == len(alive)
    assert [i for i in soak.created if c.call("GET", f"/keypairs/{i}")[0] == 200] == alive

    # Every signature verifies against the certificate of its generation.
    verified = verify_against_generations(c, tmp_path, soak.signed)

    # One signature per single-use generation, in the responses and in the signature log.
    single = [body for _, body in soak.signed if body["keypair_id"] == once["id"]]
    assert len({body["generation"] for body in single}) == len(single)
    logged = c.every(f"/signature-logs?keypair_id={once['id']}&status=success")
    assert Counter(entry["generation"] for entry in logged).most_common(1)[0][1] == 1
    assert len(logged) == len(single)

    # No keypair stuck: each live one signs, and a dynamic one refreshes and signs again.
    for kp in c.every("/keypairs"):
        data, body = digest_of(f"after the soak {kp['id']}")
        after = [(data, c.ok("POST", f"/keypairs/{kp['id']}/sign", body))]
        if kp["type"] == "dynamic":
            c.ok("POST", f"/keypairs/{kp['id']}/refresh")
            data, body = digest_of(f"after the refresh {kp['id']}")
            after.append((data, c.ok("POST", f"/keypairs/{kp['id']}/sign", body)))
        verify_against_generations(c, tmp_path, after)

    # No scheduled refresh failed or was dead-lettered: the refresh queue drains and its dead-letter queue is empty.
    state = read_state(stack.state_dir)
    sqs = boto3.client("sqs", endpoint_url=state.emulator_endpoint, region_name=state.region,
                       aws_access_key_id="local", aws_secret_access_key="local")  # the emulator's

    def waiting(queue: str) -> int:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    settle = time.monotonic() + QUEUE_SETTLE
    while waiting(state.refresh_queue) and time.monotonic() < settle:
        time.sleep(0.5)
    assert waiting(state.refresh_queue) == 0
    assert waiting(DEAD_LETTER_QUEUE) == 0
    assert c.every("/audit-logs?action=refresh&outcome=failure") == []
    scheduled = c.every("/audit-logs?action=refresh&actor=system:scheduler&outcome=success")

    by_action = {action: dict(sorted(statuses.items())) for action, statuses in sorted(soak.statuses.items())}
    print(f"\nsoak: {SOAK_SECONDS:.0f} s, {len(workers)} clients; statuses by action {by_action}; "
          f"{verified} signatures verified (cryptography and openssl), {len(single)} single-use signatures "
          f"on {len(single)} generations, {len(soak.created)} keypairs created under one alias, "
          f"{len(scheduled)} scheduled refreshes, dead-letter queue empty")
