"""End to end: a release engineer's day with the installed `rotasign`, over real HTTP against the local stack.

configure and healthcheck, create keypairs of each algorithm, list and describe them, refresh dynamic
ones, and find the refreshes and the signatures in the logs, as tables and as JSON.
"""

from __future__ import annotations

import os
import pty
import re
import secrets
import stat
import subprocess

import pytest

from tests.cli.conftest import Cli, Stack, assert_error, table

pytestmark = pytest.mark.e2e

# Every algorithm of docs/api.md, on both storages between them.
KEY_SPECS = [
    ("RSA", ["--key-size", "2048"], "disk", "RSA-2048"),
    ("RSA", ["--key-size", "3072"], "hsm", "RSA-3072"),
    ("RSA", ["--key-size", "4096"], "disk", "RSA-4096"),
    ("ECDSA", ["--curve", "P-256"], "hsm", "ECDSA P-256"),
    ("ECDSA", ["--curve", "P-384"], "disk", "ECDSA P-384"),
    ("ECDSA", ["--curve", "P-521"], "disk", "ECDSA P-521"),
    ("EdDSA", [], "hsm", "Ed25519"),
]


def alias(prefix: str) -> str:
    """A fresh alias: the stack is shared by the session's tests."""
    return f"{prefix}-{secrets.token_hex(3)}"


def test_configure_writes_a_private_profile_and_healthcheck_uses_it(cli: Cli, stack: Stack) -> None:
    secret = stack.api_key.rsplit("_", 1)[1]
    saved = cli("configure", "--endpoint", stack.endpoint + "/api/v1/", "--api-key-stdin", input=stack.api_key + "\n")
    saved.ok()
    assert re.fullmatch(r"Saved profile 'default' \(http://127\.0\.0\.1:\d+\) in .*: admin \(usr_\w+\) in account cli "
                        r"\(acct_\w+\)\n", saved.out), saved.out
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600
    assert f"endpoint = {stack.endpoint}\n" in cli.config_file.read_text()  # /api/v1/ dropped

    health = cli("healthcheck").ok()
    rows = dict(line.split(None, 1) for line in health.out.replace("api key", "api_key").splitlines())
    assert rows["endpoint"].startswith(f"{stack.endpoint} (from profile 'default'")
    assert rows["service"].startswith("ok, version ")
    key_id = stack.api_key.split("_")[1]
    assert rows["api_key"].startswith(f"rsk_{key_id}_**** valid")
    assert "sign" in rows["permissions"] and "generate_keypair" in rows["permissions"]
    assert secret not in health.out + health.err

    report = cli("healthcheck", "--json").ok().json()
    assert report["account"]["name"] == "cli" and "view_audit_log" in report["permissions"]
    assert report["api_key"] == f"rsk_{key_id}_****"


def test_profiles_and_the_precedence_of_flags_environment_and_file(cli: Cli, stack: Stack) -> None:
    cli("configure", "--endpoint", stack.endpoint, "--api-key-stdin", input=stack.api_key).ok()
    bad_key = "rsk_01ABCDEFGHJKMNPQRSTVWXYZ00_" + "a" * 52
    cli("configure", "--profile", "broken", "--endpoint", stack.endpoint, "--api-key-stdin", "--no-check",
        input=bad_key).ok()
    profiles = cli.config_file.read_text()
    assert "[default]" in profiles and "[broken]" in profiles

    assert_error(cli("healthcheck", "--profile", "broken"), 3, "401 unauthenticated")
    assert_error(cli("keypair", "ls", "--profile", "missing"), 2, "No profile 'missing'")
    # The environment outranks the default profile...
    assert_error(cli("keypair", "ls", env={"ROTASIGN_API_KEY": bad_key}), 3)
    # ...an explicit --profile outranks the environment...
    cli("keypair", "ls", "--profile", "default", env={"ROTASIGN_API_KEY": bad_key}).ok()
    # ...and a flag outranks everything; ROTASIGN_PROFILE picks the profile when no flag does.
    cli("keypair", "ls", "--profile", "broken", "--api-key", stack.api_key).ok()
    assert_error(cli("keypair", "ls", env={"ROTASIGN_PROFILE": "broken"}), 3)


