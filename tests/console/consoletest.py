"""The console tests' harness: the local stack in a process of its own, watched Chromium pages, screenshots.

The browser is Debian's Chromium driven by Playwright (never a downloaded browser). Every page records
what a user must never meet: a JavaScript dialog (an injected script ran), an uncaught error, a
Content-Security-Policy or Trusted Types violation, a console response without the security headers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.stack import running_stack as stack_process

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "console-screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The scheduled refresh interval of the test stack: short, so a page can be seen following a refresh.
SCHEDULE_SECONDS = 20
# Guards against a hung start or a stuck page on a loaded machine; not assertions on speed.
START_TIMEOUT = 240.0
PAGE_TIMEOUT_MS = 30_000
TIME_ZONE = "Asia/Tokyo"  # not UTC, so that "times in the user's time zone" is visible
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def lower(headers: Any) -> dict[str, str]:
    """Header names in lower case (the test client keeps the case they were set in)."""
    return {str(k).lower(): v for k, v in dict(headers).items()}


def _csp(headers: dict[str, str]) -> dict[str, list[str]]:
    directives = [d.strip().split() for d in headers["content-security-policy"].split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def assert_protected(headers: Any) -> None:
    """The security headers every console response carries."""
    headers = lower(headers)
    csp = _csp(headers)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    assert csp["require-trusted-types-for"] == ["'script'"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


@dataclass
class ConsoleStack:
    """The running local stack: its endpoint, the admin's API key, and the API for test set-up."""

    endpoint: str
    api_key: str

    @property
    def console_url(self) -> str:
        return f"{self.endpoint}/console/"

    def api(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """One API call as the admin that must answer `status`; the decoded JSON body."""
        headers = {"X-API-Key": self.api_key}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            f"{self.endpoint}/api/v1/{path}", data=data, method=method, headers=headers
        )
        try:
            with _OPENER.open(request, timeout=120) as response:
                code, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            code, raw = exc.code, exc.read()
        answer = json.loads(raw) if raw else None
        assert code == status, (method, path, code, answer)
        return answer

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """A plain GET of a path under the endpoint, without an API key: status, headers, body."""
        request = urllib.request.Request(f"{self.endpoint}{path}")  # noqa: S310 - http://127.0.0.1 only
        try:
            with _NO_REDIRECT.open(request, timeout=60) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}), _KeepRedirects())


@contextmanager
def running_stack(root: Path) -> Iterator[ConsoleStack]:
    """A fresh local stack (its own moto server, SoftHSM token and schedule), state and logs under `root`."""
    with stack_process(root, SCHEDULE_SECONDS, "console-tests") as running:
        yield ConsoleStack(running.endpoint, running.api_key)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Watch:
    """What a page must never show: dialogs, uncaught errors, CSP violations, unprotected responses."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    console_responses: int = 0

    def check(self) -> None:
        assert not self.dialogs, f"a script ran a dialog: {self.dialogs}"
        assert not self.errors, f"uncaught page errors: {self.errors}"
        assert not self.violations, f"Content-Security-Policy violations: {self.violations}"
        assert not self.unprotected, f"console responses without the security headers: {self.unprotected}"
        assert self.console_responses > 0, "no console response was seen: the watch itself is broken"


def new_page(browser: Browser, console_stack: ConsoleStack, width: int = 1280, height: int = 800) -> tuple[Page, Watch]:
    """A page in a fresh browser context (its own sessionStorage), watched."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, timezone_id=TIME_ZONE, locale="en-US", accept_downloads=True
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    watch = Watch()

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Trusted Type" in text or "TrustedHTML" in text:
            watch.violations.append(text)

    def on_response(response: Any) -> None:
        if not urllib.parse.urlsplit(response.url).path.startswith("/console"):
            return
        watch.console_responses += 1
        headers = response.headers
        if (
            "frame-ancestors 'none'" not in headers.get("content-security-policy", "")
            or headers.get("x-content-type-options") != "nosniff"
        ):
            watch.unprotected.append(response.url)

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    page.on("console", on_console)
    page.on("response", on_response)
    return page, watch


def sign_in(page: Page, stack: ConsoleStack, key: str | None = None) -> None:
    """Open the console and sign in with the API key, as a user would."""
    page.goto(stack.console_url)
    page.get_by_label("API key").fill(key or stack.api_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for()


def screenshot(page: Page, name: str, full_page: bool = True) -> None:
    """Write a screenshot for people to look at (build/console-screenshots/, git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
