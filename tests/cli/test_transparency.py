"""`python -m rotasign_cli.transparency`: the offline verifier accepts what the service proves and nothing else."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import secrets
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain import jcs, merkle
from rotasign_cli import transparency as verifier
from tests.cli.conftest import Cli
from tests.support import tlog
from tests.support.api import Api, make_account
from tests.support.clock import FakeClock, installed
from tests.support.tlog import RFC8785_NUMBERS

LEAVES = [hashlib.sha256(bytes([i])).digest() for i in range(80)]


# -- the verifier's own arithmetic, against the service's and the specs' -----------------------------


def test_canonical_json_matches_rfc_8785_and_the_service() -> None:
    for bits, text in RFC8785_NUMBERS.items():
        value = struct.unpack(">d", bytes.fromhex(bits))[0]
        assert verifier.canonical_json(value) == text.encode()
    rng = random.Random(1)
    for _ in range(2000):
        value = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if value == value and abs(value) != float("inf"):
            assert verifier.canonical_json(value) == jcs.canonical(value)
    sample = {"\U0001f600": [1, 2.5e-7, None, True], "\ufb33": "\u2028\x00\"", "a": {"b": 10**22, "c": -0.0}}
    assert verifier.canonical_json(sample) == jcs.canonical(sample)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 80])
def test_proof_checks_match_the_rfc(size: int) -> None:
    tiles = merkle.TileSet()
    tiles.append(LEAVES[:size])
    root = tlog.mth(LEAVES[:size])
    assert verifier.merkle_root(LEAVES[:size]) == root
    for index in range(size):
        path = merkle.inclusion_proof(tiles, index, size)
        assert verifier.root_from_inclusion(LEAVES[index], index, size, path) == root
        if path:
            with pytest.raises(verifier.VerificationError):
                verifier.root_from_inclusion(LEAVES[index], index, size, path[:-1])
        if len(path) > 1:  # the same hashes in another order lead elsewhere
            assert verifier.root_from_inclusion(LEAVES[index], index, size, path[::-1]) != root
    for old in range(0, size + 1):
        proof = merkle.consistency_proof(tiles, old, size)
        old_root = tlog.mth(LEAVES[:old])
        verifier.verify_consistency(old, size, old_root, root, proof)
        if 0 < old < size:
            with pytest.raises(verifier.VerificationError):
                verifier.verify_consistency(old, size, hashlib.sha256(b"forged").digest(), root, proof)


# -- the command against what the service proves -------------------------------------------------------


@pytest.fixture
def clock(services: Any) -> Iterator[FakeClock]:
    with installed(services.deps, timedelta(days=1)) as fake:
        yield fake


def write(folder: Path, name: str, value: Any) -> str:
    path = folder / name
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(path)


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = verifier.main(list(argv))
    return status, capsys.readouterr().out.strip()


def grow(api: Api, services: Any, clock: FakeClock, count: int) -> str:
    for i in range(count):
        clock.advance(1)
        digest = base64.b64encode(hashlib.sha256(bytes([i])).digest()).decode()
        api.ok("POST", "/keypairs/cli-log/sign", {"hash": digest})
    clock.advance(60)
    services.checkpointer.run_account(api.account.id, clock.now)
    return str(api.call("GET", "/signature-logs/checkpoint").body.decode())


def test_the_verifier_accepts_the_services_proofs_and_rejects_tampering(
    api: Api, client: Any, services: Any, clock: FakeClock, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    installed: tuple[Path, Path],
) -> None:
    api.ok("POST", "/keypairs", {"alias": "cli-log", "type": "static", "algorithm": "EdDSA"}, 201)
    old = grow(api, services, clock, 3)
    new = grow(api, services, clock, 4)
    trust = write(tmp_path, "trust.json", json.loads(client.http.get(f"/api/v1/trust/{api.account.id}").body))
    entries = api.every("/signature-logs")
    entry = entries[2]
    proof = api.ok("GET", f"/signature-logs/{entry['id']}/proof")
    common = ("--trust", trust, "--log", "signatures")

    status, out = run("inclusion", *common, "--proof", write(tmp_path, "p.json", proof),
                      "--entry", write(tmp_path, "e.json", entry), capsys=capsys)
    assert status == 0 and out == f"OK: entry {entry['id']} is leaf {proof['leaf_index']} of 7 in " \
                                   f"rotasign/{api.account.id}/signatures"
    forged_hash = dict(proof, hashes=[base64.b64encode(bytes(32)).decode(), *proof["hashes"][1:]])
    other_entry = dict(entry, file_name="evil.exe")
    other_account = json.loads(client.http.get(f"/api/v1/trust/{make_account().id}").body)
    for bad_proof, bad_entry, bad_trust, reason in (
            (forged_hash, entry, trust, "does not lead to the checkpoint's root"),
            (proof, other_entry, trust, "the proven leaf is not this entry"),
            (dict(proof, checkpoint=old), entry, trust, "not for the checkpoint's tree size"),
            (dict(proof, checkpoint=proof["checkpoint"].replace("\n7\n", "\n8\n")), entry, trust, "does not verify"),
            (proof, entry, write(tmp_path, "other.json", other_account), "no signature by the account's log key")):
        status, out = run("inclusion", "--trust", bad_trust, "--log", "signatures",
                          "--proof", write(tmp_path, "bad.json", bad_proof),
                          "--entry", write(tmp_path, "bad-entry.json", bad_entry), capsys=capsys)
        assert status == 1 and out.startswith("FAILED") and reason in out, out

    consistency = api.ok("GET", "/signature-logs/consistency?from=3&to=7")
    args = ("--old", write(tmp_path, "old.txt", old), "--new", write(tmp_path, "new.txt", new))
    status, out = run("consistency", *common, *args, "--proof", write(tmp_path, "c.json", consistency), capsys=capsys)
    assert status == 0 and out.endswith("at size 7 extends size 3"), out
    swapped = ("--old", write(tmp_path, "old.txt", new), "--new", write(tmp_path, "new.txt", old))
    status, out = run("consistency", *common, *swapped, "--proof", write(tmp_path, "c.json", consistency),
                      capsys=capsys)
    assert status == 1

    status, out = run("entries", *common, "--checkpoint", write(tmp_path, "cp.txt", new),
                      "--entries", write(tmp_path, "all.json", entries), capsys=capsys)
    assert status == 0 and out == f"OK: the first 7 entries rebuild rotasign/{api.account.id}/signatures", out
    for changed in ([e for e in entries if e["id"] != entry["id"]],
                    [other_entry if e["id"] == entry["id"] else e for e in entries]):
        status, out = run("entries", *common, "--checkpoint", write(tmp_path, "cp.txt", new),
                          "--entries", write(tmp_path, "all.json", changed), capsys=capsys)
        assert status == 1 and out.startswith("FAILED"), out

    # As users get it (`pip install`ed, nothing of the service importable): `python -m rotasign_cli.transparency`.
    installed_run = subprocess.run(
        [sys.executable, "-m", "rotasign_cli.transparency", "inclusion", *common, "--proof", str(tmp_path / "p.json"),
         "--entry", str(tmp_path / "e.json")],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(installed[0])}, cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False)
    assert installed_run.returncode == 0 and installed_run.stdout.startswith("OK: entry"), installed_run.stderr


def test_unusable_input_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.json")
    assert verifier.main(["inclusion", "--trust", missing, "--log", "audit", "--proof", missing]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.e2e
def test_rotasign_verify_takes_its_trust_material_from_the_public_route(rs: Cli, tmp_path: Path) -> None:
    """`rotasign verify --account` fetches `GET /api/v1/trust/{account_id}` with no API key and verifies with it."""
    alias = f"trust-{secrets.token_hex(3)}"
    rs("keypair", "create", alias, "--type", "dynamic", "--algorithm", "ECDSA", "--curve", "P-256").ok()
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"released " + alias.encode())
    rs("sign", "--keypair", alias, str(artifact)).ok()
    account = rs("healthcheck", "--json").ok().json()["account"]["id"]
    rs("verify", str(artifact), "--account", account, env={"ROTASIGN_API_KEY": ""}).ok()
    artifact.write_bytes(b"changed")
    assert rs("verify", str(artifact), "--account", account, env={"ROTASIGN_API_KEY": ""}).code == 1
