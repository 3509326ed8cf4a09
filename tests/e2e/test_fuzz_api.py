"""Fuzz every operation of the API from its own OpenAPI document, over real HTTP against the local stack.

The stack runs out of process (tests/support/stack.py); the document is the one it serves at
/api/v1/openapi.json. For each operation, schemathesis generates a bounded number of requests that break
the document (negative) and of requests that fit it (positive), sent with the stack's admin key. Half of
the path parameters are swapped for the ids of objects made beforehand, so that generated bodies reach
real keypairs, users, groups, teams, profiles, windows and log entries instead of a 404.

Every response: no 5xx; its status, content type, headers and body as the document says (errors in the
error shape); a request that breaks the document is refused with a 4xx. Nothing is written by a refused
request: the newest successful audit entry is the same before and after every refused request, and the
account's objects are the same before and after each operation's batch of negative requests.

Destructive operations run last, and only on objects made for the fuzzing: the admin's own user and API key
are never named (random ids match nothing), so the run keeps its credentials to the end.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chalicelib.clock import rfc3339, utc_now
from tests.support.stack import StackClient, StackProcess, running_stack

pytestmark = pytest.mark.e2e

EXAMPLES = 3  # per operation and mode: enough to reach every field, small enough for `make test`
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
LISTS = ("/keypairs", "/users", "/groups", "/teams", "/keypair-profiles", "/release-windows")
EC = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


@schemathesis.serializer("application/timestamp-query")
def _timestamp_query(ctx: Any, value: Any) -> bytes:
    """Generated bodies of the time-stamping route go out as the bytes they are (or their UTF-8)."""
    return value if isinstance(value, bytes) else str(value).encode()


class Client(StackClient):
    """The stack's admin over HTTP."""

    def snapshot(self) -> dict[str, Any]:
        """Everything a write could change: the account, every object, the users' API keys."""
        state: dict[str, Any] = {"account": self.ok("GET", "/account")}
        for path in LISTS:
            state[path] = self.every(path) if path != "/teams" or state["account"]["teams_enabled"] else None
        for user in state["/users"]:
            state[f"keys of {user['id']}"] = self.ok("GET", f"/users/{user['id']}/api-keys")["items"]
        return state

    def last_success(self) -> str | None:
        """The newest successful audit entry: every committed change writes one."""
        items = self.ok("GET", "/audit-logs?outcome=success&limit=1")["items"]
        return items[0]["id"] if items else None


def make_objects(c: Client) -> dict[str, list[str]]:
    """Objects for generated requests to act on, by path parameter name."""
    c.ok("PATCH", "/account", {"teams_enabled": True})
    static = c.ok("POST", "/keypairs", {"alias": "fuzz-static", **EC}, 201)
    dynamic = c.ok("POST", "/keypairs", {**EC, "alias": "fuzz-dynamic", "type": "dynamic"}, 201)
    offline = c.ok("POST", "/keypairs", {**EC, "alias": "fuzz-offline", "status": "offline"}, 201)
    digest = base64.b64encode(hashlib.sha256(b"fuzz").digest()).decode()
    signed = c.ok("POST", f"/keypairs/{static['id']}/sign", {"hash": digest})
    user = c.ok("POST", "/users", {"name": "fuzz-user", "roles": ["developer"]}, 201)
    key = c.ok("POST", f"/users/{user['id']}/api-keys", {"name": "fuzz"}, 201)
    group = c.ok("POST", "/groups", {"name": "fuzz-group", "member_ids": [user["id"]]}, 201)
    team = c.ok("POST", "/teams", {"name": "fuzz-team", "group_ids": [group["id"]]}, 201)
    profile = c.ok("POST", "/keypair-profiles", {"name": "fuzz-profile", "mode": "customizable",
                                                 "algorithm": "EdDSA", "team_ids": [team["id"]]}, 201)
    now = utc_now()
    window = c.ok("POST", "/release-windows", {
        "name": "fuzz-window", "keypair_ids": [offline["id"]], "starts_at": rfc3339(now),
        "ends_at": rfc3339(now.replace(year=now.year + 1)), "max_signatures": 100}, 201)
    audit = c.ok("GET", "/audit-logs?limit=1")["items"][0]["id"]
    me = c.ok("GET", "/me")
    return {
        "keypair": [static["id"], dynamic["id"], offline["id"], "fuzz-dynamic"],
        "generation": ["1"],
        "user_id": [user["id"]],
        "key_id": [key["id"]],
        "group_id": [group["id"]],
        "team_id": [team["id"]],
        "profile_id": [profile["id"]],
        "window_id": [window["id"]],
        "entry_id": [audit, signed["signature_log_id"]],
        "account_id": [me["account"]["id"]],
        "certificate": ["production.cer", "test.cer", "tsa.cer"],
        "asset": ["index.html", "app.js"],
    }


