"""The web console in headless Chromium against the local stack: the product page's workflows, by hand.

Each test signs in as a user would and asserts what that user sees: the keypair made through the form,
its refresh in the audit log filtered by Type=Dynamic and Action=Refresh, a signature found in the
signature log by alias, the XSS alias shown as text. Every page is watched (see conftest): a dialog,
an uncaught error, a CSP violation or a console response without the security headers fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, Page, Route, expect

from chalicelib.api.console import STATIC_DIR
from tests.console.consoletest import ConsoleStack, assert_protected, lower, new_page, screenshot, sign_in

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"
# Ids shaped as the service makes them (prefixed ULIDs), for the lists served in docs/api.md's shape below.
TEAM_A, TEAM_B = "team_01J" + "A" * 23, "team_01J" + "B" * 23
PROF_FIXED, PROF_CUSTOM = "prof_01J" + "F" * 23, "prof_01J" + "C" * 23
USER, GROUP = "usr_01J" + "V" * 23, "grp_01J" + "G" * 23
# Waits on the stack's own schedule (SCHEDULE_SECONDS) and a loaded machine: guards, not speed limits.
SCHEDULE_WAIT_MS = 120_000


def _keypair(stack: ConsoleStack, alias: str, **extra: Any) -> dict[str, Any]:
    body = {"alias": alias, "type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk", **extra}
    return dict(stack.api("POST", "keypairs", body, 201))


def _me(stack: ConsoleStack) -> dict[str, Any]:
    return dict(stack.api("GET", "me"))


def _field_value(page: Page, term: str) -> str:
    """The value shown under a term of a details list."""
    return (
        page.locator("dl.fields .pair")
        .filter(has=page.locator("dt", has_text=re.compile(f"^{re.escape(term)}$")))
        .locator("dd")
        .inner_text()
    )


def test_every_console_response_over_http_carries_the_security_headers(page: Page, console_stack: ConsoleStack) -> None:
    for path in ["/console", "/console/", "/console/no-such-file.js"] + [
        f"/console/{p.name}" for p in STATIC_DIR.iterdir()
    ]:
        status, headers, _ = console_stack.get(path)
        assert status in (200, 302, 404), (path, status)
        assert_protected(headers)
    status, headers, _ = console_stack.get("/console")
    assert (status, lower(headers)["location"]) == (302, "console/")
    page.goto(f"{console_stack.endpoint}/console")  # the address without its slash lands on the page
    assert page.url == console_stack.console_url
    expect(page.get_by_role("heading", name="Sign in to rotasign")).to_be_visible()


def test_sign_in_keeps_only_the_api_key_and_only_in_session_storage(page: Page, console_stack: ConsoleStack) -> None:
    page.goto(console_stack.console_url)
    expect(page.get_by_role("heading", name="Sign in to rotasign")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    screenshot(page, "01-sign-in", full_page=False)

    page.get_by_label("API key").fill("rsk_01ABCDEFGHJKMNPQRSTVWXYZ00_notavalidsecretatall")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("This API key was not accepted.")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0

    page.get_by_label("API key").fill(console_stack.api_key)
    page.get_by_label("API key").press("Enter")  # the keyboard signs in too
    expect(page.get_by_role("heading", name="Keypairs", exact=True)).to_be_visible()
    storage = page.evaluate("({session: {...sessionStorage}, local: localStorage.length})")
    assert storage == {"session": {"rotasign.apiKey": console_stack.api_key}, "local": 0}
    assert page.context.cookies() == []
    assert console_stack.api_key not in page.url
    me = _me(console_stack)
    expect(page.locator("#who")).to_contain_text(me["user"]["name"])
    expect(page.locator("#who")).to_contain_text(me["account"]["name"])

    page.reload()  # the tab keeps its session
    expect(page.get_by_role("heading", name="Keypairs", exact=True)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to rotasign")).to_be_visible()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()


def test_create_a_dynamic_keypair_refresh_it_and_find_the_refresh_in_the_audit_log(
    page: Page, console_stack: ConsoleStack
) -> None:
    sign_in(page, console_stack)
    page.get_by_role("link", name="Create keypair").click()
    expect(page.get_by_role("heading", name="Create keypair")).to_be_visible()
    page.get_by_label("Dynamic").check()
    page.get_by_label("Keypair alias").fill("release-dynamic")
    page.get_by_label("Algorithm").select_option("ECDSA")
    page.get_by_label("Key curve").select_option("P-384")
    page.get_by_label("HSM").check()
    expect(page.get_by_label("Generate certificate")).to_be_checked()
    screenshot(page, "03-create-keypair")
    page.get_by_role("button", name="Create keypair").click()

    # The keypair's page: its fields as created, and the live countdown to the next scheduled refresh.
    expect(page.get_by_role("heading", name="release-dynamic", exact=True)).to_be_visible()
    created = console_stack.api("GET", "keypairs/release-dynamic")
    assert (created["type"], created["algorithm"], created["curve"], created["storage"]) == (
        "dynamic",
        "ECDSA",
        "P-384",
        "hsm",
    )
    assert created["certificate"] is not None
    assert _field_value(page, "ID") == created["id"]
    assert _field_value(page, "Algorithm") == "ECDSA P-384"
    assert _field_value(page, "Storage") == "HSM"
    timer = page.get_by_role("timer")
    expect(timer).to_be_visible()
    first = page.locator(".countdown-value").inner_text()
    assert re.fullmatch(r"\d+:\d\d|due now.*", first), first
    page.wait_for_function("(first) => document.querySelector('.countdown-value').textContent !== first", arg=first)
    screenshot(page, "04-keypair-detail")

    # Refresh: a new generation and key, shown on the page and in the generations table.
    generation = int(_field_value(page, "Current generation"))
    key_id = _field_value(page, "Key ID (SHA-256 of the public key)")
    page.get_by_role("button", name="Refresh", exact=True).click()
    notice = page.get_by_role("status").filter(has_text="Refreshed: generation")
    expect(notice).to_be_visible()
    shown = int(re.search(r"generation (\d+)", notice.inner_text()).group(1))  # type: ignore[union-attr]
    assert shown > generation
    expect(page.locator("dl.fields .pair").filter(has_text="Current generation").locator("dd")).to_have_text(str(shown))
    assert _field_value(page, "Key ID (SHA-256 of the public key)") != key_id
    generations = {
        g["generation"]: g for g in console_stack.api("GET", "keypairs/release-dynamic/generations")["items"]
    }
    assert generations[shown]["key_id"] == _field_value(page, "Key ID (SHA-256 of the public key)")
    table = page.get_by_role("region", name="Generations")
    expect(table.locator("tbody tr").first).to_contain_text("Current")
    expect(table.locator("tbody tr").nth(1)).to_be_visible()  # the retired generation stays listed

    # The product page's query: Logs > Audit logs, Type = Dynamic, Action = Refresh.
    me = _me(console_stack)
    page.get_by_role("link", name="Audit logs").click()
    page.get_by_label("Type").select_option("dynamic")
    page.get_by_label("Action").select_option("refresh")
    page.get_by_role("button", name="Apply filters").click()
    assert "type=dynamic" in page.url and "action=refresh" in page.url
    row = page.locator("tbody tr").filter(has_text="release-dynamic").filter(has_text=me["user"]["id"])
    expect(row.first).to_be_visible()
    expect(row.first).to_contain_text("Refresh")
    expect(row.first).to_contain_text("Dynamic")
    for cells in page.locator("tbody tr").all():  # the filter holds for every row shown
        expect(cells).to_contain_text("Refresh")
    screenshot(page, "05-audit-log")

    # Back on the keypair, the page follows the next scheduled refresh by itself.
    page.go_back()
    page.go_back()
    expect(page.get_by_role("heading", name="release-dynamic", exact=True)).to_be_visible()
    seen = int(_field_value(page, "Current generation"))
    page.wait_for_function(
        "(seen) => [...document.querySelectorAll('dl.fields .pair')].some("
        "p => p.querySelector('dt').textContent === 'Current generation'"
        " && Number(p.querySelector('dd').textContent) > seen)",
        arg=seen,
        timeout=SCHEDULE_WAIT_MS,
    )
    expect(page.get_by_role("status").filter(has_text="The scheduled refresh made generation")).to_be_visible()


def test_times_are_shown_in_the_users_time_zone(page: Page, console_stack: ConsoleStack) -> None:
    kp = _keypair(console_stack, "zone-check")
    sign_in(page, console_stack)
    page.goto(f"{console_stack.console_url}#/keypairs?alias=zone-check")
    expect(page.get_by_role("columnheader", name="Certificate expires (Asia/Tokyo)")).to_be_visible()
    shown = page.locator("tbody tr time").first
    assert shown.get_attribute("datetime") == kp["certificate"]["not_after"]
    expected = page.evaluate(
        "(iso) => new Intl.DateTimeFormat('en-US', {dateStyle: 'medium', timeStyle: 'medium', timeZone: 'Asia/Tokyo'})"
        ".format(new Date(iso))",
        kp["certificate"]["not_after"],
    )
    expect(shown).to_have_text(expected)


def test_the_time_range_is_entered_in_the_users_zone_and_sent_in_utc(page: Page, console_stack: ConsoleStack) -> None:
    sign_in(page, console_stack)
    page.get_by_role("link", name="Audit logs").click()
    page.get_by_label("From (Asia/Tokyo)").fill("2030-01-01T09:00:00")  # Tokyo is UTC+9
    page.get_by_role("button", name="Apply filters").click()
    assert "from=2030-01-01T00%3A00%3A00Z" in page.url
    expect(page.get_by_text("No audit entry matches these filters.")).to_be_visible()
    expect(page.get_by_label("From (Asia/Tokyo)")).to_have_value(re.compile(r"^2030-01-01T09:00(:00)?$"))


def test_a_signature_is_found_in_the_signature_log_by_alias_and_by_id(page: Page, console_stack: ConsoleStack) -> None:
    kp = _keypair(console_stack, "release-signer", type="dynamic")
    other = _keypair(console_stack, "other-signer")
    digest = hashlib.sha256(b"app.tar.gz contents").digest()
    sign = {
        "hash": base64.b64encode(digest).decode(),
        "hash_algorithm": "SHA-256",
        "file_name": XSS,
        "tool": "console-test",
    }
    signed = console_stack.api("POST", "keypairs/release-signer/sign", sign)
    console_stack.api("POST", "keypairs/other-signer/sign", {**sign, "file_name": "other.bin"})

    sign_in(page, console_stack)
    page.get_by_role("link", name="Signature logs").click()
    page.get_by_label("Keypair alias").fill("release-signer")
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(kp["id"])
    expect(rows.first).to_contain_text("Success")
    expect(rows.first).to_contain_text(XSS)  # the file name is text, not markup
    screenshot(page, "06-signature-log")

    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Keypair ID").fill(other["id"])
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("other-signer")

    page.get_by_label("Keypair ID").fill(kp["id"])
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Signature by release-signer")).to_be_visible()
    assert _field_value(page, "Entry ID") == signed["signature_log_id"]
    assert _field_value(page, "Key ID") == signed["key_id"]
    assert _field_value(page, "Generation") == str(signed["generation"])
    assert _field_value(page, "Signature (base64)") == signed["signature"]
    assert _field_value(page, "File name") == XSS
    assert page.locator("main img").count() == 0
    screenshot(page, "07-signature-entry")


def test_the_xss_alias_renders_as_text_everywhere_it_can_appear(page: Page, console_stack: ConsoleStack) -> None:
    sign_in(page, console_stack)
    # In the create form: the service refuses it, and the refusal sits next to the alias field.
    page.goto(f"{console_stack.console_url}#/keypairs/new")
    page.get_by_label("Keypair alias").fill(XSS)
    page.get_by_role("button", name="Create keypair").click()
    alias = page.get_by_label("Keypair alias")
    expect(alias).to_have_attribute("aria-invalid", "true")
    error_id = (alias.get_attribute("aria-describedby") or "").split()[-1]
    expect(page.locator(f"[id='{error_id}']")).to_contain_text("alias")
    # As a filter value, echoed back in the route and the form.
    page.goto(f"{console_stack.console_url}#/keypairs?alias={XSS}")
    expect(page.get_by_label("Alias")).to_have_value(XSS)
    # As a keypair reference in the route.
    page.goto(f"{console_stack.console_url}#/keypairs/{XSS}")
    expect(page.get_by_text(f"There is no keypair {XSS}.")).to_be_visible()
    page.goto(f"{console_stack.console_url}#/logs/signatures?keypair_alias={XSS}")
    expect(page.get_by_label("Keypair alias")).to_have_value(XSS)
    expect(page.locator("main .results")).not_to_contain_text("Loading")
    assert page.locator("img[src='x']").count() == 0
    # The watch (conftest) fails the test if alert(1) ran or a Trusted Types sink was hit.


def test_server_errors_show_next_to_the_field_they_concern(page: Page, console_stack: ConsoleStack) -> None:
    _keypair(console_stack, "taken-alias")
    sign_in(page, console_stack)
    page.goto(f"{console_stack.console_url}#/keypairs/new")
    page.get_by_label("Keypair alias").fill("taken-alias")
    page.get_by_label("Algorithm").select_option("EdDSA")
    page.get_by_label("Disk").check()
    page.get_by_role("button", name="Create keypair").click()
    alias = page.get_by_label("Keypair alias")
    expect(alias).to_have_attribute("aria-invalid", "true")
    expect(alias).to_be_focused()
    expect(page.locator(".field.invalid")).to_contain_text("already used")
    # Single-use needs a dynamic keypair: the option only shows for one.
    expect(page.get_by_label("New key after every signature")).to_be_hidden()


def test_the_create_form_adapts_as_the_peers_does(page: Page, console_stack: ConsoleStack) -> None:
    sign_in(page, console_stack)
    page.goto(f"{console_stack.console_url}#/keypairs/new")
    algorithm, size, curve = (
        page.get_by_label("Algorithm"),
        page.get_by_label("Key size"),
        page.get_by_label(re.compile("^Key curve")),
    )
    # Key size choices follow the algorithm.
    algorithm.select_option("RSA")
    expect(size).to_be_visible()
    assert size.locator("option").all_inner_texts() == ["2048", "3072", "4096"]
    expect(curve).to_be_hidden()
    algorithm.select_option("ECDSA")
    expect(size).to_be_hidden()
    assert curve.locator("option").all_inner_texts() == ["P-256", "P-384", "P-521"]
    expect(curve).to_be_enabled()
    # EdDSA fixes the curve to Ed25519.
    algorithm.select_option("EdDSA")
    assert curve.locator("option").all_inner_texts() == ["Ed25519"]
    expect(curve).to_be_disabled()
    # Allowed users and groups appear only for restricted access.
    expect(page.get_by_role("group", name="Allowed users")).to_be_hidden()
    page.get_by_label("Restricted").check()
    expect(page.get_by_role("group", name="Allowed users")).to_be_visible()
    expect(page.get_by_role("group", name="Allowed user groups")).to_be_visible()
    page.get_by_label("Open", exact=True).check()
    expect(page.get_by_role("group", name="Allowed users")).to_be_hidden()
    # Single-use keys only for dynamic keypairs.
    expect(page.get_by_label("New key after every signature")).to_be_hidden()
    page.get_by_label("Dynamic").check()
    expect(page.get_by_label("New key after every signature")).to_be_visible()
    # The Team field only when the account has teams on.
    expect(page.get_by_label("Team")).to_have_count(1)
    expect(page.get_by_label("Team")).to_be_hidden()
    console_stack.api("PATCH", "account", {"teams_enabled": True, "require_keypair_profile": True})
    try:
        page.reload()
        expect(page.get_by_label("Team")).to_be_visible()
        # A required profile: the field shows, and the service's refusal lands on it.
        page.get_by_label("Keypair alias").fill("needs-a-profile")
        page.get_by_role("button", name="Create keypair").click()
        expect(page.get_by_label("Keypair profile")).to_have_attribute("aria-invalid", "true")
        expect(page.locator(".field.invalid")).to_contain_text("requires a keypair profile")
    finally:
        console_stack.api("PATCH", "account", {"teams_enabled": False, "require_keypair_profile": False})


def _serve_list(items: list[dict[str, Any]]) -> Callable[[Route], None]:
    """A route handler answering one page of `items`, as a list route of docs/api.md does."""

    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"items": items, "next": None}))

    return fulfil


def test_profiles_follow_the_team_and_a_fixed_profile_locks_its_fields(page: Page, console_stack: ConsoleStack) -> None:
    """Teams, profiles, users and groups served to the page in docs/api.md's shape, with ids the service does not know.

    The form's behaviour is checked here without making them (test_console_admin makes real ones): the
    service then refuses the unknown team, and its refusal lands on the Team field.
    """
    teams = [
        {"id": TEAM_A, "name": "Platform", "member_ids": [], "group_ids": [], "profile_ids": [PROF_FIXED]},
        {"id": TEAM_B, "name": "Mobile", "member_ids": [], "group_ids": [], "profile_ids": []},
    ]
    profiles = [
        {
            "id": PROF_FIXED,
            "name": "Release EC",
            "mode": "fixed",
            "type": "dynamic",
            "algorithm": "ECDSA",
            "key_size": None,
            "curve": "P-384",
            "category": "production",
            "storage": "hsm",
            "status": "online",
            "team_ids": [TEAM_A],
        },
        {
            "id": PROF_CUSTOM,
            "name": "Test RSA",
            "mode": "customizable",
            "type": "static",
            "algorithm": "RSA",
            "key_size": 4096,
            "curve": None,
            "category": "test",
            "storage": "disk",
            "status": "online",
            "team_ids": [TEAM_B],
        },
    ]
    users = [{"id": USER, "name": "Ada", "email": "ada@example.com", "roles": ["developer"], "group_ids": []}]
    groups = [{"id": GROUP, "name": "Release managers", "member_ids": [USER]}]
    for path, items in (("teams", teams), ("keypair-profiles", profiles), ("users", users), ("groups", groups)):
        page.route(re.compile(rf".*/api/v1/{path}(\?.*)?$"), _serve_list(items))
    console_stack.api("PATCH", "account", {"teams_enabled": True})
    try:
        sign_in(page, console_stack)
        page.goto(f"{console_stack.console_url}#/keypairs/new")
        profile = page.get_by_label("Keypair profile")
        expect(profile).to_be_visible()
        assert profile.locator("option").all_inner_texts() == ["No profile", "Release EC (fixed)", "Test RSA"]
        page.get_by_label("Team").select_option(TEAM_B)
        assert profile.locator("option").all_inner_texts() == ["No profile", "Test RSA"]
        # A customizable profile fills the fields in and leaves them editable.
        profile.select_option(PROF_CUSTOM)
        expect(page.get_by_label("Key size")).to_have_value("4096")
        expect(page.get_by_label("Test", exact=True)).to_be_checked()
        expect(page.get_by_label("Key size")).to_be_enabled()
        # A fixed profile sets its fields and locks them.
        page.get_by_label("Team").select_option(TEAM_A)
        assert profile.locator("option").all_inner_texts() == ["No profile", "Release EC (fixed)"]
        profile.select_option(PROF_FIXED)
        expect(page.get_by_label("Dynamic")).to_be_checked()
        expect(page.get_by_label("Dynamic")).to_be_disabled()
        expect(page.get_by_label("Algorithm")).to_have_value("ECDSA")
        expect(page.get_by_label("Algorithm")).to_be_disabled()
        expect(page.get_by_label(re.compile("^Key curve"))).to_have_value("P-384")
        expect(page.get_by_label(re.compile("^Key curve"))).to_be_disabled()
        expect(page.get_by_label("HSM")).to_be_disabled()
        expect(page.get_by_text("These fields are locked.")).to_be_visible()
        # Restricted access lists the account's users and groups by name.
        page.get_by_label("Restricted").check()
        page.get_by_label("Ada (ada@example.com)").check()
        page.get_by_label("Release managers").check()
        page.get_by_label("Keypair alias").fill("profiled")
        requests: list[Any] = []
        page.on("request", lambda r: requests.append(r) if r.method == "POST" and r.url.endswith("/keypairs") else None)
        page.get_by_role("button", name="Create keypair").click()
        # The service knows no such team (the lists above are served by the test): its answer lands on the
        # team field.
        expect(page.get_by_label("Team")).to_have_attribute("aria-invalid", "true")
        sent = requests[0].post_data_json
        assert sent["profile_id"] == PROF_FIXED and sent["team_id"] == TEAM_A
        assert (sent["type"], sent["algorithm"], sent["curve"], sent["storage"]) == ("dynamic", "ECDSA", "P-384", "hsm")
        assert sent["allowed_users"] == [USER] and sent["allowed_groups"] == [GROUP]
        # Choosing no profile unlocks the fields again.
        profile.select_option("")
        expect(page.get_by_label("Algorithm")).to_be_enabled()
    finally:
        console_stack.api("PATCH", "account", {"teams_enabled": False})


def test_suspend_unsuspend_and_delete_with_the_alias_typed(page: Page, console_stack: ConsoleStack) -> None:
    kp = _keypair(console_stack, "to-be-deleted")
    sign_in(page, console_stack)
    page.goto(f"{console_stack.console_url}#/keypairs/{kp['id']}")
    expect(page.get_by_role("heading", name="to-be-deleted", exact=True)).to_be_visible()
    expect(page.get_by_role("timer")).to_have_count(0)  # static: no countdown, no Refresh
    expect(page.get_by_role("button", name="Refresh", exact=True)).to_have_count(0)

    page.get_by_role("button", name="Suspend", exact=True).click()
    expect(page.get_by_role("button", name="Unsuspend", exact=True)).to_be_visible()
    assert _field_value(page, "Status") == "Offline"
    assert console_stack.api("GET", f"keypairs/{kp['id']}")["status"] == "offline"
    page.get_by_role("button", name="Unsuspend", exact=True).click()
    expect(page.get_by_role("button", name="Suspend", exact=True)).to_be_visible()
    assert console_stack.api("GET", f"keypairs/{kp['id']}")["status"] == "online"

    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete to-be-deleted?")
    expect(dialog).to_be_visible()
    confirm = dialog.get_by_role("button", name="Delete keypair")
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type to-be-deleted to confirm").fill("to-be-delete")
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type to-be-deleted to confirm").fill("to-be-deleted")
    expect(confirm).to_be_enabled()
    screenshot(page, "08-delete-keypair", full_page=False)
    dialog.get_by_label("Type to-be-deleted to confirm").press("Enter")
    expect(page.get_by_role("heading", name="Keypairs", exact=True)).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Keypair to-be-deleted deleted.")).to_be_visible()
    console_stack.api("GET", f"keypairs/{kp['id']}", status=404)


def test_certificate_and_chain_downloads_verify_with_openssl(
    page: Page, console_stack: ConsoleStack, tmp_path: Path
) -> None:
    kp = _keypair(console_stack, "downloadable")
    sign_in(page, console_stack)
    page.goto(f"{console_stack.console_url}#/keypairs/downloadable")
    with page.expect_download() as got:
        page.get_by_role("button", name="Download certificate (PEM)").click()
    cert_path = tmp_path / "cert.pem"
    got.value.save_as(cert_path)
    assert got.value.suggested_filename == "downloadable.pem"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    public = cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public.decode().strip() == kp["public_key"].strip()

    with page.expect_download() as got:
        page.get_by_role("button", name="Download chain (PEM)").click()
    chain_path = tmp_path / "chain.pem"
    got.value.save_as(chain_path)
    chain = x509.load_pem_x509_certificates(chain_path.read_bytes())
    assert len(chain) == 2 and chain[0].serial_number == cert.serial_number
    chain[0].verify_directly_issued_by(chain[1])
    (tmp_path / "ca.pem").write_bytes(chain[1].public_bytes(serialization.Encoding.PEM))
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(cert_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_keypair_list_filters_and_pages(page: Page, console_stack: ConsoleStack) -> None:
    for n in range(27):
        _keypair(console_stack, f"paged-{n:02d}", category="test")
    sign_in(page, console_stack)
    expect(page.locator("tbody tr")).not_to_have_count(0)
    expect(page.locator("main .results")).not_to_contain_text("Loading")
    screenshot(page, "02-keypairs")
    page.get_by_label("Category").select_option("test")
    page.get_by_label("Algorithm").select_option("ECDSA")
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(25)
    first_page = rows.locator("td:first-child").all_inner_texts()
    pager = page.get_by_role("navigation", name="Keypairs pages")
    expect(pager.get_by_role("button", name="Previous page")).to_be_disabled()
    pager.get_by_role("button", name="Next page").click()
    expect(pager).to_contain_text("Page 2")
    expect(rows).to_have_count(2)
    second_page = rows.locator("td:first-child").all_inner_texts()
    assert sorted(first_page + second_page) == [f"paged-{n:02d}" for n in range(27)]
    expect(pager.get_by_role("button", name="Next page")).to_be_disabled()
    pager.get_by_role("button", name="Previous page").click()
    expect(pager).to_contain_text("Page 1")
    assert rows.locator("td:first-child").all_inner_texts() == first_page
    # A filter that matches nothing says so.
    page.get_by_label("Type").select_option("dynamic")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No keypair matches these filters.")).to_be_visible()
    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_label("Category")).to_have_value("")


def test_the_navigation_hides_what_the_callers_permissions_do_not_allow(
    page: Page, console_stack: ConsoleStack
) -> None:
    """A user with no role and only the view_keypair permission: the console shows it nothing else."""
    _keypair(console_stack, "viewed-only")
    viewer = console_stack.api("POST", "users", {"name": "Viewer", "roles": [], "permissions": ["view_keypair"]}, 201)
    key = console_stack.api("POST", f"users/{viewer['id']}/api-keys", {"name": "viewer"}, 201)["key"]
    sign_in(page, console_stack, key)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Keypairs")).to_be_visible()
    expect(nav.get_by_role("link", name="Audit logs")).to_have_count(0)
    expect(nav.get_by_role("link", name="Signature logs")).to_have_count(0)
    expect(page.get_by_role("link", name="Create keypair")).to_have_count(0)
    page.goto(f"{console_stack.console_url}#/keypairs/viewed-only")
    expect(page.get_by_role("heading", name="viewed-only", exact=True)).to_be_visible()
    for action in ("Refresh", "Suspend", "Delete"):
        expect(page.get_by_role("button", name=action, exact=True)).to_have_count(0)
    page.goto(f"{console_stack.console_url}#/logs/audit")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_keyboard_labels_and_a_narrow_window(browser: Browser, console_stack: ConsoleStack) -> None:
    page, watch = new_page(browser, console_stack, width=390, height=844)
    try:
        sign_in(page, console_stack)
        page.locator("#skip-link").focus()
        expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()
        page.keyboard.press("Enter")
        expect(page.locator("main h1")).to_be_focused()
        _keypair(console_stack, "narrow-view", type="dynamic")
        page.goto(f"{console_stack.console_url}#/keypairs?alias=narrow-view")
        expect(page.locator("tbody tr")).to_have_count(1)
        # Nothing is wider than the window but the scrollable table regions.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "09-keypairs-narrow")
        for route in ("keypairs", "keypairs/new", "logs/audit", "logs/signatures"):
            page.goto(f"{console_stack.console_url}#/{route}")
            page.locator("main h1").wait_for()
            page.locator("main form").first.wait_for()
            unlabelled = page.evaluate(
                "[...document.querySelectorAll('main input, main select')]"
                ".filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))"
                ".map(el => el.outerHTML)"
            )
            assert unlabelled == [], (route, unlabelled)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), route
            if route == "keypairs/new":
                screenshot(page, "10-create-keypair-narrow")
        # Keyboard only: from the page title, Tab through the filters to the keypair, Enter opens it.
        page.goto(f"{console_stack.console_url}#/keypairs?alias=narrow-view")
        expect(page.locator("main h1")).to_be_focused()
        link = page.get_by_role("link", name="narrow-view")
        link.wait_for()
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "narrow-view":
                break
        expect(link).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="narrow-view", exact=True)).to_be_focused()
    finally:
        page.context.close()
    watch.check()
