"""End to end: signatures proven in the account's transparency log with the installed `rotasign`.

`trust get` saves the account's trust material; `logs proof` saves an entry's inclusion proof beside
its bundle; `verify --require-log` checks it offline with no key and no service, and fails when the
proof is not the bundle's, its entry was altered, or its checkpoint is not signed by the account's log
key; `logs verify` checks that the log only grew between two checkpoints and that entries are in it.
The stack settles entries within seconds (tests/cli/conftest.py), so they join a checkpoint at a tick soon.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.cli.conftest import Cli, Stack, assert_error, checks

pytestmark = pytest.mark.e2e

# A guard against a stack that never checkpoints, not an assertion on speed: entries settle after
# ROTASIGN_MAX_REQUEST_SECONDS + 5 s and join a checkpoint at the next 4-second tick.
INCLUSION_WAIT = 180.0
OFFLINE = {"ROTASIGN_API_KEY": "", "ROTASIGN_ENDPOINT": ""}  # no service, no key: a third party


def proven(rs: Cli, *args: str) -> None:
    """Run `rotasign logs proof ARGS` until the entry is in a checkpoint (409 not_yet_in_log until then)."""
    deadline = time.monotonic() + INCLUSION_WAIT
    while True:
        result = rs("logs", "proof", *args)
        if result.code == 0 or "not_yet_in_log" not in result.err or time.monotonic() > deadline:
            result.ok()
            return
        time.sleep(2)


def signed(rs: Cli, keypair: str, *files: Path, fmt: str = "bundle") -> list[dict[str, Any]]:
    """Sign files; their `sign --json` reports."""
    for path in files:
        path.write_bytes(f"release {path.name} {secrets.token_hex(8)}".encode())
    result: list[dict[str, Any]] = rs("sign", "--keypair", keypair, "--format", fmt, *map(str, files),
                                      "--json").ok().json()
    return result


def edited(source: Path, target: Path, change: Any) -> Path:
    """A copy of a JSON file with `change` applied to its object."""
    document = json.loads(source.read_text())
    change(document)
    target.write_text(json.dumps(document))
    return target


def test_trust_get_saves_the_ca_the_tsa_and_the_log_key(rs: Cli, stack: Stack, tmp_path: Path) -> None:
    account = rs("healthcheck", "--json").ok().json()["account"]["id"]
    line = rs("trust", "get", "--output-dir", str(tmp_path / "trust")).ok().out
    assert line == f"Wrote trust.json, ca.pem, log-key.pem of account {account} into {tmp_path / 'trust'}\n"
    saved = json.loads((tmp_path / "trust" / "trust.json").read_text())
    assert saved["account_id"] == account and saved["log_origins"]["signatures"] == f"rotasign/{account}/signatures"
    key = serialization.load_pem_public_key((tmp_path / "trust" / "log-key.pem").read_bytes())
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert (tmp_path / "trust" / "ca.pem").read_text().count("BEGIN CERTIFICATE") == 2  # production CA, TSA
    # Public: another account's material, by id, with no key at all.
    other = rs("trust", "get", account, "--json", env={"ROTASIGN_API_KEY": ""}).ok().json()
    assert other == saved
    assert_error(rs("trust", "get", "acct_01JF0000000000000000000000"), 4, "(404 not_found)")


def test_verify_require_log_checks_inclusion_offline(rs: Cli, stack: Stack, tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    rs("trust", "get", "--output-dir", str(trust)).ok()
    rs("trust", "get", "--output-dir", str(tmp_path / "other"), env={"ROTASIGN_API_KEY": stack.other_api_key}).ok()
    keypair = f"logged-{secrets.token_hex(3)}"
    rs("keypair", "create", keypair, "--type", "dynamic", "--algorithm", "ECDSA", "--curve", "P-256").ok()
    a, b, c = (tmp_path / name for name in ("a.tar.gz", "b.tar.gz", "c.tar.gz"))
    reports = signed(rs, keypair, a, b, c)
    d = tmp_path / "d.bin"
    (cms_report,) = signed(rs, keypair, d, fmt="cms")

    proven(rs, "--bundle", f"{a}.rsig.json")
    proof = tmp_path / "a.tar.gz.rsig.proof.json"
    assert json.loads(proof.read_text())["entry_id"] == reports[0]["signature_log_id"]
    proven(rs, "--bundle", f"{b}.rsig.json")
    proven(rs, cms_report["signature_log_id"], "--output", f"{d}.rsig.proof.json")

    # A third party: the file, its bundle and proof, the saved trust material; no key, no service.
    result = rs("verify", str(a), "--trust", str(trust), "--require-log", env=OFFLINE).ok()
    assert checks(result)["log"] == "ok" and f"entry {reports[0]['signature_log_id']} is leaf" in result.out
    report = rs("verify", str(a), "--trust", str(trust / "trust.json"), "--require-log", "--json", env=OFFLINE)
    assert [c["ok"] for c in report.ok().json()["checks"] if c["name"] == "log"] == [True]
    # A CMS signature: the proven entry holds its signature value.
    assert checks(rs("verify", str(d), "--trust", str(trust), "--require-log", env=OFFLINE).ok())["log"] == "ok"

    # The proof of another signature.
    failed = rs("verify", str(a), "--trust", str(trust), "--require-log", "--proof", f"{b}.rsig.proof.json",
                env=OFFLINE)
    assert_error(failed, 1, "verification failed (log)")
    assert checks(failed)["signature"] == "ok" and checks(failed)["log"] == "FAILED"
    # Without an entry id to compare (CMS), the proven entry must hold this very signature.
    result = rs("verify", str(d), "--trust", str(trust), "--require-log", "--proof", str(proof), env=OFFLINE)
    assert_error(result, 1, "verification failed (log)")
    assert f"the proven entry {reports[0]['signature_log_id']} is not this signature" in result.out
    # A bundle altered to name another entry.
    renamed = edited(Path(f"{a}.rsig.json"), tmp_path / "renamed.rsig.json",
                     lambda doc: doc.update(signature_log_id=reports[1]["signature_log_id"]))
    assert_error(rs("verify", str(a), "--bundle", str(renamed), "--trust", str(trust), "--require-log",
                    "--proof", str(proof), env=OFFLINE), 1, "verification failed (log)")

    # An entry altered in the proof: it no longer leads to the signed root.
    def alter_entry(doc: dict[str, Any]) -> None:
        entry = json.loads(base64.b64decode(doc["leaf_data"]))
        doc["leaf_data"] = base64.b64encode(json.dumps(dict(entry, file_name="evil.exe")).encode()).decode()

    altered = edited(proof, tmp_path / "altered.json", alter_entry)
    result = rs("verify", str(a), "--trust", str(trust), "--require-log", "--proof", str(altered), env=OFFLINE)
    assert_error(result, 1, "verification failed (log)")
    assert "does not lead to the checkpoint's root" in result.out
    # A checkpoint checked with a log key that is not the account's.
    other_key = json.loads((tmp_path / "other" / "trust.json").read_text())["log_public_key"]
    forged = edited(trust / "trust.json", tmp_path / "forged-trust.json",
                    lambda doc: doc.update(log_public_key=other_key))
    result = rs("verify", str(a), "--trust", str(forged), "--require-log", env=OFFLINE)
    assert_error(result, 1, "verification failed (log)")
    assert checks(result)["chain"] == "ok" and "no signature by the account's log key" in result.out

    # No proof beside the file and no key: the log is not established.
    result = rs("verify", str(c), "--trust", str(trust), "--require-log", env=OFFLINE)
    assert_error(result, 1, "verification failed (log)")
    assert "no inclusion proof" in result.out
    # With a key that may view the logs, the proof of the bundle's entry comes from the service.
    account = json.loads((trust / "trust.json").read_text())["account_id"]
    assert checks(rs("verify", str(c), "--account", account, "--require-log").ok())["log"] == "ok"

    assert_error(rs("verify", str(a), "--ca", str(trust / "ca.pem"), "--require-log"), 2,
                 "--require-log needs the account's log key")
    assert_error(rs("verify", str(a), "--trust", str(trust), "--proof", str(proof)), 2, "--proof goes with")
    assert_error(rs("verify", str(a), "--trust", str(tmp_path / "missing.json")), 2, "no such file")
    assert_error(rs("logs", "proof", "--bundle", str(a)), 2, "is not a valid bundle")
    assert_error(rs("logs", "proof"), 2, "one of the arguments ENTRY_ID --bundle is required")
    assert_error(rs("logs", "proof", "log_01JF0000000000000000000000"), 4, "404")


def test_logs_verify_checks_consistency_across_checkpoints_and_inclusion(rs: Cli, tmp_path: Path) -> None:
    keypair = f"monitored-{secrets.token_hex(3)}"
    rs("keypair", "create", keypair, "--type", "static", "--algorithm", "EdDSA").ok()
    (first,) = signed(rs, keypair, tmp_path / "first.bin")
    proven(rs, first["signature_log_id"], "--output", str(tmp_path / "first.proof.json"))
    old = tmp_path / "old.txt"
    line = rs("logs", "checkpoint", "--output", str(old)).ok().out
    assert line.endswith(f"signed by the account's log key; saved to {old}\n"), line
    old_size = int(old.read_text().splitlines()[1])

    (second,) = signed(rs, keypair, tmp_path / "second.bin")
    # Until it settles and a tick checkpoints it, an entry has no proof: one line, exit 2.
    assert_error(rs("logs", "proof", second["signature_log_id"]), 2, "(409 not_yet_in_log)")
    proven(rs, second["signature_log_id"], "--output", str(tmp_path / "second.proof.json"))
    new = tmp_path / "new.txt"
    result = rs("logs", "verify", "--checkpoint", str(old), "--entry", first["signature_log_id"],
                "--entry", second["signature_log_id"], "--save", str(new)).ok()
    rows = checks(result)
    assert rows == {"checkpoint": "ok", "consistency": "ok", f"entry {first['signature_log_id']}": "ok",
                    f"entry {second['signature_log_id']}": "ok"}, result.out
    new_size = int(new.read_text().splitlines()[1])
    assert new_size > old_size and f"grew from {old_size} to {new_size} entries" in result.out
    assert rs("logs", "verify", "--log", "audit", "--json").ok().json()["verified"] is True

    # A saved checkpoint whose size was edited: its signature no longer holds.
    lines = old.read_text().split("\n")
    lines[1] = str(old_size - 1)
    forged = tmp_path / "forged.txt"
    forged.write_text("\n".join(lines))
    result = rs("logs", "verify", "--checkpoint", str(forged))
    assert_error(result, 1, "the signatures log did not verify (consistency)")
    assert "does not verify with the account's log key" in result.out
    # A checkpoint of the other log is not one of this log.
    audit = tmp_path / "audit.txt"
    rs("logs", "checkpoint", "--log", "audit", "--output", str(audit)).ok()
    assert_error(rs("logs", "verify", "--checkpoint", str(audit)), 1, "(consistency)")
    assert_error(rs("logs", "verify", "--checkpoint", str(tmp_path / "missing.txt")), 2, "no such file")
