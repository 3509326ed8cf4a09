"""Runs the local stack for the CLI tests in a process of its own; the tests talk to it over HTTP.

`python -m tests.cli.stack_runner STATE_DIR SCHEDULE_SECONDS` starts the stack with
`localdev.stack.start`, bootstraps a second account, prints one JSON line (endpoint and both admin
keys) and runs until its stdin is closed. A process of its own, because SoftHSM reads its
configuration once per process: a stack started inside a pytest worker that already loaded the test
session's token would not see its own token, and would leave later tests pointed at the wrong one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from localdev.stack import bootstrap, start


def main() -> None:
    state_dir, schedule = Path(sys.argv[1]), int(sys.argv[2])
    stack = start(port=0, emulator_port=0, state_dir=state_dir, schedule_seconds=schedule, account="cli")
    try:
        other = bootstrap("cli-other", state_dir)
        print(json.dumps({"endpoint": stack.endpoint, "api_key": stack.api_key, "other_api_key": other.api_key}))
        sys.stdout.flush()
        sys.stdin.read()
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
