"""The local stack in a process of its own, for tests that drive it over real HTTP.

A process of its own because the stack sets its process's environment, its moto server and its SoftHSM
token, and SoftHSM reads its configuration once per process: a pytest worker that already loaded the
test session's token and in-process moto could not switch to the stack's, and would be left pointed at
the wrong ones afterwards.

`python -m tests.support.stack STATE_DIR SCHEDULE_SECONDS ACCOUNT [SECOND_ACCOUNT]` starts the stack with
`localdev.stack.start` (and, when named, bootstraps a second account as `make bootstrap` does), prints one
JSON line `{"endpoint", "api_key", "other_api_key"}` and serves until its standard input closes.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240.0  # a guard against a hung start on a loaded machine, not an assertion on speed


@dataclass(frozen=True)
class StackProcess:
    """Where the running stack is and the admin keys of its accounts."""

    endpoint: str
    api_key: str
    other_api_key: str | None
    state_dir: Path


class StackClient:
    """The stack's API over real HTTP with one API key (a session of its own: make one per thread)."""

    def __init__(self, endpoint: str, api_key: str) -> None:
        self.endpoint, self.key = endpoint, api_key
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy for 127.0.0.1

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request to /api/v1`path`: its status and decoded JSON body (None when it has none)."""
        response = self.session.request(method, f"{self.endpoint}/api/v1{path}", json=body, timeout=120,
                                        headers={"X-API-Key": self.key})
        return response.status_code, response.json() if response.content else None

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """The body of a request that must answer `status`."""
        code, answer = self.call(method, path, body)
        assert code == status, (method, path, code, answer)
        return answer

    def every(self, path: str) -> list[Any]:
        """Every item of a list route, following `next` to the end."""
        items: list[Any] = []
        token = None
        joiner = "&" if "?" in path else "?"
        while True:
            page = self.ok("GET", f"{path}{joiner}limit=500" + (f"&next={token}" if token else ""))
            items += page["items"]
            if (token := page["next"]) is None:
                return items


def child_env() -> dict[str, str]:
    """A fresh shell's view: nothing of this test process's moto, token or settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ROTASIGN_")) and k != "SOFTHSM2_CONF"}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return env


@contextmanager
def running_stack(root: Path, schedule_seconds: int, account: str = "tests",
                  second_account: str | None = None, settings: Mapping[str, str] | None = None
                  ) -> Iterator[StackProcess]:
    """Start a fresh stack (state and its stderr under `root`); stop it when the block ends.

    `settings` are ROTASIGN_* variables for the stack's process (e.g. a short ROTASIGN_MAX_REQUEST_SECONDS,
    so that log entries settle into checkpoints within seconds).

    Raises RuntimeError (with the end of the stack's stderr) when it does not start.
    """
    args = [sys.executable, "-m", "tests.support.stack", str(root / "state"), str(schedule_seconds), account]
    env = {**child_env(), **(settings or {})}
    with (root / "stack.err").open("w") as stderr:
        process = subprocess.Popen(args + ([second_account] if second_account else []), cwd=REPO, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert process.stdout is not None and process.stdin is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the local stack did not start: {(root / 'stack.err').read_text()[-3000:]}")
        info = json.loads(line)
        yield StackProcess(info["endpoint"], info["api_key"], info.get("other_api_key"), root / "state")
    finally:
        process.stdin.close()  # the stack process stops when its input closes
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    """Start the stack, report where it is, serve until stdin closes."""
    from localdev.stack import start

    state_dir, schedule, account = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    second = sys.argv[4] if len(sys.argv) > 4 else None
    running = start(port=0, emulator_port=0, state_dir=state_dir, schedule_seconds=schedule, account=account)
    try:
        other = None
        if second:
            made = subprocess.run(
                [sys.executable, "-m", "localdev", "--state-dir", str(state_dir), "bootstrap", "--account", second],
                capture_output=True, text=True, check=True, timeout=START_TIMEOUT,
            )
            match = re.search(r"^ROTASIGN_API_KEY=(\S+)$", made.stdout, re.MULTILINE)
            assert match, made.stdout + made.stderr
            other = match.group(1)
        print(json.dumps({"endpoint": running.endpoint, "api_key": running.api_key, "other_api_key": other}),
              flush=True)
        sys.stdin.read()
    finally:
        running.stop()


if __name__ == "__main__":
    main()