@pytest.mark.parametrize(("algorithm", "params", "storage", "label"), KEY_SPECS, ids=[s[3] for s in KEY_SPECS])
def test_create_each_algorithm(rs: Cli, algorithm: str, params: list[str], storage: str, label: str) -> None:
    name = alias("algo")
    created = rs("keypair", "create", name, "--type", "static", "--algorithm", algorithm, *params,
                 "--storage", storage).ok()
    match = re.fullmatch(
        rf"Created keypair {name} \((kp_\w+)\): static {label}, {storage}, online, "
        rf"generation 1, key ([0-9a-f]{{12}})\n",
        created.out,
    )
    assert match, created.out
    keypair_id, key_prefix = match.groups()

    described = rs("keypair", "desc", name, "--json").ok().json()
    assert described["id"] == keypair_id and described["key_id"].startswith(key_prefix)
    assert described["algorithm"] == algorithm and described["storage"] == storage
    rows = table(rs("keypair", "ls", "--alias", name).ok().out)
    assert rows[0][:5] == ["ALIAS", "ID", "TYPE", "ALGORITHM", "CATEGORY"]
    assert rows[1][:5] == [name, keypair_id, "static", label, "production"]


def test_create_covers_every_field_and_update_changes_them(rs: Cli) -> None:
    name = alias("fields")
    user_id = rs("healthcheck", "--json").ok().json()["user"]["id"]
    created = rs("keypair", "create", name, "--type", "dynamic", "--algorithm", "ECDSA", "--curve", "P-256",
                 "--category", "test", "--storage", "disk", "--status", "offline", "--access", "restricted",
                 "--allowed-users", user_id, "--no-certificate", "--refresh-after-sign", "--json").ok().json()
    assert {k: created[k] for k in ("type", "category", "status", "access", "allowed_users", "generate_certificate",
                                    "refresh_after_sign", "certificate")} == {
        "type": "dynamic", "category": "test", "status": "offline", "access": "restricted",
        "allowed_users": [user_id], "generate_certificate": False, "refresh_after_sign": True, "certificate": None,
    }
    renamed = alias("renamed")
    line = rs("keypair", "update", name, "--alias", renamed, "--access", "open", "--allowed-users", "").ok().out
    assert line.startswith(f"Updated keypair {renamed} ({created['id']})")
    assert rs("keypair", "unsuspend", renamed).ok().out.startswith(f"Unsuspended keypair {renamed} ")
    after = rs("keypair", "desc", created["id"], "--json").ok().json()
    assert (after["alias"], after["access"], after["allowed_users"], after["status"]) == (renamed, "open", [], "online")
    assert rs("keypair", "suspend", renamed, "--json").ok().json()[0]["status"] == "offline"
    assert_error(rs("keypair", "update", renamed), 2, "nothing to change")
    # --team reaches the service, which refuses it: this account has no teams.
    assert_error(rs("keypair", "create", alias("x"), "--team", "team_01ABC", "--type", "static",
                    "--algorithm", "EdDSA"), 2, "(400 validation_error)")


def test_delete_asks_unless_yes(rs: Cli) -> None:
    name = alias("gone")
    keypair = rs("keypair", "create", name, "--type", "static", "--algorithm", "EdDSA", "--json").ok().json()
    assert_error(rs("keypair", "delete", name), 2, "refusing without --yes")
    rs("keypair", "desc", name).ok()
    assert rs("keypair", "delete", name, "--yes").ok().out == (
        f"Deleted keypair {name} ({keypair['id']}); its generations and log entries are kept.\n"
    )
    assert_error(rs("keypair", "desc", name), 4, "404 not_found")