@dataclass
class Run:
    """What the fuzzing saw."""

    cases: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def fuzz_operation(c: Client, op: Any, mode: GenerationMode, known: dict[str, list[str]], run: Run) -> None:
    """EXAMPLES generated requests of one mode against one operation, every response checked."""
    strategy = op.as_strategy(generation_mode=mode)
    before = [c.last_success()]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, swap=st.booleans(), pick=st.integers(min_value=0, max_value=99))
    def one(case: Any, swap: bool, pick: int) -> None:
        if swap and case.path_parameters:
            for name in case.path_parameters:
                if name in known:
                    case.path_parameters[name] = known[name][pick % len(known[name])]
        if isinstance(case.body, dict) and case.body.get("key_size") in (3072, 4096):
            case.body["key_size"] = 2048  # a valid size all the same; bigger keys only slow the run down
        response = case.call(base_url=c.endpoint, session=c.session, headers={"X-API-Key": c.key}, timeout=120)
        run.cases += 1
        run.by_status[response.status_code] = run.by_status.get(response.status_code, 0) + 1
        label = f"{mode.value} {op.method.upper()} {op.path} -> {response.status_code}"
        if response.status_code >= 500:
            run.failures.append(f"{label}: {response.text[:300]}")
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # a group of check failures: keep them all
            run.failures.append(f"{label}: {str(exc)[:1500]}")
        if 400 <= response.status_code < 500:
            now = c.last_success()
            if now != before[0]:
                run.failures.append(f"{label}: a refused request wrote {now}")
        elif response.status_code < 300:
            before[0] = c.last_success()

    try:
        one()
    except Unsatisfiable:
        # Nothing in the operation can break the document (no parameters, no body): no negative case.
        assert mode is GenerationMode.NEGATIVE, f"no positive case for {op.method.upper()} {op.path}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(Path(tmp_path_factory.mktemp("fuzz")), schedule_seconds=900, account="fuzz") as running:
        yield running


def test_every_operation_answers_as_its_document_says(stack: StackProcess) -> None:
    c = Client(stack.endpoint, stack.api_key)
    known = make_objects(c)
    served = c.session.get(f"{stack.endpoint}/api/v1/openapi.json", timeout=60).json()
    schema = schemathesis.openapi.from_dict(served)
    # Every request carries the admin's key; leaving it out is the authorisation matrix's subject, not this one's.
    schema.config.generation.update(with_security_parameters=False)
    loaded = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in loaded), [r for r in loaded if not isinstance(r, Ok)]
    operations = [result.ok() for result in loaded if isinstance(result, Ok)]
    # Deletes last, so that every other operation still finds the objects made for it.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    run = Run()
    for op in operations:
        writes = op.method.upper() != "GET"
        objects = c.snapshot() if writes else None
        if op.path != "/api/v1/timestamp":  # RFC 3161: any body gets a TimeStampResp (a rejection) and 200
            fuzz_operation(c, op, GenerationMode.NEGATIVE, known, run)
        if writes and c.snapshot() != objects:
            run.failures.append(f"negative {op.method.upper()} {op.path}: a refused request changed an object")
        fuzz_operation(c, op, GenerationMode.POSITIVE, known, run)
    statuses = dict(sorted(run.by_status.items()))
    print(f"\nfuzz: {run.cases} cases over {len(operations)} operations; statuses {statuses}")
    assert len(operations) == sum(len(item) for item in served["paths"].values())
    for failure in run.failures:
        print(f"\nFAILURE {failure}")
    assert not run.failures, f"{len(run.failures)} failures (printed above), the first: {run.failures[0]}"
    assert c.ok("GET", "/me")["api_key_id"]  # the run kept its own credentials
