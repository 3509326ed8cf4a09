"""Run every benchmark in its own interpreter (in-process moto and a moto server must not share one)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "sign_throughput.py",
    "requests_per_signature.py",
    "cold_start.py",
    "peer_openbao.py",
    "refresh_bench.py",
    "hsm_bench.py",
    "tsa_bench.py",
    "window_bench.py",
    "transparency_bench.py",
)


def main() -> int:
    """Run each script, stream its tables, and return non-zero if any failed."""
    failed = []
    for script in SCRIPTS:
        print(f"\n=== {script} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(HERE / script)], check=False).returncode
        print(f"({script}: {time.monotonic() - started:.0f} s{'' if code == 0 else f', exit {code}'})", flush=True)
        if code != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
