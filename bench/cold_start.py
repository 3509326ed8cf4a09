"""Cold-start import time: `import app` beside `boto3 + pynamodb + chalice` alone, in fresh interpreters.

Each measurement is a new Python process that times its own import (interpreter start-up excluded);
the table gives the median of N runs and the difference, then what `app` imports beyond that baseline,
by package (from one `-X importtime` run).
Run: `.venv/bin/python bench/cold_start.py [runs]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from common import ROOT, print_table

BASELINE = "import boto3, pynamodb.models, chalice"
APP = "import app"
_TIMER = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(AWS_DEFAULT_REGION="us-east-1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _once(stmt: str) -> float:
    out = subprocess.run([sys.executable, "-c", _TIMER.format(stmt=stmt)], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _self_times(stmt: str) -> dict[str, float]:
    """Self import time (ms) of every module that `stmt` imports, from `-X importtime`."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, check=True)
    found: dict[str, float] = {}
    for line in out.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            found[parts[2].strip()] = int(parts[0]) / 1000
    return found


def main(runs: int = 9) -> None:
    """Print the medians and the heaviest additions."""
    _once(APP)  # the first run pays for writing .pyc files; fresh interpreters after that
    base = [_once(BASELINE) for _ in range(runs)]
    full = [_once(APP) for _ in range(runs)]
    b, a = statistics.median(base) * 1000, statistics.median(full) * 1000
    print_table(
        f"Cold-start import time, median of {runs} fresh interpreters (ms)",
        ["import", "median ms", "min ms", "max ms"],
        [
            [BASELINE, f"{b:.0f}", f"{min(base) * 1000:.0f}", f"{max(base) * 1000:.0f}"],
            [APP, f"{a:.0f}", f"{min(full) * 1000:.0f}", f"{max(full) * 1000:.0f}"],
            ["difference (what rotasign adds)", f"{a - b:.0f}", "", ""],
        ],
    )
    baseline_modules = _self_times(BASELINE)
    by_package: dict[str, float] = {}
    for name, ms in _self_times(APP).items():
        if name not in baseline_modules:
            root = name.split(".")[0]
            by_package[root] = by_package.get(root, 0.0) + ms
    added = sorted(((ms, name) for name, ms in by_package.items()), reverse=True)
    print_table("What `app` imports beyond the baseline, by top-level package (one -X importtime run, self ms)",
                ["package", "ms"], [[name, f"{ms:.1f}"] for ms, name in added[:8]])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
