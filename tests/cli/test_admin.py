"""End to end: administering an account with the installed `rotasign`, over real HTTP against the local stack.

Users and their API keys (a new key works, a revoked one stops), groups, teams, keypair profiles,
release windows with their budget, and the account's settings: each created, listed as a table and as
JSON, changed and deleted.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, assert_error, table

pytestmark = pytest.mark.e2e

REVOCATION_WAIT = 30.0  # docs/api.md: a revocation takes effect within 5 s; a guard on a loaded machine


def name(prefix: str) -> str:
    """A fresh name: the stack is shared by the session's tests."""
    return f"{prefix}-{secrets.token_hex(3)}"


def rows_by_id(text: str) -> dict[str, list[str]]:
    """A printed table's rows keyed by the cell that looks like an id."""
    found = {}
    for row in table(text)[1:]:
        ident = next((c for c in row if c.split("_", 1)[0] in ("usr", "grp", "team", "prof", "rw")), None)
        if ident:
            found[ident] = row
    return found


def test_a_new_user_gets_a_key_that_works_until_it_is_revoked(rs: Cli) -> None:
    user_name = name("Release bot")
    user = rs("user", "create", user_name, "--email", "bot@example.com", "--roles", "developer", "--json").ok().json()
    assert (user["name"], user["email"], user["roles"]) == (user_name, "bot@example.com", ["developer"])
    assert "sign" in user["effective_permissions"] and "manage_users" not in user["effective_permissions"]
    listed = rs("user", "ls", "--all").ok()
    assert table(listed.out)[0][:4] == ["NAME", "ID", "EMAIL", "ROLES"]
    assert rows_by_id(listed.out)[user["id"]][:4] == [user_name, user["id"], "bot@example.com", "developer"]
    assert user["id"] in [u["id"] for u in rs("user", "ls", "--all", "--json").ok().json()]
    described = dict(line.split(None, 1) for line in rs("user", "desc", user["id"]).ok().out.splitlines()
                     if not line.startswith("extra"))
    assert "sign" in described["may"] and described["roles"] == "developer"

    created = rs("api-key", "create", user["id"], "--name", "ci", "--expires", "+1d")
    key = created.ok().out.strip()
    assert created.out == key + "\n" and key.startswith("rsk_"), created.out  # the key alone on stdout
    assert created.err.startswith("Created API key ") and "not shown again" in created.err
    me = rs("healthcheck", "--json", env={"ROTASIGN_API_KEY": key}).ok().json()
    assert (me["user"]["id"], me["user"]["roles"]) == (user["id"], ["developer"])
    # The new key signs; it may not administer.
    keypair = name("bot-kp")
    rs("keypair", "create", keypair, "--type", "static", "--algorithm", "EdDSA").ok()
    artifact = rs.home / "bot.bin"
    artifact.write_bytes(b"built by the bot")
    rs("sign", "--keypair", keypair, str(artifact), env={"ROTASIGN_API_KEY": key}).ok()
    assert_error(rs("user", "ls", env={"ROTASIGN_API_KEY": key}), 3, "(403 forbidden)")

    keys = rs("api-key", "ls", user["id"]).ok()
    key_id = key.split("_")[1]
    assert key_id in keys.out and f"rsk_{key_id}_" in keys.out and key.split("_")[2] not in keys.out
    listed_keys = rs("api-key", "ls", user["id"], "--json").ok()
    assert [k["id"] for k in listed_keys.json()] == [key_id] and key.split("_")[2] not in listed_keys.out

    changed = rs("user", "update", user["id"], "--roles", "auditor", "--email", "").ok().out
    assert changed == f"Updated user {user_name} ({user['id']}), roles auditor\n"
    after = rs("user", "desc", user["id"], "--json").ok().json()
    assert (after["roles"], after["email"]) == (["auditor"], None)
    assert_error(rs("user", "update", user["id"]), 2, "nothing to change")

    assert_error(rs("api-key", "revoke", user["id"], key_id), 2, "refusing without --yes")
    assert rs("api-key", "revoke", user["id"], key_id, "--yes").ok().out.startswith(f"Revoked API key {key_id}")
    deadline = time.monotonic() + REVOCATION_WAIT
    while (refused := rs("healthcheck", env={"ROTASIGN_API_KEY": key})).code == 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert_error(refused, 3, "401")

    assert_error(rs("user", "delete", user["id"]), 2, "refusing without --yes")
    assert rs("user", "delete", user["id"], "--yes").ok().out == (
        f"Deleted user {user_name} ({user['id']}); its API keys are revoked.\n")
    assert_error(rs("user", "desc", user["id"]), 4, "(404 not_found)")
    assert_error(rs("user", "create", "x", "--roles", "wizard"), 2, "unknown role 'wizard'")


