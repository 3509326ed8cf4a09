"""The HSM the key-backend tests run against: the shared SoftHSM2 test token of tests/conftest.py.

SoftHSM reads SOFTHSM2_CONF and scans its token directory once per process, when the module is
first initialised, and login is per process too. A token made here after other tests have used
the HSM would be invisible, so these tests use the one token the whole test process shares (made
by `hsm_conf` with `chalicelib.keys.softhsm.ensure_token`), exactly as the app's settings see it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.keys.hsm import HsmBackend


@dataclass(frozen=True)
class SoftHsm:
    """Where the test token is and how to log in to it."""

    conf: Path
    module: str
    label: str
    pin: str


@pytest.fixture(scope="session")
def softhsm(hsm_conf: Path, aws: dict[str, str]) -> SoftHsm:
    """The shared test token, read from the environment `aws` sets up for the app."""
    return SoftHsm(
        conf=hsm_conf,
        module=os.environ["ROTASIGN_PKCS11_MODULE"],
        label=os.environ["ROTASIGN_HSM_TOKEN_LABEL"],
        pin=os.environ["ROTASIGN_HSM_PIN"],
    )


@pytest.fixture(scope="session")
def hsm_backend(softhsm: SoftHsm) -> HsmBackend:
    """An HsmBackend on the shared test token (it shares the app's session: same module and label)."""
    return HsmBackend(softhsm.module, softhsm.label, lambda: softhsm.pin)
