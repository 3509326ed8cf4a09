"""`python -m localdev run|bootstrap|tick`: the commands behind `make run`, `make bootstrap` and `make tick`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from localdev import commands, stack
from localdev.events import TICK_HANDLER
from localdev.state import NoRunningStack, require_running


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__)
    parser.add_argument(
        "--state-dir", type=Path, default=stack.DEFAULT_STATE_DIR, help="local state folder (default: .local/)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the local stack (wiped at every start) until Ctrl-C")
    run.add_argument("--port", type=int, default=_int_env("ROTASIGN_PORT", 8000), help="API port; 0 picks a free one")
    run.add_argument("--emulator-port", type=int, default=_int_env("ROTASIGN_EMULATOR_PORT", 0),
                     help="moto server port; 0 (default) picks a free one")
    run.add_argument("--schedule-seconds", type=int, default=_int_env("ROTASIGN_SCHEDULE_SECONDS", 900),
                     help="refresh interval (default 900: the quarter hour)")
    run.add_argument("--account", default=os.environ.get("ACCOUNT") or "local", help="first account's name")
    boot = commands.add_parser("bootstrap", help="create another account on the running stack")
    boot.add_argument("--account", default=os.environ.get("ACCOUNT") or "", help="the account's name")
    commands.add_parser("tick", help="fire one scheduled refresh on the running stack and report it")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("localdev: %(message)s"))
    stack.log.addHandler(handler)
    stack.log.setLevel(logging.INFO)
    stack.log.propagate = False
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "bootstrap":
            return _bootstrap(args)
        return _tick(args)
    except (NoRunningStack, stack.StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # The first signal asks for an orderly stop; a second Ctrl-C interrupts a start that hangs.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print("rotasign local stack: starting (the local state is wiped at every start) ...", flush=True)
    running = stack.start(
        port=args.port,
        emulator_port=args.emulator_port,
        state_dir=args.state_dir,
        schedule_seconds=args.schedule_seconds,
        account=args.account,
    )
    try:
        assert running.state is not None
        interval = running.state.schedule_seconds
        lines = [
            "",
            f"rotasign local stack is up: account {running.account!r}, AWS emulator on port "
            f"{running.state.emulator_port}, refresh every {interval} s. Ctrl-C stops it.",
            *(f"note: {notice}" for notice in running.notices),
            "",
            f"ROTASIGN_ENDPOINT={running.endpoint}",
            f"ROTASIGN_API_KEY={running.api_key}",
            f"SOFTHSM2_CONF={running.state.softhsm2_conf}",
            "",
            "Export the lines above (export ROTASIGN_ENDPOINT=... ROTASIGN_API_KEY=...), then try:",
            '  curl -s -H "X-API-Key: $ROTASIGN_API_KEY" $ROTASIGN_ENDPOINT/api/v1/me',
            '  curl -s -H "X-API-Key: $ROTASIGN_API_KEY" -H "Content-Type: application/json" '
            "-d '{\"alias\": \"demo\", \"type\": \"dynamic\", \"algorithm\": \"ECDSA\", \"curve\": \"P-256\", "
            "\"storage\": \"hsm\"}' $ROTASIGN_ENDPOINT/api/v1/keypairs",
            "Another account: make bootstrap ACCOUNT=<name>    One refresh now: make tick",
            "",
            f"The web console: {running.endpoint}/console/  (sign in with the ROTASIGN_API_KEY above)",
            "",
        ]
        print("\n".join(lines), flush=True)
        # A signal may be delivered to any thread; Python runs the handler in the main thread only when
        # that thread next runs bytecode, so it must not block without a timeout.
        while not stop.wait(0.25):
            pass
    finally:
        running.stop()
    print("rotasign local stack: stopped.", flush=True)
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from chalicelib.errors import RotasignError

    if not args.account:
        print("error: name the account: make bootstrap ACCOUNT=<name>", file=sys.stderr)
        return 2
    try:
        result = commands.bootstrap(args.account, args.state_dir)
    except RotasignError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    state = require_running(args.state_dir.resolve())
    print(f"# account {result.account_name!r} ({result.account_id}), admin {result.user_id}")
    print(f"ROTASIGN_ENDPOINT={state.endpoint}")
    print(f"ROTASIGN_API_KEY={result.api_key}")
    return 0


def _tick(args: argparse.Namespace) -> int:
    from chalicelib.structured_logging import configure_logging

    # This command reports what the tick did itself; the service's INFO lines would only repeat it.
    configure_logging()
    logging.getLogger("rotasign").setLevel(logging.WARNING)
    report = commands.tick(args.state_dir)
    if report is None:
        print(f"app.{TICK_HANDLER} is not defined yet: there is no schedule to fire.")
        return 0
    if not report.refreshed:
        print("nothing due")
    failed = 0
    for item in report.refreshed:
        name = f"{item.keypair_id} ({item.alias})" if item.alias else item.keypair_id
        if not item.ok:
            failed += 1
            print(f"FAILED {name}: moved to the stack's refresh queue for retries")
        elif item.generation is None:
            print(f"{name}: gone (deleted)")
        elif item.expected_generation is not None and item.generation > int(item.expected_generation):
            print(f"refreshed {name}: generation {item.expected_generation} -> {item.generation}")
        else:
            print(f"{name}: nothing to do (already at generation {item.generation})")
    print(f"transparency logs: {report.logged} new entries, {report.checkpoints} new checkpoints")
    return 1 if failed else 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything the command started is stopped by now; skip the interpreter's teardown, which spends
    # seconds of CPU freeing moto's in-memory backends, so Ctrl-C returns the prompt at once.
    os._exit(status)
