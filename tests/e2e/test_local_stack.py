"""End to end: the local stack (`python -m localdev run`, what `make run` starts) on free ports, over real HTTP.

The stack runs in a subprocess with its own moto server, so it cannot collide with the in-process moto
of the other tests; it is driven with urllib only, as a user's curl would drive it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# Guards against a hung start or stop on a loaded machine; not assertions on speed.
START_TIMEOUT = 240.0
STOP_TIMEOUT = 60.0
WAIT_FOR_REFRESH = 120.0
# A demo interval: the dynamic keypair below is refreshed by the stack's own timer and poller.
SCHEDULE_SECONDS = 3
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Stack:
    """A running `python -m localdev run` and what it printed."""

    process: subprocess.Popen[str]
    state_dir: Path
    stderr: Path
    printed: dict[str, str]
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return self.printed["ROTASIGN_ENDPOINT"]

    @property
    def api_key(self) -> str:
        return self.printed["ROTASIGN_API_KEY"]

    def localdev(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another localdev command (`make bootstrap`, `make tick`) against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "localdev", "--state-dir", str(self.state_dir), *args],
            cwd=REPO, env=_child_env(), capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
        )


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start_stack(state_dir: Path, stderr: Path) -> Stack:
    command = [
        sys.executable, "-m", "localdev", "--state-dir", str(state_dir), "run",
        "--port", "0", "--emulator-port", "0", "--schedule-seconds", str(SCHEDULE_SECONDS), "--account", "e2e",
    ]
    with stderr.open("w") as err:
        process = subprocess.Popen(command, cwd=REPO, env=_child_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    stack = Stack(process, state_dir, stderr, {})
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.output.append(line)
            lines.put(line)
        lines.put(None)

    stack.reader = threading.Thread(target=pump, daemon=True)
    stack.reader.start()
    deadline = time.monotonic() + START_TIMEOUT
    wanted = ("ROTASIGN_ENDPOINT", "ROTASIGN_API_KEY", "SOFTHSM2_CONF")
    while not all(name in stack.printed for name in wanted):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            pytest.fail(f"the local stack did not start: {stderr.read_text()[-2000:]}")
        if line is None:
            pytest.fail(f"the local stack exited ({process.wait()}): {stderr.read_text()[-2000:]}")
        match = re.fullmatch(r"([A-Z0-9_]+)=(\S+)", line.strip())
        if match:
            stack.printed[match.group(1)] = match.group(2)
    return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One local stack for the module, on free ports, in a temporary state folder."""
    root = tmp_path_factory.mktemp("localstack")
    running = _start_stack(root / "state", root / "stack.err")
    yield running
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGINT)
        try:
            running.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            running.process.kill()


def call(method: str, url: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    """One HTTP request; returns (status, decoded JSON body or None)."""
    headers = {"X-API-Key": key} if key else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http://127.0.0.1 only
    try:
        with _OPENER.open(request, timeout=120) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def api(stack: Stack, method: str, path: str, body: Any = None, status: int = 200, key: str | None = None) -> Any:
    """A call as the stack's admin (or `key`) that must answer `status`."""
    code, answer = call(method, f"{stack.endpoint}/api/v1{path}", key or stack.api_key, body)
    assert code == status, (method, path, code, answer)
    return answer


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _verify_with_openssl(tmp: Path, public_pem: str, digest: bytes, signature: bytes) -> None:
    (tmp / "pub.pem").write_text(public_pem)
    (tmp / "digest.bin").write_bytes(digest)
    (tmp / "sig.bin").write_bytes(signature)
    result = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp / "pub.pem"),
         "-in", str(tmp / "digest.bin"), "-sigfile", str(tmp / "sig.bin")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _sign_and_verify(stack: Stack, keypair: dict[str, Any], tmp: Path) -> None:
    digest = hashlib.sha256(b"release artifact " + keypair["id"].encode()).digest()
    signed = api(stack, "POST", f"/keypairs/{keypair['alias']}/sign",
                 {"hash": base64.b64encode(digest).decode(), "hash_algorithm": "SHA-256"})
    signature = base64.b64decode(signed["signature"])
    certificate = x509.load_pem_x509_certificate(signed["certificate"]["pem"].encode())
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    _verify_with_openssl(tmp, pem, digest, signature)


