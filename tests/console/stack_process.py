"""Runs `localdev.stack.start` in a process of its own for the console tests.

Prints one JSON line `{"endpoint", "api_key"}` when the stack is up, then serves until its standard
input closes, and stops the stack. A process of its own because the stack sets this process's
environment, its moto server and its SoftHSM token: a pytest worker that already loaded the test
token and in-process moto could not switch to them.

Usage: python tests/console/stack_process.py STATE_DIR SCHEDULE_SECONDS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    """Start the stack, report where it is, serve until stdin closes."""
    from localdev.stack import start

    running = start(port=0, state_dir=Path(sys.argv[1]), schedule_seconds=int(sys.argv[2]), account="console-tests")
    try:
        print(json.dumps({"endpoint": running.endpoint, "api_key": running.api_key}), flush=True)
        sys.stdin.read()
    finally:
        running.stop()


if __name__ == "__main__":
    main()
