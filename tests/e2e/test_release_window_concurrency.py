"""End to end: a release window with `max_signatures = 5` and 20 signers at once over real HTTP → exactly 5.

The local stack (`localdev.stack.start`, what `make run` starts) runs in a process of its own
(tests/support/stack.py says why), serves HTTP on threads, and its emulator applies each DynamoDB
request atomically.
Twenty users sign the same offline keypair at the same moment, each with its own key and its own digest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.clock import rfc3339
from tests.support.api import check_signed
from tests.support.stack import running_stack

pytestmark = pytest.mark.e2e

SIGNERS, BUDGET = 20, 5
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Stack:
    """The running stack's endpoint and admin key, with a JSON client."""

    def __init__(self, endpoint: str, api_key: str) -> None:
        self.endpoint, self.api_key = endpoint, api_key

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        headers = {"X-API-Key": key or self.api_key, "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.endpoint}/api/v1{path}", data=data, method=method,  # noqa: S310
                                         headers=headers)
        try:
            with _OPENER.open(request, timeout=120) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        code, answer = self.call(method, path, body)
        assert code == status, (method, path, code, answer)
        return answer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("window-stack"), 900, "windows") as running:
        yield Stack(running.endpoint, running.api_key)


def test_twenty_signers_at_once_spend_a_budget_of_five_exactly(stack: Stack, tmp_path: Path) -> None:
    kp = stack.ok("POST", "/keypairs", {"alias": "release-offline", "type": "static", "algorithm": "ECDSA",
                                        "curve": "P-256", "storage": "disk", "status": "offline"}, status=201)
    now = datetime.now(UTC)
    window = stack.ok("POST", "/release-windows", {
        "name": "release 3.0", "keypair_ids": [kp["id"]], "starts_at": rfc3339(now - timedelta(minutes=1)),
        "ends_at": rfc3339(now + timedelta(hours=1)), "max_signatures": BUDGET}, status=201)
    keys = []
    for i in range(SIGNERS):
        user = stack.ok("POST", "/users", {"name": f"signer {i}", "roles": ["developer"]}, status=201)
        keys.append(stack.ok("POST", f"/users/{user['id']}/api-keys", {"name": "e2e"}, status=201)["key"])

    barrier = threading.Barrier(SIGNERS)
    answers: dict[int, tuple[int, Any]] = {}

    def signer(i: int) -> None:
        digest = hashlib.sha256(f"artifact of signer {i}".encode()).digest()
        body = {"hash": base64.b64encode(digest).decode(), "hash_algorithm": "SHA-256"}
        barrier.wait()
        answers[i] = stack.call("POST", f"/keypairs/{kp['id']}/sign", body, key=keys[i])

    threads = [threading.Thread(target=signer, args=(i,)) for i in range(SIGNERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    signed = {i: body for i, (status, body) in answers.items() if status == 200}
    refused = [body["error"]["code"] for status, body in answers.values() if status != 200]
    assert len(signed) == BUDGET, answers
    assert refused == ["keypair_offline"] * (SIGNERS - BUDGET)
    for i, body in signed.items():
        check_signed(tmp_path, body, f"artifact of signer {i}".encode())
    assert stack.ok("GET", f"/release-windows/{window['id']}")["signatures_used"] == BUDGET
    entries = stack.ok("GET", f"/signature-logs?keypair_id={kp['id']}&limit=100")["items"]
    assert sorted(e["status"] for e in entries) == ["failed"] * (SIGNERS - BUDGET) + ["success"] * BUDGET
    assert {e["id"] for e in entries if e["status"] == "success"} == {b["signature_log_id"] for b in signed.values()}
    # The budget is spent: the next signer is refused too.
    code, _ = stack.call("POST", f"/keypairs/{kp['id']}/sign", {"hash": base64.b64encode(b"\0" * 32).decode()},
                         key=keys[0])
    assert code == 403