def test_prints_what_a_user_needs_and_keeps_secrets_out(stack: Stack) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", stack.endpoint)
    assert stack.api_key.startswith("rsk_")
    conf = Path(stack.printed["SOFTHSM2_CONF"])
    assert conf.is_file() and conf.is_relative_to(stack.state_dir)
    printed = "".join(stack.output)
    assert '-H "X-API-Key: $ROTASIGN_API_KEY" $ROTASIGN_ENDPOINT/api/v1/me' in printed

    state_file = stack.state_dir / "stack.json"
    assert state_file.stat().st_mode & 0o777 == 0o600
    state = json.loads(state_file.read_text())
    assert state["endpoint"] == stack.endpoint
    everything = printed + stack.stderr.read_text()
    assert state["hsm_pin"] not in everything
    assert state["token_key"] not in everything


def test_health_me_and_authentication(stack: Stack) -> None:
    status, health = call("GET", f"{stack.endpoint}/api/v1/health")
    assert status == 200 and health["status"] == "ok"
    me = api(stack, "GET", "/me")
    assert me["account"]["name"] == "e2e"
    assert "generate_keypair" in me["permissions"]

    status, body = call("GET", f"{stack.endpoint}/api/v1/me")
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    forged = stack.api_key[:-4] + ("aaaa" if not stack.api_key.endswith("aaaa") else "bbbb")
    status, body = call("GET", f"{stack.endpoint}/api/v1/keypairs", forged)
    assert status == 401 and body["error"]["code"] == "unauthenticated"


