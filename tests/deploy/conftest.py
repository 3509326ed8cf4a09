"""The packaged stage, made once per test process by what `make package` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STAGE = "dev"


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m deploy package --stage dev` into a temporary folder: the SAM template's path."""
    out = tmp_path_factory.mktemp("package") / STAGE
    done = subprocess.run([sys.executable, "-m", "deploy", "package", "--stage", STAGE, "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "deployment.zip").stat().st_size > 0
    return out / "sam.json"
