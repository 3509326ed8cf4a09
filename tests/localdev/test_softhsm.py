"""The SoftHSM2 tooling of tests and the local stack: one token per label, no PIN in errors, module discovery."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from localdev.softhsm import MODULE_ENV, ensure_token, find_module


def test_ensure_token_initialises_a_label_only_once(tmp_path: Path) -> None:
    first = ensure_token(tmp_path, "once", "1234-pin", "5678-so")
    second = ensure_token(tmp_path, "once", "1234-pin", "5678-so")
    assert first == second == tmp_path.resolve() / "softhsm2.conf"
    shown = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env={**os.environ, "SOFTHSM2_CONF": str(first)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [line.split(":", 1)[1].strip() for line in shown.splitlines() if "Label:" in line].count("once") == 1


def test_ensure_token_failure_does_not_echo_the_pin(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        ensure_token(tmp_path, "short-pin", "q7", "5678-so")  # SoftHSM wants 4+ characters
    assert "q7" not in str(info.value)
    with pytest.raises(ValueError):
        ensure_token(tmp_path, "x" * 33, "1234-pin", "5678-so")


def test_find_module_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so")
    assert find_module() == "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so"
    monkeypatch.delenv(MODULE_ENV)
    assert os.path.isfile(find_module())