def test_disk_keypair_lifecycle(stack: Stack, tmp_path: Path) -> None:
    created = api(stack, "POST", "/keypairs", {"alias": "e2e-disk", "type": "static", "algorithm": "ECDSA",
                                                "curve": "P-256", "storage": "disk"}, status=201)
    assert created["storage"] == "disk" and created["generation"] == 1
    public = serialization.load_pem_public_key(created["public_key"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"

    assert api(stack, "GET", "/keypairs/e2e-disk")["id"] == created["id"]
    listed = api(stack, "GET", "/keypairs?storage=disk")
    assert created["id"] in [item["id"] for item in listed["items"]]
    _sign_and_verify(stack, created, tmp_path)

    api(stack, "DELETE", f"/keypairs/{created['id']}", status=204)
    assert api(stack, "GET", f"/keypairs/{created['id']}", status=404)["error"]["code"] == "not_found"
    assert created["id"] not in [item["id"] for item in api(stack, "GET", "/keypairs")["items"]]


def test_hsm_keypair_lifecycle(stack: Stack, tmp_path: Path) -> None:
    created = api(stack, "POST", "/keypairs", {"alias": "e2e-hsm", "type": "static", "algorithm": "ECDSA",
                                                "curve": "P-256", "storage": "hsm"}, status=201)
    assert created["storage"] == "hsm"
    public = serialization.load_pem_public_key(created["public_key"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert api(stack, "GET", "/keypairs/e2e-hsm")["key_id"] == created["key_id"]
    _sign_and_verify(stack, created, tmp_path)

    api(stack, "DELETE", "/keypairs/e2e-hsm", status=204)
    api(stack, "GET", "/keypairs/e2e-hsm", status=404)


def test_schedule_and_poller_refresh_a_dynamic_keypair(stack: Stack) -> None:
    if any("refresh_tick is not defined" in line for line in stack.output):
        pytest.skip("app.py has no refresh_tick yet")
    created = api(stack, "POST", "/keypairs", {"alias": "e2e-dynamic", "type": "dynamic", "algorithm": "ECDSA",
                                                "curve": "P-256", "storage": "disk"}, status=201)
    deadline = time.monotonic() + WAIT_FOR_REFRESH
    current = created
    while current["generation"] == created["generation"]:
        assert time.monotonic() < deadline, "the local schedule never refreshed the dynamic keypair"
        time.sleep(0.5)
        current = api(stack, "GET", "/keypairs/e2e-dynamic")
    # A delete that races the next refresh loses the optimistic lock (409 conflict); a client retries.
    while (status := call("DELETE", f"{stack.endpoint}/api/v1/keypairs/e2e-dynamic", stack.api_key)[0]) == 409:
        assert time.monotonic() < deadline, "the dynamic keypair could not be deleted"
    assert status == 204

    assert current["key_id"] != created["key_id"]
    assert current["certificate"]["pem"] != created["certificate"]["pem"]
    entries = api(stack, "GET", f"/audit-logs?type=dynamic&action=refresh&resource_id={created['id']}")["items"]
    assert entries and all(entry["actor"] == "system:scheduler" for entry in entries)


def test_bootstrap_another_account(stack: Stack) -> None:
    theirs = api(stack, "POST", "/keypairs", {"alias": "e2e-private", "type": "static", "algorithm": "EdDSA",
                                               "storage": "disk"}, status=201)
    result = stack.localdev("bootstrap", "--account", "second")
    assert result.returncode == 0, result.stderr
    printed = dict(re.findall(r"^([A-Z_]+)=(\S+)$", result.stdout, re.MULTILINE))
    assert printed["ROTASIGN_ENDPOINT"] == stack.endpoint
    second = printed["ROTASIGN_API_KEY"]
    assert api(stack, "GET", "/me", key=second)["account"]["name"] == "second"
    api(stack, "GET", f"/keypairs/{theirs['id']}", key=second, status=404)

    again = stack.localdev("bootstrap", "--account", "second")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_tick_reports_what_it_refreshed(stack: Stack) -> None:
    result = stack.localdev("tick")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    patterns = (
        r"nothing due",
        r"app\.refresh_tick is not defined yet.*",
        r"refreshed (kp_\S+).*: generation (\d+) -> (\d+)",
        r"kp_\S+.*: nothing to do \(already at generation \d+\)",
        r"kp_\S+.*: gone \(deleted\)",
    )
    assert lines
    for line in lines:
        assert any(re.fullmatch(p, line) for p in patterns), line
        refreshed = re.fullmatch(patterns[2], line)
        if refreshed:
            keypair_id, before, after = refreshed.groups()
            assert int(after) > int(before)
            assert api(stack, "GET", f"/keypairs/{keypair_id}")["generation"] >= int(after)


# -- the signing path under concurrency, over real HTTP ----------------------------------------------


def _token_time(token_b64: str) -> datetime:
    """genTime of an RFC 3161 token (read with asn1crypto, not with the service's code)."""
    from asn1crypto import cms, tsp

    content = cms.ContentInfo.load(base64.b64decode(token_b64))["content"]
    info = tsp.TSTInfo.load(content["encap_content_info"]["content"].parsed.dump())
    return info["gen_time"].native.astimezone(UTC)  # type: ignore[no-any-return]


def _generations(stack: Stack, kp_id: str) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    token = None
    while True:
        page = api(stack, "GET", f"/keypairs/{kp_id}/generations?limit=500" + (f"&next={token}" if token else ""))
        found.update({g["generation"]: g for g in page["items"]})
        token = page["next"]
        if token is None:
            return found


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_signatures_racing_manual_and_scheduled_refreshes_stay_inside_their_generation(stack: Stack) -> None:
    """Hundreds of signatures while the keypair is refreshed by hand and by the stack's own schedule:
    each verifies against the certificate of the generation it names, and its time-stamp lies after that
    generation was made and before it was retired."""
    kp = api(stack, "POST", "/keypairs", {"alias": "busy-release", "type": "dynamic", "algorithm": "ECDSA",
                                          "curve": "P-256"}, status=201)
    admin = api(stack, "GET", "/me")["user"]["id"]
    results: list[tuple[dict[str, Any], bytes]] = []
    failures: list[Any] = []
    done = threading.Event()

    def sign(worker: int) -> None:
        i = 0
        while not done.is_set():
            digest = hashlib.sha256(f"artifact {worker}-{i}".encode()).digest()
            code, body = call("POST", f"{stack.endpoint}/api/v1/keypairs/{kp['id']}/sign", stack.api_key,
                              {"hash": base64.b64encode(digest).decode()})
            (results.append((body, digest)) if code == 200 else failures.append((code, body)))
            i += 1

    def refresh() -> None:
        # Slower than the schedule, so that the stack's own ticks find the keypair due in between.
        while not done.wait(SCHEDULE_SECONDS * 1.5):
            code, body = call("POST", f"{stack.endpoint}/api/v1/keypairs/{kp['id']}/refresh", stack.api_key)
            if code != 200:
                failures.append((code, body))

    def refreshers() -> set[str]:
        entries = api(stack, "GET", f"/audit-logs?type=dynamic&action=refresh&resource_id={kp['id']}&limit=500")
        return {e["actor"] for e in entries["items"]}

    threads = [threading.Thread(target=refresh)] + [threading.Thread(target=sign, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT_FOR_REFRESH
    while time.monotonic() < deadline and not (len(results) >= 300 and refreshers() == {"system:scheduler", admin}):
        time.sleep(0.5)
    done.set()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert len(results) >= 300 and refreshers() == {"system:scheduler", admin}  # by hand and on schedule
    generations = _generations(stack, kp["id"])
    assert len({body["generation"] for body, _ in results}) > 3, "the refreshes raced the signatures"
    for body, digest in results:
        generation = generations[body["generation"]]
        assert body["key_id"] == generation["key_id"]
        assert body["certificate"]["pem"] == generation["certificate"]["pem"]
        certificate = x509.load_pem_x509_certificate(body["certificate"]["pem"].encode())
        public = certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(base64.b64decode(body["signature"]), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        stamped = _token_time(body["timestamp_token"])
        assert _when(generation["created_at"]) <= stamped
        if generation["retired_at"] is not None:
            assert stamped < _when(generation["retired_at"])


def test_concurrent_signers_of_a_single_use_keypair_each_get_their_own_generation(stack: Stack) -> None:
    kp = api(stack, "POST", "/keypairs", {"alias": "one-shot", "type": "dynamic", "algorithm": "EdDSA",
                                          "refresh_after_sign": True}, status=201)
    signers = 12
    results: list[dict[str, Any]] = []
    failures: list[Any] = []

    def sign(n: int) -> None:
        code, body = call("POST", f"{stack.endpoint}/api/v1/keypairs/{kp['id']}/sign", stack.api_key,
                          {"hash": base64.b64encode(hashlib.sha256(b"%d" % n).digest()).decode()})
        (results if code == 200 else failures).append(body)

    threads = [threading.Thread(target=sign, args=(n,)) for n in range(signers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == [] and len(results) == signers
    assert len({r["generation"] for r in results}) == signers
    assert len({r["key_id"] for r in results}) == signers
    logged = api(stack, "GET", f"/signature-logs?keypair_id={kp['id']}&status=success&limit=500")["items"]
    assert sorted(e["generation"] for e in logged) == sorted(r["generation"] for r in results)


def test_a_batch_of_100_signs_and_every_signature_verifies_with_openssl(stack: Stack, tmp_path: Path) -> None:
    kp = api(stack, "POST", "/keypairs", {"alias": "batch-rsa", "type": "static", "algorithm": "RSA",
                                          "key_size": 2048}, status=201)
    digests = [hashlib.sha256(f"file {i}".encode()).digest() for i in range(100)]
    items = [{"hash": base64.b64encode(d).decode(), "file_name": f"file-{i}.bin"} for i, d in enumerate(digests)]
    signed = api(stack, "POST", f"/keypairs/{kp['id']}/sign", {"items": items})["items"]
    assert len(signed) == 100 and len({s["signature_log_id"] for s in signed}) == 100
    (tmp_path / "cert.pem").write_text(signed[0]["certificate"]["pem"])
    for digest, answer in zip(digests, signed, strict=True):
        (tmp_path / "digest.bin").write_bytes(digest)
        (tmp_path / "sig.bin").write_bytes(base64.b64decode(answer["signature"]))
        result = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-certin", "-inkey", str(tmp_path / "cert.pem"), "-in",
             str(tmp_path / "digest.bin"), "-sigfile", str(tmp_path / "sig.bin"), "-pkeyopt", "digest:sha256"],
            capture_output=True, text=True, check=False)
        assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stderr
    logged = api(stack, "GET", f"/signature-logs?keypair_id={kp['id']}&limit=500")["items"]
    assert sorted(e["file_name"] for e in logged) == sorted(f"file-{i}.bin" for i in range(100))


# -- last: it stops the module's stack ----------------------------------------------------------------


def test_ctrl_c_stops_everything(stack: Stack) -> None:
    state = json.loads((stack.state_dir / "stack.json").read_text())
    api_port = int(stack.endpoint.rsplit(":", 1)[1])
    assert _accepts(api_port) and _accepts(state["emulator_port"])

    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=STOP_TIMEOUT) == 0
    assert stack.reader is not None
    stack.reader.join(timeout=STOP_TIMEOUT)
    assert not _accepts(api_port)
    assert not _accepts(state["emulator_port"])
    assert not (stack.state_dir / "stack.json").exists()
    assert any("stopped" in line for line in stack.output)

    gone = stack.localdev("tick")
    assert gone.returncode == 1 and "make run" in gone.stderr