def test_a_key_without_view_audit_log_cannot_fetch_proofs(rs: Cli) -> None:
    signer = rs("user", "create", name("signer"), "--permissions", "sign,view_keypair", "--json").ok().json()
    assert signer["roles"] == [] and sorted(signer["effective_permissions"]) == ["sign", "view_keypair"]
    key = rs("api-key", "create", signer["id"]).ok().out.strip()
    assert_error(rs("logs", "proof", "log_01JF0000000000000000000000", env={"ROTASIGN_API_KEY": key}), 3, "403")
    assert_error(rs("logs", "verify", env={"ROTASIGN_API_KEY": key}), 3, "403")
    rs("user", "delete", signer["id"], "--yes").ok()


def test_groups_teams_and_account_settings(rs: Cli) -> None:
    admin = rs("healthcheck", "--json").ok().json()["user"]["id"]
    group_name = name("releasers")
    group = rs("group", "create", group_name, "--members", admin, "--json").ok().json()
    assert group["member_ids"] == [admin]
    assert rows_by_id(rs("group", "ls").ok().out)[group["id"]][:3] == [group_name, group["id"], "1"]
    emptied = rs("group", "update", group["id"], "--members", "").ok().out
    assert emptied == f"Updated group {group_name} ({group['id']}), 0 members\n"

    team_name = name("payments")
    assert_error(rs("team", "create", team_name), 2, "(409 teams_disabled)")
    assert rs("account", "update", "--teams-enabled").ok().out.endswith(
        "teams_enabled on, require_keypair_profile off, public_tsa off\n")
    try:
        team = rs("team", "create", team_name, "--members", admin, "--groups", group["id"], "--json").ok().json()
        assert (team["member_ids"], team["group_ids"]) == ([admin], [group["id"]])
        row = rows_by_id(rs("team", "ls", "--all").ok().out)[team["id"]]
        assert row[:4] == [team_name, team["id"], "1", group["id"]]
        keypair = rs("keypair", "create", name("team-kp"), "--type", "static", "--algorithm", "EdDSA",
                     "--team", team["id"], "--access", "restricted", "--allowed-groups", group["id"], "--json")
        assert (keypair.ok().json()["team_id"], keypair.json()["allowed_groups"]) == (team["id"], [group["id"]])
        renamed = rs("team", "update", team["id"], "--name", team_name + "-2", "--groups", "", "--json").ok().json()
        assert (renamed["name"], renamed["group_ids"]) == (team_name + "-2", [])
        assert rs("team", "delete", team["id"], "--yes").ok().out.startswith(f"Deleted team {team_name}-2 ")
        assert_error(rs("team", "desc", team["id"]), 4)
    finally:
        rs("account", "update", "--no-teams-enabled").ok()
    settings = dict(line.split(None, 1) for line in rs("account", "desc").ok().out.replace("teams enabled", "teams")
                    .splitlines() if line.startswith(("name", "teams")))
    assert settings == {"name": "cli", "teams": "no"}
    assert_error(rs("account", "update"), 2, "nothing to change")

    assert rs("group", "delete", group["id"], "--yes").ok().out == f"Deleted group {group_name} ({group['id']}).\n"
    assert group["id"] not in rs("group", "ls", "--all").out


