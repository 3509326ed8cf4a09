"""Batch signing end to end: many files, few requests, each file its own verifiable signature."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli, Stack

pytestmark = pytest.mark.e2e


class _Counting(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the stack and counts them: how many requests a command made."""

    def _forward(self) -> None:
        server: Any = self.server
        server.requests.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            server.target + self.path, data=self.rfile.read(length) if length else None, method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")},
        )
        try:
            with server.opener.open(request, timeout=120) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_200_files_sign_through_batches_in_a_few_requests(rs: Cli, stack: Stack, tmp_path: Path) -> None:
    rs("keypair", "create", "batch-ed", "--type", "static", "--algorithm", "EdDSA").ok()
    ca_pem = tmp_path / "ca.pem"
    rs("ca", "get", "--output", str(ca_pem)).ok()
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    server.target, server.requests = stack.endpoint, []
    server.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        files = [tmp_path / f"file-{i:03}.txt" for i in range(200)]
        for i, path in enumerate(files):
            path.write_text(f"release file {i}\n")
        result = rs("sign", "--keypair", "batch-ed", "--json", *map(str, files),
                    env={"ROTASIGN_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}).ok()
    finally:
        server.shutdown()
        server.server_close()
    keypair_id = rs("keypair", "desc", "batch-ed", "--json").ok().json()["id"]
    assert server.requests == [  # the keypair and the account read once, then 100 items per request
        ("GET", "/api/v1/keypairs/batch-ed"),
        ("GET", "/api/v1/me"),
        ("POST", f"/api/v1/keypairs/{keypair_id}/sign"),
        ("POST", f"/api/v1/keypairs/{keypair_id}/sign"),
    ]
    report = result.json()
    assert [entry["file"] for entry in report] == [str(f) for f in files]
    assert len({entry["signature_log_id"] for entry in report}) == 200
    for path in (files[0], files[150], files[-1]):
        rs("verify", str(path), "--ca", str(ca_pem)).ok()