def test_delete_on_a_terminal_asks_first(rs: Cli) -> None:
    name = alias("asked")
    rs("keypair", "create", name, "--type", "static", "--algorithm", "EdDSA").ok()
    for answer, code in (("n", 2), ("y", 0)):
        master, slave = pty.openpty()
        process = subprocess.Popen(rs.command("keypair", "delete", name), env=rs.environment(), stdin=slave,
                                   stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        os.write(master, f"{answer}\n".encode())
        out, _ = process.communicate(timeout=120)
        prompt = os.read(master, 4096).decode()
        os.close(master)
        assert process.returncode == code
        assert f"Delete keypair {name} (kp_" in prompt and "[y/N]" in prompt
    assert out.decode().startswith(f"Deleted keypair {name} ")
    assert_error(rs("keypair", "desc", name), 4)


def test_refresh_several_then_find_the_refreshes_and_signatures_in_the_logs(rs: Cli, tmp_path: object) -> None:
    first, second = alias("dyn"), alias("dyn")
    before = {}
    for name in (first, second):
        before[name] = rs("keypair", "create", name, "--type", "dynamic", "--algorithm", "ECDSA", "--curve", "P-256",
                          "--json").ok().json()
    refreshed = rs("keypair", "refresh", f"{first},{second}").ok().out.splitlines()
    assert [line.split()[2] for line in refreshed] == [first, second]
    for name in (first, second):
        now = rs("keypair", "desc", name, "--json").ok().json()
        assert now["generation"] > before[name]["generation"] and now["key_id"] != before[name]["key_id"]

    generations = table(rs("keypair", "generations", first).ok().out)
    assert generations[0][:2] == ["GEN", "KEY ID"] and len(generations) >= 3

    me = rs("healthcheck", "--json").ok().json()["user"]["id"]
    kp_id = before[first]["id"]
    audit = rs("logs", "audit", "--type", "dynamic", "--action", "refresh", "--resource", kp_id, "--actor", me,
               "--since", "1h", "--json").ok().json()
    assert audit and all(e["resource_id"] == kp_id and e["actor"] == me and e["action"] == "refresh" for e in audit)
    listed = rs("logs", "audit", "--type", "dynamic", "--action", "refresh", "--resource", kp_id, "--actor", me).ok()
    rows = table(listed.out)
    assert rows[0][:6] == ["AT", "TYPE", "ACTION", "OUTCOME", "ACTOR", "RESOURCE"]
    assert [audit[0]["at"], "dynamic", "refresh", "success", me, first] in [row[:6] for row in rows[1:]]

    signed = rs("sign-hash", "--keypair", first, "--digest", "ab" * 32, "--file-name", "app.tar.gz", "--json").ok()
    log_id = signed.json()["signature_log_id"]
    entries = rs("logs", "signatures", "--keypair", first, "--status", "success", "--json").ok().json()
    assert [e["id"] for e in entries] == [log_id] and entries[0]["file_name"] == "app.tar.gz"
    assert rs("logs", "signatures", "--keypair", kp_id, "--json").ok().json()[0]["id"] == log_id
    rows = table(rs("logs", "signatures", "--keypair", first).ok().out)
    assert rows[0] == ["SIGNED AT", "STATUS", "KEYPAIR", "GEN", "SIG ALG", "FILE", "SIGNER", "ERROR", "ID"]
    assert rows[1][1:] == ["success", first, str(entries[0]["generation"]), "SHA256withECDSA", "app.tar.gz", me, "-",
                           log_id]


def test_lists_follow_pages_up_to_the_limit(rs: Cli) -> None:
    prefix = alias("page")
    for i in range(3):
        rs("keypair", "create", f"{prefix}-{i}", "--type", "static", "--algorithm", "EdDSA").ok()
    limited = rs("keypair", "ls", "--limit", "2")
    assert len(limited.ok().out.splitlines()) == 3  # heading + 2 rows
    assert limited.err == "Showing the first 2 keypairs; use --limit N or --all for more.\n"
    everything = rs("keypair", "ls", "--all", "--json").ok().json()
    assert {f"{prefix}-{i}" for i in range(3)} <= {kp["alias"] for kp in everything}
    assert len(rs("logs", "audit", "--limit", "1", "--json").ok().json()) == 1
    assert_error(rs("keypair", "ls", "--limit", "2", "--all"), 2, "not allowed with argument")


def test_ca_get_writes_the_trust_material(rs: Cli, tmp_path: object) -> None:
    printed = rs("ca", "get").ok().out
    assert printed.count("-----BEGIN CERTIFICATE-----") == 2
    assert "# rotasign production CA: O=cli,CN=rotasign Production CA\n" in printed
    assert "# rotasign time-stamping authority (TSA): " in printed and "Test CA" not in printed
    with_test = rs("ca", "get", "--include-test").ok().out
    assert with_test.count("-----BEGIN CERTIFICATE-----") == 3 and "# rotasign test CA: " in with_test
    answer = rs("ca", "get", "--json").ok().json()
    assert set(answer) == {"production", "test", "tsa"}
