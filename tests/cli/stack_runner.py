"""Runs the local stack for the CLI tests in a process of its own; the tests talk to it over HTTP.

`python -m tests.cli.stack_runner STATE_DIR SCHEDULE_SECONDS` starts the stack with
`localdev.stack.start`, bootstraps a second account as `make bootstrap` does, prints one JSON line
(endpoint and both admin keys) and runs until its stdin is closed. A process of its own, because
SoftHSM reads its configuration once per process: a stack started inside a pytest worker that already
loaded the test session's token would not see its own token, and would leave later tests pointed at
the wrong one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from localdev.stack import start


def main() -> None:
    state_dir, schedule = Path(sys.argv[1]), int(sys.argv[2])
    stack = start(port=0, emulator_port=0, state_dir=state_dir, schedule_seconds=schedule, account="cli")
    try:
        other = subprocess.run(
            [sys.executable, "-m", "localdev", "--state-dir", str(state_dir), "bootstrap", "--account", "cli-other"],
            capture_output=True, text=True, check=True, timeout=240,
        )
        match = re.search(r"^ROTASIGN_API_KEY=(\S+)$", other.stdout, re.MULTILINE)
        assert match, other.stdout + other.stderr
        print(json.dumps({"endpoint": stack.endpoint, "api_key": stack.api_key, "other_api_key": match.group(1)}))
        sys.stdout.flush()
        sys.stdin.read()
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
