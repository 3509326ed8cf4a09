"""The console's administration pages and transparency-log status in headless Chromium against the local stack.

Who sees what follows the caller's permissions (GET /me); an admin makes a user and its API key in the
console and that key signs in; groups, teams, profiles and a restricted keypair are made through the
forms; a release window shows its budget used after signing; a signature-log entry shows its proof
status, pending and then included. Every page is watched (see conftest): a dialog, an uncaught error,
a CSP violation or a console response without the security headers fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.console.consoletest import REPO, ConsoleStack, new_page, screenshot, sign_in

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"
ADMIN_PAGES = ("Users", "Groups", "Teams", "Keypair profiles", "Release windows", "Account settings")
ADMIN_ROUTES = ("users", "groups", "teams", "profiles", "release-windows", "account")
# Waits on the stack's schedule and settling time, and on key revocation reaching a warm cache, on a
# loaded machine: guards against a hang, not limits on speed.
SCHEDULE_WAIT_MS = 150_000
REVOCATION_WAIT_S = 60.0


def _sign_body(name: str = "app.bin") -> dict[str, str]:
    digest = hashlib.sha256(name.encode()).digest()
    return {"hash": base64.b64encode(digest).decode(), "hash_algorithm": "SHA-256", "file_name": name}


def _status_with(stack: ConsoleStack, key: str, path: str) -> int:
    """The status of a GET with another user's key (the stack's helper speaks as the admin)."""
    request = urllib.request.Request(f"{stack.endpoint}/api/v1/{path}", headers={"X-API-Key": key})  # noqa: S310
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _user_with_key(stack: ConsoleStack, name: str, roles: list[str]) -> tuple[dict[str, Any], str]:
    user = stack.api("POST", "users", {"name": name, "roles": roles}, 201)
    key = stack.api("POST", f"users/{user['id']}/api-keys", {"name": "console-test"}, 201)["key"]
    return dict(user), str(key)


def _nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def _field_value(page: Page, term: str) -> str:
    """The value shown under a term of a details list."""
    pair = page.locator("dl.fields .pair").filter(has=page.locator("dt", has_text=re.compile(f"^{re.escape(term)}$")))
    return pair.locator("dd").first.inner_text()


def _tab_to(page: Page, target: Locator, most: int = 20) -> None:
    """Press Tab until `target` has the focus (at most `most` times)."""
    wanted = target.get_attribute("id")
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == wanted:
            break
    expect(target).to_be_focused()


@pytest.fixture
def teams_on(console_stack: ConsoleStack) -> Iterator[None]:
    """The account with teams on for one test (the other tests expect them off)."""
    console_stack.api("PATCH", "account", {"teams_enabled": True})
    yield
    console_stack.api("PATCH", "account", {"teams_enabled": False, "require_keypair_profile": False})


def test_each_role_sees_the_administration_pages_its_permissions_allow(
    browser: Browser, console_stack: ConsoleStack
) -> None:
    _, developer_key = _user_with_key(console_stack, "Dev by API", ["developer"])
    _, lead_key = _user_with_key(console_stack, "Lead by API", ["lead"])
    expected = {
        console_stack.api_key: set(ADMIN_PAGES),
        lead_key: {"Teams", "Keypair profiles", "Release windows"},
        developer_key: set(),
    }
    for key, pages in expected.items():
        page, watch = new_page(browser, console_stack)
        try:
            sign_in(page, console_stack, key)
            nav = _nav(page)
            expect(nav.get_by_role("link", name="Keypairs")).to_be_visible()
            shown = {name for name in ADMIN_PAGES if nav.get_by_role("link", name=name, exact=True).count()}
            assert shown == pages
            expect(nav.get_by_role("heading", name="Administration")).to_have_count(1 if pages else 0)
            # A page the role may not see is refused by address too (and the API refuses it anyway).
            for route, name in zip(ADMIN_ROUTES, ADMIN_PAGES, strict=True):
                if name in pages:
                    continue
                page.goto(f"{console_stack.console_url}#/admin/{route}")
                expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
            if not pages:
                screenshot(page, "11-developer-navigation", full_page=False)
        finally:
            page.context.close()
        watch.check()


def test_the_admin_creates_a_user_and_its_api_key_sees_it_once_and_the_key_signs_in(
    browser: Browser, page: Page, console_stack: ConsoleStack
) -> None:
    sign_in(page, console_stack)
    _nav(page).get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    page.get_by_role("link", name="Create user").click()
    page.get_by_label("Name", exact=True).fill("Grace Release")
    page.get_by_label("Email (optional)").fill("grace@example.com")
    expect(page.get_by_role("checkbox", name=re.compile("^Developer"))).to_be_checked()  # the default role
    screenshot(page, "12-create-user")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name="Grace Release", exact=True)).to_be_visible()
    user_id = _field_value(page, "User ID")
    user = console_stack.api("GET", f"users/{user_id}")
    assert (user["name"], user["email"], user["roles"]) == ("Grace Release", "grace@example.com", ["developer"])
    expect(page.get_by_text("This user has no API key yet.")).to_be_visible()

    # A new key, shown once on the page, and never in the address or the browser's storage.
    page.get_by_label("Key name").fill("laptop")
    page.get_by_role("button", name="Create API key").click()
    shown = page.get_by_label("API key for Grace Release", exact=True)
    expect(shown).to_be_visible()
    key = shown.input_value()
    assert re.fullmatch(r"rsk_[0-9A-Z]{26}_[0-9a-z]+", key), key
    expect(page.get_by_role("region", name="New API key “laptop”")).to_contain_text("only time it is shown")
    keys = page.get_by_role("region", name="API keys")
    expect(keys.locator("tbody tr")).to_have_count(1)
    expect(keys.locator("tbody tr").first).to_contain_text("Active")
    assert key not in page.url
    assert page.evaluate("JSON.stringify({...sessionStorage}) + JSON.stringify({...localStorage})").count(key) == 0
    screenshot(page, "13-user-new-api-key")
    page.get_by_role("button", name="Done").click()
    assert key not in page.content()
    page.reload()
    expect(page.get_by_role("heading", name="Grace Release", exact=True)).to_be_visible()
    expect(keys.locator("tbody tr").first).to_contain_text(key[: len("rsk_") + 26 + 1])  # the prefix, listed
    assert key not in page.content()

    # Roles are changed on the same page.
    page.get_by_role("checkbox", name=re.compile("^Auditor")).check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="User Grace Release saved.")).to_be_visible()
    assert console_stack.api("GET", f"users/{user_id}")["roles"] == ["developer", "auditor"]

    # The key signs in, as the user it was issued to, who sees no administration page.
    other, watch = new_page(browser, console_stack)
    try:
        sign_in(other, console_stack, key)
        expect(other.locator("#who")).to_contain_text("Grace Release")
        expect(_nav(other).get_by_role("link", name="Users")).to_have_count(0)

        # Revoked in the console, the key stops working.
        page.get_by_role("button", name="Revoke key laptop").click()
        page.get_by_role("dialog", name="Revoke key laptop?").get_by_role("button", name="Revoke key").click()
        expect(keys.locator("tbody tr").first).to_contain_text("Revoked")
        deadline = time.monotonic() + REVOCATION_WAIT_S
        while _status_with(console_stack, key, "me") != 401:
            assert time.monotonic() < deadline, "the revoked key was still accepted"
            time.sleep(1)
        other.reload()
        expect(other.get_by_text("Your API key is no longer accepted. Sign in again.")).to_be_visible()
    finally:
        other.context.close()
    watch.check()


def test_groups_teams_profiles_and_a_restricted_keypair_through_the_forms(
    page: Page, console_stack: ConsoleStack
) -> None:
    ada = console_stack.api("POST", "users", {"name": "Ada", "email": "ada@example.com", "roles": ["developer"]}, 201)
    bob = console_stack.api("POST", "users", {"name": "Bob", "roles": ["developer"]}, 201)
    sign_in(page, console_stack)

    # Teams are off: the Teams page says so; Account settings turn them on, and the console follows.
    _nav(page).get_by_role("link", name="Teams").click()
    expect(page.get_by_text("Teams are off for this account.")).to_be_visible()
    expect(page.get_by_role("link", name="Create team")).to_have_count(0)
    page.get_by_role("link", name="Account settings").first.click()
    expect(page.get_by_role("heading", name="Account settings")).to_be_visible()
    page.get_by_label("Teams", exact=True).check()
    screenshot(page, "14-account-settings")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Account settings saved.")).to_be_visible()
    try:
        assert console_stack.api("GET", "account")["teams_enabled"] is True

        # A group with Ada.
        _nav(page).get_by_role("link", name="Groups").click()
        page.get_by_role("link", name="Create group").click()
        page.get_by_label("Group name").fill("Release managers")
        page.get_by_label("Ada (ada@example.com)").check()
        page.get_by_role("button", name="Create group").click()
        expect(page.get_by_role("heading", name="Release managers", exact=True)).to_be_visible()
        group = next(g for g in console_stack.api("GET", "groups")["items"] if g["name"] == "Release managers")
        assert group["member_ids"] == [ada["id"]]
        _nav(page).get_by_role("link", name="Groups").click()
        row = page.locator("tbody tr").filter(has_text="Release managers")
        expect(row).to_contain_text("Ada")
        screenshot(page, "15-groups")

        # A team with Bob and the group.
        _nav(page).get_by_role("link", name="Teams").click()
        page.get_by_role("link", name="Create team").click()
        page.get_by_label("Team name").fill("Platform")
        page.get_by_role("group", name="Members").get_by_label("Bob").check()
        page.get_by_role("group", name="Member groups").get_by_label("Release managers").check()
        page.get_by_role("button", name="Create team").click()
        expect(page.get_by_role("heading", name="Platform", exact=True)).to_be_visible()
        team = next(t for t in console_stack.api("GET", "teams")["items"] if t["name"] == "Platform")
        assert (team["member_ids"], team["group_ids"]) == ([bob["id"]], [group["id"]])
        screenshot(page, "16-team")

        # A fixed profile allocated to the team.
        _nav(page).get_by_role("link", name="Keypair profiles").click()
        page.get_by_role("link", name="Create profile").click()
        page.get_by_label("Profile name").fill("Release EC")
        page.get_by_label("Fixed").check()
        page.get_by_label("Keypair type").select_option("dynamic")
        page.get_by_label("Algorithm").select_option("EdDSA")  # the size and curve follow the algorithm
        assert page.get_by_label("Key curve").locator("option").all_inner_texts() == ["Ed25519"]
        expect(page.get_by_label("Key size")).to_be_hidden()
        page.get_by_label("Algorithm").select_option("ECDSA")
        page.get_by_label("Key curve").select_option("P-384")
        page.get_by_label("Keypair storage").select_option("hsm")
        page.get_by_role("group", name="Teams").get_by_label("Platform").check()
        page.get_by_role("button", name="Create profile").click()
        expect(page.get_by_role("heading", name="Keypair profiles")).to_be_visible()
        row = page.locator("tbody tr").filter(has_text="Release EC")
        expect(row).to_contain_text("Dynamic · ECDSA P-384 · HSM")
        expect(row).to_contain_text("Platform")
        screenshot(page, "17-profiles")
        profile = next(p for p in console_stack.api("GET", "keypair-profiles")["items"] if p["name"] == "Release EC")
        assert (profile["mode"], profile["team_ids"], profile["key_size"]) == ("fixed", [team["id"]], None)

        # Create keypair: the team's profile locks its fields; restricted access to Ada and the group.
        _nav(page).get_by_role("link", name="Keypairs").click()
        page.get_by_role("link", name="Create keypair").click()
        page.get_by_label("Team").select_option(label="Platform")
        page.get_by_label("Keypair profile").select_option(label="Release EC (fixed)")
        expect(page.get_by_label("Algorithm")).to_be_disabled()
        expect(page.get_by_label("Dynamic")).to_be_checked()
        page.get_by_label("Keypair alias").fill("team-restricted")
        expect(page.get_by_role("group", name="Allowed users")).to_be_hidden()
        page.get_by_label("Restricted").check()
        page.get_by_role("group", name="Allowed users").get_by_label("Ada (ada@example.com)").check()
        page.get_by_role("group", name="Allowed user groups").get_by_label("Release managers").check()
        screenshot(page, "18-create-restricted-keypair")
        page.get_by_role("button", name="Create keypair").click()
        expect(page.get_by_role("heading", name="team-restricted", exact=True)).to_be_visible()
        kp = console_stack.api("GET", "keypairs/team-restricted")
        assert (kp["team_id"], kp["profile_id"], kp["access"]) == (team["id"], profile["id"], "restricted")
        assert (kp["allowed_users"], kp["allowed_groups"]) == ([ada["id"]], [group["id"]])
        assert (kp["type"], kp["algorithm"], kp["curve"], kp["storage"]) == ("dynamic", "ECDSA", "P-384", "hsm")
        # Its page names them as people know them.
        shown = {term: _field_value(page, term) for term in ("Team", "Profile", "Allowed users", "Allowed user groups")}
        assert shown == {"Team": "Platform", "Profile": "Release EC", "Allowed users": "Ada",
                         "Allowed user groups": "Release managers"}

        # What the service refuses lands on the field it names.
        page.goto(f"{console_stack.console_url}#/admin/teams/new")
        page.get_by_role("button", name="Create team").click()
        expect(page.get_by_label("Team name")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Team name")).to_be_focused()
        expect(page.locator(".field.invalid")).to_contain_text("name")
    finally:
        console_stack.api("PATCH", "account", {"teams_enabled": False})


def test_a_release_window_shows_its_budget_used_after_signing(page: Page, console_stack: ConsoleStack) -> None:
    body = {"alias": "offline-release", "type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk",
            "status": "offline"}
    kp = console_stack.api("POST", "keypairs", body, 201)
    console_stack.api("POST", "keypairs/offline-release/sign", _sign_body(), 403)  # offline, no window yet
    sign_in(page, console_stack)
    _nav(page).get_by_role("link", name="Release windows").click()
    page.get_by_role("link", name="Create release window").click()
    page.get_by_label("Window name").fill("v1.2 release")
    page.get_by_label("offline-release (offline)").check()
    page.get_by_label("Signature budget (optional)").fill("3")
    page.get_by_role("button", name="Create release window").click()
    expect(page.get_by_role("heading", name="v1.2 release", exact=True)).to_be_visible()
    assert _field_value(page, "Budget used") == "0 of 3 signatures"
    assert _field_value(page, "State") == "Open"

    for n in range(2):
        console_stack.api("POST", "keypairs/offline-release/sign", _sign_body(f"release-{n}.bin"))
    _nav(page).get_by_role("link", name="Release windows").click()
    row = page.locator("tbody tr").filter(has_text="v1.2 release")
    expect(row).to_contain_text("2 of 3 signatures")
    expect(row).to_contain_text("offline-release")
    expect(row.get_by_role("progressbar", name="Budget used: 2 of 3 signatures")).to_have_attribute("value", "2")
    screenshot(page, "19-release-windows")
    row.get_by_role("link", name="v1.2 release").click()
    assert _field_value(page, "Budget used") == "2 of 3 signatures"
    screenshot(page, "20-release-window")

    # Closing the window ends signing in it.
    window_id = _field_value(page, "Window ID")
    page.get_by_role("button", name="Close", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Close release window").click()
    expect(page.get_by_role("status").filter(has_text="Release window v1.2 release closed.")).to_be_visible()
    console_stack.api("GET", f"release-windows/{window_id}", status=404)
    assert kp["id"]


def test_a_signature_log_entry_shows_its_proof_pending_then_included(
    page: Page, console_stack: ConsoleStack, tmp_path: Path
) -> None:
    console_stack.api("POST", "keypairs", {"alias": "logged-signer", "type": "static", "algorithm": "ECDSA",
                                           "curve": "P-256", "storage": "disk"}, 201)
    signed = console_stack.api("POST", "keypairs/logged-signer/sign", _sign_body("logged.bin"))
    entry_id = signed["signature_log_id"]
    sign_in(page, console_stack)
    page.get_by_role("link", name="Signature logs").click()
    page.get_by_label("Keypair alias").fill("logged-signer")
    page.get_by_role("button", name="Apply filters").click()
    page.locator("tbody tr").first.get_by_role("link").click()
    section = page.get_by_role("region", name="Transparency log")
    # Fresh entries wait for the log's settling time and the next scheduled checkpoint.
    expect(section).to_contain_text("Pending the next checkpoint")
    assert _field_value(page, "Proof status") == "Pending"
    console_stack.api("GET", f"signature-logs/{entry_id}/proof", status=409)
    screenshot(page, "21-signature-proof-pending")

    # The page looks again by itself, and shows the entry in a signed checkpoint once one covers it.
    expect(section).to_contain_text("In the signed checkpoint of size", timeout=SCHEDULE_WAIT_MS)
    proof = console_stack.api("GET", f"signature-logs/{entry_id}/proof")
    shown = int(re.search(r"size (\d+)", _field_value(page, "Checkpoint")).group(1))  # type: ignore[union-attr]
    assert proof["tree_size"] >= shown > int(_field_value(page, "Leaf index")) == proof["leaf_index"]
    assert _field_value(page, "Proof status") == "Included"
    screenshot(page, "22-signature-proof-included")

    # The two downloads verify offline, with the account's public trust file, in the outside verifier.
    files = {}
    for name in ("proof", "entry"):
        with page.expect_download() as got:
            section.get_by_role("button", name=f"Download {name} (JSON)").click()
        files[name] = tmp_path / got.value.suggested_filename
        got.value.save_as(files[name])
    assert json.loads(files["proof"].read_text())["leaf_index"] == proof["leaf_index"]
    account_id = console_stack.api("GET", "me")["account"]["id"]
    status, _, trust = console_stack.get(f"/api/v1/trust/{account_id}")
    assert status == 200
    (tmp_path / "trust.json").write_bytes(trust)
    verified = subprocess.run(
        [sys.executable, "-m", "rotasign_cli.transparency", "inclusion", "--trust", str(tmp_path / "trust.json"),
         "--log", "signatures", "--proof", str(files["proof"]), "--entry", str(files["entry"])],
        capture_output=True, text=True, check=False, cwd=REPO,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert entry_id in verified.stdout


def test_names_are_text_on_the_administration_pages(page: Page, console_stack: ConsoleStack, teams_on: None) -> None:
    user = console_stack.api("POST", "users", {"name": XSS, "roles": ["developer"]}, 201)
    console_stack.api("POST", f"users/{user['id']}/api-keys", {"name": XSS}, 201)
    group = console_stack.api("POST", "groups", {"name": XSS, "member_ids": [user["id"]]}, 201)
    team = console_stack.api("POST", "teams", {"name": XSS, "member_ids": [user["id"]]}, 201)
    profile = console_stack.api("POST", "keypair-profiles", {"name": XSS, "mode": "customizable",
                                                              "team_ids": [team["id"]]}, 201)
    kp = console_stack.api("POST", "keypairs", {"alias": "xss-window-keypair", "type": "static", "algorithm": "ECDSA",
                                                "curve": "P-256", "storage": "disk", "status": "offline"}, 201)
    window = console_stack.api("POST", "release-windows", {
        "name": XSS, "keypair_ids": [kp["id"]], "user_ids": [user["id"]],
        "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z"}, 201)
    sign_in(page, console_stack)
    for route, item in (("users", user), ("groups", group), ("teams", team), ("profiles", profile),
                        ("release-windows", window)):
        page.goto(f"{console_stack.console_url}#/admin/{route}")
        expect(page.locator("tbody tr").filter(has_text=XSS).first).to_be_visible()
        page.goto(f"{console_stack.console_url}#/admin/{route}/{item['id']}")
        expect(page.get_by_role("heading", name=XSS, exact=True)).to_be_visible()
        if route == "users":
            expect(page.get_by_role("region", name="API keys").locator("tbody tr").first).to_contain_text(XSS)
        if route in ("groups", "teams", "release-windows"):  # the user's name as a choice
            expect(page.get_by_role("checkbox", name=XSS).first).to_be_checked()
        assert page.locator("img[src='x']").count() == 0
    # The watch (conftest) fails the test if alert(1) ran or a Trusted Types sink was hit.


def test_admin_pages_keyboard_labels_narrow_window_and_screenshots(
    browser: Browser, console_stack: ConsoleStack, teams_on: None
) -> None:
    member = console_stack.api("POST", "users", {"name": "Keyboard Member", "roles": ["auditor"]}, 201)
    console_stack.api("POST", f"users/{member['id']}/api-keys", {"name": "narrow"}, 201)
    for width, height, suffix in ((1280, 800, ""), (390, 844, "-narrow")):
        page, watch = new_page(browser, console_stack, width=width, height=height)
        try:
            sign_in(page, console_stack)
            for route in ADMIN_ROUTES:
                subs = {"account": ("",), "users": ("", "/new", f"/{member['id']}")}.get(route, ("", "/new"))
                for sub in subs:
                    page.goto(f"{console_stack.console_url}#/admin/{route}{sub}")
                    page.locator("main h1").wait_for()
                    expect(page.locator("main [aria-busy], main .loading")).to_have_count(0)
                    unlabelled = page.evaluate(
                        "[...document.querySelectorAll('main input, main select, main textarea')]"
                        ".filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))"
                        ".map(el => el.outerHTML)"
                    )
                    assert unlabelled == [], (route, sub, unlabelled)
                    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (route, sub)
                    name = f"admin-{route}{'-new' if sub == '/new' else '-item' if sub else ''}{suffix}"
                    screenshot(page, f"3{ADMIN_ROUTES.index(route)}-{name}")
        finally:
            page.context.close()
        watch.check()

    # Keyboard only: from the page title to the group's name, a member ticked with Space, Enter creates it.
    page, watch = new_page(browser, console_stack)
    try:
        sign_in(page, console_stack)
        page.goto(f"{console_stack.console_url}#/admin/groups/new")
        expect(page.locator("main h1")).to_be_focused()
        name = page.get_by_label("Group name")
        _tab_to(page, name)
        page.keyboard.type("Keyboard group")
        member = page.get_by_label("Keyboard Member")
        _tab_to(page, member)
        page.keyboard.press("Space")
        expect(member).to_be_checked()
        name.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Keyboard group", exact=True)).to_be_focused()
        group = next(g for g in console_stack.api("GET", "groups")["items"] if g["name"] == "Keyboard group")
        assert len(group["member_ids"]) == 1
    finally:
        page.context.close()
    watch.check()
