"""Fixtures of the console tests: one local stack and one Chromium per module, a watched page per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.console.consoletest import ConsoleStack, chromium, new_page, running_stack


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """A fresh local stack for one test module."""
    with running_stack(tmp_path_factory.mktemp("console-stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, console_stack: ConsoleStack) -> Iterator[Page]:
    """A watched 1280x800 page, not yet signed in; the watch is checked after the test."""
    opened, watch = new_page(browser, console_stack)
    yield opened
    opened.context.close()
    watch.check()
