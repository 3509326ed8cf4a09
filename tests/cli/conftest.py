"""The CLI as users get it: `pip install`ed into a folder of its own and run as a subprocess.

The project is installed (without dependencies, which the test venv already holds) from a copy of
the files `pip install .` reads, into a temporary `--target` folder; the `rotasign` script runs with
only that folder on PYTHONPATH and from a temporary working directory, so the CLI cannot import
anything from the repository that a user's install would not have (the service's `chalicelib`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import running_stack

REPO = Path(__file__).resolve().parents[2]
# Guards against a hung install or stack on a loaded machine; not assertions on speed.
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 240.0
COMMAND_TIMEOUT = 300.0
# The local stack's schedule in the CLI tests: short, so dynamic certificates expire within a test.
SCHEDULE_SECONDS = 4
# A request's time limit, short so that log entries settle (this + 5 s) and enter a signed checkpoint at
# the next tick within seconds, not the production 35 s; still far above a sign request's duration.
MAX_REQUEST_SECONDS = "8"


@dataclass
class Result:
    """A finished `rotasign` run."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)

    def ok(self) -> Result:
        """Itself, after asserting exit 0."""
        assert self.code == 0, f"rotasign {' '.join(self.args)} -> {self.code}\n{self.out}\n{self.err}"
        return self


def table(text: str) -> list[list[str]]:
    """A printed table as rows of cells (columns are separated by two or more blanks)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]


def checks(result: Result) -> dict[str, str]:
    """`rotasign verify`'s table as {check: result} (for a JAR with several signers, the last one's)."""
    return {row[0]: row[1] for row in table(result.out)[1:] if len(row) >= 2 and row[0] != "Verified:"}


def flip_byte(path: Path, offset: int = 1000) -> None:
    """Change one byte of a file in place."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def assert_error(result: Result, code: int, *fragments: str) -> str:
    """Exit `code`, and exactly one line on stderr, `rotasign: error: ...`, with each fragment; no traceback."""
    assert result.code == code, f"exit {result.code}, expected {code}: {result.out}\n{result.err}"
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("rotasign: error: "), lines[0]
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@dataclass
class Cli:
    """Runs the installed `rotasign` with a private HOME and config file."""

    script: Path
    site: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        """Where `rotasign configure` writes (ROTASIGN_CONFIG)."""
        return self.home / "rotasign-config"

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A clean environment: nothing of the caller's ROTASIGN_* or proxies leaks in."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(self.site),
            "HOME": str(self.home),
            "ROTASIGN_CONFIG": str(self.config_file),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "LANG": "C.UTF-8",
        }
        env.update(self.env)
        env.update(extra or {})
        return env

    def command(self, *args: str) -> list[str]:
        """The argv that runs `rotasign args...`."""
        return [str(self.script), *args]

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str | None = None,
                 cwd: Path | None = None) -> Result:
        completed = subprocess.run(
            self.command(*args), env=self.environment(env), input=input, cwd=cwd or self.home,
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
        )
        return Result(tuple(args), completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`pip install` the project into a fresh folder: (site folder, `rotasign` script)."""
    root = tmp_path_factory.mktemp("rotasign-install")
    source = root / "source"
    shutil.copytree(REPO / "rotasign_cli", source / "rotasign_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", source / "pyproject.toml")
    (source / "docs").mkdir()
    shutil.copy2(REPO / "docs" / "cli.md", source / "docs" / "cli.md")
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=INSTALL_TIMEOUT, cwd=root,
    )
    script = site / "bin" / "rotasign"
    assert script.is_file()
    return site, script


@pytest.fixture
def cli(installed: tuple[Path, Path], tmp_path: Path) -> Cli:
    """The installed CLI with no settings at all."""
    home = tmp_path / "home"
    home.mkdir()
    return Cli(installed[1], installed[0], home)


@dataclass(frozen=True)
class Stack:
    """The running local stack: its endpoint and the admin keys of two accounts."""

    endpoint: str
    api_key: str
    other_api_key: str


HOLDERS: list[StackHolder] = []  # this process's (one per session)


class StackHolder:
    """The CLI tests' local stack, started when a test first needs it and stopped when they are done.

    An idle stack still ticks every SCHEDULE_SECONDS (due-index queries and checkpoints against its moto
    server: over a third of a core), so it must not outlive the CLI tests of its test process.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.starts = 0
        self.running: Stack | None = None
        self.context: contextlib.ExitStack | None = None

    def get(self) -> Stack:
        if self.running is None:
            self.starts += 1
            root = self.root / f"stack-{self.starts}"
            root.mkdir()
            context = contextlib.ExitStack()
            settings = {"ROTASIGN_MAX_REQUEST_SECONDS": MAX_REQUEST_SECONDS}
            started = context.enter_context(running_stack(root, SCHEDULE_SECONDS,
                                                          "cli", "cli-other", settings))
            assert started.other_api_key is not None
            self.context, self.running = context, Stack(started.endpoint, started.api_key, started.other_api_key)
        return self.running

    def stop(self) -> None:
        if self.context is not None:
            self.context.close()
        self.context, self.running = None, None


@pytest.fixture(scope="session")
def stack_holder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHolder]:
    """This process's holder of the CLI tests' stack (stopped at the end of the session at the latest)."""
    holder = StackHolder(tmp_path_factory.mktemp("cli-stack"))
    HOLDERS.append(holder)
    yield holder
    holder.stop()


@pytest.fixture(scope="module")
def stack(stack_holder: StackHolder) -> Stack:
    """The local stack (a process of its own: tests/support/stack.py) of this run of CLI test modules."""
    return stack_holder.get()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the stack after the last CLI test before this process goes on to other tests (or ends)."""
    if nextitem is not None and nextitem.path.is_relative_to(Path(__file__).parent):
        return
    for holder in HOLDERS:
        holder.stop()


@pytest.fixture
def rs(cli: Cli, stack: Stack) -> Cli:
    """The installed CLI pointed at the stack's first account through ROTASIGN_ENDPOINT / ROTASIGN_API_KEY."""
    cli.env.update(ROTASIGN_ENDPOINT=stack.endpoint, ROTASIGN_API_KEY=stack.api_key)
    return cli


@pytest.fixture
def ca_pem(rs: Cli, tmp_path: Path) -> Path:
    """The account's trust material, as `rotasign ca get` writes it."""
    path = tmp_path / "ca.pem"
    assert rs("ca", "get", "--output", str(path)).ok().out == f"Wrote {path} (production CA, TSA)\n"
    return path
