"""Shared by the benchmarks: a rotasign stack on moto (in-process or a moto server), request counting, tables."""

from __future__ import annotations

import base64
import gc
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The algorithms of docs/api.md, each with its default sig_alg over a SHA-256 digest.
ALGORITHMS: dict[str, dict[str, Any]] = {
    "RSA-2048": {"algorithm": "RSA", "key_size": 2048},
    "RSA-3072": {"algorithm": "RSA", "key_size": 3072},
    "RSA-4096": {"algorithm": "RSA", "key_size": 4096},
    "ECDSA P-256": {"algorithm": "ECDSA", "curve": "P-256"},
    "ECDSA P-384": {"algorithm": "ECDSA", "curve": "P-384"},
    "ECDSA P-521": {"algorithm": "ECDSA", "curve": "P-521"},
    "Ed25519": {"algorithm": "EdDSA"},
}


def aws_env(endpoint: str | None = None) -> None:
    """Fake credentials and a region; an endpoint routes boto3 and PynamoDB to a moto server."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_SESSION_TOKEN="bench",
        ROTASIGN_STAGE="bench",
        ROTASIGN_TABLE_PREFIX="rotasign-bench-",
    )
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint


@dataclass
class Stack:
    """A bootstrapped account behind Chalice's test client."""

    client: Any
    api_key: str
    account: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP call as the account's admin."""
        headers = {"X-API-Key": self.api_key, "Content-Type": "application/json"}
        fn = getattr(self.client.http, method.lower())
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
        response = fn(f"/api/v1{path}", **kwargs)
        return response.status_code, json.loads(response.body) if response.body else None

    def keypair(self, alias: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """A disk keypair; raises RuntimeError when the service refuses."""
        status, body = self.call("POST", "/keypairs", {"alias": alias, "type": "static", "storage": "disk"} | spec
                                 | extra)
        if status != 201:
            raise RuntimeError(f"creating {alias}: {status} {body}")
        return dict(body)

    def invoke(self, method: str, resource: str, path: str, params: dict[str, str], body: str) -> dict[str, Any]:
        """One request as API Gateway hands it to the Lambda function: `app(event, context)`, no test client.

        Chalice's test client also copies `os.environ` and emulates the gateway on every request; a
        deployed function does neither, so CPU figures of the service are taken through this path.
        """
        from app import app

        event = {
            "resource": resource, "path": path, "httpMethod": method,
            "headers": {"x-api-key": self.api_key, "content-type": "application/json"},
            "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": params, "stageVariables": None, "isBase64Encoded": False, "body": body,
            "requestContext": {"resourcePath": resource, "httpMethod": method, "path": path, "stage": "api",
                               "requestId": uuid.uuid4().hex, "identity": {"sourceIp": "127.0.0.1"}},
        }
        response: dict[str, Any] = app(event, None)
        if response["statusCode"] != 200:
            raise RuntimeError(f"{method} {path}: {response['statusCode']} {response['body'][:300]}")
        return dict(json.loads(response["body"]))

    def sign_lambda(self, ref: str, body: str) -> dict[str, Any]:
        """One signature through the Lambda entry point; raises RuntimeError when refused."""
        return self.invoke("POST", "/api/v1/keypairs/{keypair}/sign", f"/api/v1/keypairs/{ref}/sign",
                           {"keypair": ref}, body)

    def sign(self, ref: str, body: str) -> dict[str, Any]:
        """One signature; raises RuntimeError when refused."""
        status, data = self.call("POST", f"/keypairs/{ref}/sign", body)
        if status != 200:
            raise RuntimeError(f"signing with {ref}: {status} {data}")
        return dict(data)


def quiet_logs() -> None:
    """Keep formatting the service's JSON log lines (a real cost) but send them nowhere."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger("rotasign").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


@contextmanager
def stack(endpoint: str | None = None) -> Iterator[Stack]:
    """Tables, a KMS key and a fresh account on in-process moto (or on the moto server at `endpoint`)."""
    aws_env(endpoint)
    mock: Any = None
    if endpoint is None:
        from moto import mock_aws

        mock = mock_aws()
        mock.start()
    try:
        import boto3

        kms = boto3.client("kms")
        os.environ["ROTASIGN_KMS_KEY_ID"] = kms.create_key(Description="rotasign bench")["KeyMetadata"]["KeyId"]
        from chalice.test import Client

        from app import app
        from chalicelib.services.accounts import bootstrap_account
        from chalicelib.services.container import get_deps, reset_services, set_deps
        from chalicelib.settings import get_settings
        from chalicelib.storage.connection import reset as reset_connections
        from chalicelib.storage.tables import create_tables

        quiet_logs()
        get_settings.cache_clear()
        set_deps(None)
        reset_services()
        reset_connections()
        create_tables(get_settings())
        result = bootstrap_account(get_deps(), f"bench-{uuid.uuid4().hex[:8]}")
        with Client(app, stage_name="local") as client:
            yield Stack(client, result.api_key, result.account_id)
    finally:
        if mock is not None:
            mock.stop()


def sign_body(digest: bytes, hash_algorithm: str = "SHA-256") -> str:
    """The JSON body of a digest-signing request."""
    return json.dumps({"hash": base64.b64encode(digest).decode(), "hash_algorithm": hash_algorithm})


def rate(fn: Callable[[], object], seconds: float, min_iterations: int = 20) -> tuple[int, float]:
    """Call `fn` for about `seconds` (and at least `min_iterations` times): (iterations, elapsed seconds)."""
    count, started = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and count >= min_iterations:
            return count, elapsed


class RequestCounter:
    """Counts (and times) API calls on every botocore client alive in this process, from botocore events.

    The clients are found by walking the heap, so a client that some module keeps privately is counted
    too; a client created while counting would be missed, so `__exit__` checks that none was.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.seconds: dict[str, float] = {}
        self._uid = f"bench-count-{uuid.uuid4()}"
        self._watched: list[Any] = []
        self._started = 0.0

    @staticmethod
    def _clients() -> list[Any]:
        from botocore.client import BaseClient

        return [o for o in gc.get_objects() if isinstance(o, BaseClient)]

    def _before(self, model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))
        self._started = time.perf_counter()

    def _after(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.seconds[service] = self.seconds.get(service, 0.0) + time.perf_counter() - self._started

    def __enter__(self) -> RequestCounter:
        self._watched = self._clients()
        for client in self._watched:
            client.meta.events.register_first("before-call", self._before, unique_id=self._uid)
            client.meta.events.register_last("after-call", self._after, unique_id=f"{self._uid}-after")
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self._watched:
            client.meta.events.unregister("before-call", unique_id=self._uid)
            client.meta.events.unregister("after-call", unique_id=f"{self._uid}-after")
        new = {id(c) for c in self._clients()} - {id(c) for c in self._watched}
        if new:
            raise RuntimeError("a botocore client was created while counting; the count would be incomplete")

    def of(self, service: str) -> list[str]:
        """The operations called on one service, in order."""
        return [op for svc, op in self.calls if svc == service]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float = 20.0) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" that ends the command name, utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table with right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    sys.stdout.flush()


def time_timestamper(signing: Any, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Wrap the sign path's time-stamping; the seconds spent in it add up in the returned one-item list."""
    spent = [0.0]
    timestamps = signing.timestamps
    inner = timestamps.stamp_signature

    def timed(*args: Any, **kwargs: Any) -> str:
        started = clock()
        try:
            return str(inner(*args, **kwargs))
        finally:
            spent[0] += clock() - started

    timestamps.stamp_signature = timed
    return spent
