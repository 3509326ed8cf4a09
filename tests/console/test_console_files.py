"""The console's files as the app serves them (Chalice's test client): types, security headers, no key needed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from chalicelib.api import console
from tests.console.consoletest import assert_protected, lower

FILES = sorted(p for p in console.STATIC_DIR.iterdir() if p.is_file())
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def test_the_console_has_its_page_scripts_styles_and_icon() -> None:
    names = {p.name for p in FILES}
    assert {"index.html", "app.js", "api.js", "console.css", "favicon.svg"} <= names
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]*\.(html|js|css|svg)", n) for n in names), names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_is_served_without_a_key_with_its_type_and_the_headers(client: Any, path: Path) -> None:
    response = client.http.get(f"/console/{path.name}")
    assert response.status_code == 200
    assert lower(response.headers)["content-type"] == TYPES[path.suffix]
    assert response.body == path.read_bytes()
    assert_protected(response.headers)


def test_the_page_is_served_at_console_slash_and_console_redirects_there(client: Any) -> None:
    page = client.http.get("/console/")
    assert page.status_code == 200
    assert lower(page.headers)["content-type"] == "text/html; charset=utf-8"
    assert page.body == (console.STATIC_DIR / "index.html").read_bytes()
    assert_protected(page.headers)
    bare = client.http.get("/console")
    assert bare.status_code == 302
    assert lower(bare.headers)["location"] == "console/"  # relative: right under any stage or base path
    assert_protected(bare.headers)


@pytest.mark.parametrize("name", ["nope.js", "app.py", ".hidden.js", "Index.html", "index.html.bak", "..%2Fapp.py"])
def test_anything_else_is_a_404_in_the_api_shape_with_the_headers(client: Any, name: str) -> None:
    response = client.http.get(f"/console/{name}")
    assert response.status_code == 404
    assert response.json_body["error"]["code"] == "not_found"
    assert_protected(response.headers)


def test_names_that_leave_the_folder_are_refused_even_if_routed() -> None:
    # API Gateway decodes path parameters, so `..%2Fapp.py` reaches the view as `../app.py`.
    for name in ("../app.py", "../api/console.py", "/etc/passwd", "console/index.html"):
        response = console.serve(name)
        assert response.status_code == 404
        assert_protected(response.headers)


def test_an_unchanged_file_is_revalidated_with_its_etag(client: Any) -> None:
    first = client.http.get("/console/app.js")
    again = client.http.get("/console/app.js", headers={"If-None-Match": lower(first.headers)["etag"]})
    assert again.status_code == 304 and again.body == b""
    assert_protected(again.headers)
    stale = client.http.get("/console/app.js", headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.body == first.body


def test_the_console_is_public_but_the_api_behind_it_is_not(client: Any) -> None:
    assert client.http.get("/console/").status_code == 200
    assert client.http.get("/console/app.js", headers={"X-API-Key": "rsk_not_a_key"}).status_code == 200
    assert client.http.get("/api/v1/keypairs").status_code == 401
    assert client.http.get("/api/v1/me").status_code == 401


class _Markup(HTMLParser):
    """Collects what a strict CSP would block in the page: inline scripts, style elements and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style>")
        self.problems += [f"{tag}[{n}]" for n in names if n == "style" or n.startswith("on")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("script content")


def test_the_page_has_no_inline_script_or_style() -> None:
    parser = _Markup()
    parser.feed((console.STATIC_DIR / "index.html").read_text())
    assert parser.problems == []


def test_the_scripts_never_write_html_from_strings() -> None:
    # The CSP's Trusted Types would throw at run time; this names the line before a browser has to.
    sinks = re.compile(
        r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\(|new Function\("
        r"|\.style\s*=|setAttribute\(\s*[\"']style"
    )
    found = [
        f"{p.name}:{n}"
        for p in FILES
        if p.suffix == ".js"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if sinks.search(line)
    ]
    assert found == []
