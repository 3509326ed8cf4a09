"""Every error class of the installed CLI: its exit code and exactly one line on stderr, never a traceback.

0 ok, 1 verification failed, 2 usage, 3 authentication or permission, 4 not found, 5 service or
network unavailable.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli, Stack, assert_error

pytestmark = pytest.mark.e2e


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's scripted status, body and headers, and counts them."""

    def _answer(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        server.requests.append((self.command, self.path, json.loads(self.rfile.read(length)) if length else None))
        status, body, headers = server.routes.get((self.command, self.path), server.script)
        data = body.encode()
        self.send_response(status)
        for name, value in {"Content-Length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def scripted() -> Iterator[Any]:
    """An HTTP server on 127.0.0.1 whose answer a test scripts (fault injection for 5xx and strangers)."""
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.requests = []
    server.script = (200, "{}", {})
    server.routes = {}
    server.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    """A port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_version_and_help(cli: Cli) -> None:
    assert cli("--version").ok().out.startswith("rotasign ")
    helped = cli("keypair", "create", "--help").ok().out
    assert "{static,dynamic}" in helped and "{2048,3072,4096}" in helped
    assert "example:\n  rotasign keypair create" in helped


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("keypair", "frobnicate"), "invalid choice: 'frobnicate'"),
        (("keypair", "create", "x", "--type", "eternal"), "argument --type: invalid choice: 'eternal'"),
        (("keypair", "ls", "--limit", "0"), "'0' must be at least 1"),
        (("logs", "audit", "--keypair", "release"), "rotasign logs audit: unrecognized arguments: --keypair release"),
        (("logs", "signatures", "--outcome", "success"), "unrecognized arguments: --outcome success"),
        (("logs", "audit", "--since", "last tuesday"), "is not a time"),
        (("verify", "x"), "one of the arguments --ca --trust --account is required"),
        (("user", "create", "x", "--permissions", "fly"), "unknown permission 'fly'"),
        (("release-window", "create", "w", "--keypairs", "k", "--starts", "now"), "--ends"),
        (("keypair-profile", "create", "p"), "--mode"),
        (("account", "update", "--teams-enabled", "yes"), "unrecognized arguments: yes"),
        (("logs", "verify", "--entry"), "expected one argument"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: tuple[str, ...], fragment: str) -> None:
    assert_error(cli(*args), 2, fragment)


def test_settings_errors(cli: Cli, stack: Stack, tmp_path: Path) -> None:
    assert_error(cli("keypair", "ls"), 2, "No endpoint")
    assert_error(cli("keypair", "ls", env={"ROTASIGN_ENDPOINT": "127.0.0.1:8000"}), 2,
                 "is not an http(s) URL", "(from ROTASIGN_ENDPOINT)")
    assert_error(cli("keypair", "ls", "--endpoint", "ftp://example.com"), 2, "is not an http(s) URL")
    assert_error(cli("keypair", "ls", "--endpoint", stack.endpoint), 3, "No API key")
    cli.config_file.write_text("this is not\n[an ini file")
    assert_error(cli("keypair", "ls", env={"ROTASIGN_ENDPOINT": stack.endpoint}), 2, "is not valid")


def test_an_endpoint_with_api_v1_works(cli: Cli, stack: Stack) -> None:
    cli("keypair", "ls", "--endpoint", stack.endpoint + "/api/v1", "--api-key", stack.api_key).ok()


def test_local_file_errors_exit_2(rs: Cli, tmp_path: Path) -> None:
    rs("keypair", "create", "errors-ed", "--type", "static", "--algorithm", "EdDSA").ok()
    assert_error(rs("sign", "--keypair", "errors-ed", str(tmp_path / "missing.bin")), 2, "missing.bin: no such file")
    assert_error(rs("sign", "--keypair", "errors-ed", str(tmp_path)), 2, "not a regular file")
    target = tmp_path / "a.bin"
    target.write_bytes(b"a")
    assert_error(rs("sign", "--keypair", "errors-ed", "--output-dir", str(tmp_path / "nope"), str(target)), 2,
                 "not a directory")
    assert_error(rs("sign", "--keypair", "errors-ed", str(target), str(target)), 2, "same signature file")
    assert_error(rs("verify", str(target), "--ca", str(tmp_path / "ca.pem")), 2, "give --bundle or --cms")
    Path(f"{target}.rsig.json").write_text("{}")
    assert_error(rs("verify", str(target), "--ca", str(tmp_path / "ca.pem")), 2, "ca.pem: no such file")
    assert_error(rs("sign", "--keypair", "errors-ed", "--format", "cms", "--hash-algorithm", "SHA-256", str(target)),
                 2, "Ed25519 CMS signatures use SHA-512")


def test_api_refusals_map_to_exit_codes(rs: Cli, stack: Stack, tmp_path: Path) -> None:
    assert_error(rs("keypair", "create", "no-size", "--type", "static", "--algorithm", "RSA"), 2,
                 "RSA keys need key_size (400 validation_error)")
    rs("keypair", "create", "taken", "--type", "static", "--algorithm", "EdDSA").ok()
    assert_error(rs("keypair", "create", "taken", "--type", "static", "--algorithm", "EdDSA"), 2, "409 alias_taken")
    assert_error(rs("keypair", "desc", "no-such-keypair"), 4, "404 not_found")
    assert_error(rs("keypair", "ls", "--api-key", "rsk_nope"), 3, "401 unauthenticated")
    forged = stack.api_key[:-4] + ("aaaa" if not stack.api_key.endswith("aaaa") else "bbbb")
    assert_error(rs("keypair", "ls", env={"ROTASIGN_API_KEY": forged}), 3, "401 unauthenticated")
    rs("keypair", "suspend", "taken").ok()
    target = tmp_path / "a.bin"
    target.write_bytes(b"release")
    assert_error(rs("sign", "--keypair", "taken", str(target)), 3, "403 keypair_offline")
    assert not Path(f"{target}.rsig.json").exists()


def test_refresh_of_several_reports_each_failure_and_exits_with_the_first(rs: Cli) -> None:
    rs("keypair", "create", "static-one", "--type", "static", "--algorithm", "EdDSA").ok()
    result = rs("keypair", "refresh", "static-one,missing-one")
    assert result.code == 2 and result.out == ""
    assert result.err.splitlines() == [
        "rotasign: error: static-one: Only dynamic keypairs can be refreshed (409 not_dynamic)",
        "rotasign: error: missing-one: No such keypair (404 not_found)",
        "rotasign: error: 2 of 2 keypairs failed.",
    ]


def test_an_unreachable_service_exits_5(cli: Cli) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    assert_error(cli("healthcheck", "--endpoint", endpoint, "--api-key", "rsk_x_y"), 5,
                 f"Cannot reach {endpoint}: connection refused")
    assert_error(cli("keypair", "ls", "--endpoint", "http://no-such-host.invalid", "--api-key", "rsk_x_y"), 5,
                 "Cannot reach http://no-such-host.invalid")


def test_an_unavailable_service_is_retried_then_exits_5(cli: Cli, scripted: Any) -> None:
    body = json.dumps({"error": {"code": "storage_unavailable", "message": "Storage is unavailable.", "details": {}}})
    scripted.script = (503, body, {"Content-Type": "application/json", "Retry-After": "0"})
    result = cli("keypair", "ls", "--endpoint", scripted.endpoint, "--api-key", "rsk_x_y")
    assert_error(result, 5, "Storage is unavailable (503 storage_unavailable)")
    assert len(scripted.requests) == 4  # the first try and three retries

    scripted.requests.clear()
    scripted.script = (429, json.dumps({"error": {"code": "throttled", "message": "Slow down.", "details": {}}}),
                       {"Retry-After": "0"})
    assert_error(cli("keypair", "ls", "--endpoint", scripted.endpoint, "--api-key", "rsk_x_y"), 5, "429 throttled")


def test_a_signature_that_raced_a_refresh_is_retried(cli: Cli, scripted: Any, tmp_path: Path) -> None:
    raced = _error_body("conflict", "The keypair changed while signing; try again.")
    scripted.routes = {
        ("GET", "/api/v1/keypairs/release"): (403, _error_body("forbidden", "Missing permission view_keypair."), {}),
        ("POST", "/api/v1/keypairs/release/sign"): (409, raced, {"Content-Type": "application/json"}),
    }
    target = tmp_path / "app.bin"
    target.write_bytes(b"release")
    result = cli("sign", "--keypair", "release", str(target), "--endpoint", scripted.endpoint, "--api-key", "rsk_x_y")
    assert_error(result, 2, "The keypair changed while signing; try again (409 conflict)")
    assert [r[:2] for r in scripted.requests].count(("POST", "/api/v1/keypairs/release/sign")) == 4  # 3 retries


def test_an_endpoint_that_is_not_rotasign(cli: Cli, scripted: Any) -> None:
    scripted.script = (404, "<html>Not Found</html>", {"Content-Type": "text/html"})
    assert_error(cli("keypair", "ls", "--endpoint", scripted.endpoint, "--api-key", "rsk_x_y"), 4,
                 "answered HTTP 404; is the endpoint the rotasign service?")
    scripted.script = (200, "<html>hello</html>", {"Content-Type": "text/html"})
    assert_error(cli("keypair", "desc", "x", "--endpoint", scripted.endpoint, "--api-key", "rsk_x_y"), 5,
                 "not a JSON answer")


def _error_body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message, "details": {}}})


def test_a_key_that_may_sign_but_not_view_keypairs_still_signs(cli: Cli, scripted: Any, tmp_path: Path) -> None:
    """A least-privilege CI key: `GET /keypairs/{k}` is forbidden, so the CLI signs without knowing the key type."""
    scripted.routes = {
        ("GET", "/api/v1/keypairs/release"): (403, _error_body("forbidden", "Missing permission view_keypair."), {}),
        ("POST", "/api/v1/keypairs/release/sign"): (403, _error_body("not_allowed", "Not in allowed_users."), {}),
    }
    target = tmp_path / "app.bin"
    target.write_bytes(b"release")
    result = cli("sign", "--keypair", "release", "--format", "cms", str(target), "--endpoint", scripted.endpoint,
                 "--api-key", "rsk_x_y")
    assert_error(result, 3, "Not in allowed_users (403 not_allowed)")
    method, path, body = scripted.requests[-1]
    assert (method, path) == ("POST", "/api/v1/keypairs/release/sign")
    assert body["hash_algorithm"] == "SHA-512" and "message" in body and body["file_name"] == "app.bin"


def test_healthcheck_shows_what_holds_before_the_failure(cli: Cli, stack: Stack) -> None:
    result = cli("healthcheck", "--endpoint", stack.endpoint)
    assert_error(result, 3, "No API key")
    assert [line.split()[0] for line in result.out.splitlines()] == ["endpoint", "service"]


def test_verify_with_an_account_of_a_service_without_a_trust_route(cli: Cli, scripted: Any, tmp_path: Path) -> None:
    scripted.script = (403, json.dumps({"message": "Missing Authentication Token"}), {})
    target = tmp_path / "app.bin"
    target.write_bytes(b"x")
    Path(f"{target}.rsig.json").write_text("{}")
    assert_error(cli("verify", str(target), "--account", "acct_01", "--endpoint", scripted.endpoint), 4,
                 "does not publish trust material", "use --ca")
    assert scripted.requests[0][:2] == ("GET", "/api/v1/trust/acct_01")