def test_keypair_profiles_preset_keypairs(rs: Cli) -> None:
    profile_name = name("hsm-ecdsa")
    line = rs("keypair-profile", "create", profile_name, "--mode", "fixed", "--type", "static", "--algorithm", "ECDSA",
              "--curve", "P-256").ok().out
    assert line.startswith(f"Created keypair profile {profile_name} (prof_")
    assert line.endswith("fixed: type=static, algorithm=ECDSA, curve=P-256\n"), line
    profile_id = line.split("(")[1].split(")")[0]
    row = rows_by_id(rs("keypair-profile", "ls", "--all").ok().out)[profile_id]
    assert row[:5] == [profile_name, profile_id, "fixed", "static", "ECDSA P-256"]

    keypair = rs("keypair", "create", name("preset"), "--keypair-profile", profile_id, "--json").ok().json()
    assert (keypair["profile_id"], keypair["type"], keypair["algorithm"], keypair["curve"]) == (
        profile_id, "static", "ECDSA", "P-256")
    # A fixed profile's values may not be contradicted.
    assert_error(rs("keypair", "create", name("x"), "--keypair-profile", profile_id, "--algorithm", "EdDSA"), 2, "400")

    changed = rs("keypair-profile", "update", profile_id, "--mode", "customizable", "--unset", "curve,algorithm",
                 "--status", "offline", "--json").ok().json()
    assert (changed["mode"], changed["algorithm"], changed["curve"], changed["status"]) == (
        "customizable", None, None, "offline")
    assert rs("keypair-profile", "desc", profile_id, "--json").ok().json() == changed
    assert_error(rs("keypair-profile", "update", profile_id, "--unset", "colour"), 2, "choose from type")
    rs("keypair-profile", "delete", profile_id, "--yes").ok()
    assert_error(rs("keypair-profile", "desc", profile_id), 4)


def test_release_windows_open_offline_keypairs_within_their_budget(rs: Cli, tmp_path: Path) -> None:
    keypair = name("offline")
    rs("keypair", "create", keypair, "--type", "static", "--algorithm", "EdDSA", "--status", "offline").ok()
    artifact = tmp_path / "release.bin"
    artifact.write_bytes(b"v2.0")
    assert_error(rs("sign", "--keypair", keypair, str(artifact)), 3)

    window_name = name("v2.0")
    window = rs("release-window", "create", window_name, "--keypairs", keypair, "--starts=-1m", "--ends", "+1h",
                "--max-signatures", "2", "--json").ok().json()
    keypair_id = rs("keypair", "desc", keypair, "--json").ok().json()["id"]
    assert (window["keypair_ids"], window["max_signatures"], window["signatures_used"]) == ([keypair_id], 2, 0)
    rs("sign", "--keypair", keypair, str(artifact)).ok()
    row = rows_by_id(rs("release-window", "ls", "--all").ok().out)[window["id"]]
    assert row[0:2] == [window_name, window["id"]] and row[4] == "1/2", row
    assert table(rs("release-window", "ls").out)[0][4] == "USED/BUDGET"
    rs("sign", "--keypair", keypair, str(artifact)).ok()
    assert_error(rs("sign", "--keypair", keypair, str(artifact)), 3, "keypair_offline")  # the budget is spent

    line = rs("release-window", "update", window["id"], "--no-budget").ok().out
    assert line.endswith("used 2/-\n"), line
    rs("sign", "--keypair", keypair, str(artifact)).ok()
    assert_error(rs("release-window", "update", window["id"], "--max-signatures", "1"), 2, "409")
    assert_error(rs("release-window", "create", "x", "--keypairs", keypair, "--starts", "now", "--ends", "2h"), 2,
                 "is ambiguous")
    rs("release-window", "delete", window["id"], "--yes").ok()
    assert_error(rs("sign", "--keypair", keypair, str(artifact)), 3)  # closed
