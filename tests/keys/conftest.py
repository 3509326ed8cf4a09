"""The key backends under test: disk on moto's KMS, HSM on the shared SoftHSM2 test token of tests/conftest.py.

SoftHSM reads SOFTHSM2_CONF and scans its token directory once per process, when the module is first
initialised, and login is per process too. A token made here after other tests have used the HSM would
be invisible, so these tests use the one token the whole test process shares (made by `hsm_conf`),
exactly as the app's settings see it, and the process-wide session on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from chalicelib.keys.disk import DiskKeyStore
from chalicelib.keys.hsm.store import HsmKeyStore
from tests.keys.keytest import SoftHsm


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
def hsm_store(softhsm: SoftHsm) -> HsmKeyStore:
    """An HsmKeyStore on the test token (the process-wide session the app uses too: same module and label)."""
    return HsmKeyStore.connect(softhsm.module, softhsm.label, lambda: softhsm.pin)


@pytest.fixture(scope="session")
def disk_store(aws: dict[str, str]) -> DiskKeyStore:
    """A DiskKeyStore on moto's KMS key of this test session."""
    return DiskKeyStore(boto3.client("kms"), aws["kms_key_id"])
