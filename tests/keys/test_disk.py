"""Disk storage beyond the shared contract: what binds sealed material to its account and key reference."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.errors import StorageUnavailable
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, sign, verify_signature
from chalicelib.keys.disk import DiskKeyStore

REF = "kp_01DISKTEST/1/1700000000"
OTHER_REF = "kp_01DISKTEST/2/1700000900"


def test_material_opens_only_for_its_account_and_key_ref(disk_store: DiskKeyStore) -> None:
    new = disk_store.generate("acct_a", REF, KeySpec.build("EdDSA"))
    assert new.sealed is not None
    key = disk_store.load("acct_a", REF, new.sealed)
    verify_signature(new.public_key, SIG_ALGS["Ed25519"], sign(key, SIG_ALGS["Ed25519"], b"m"), b"m")

    with pytest.raises(StorageUnavailable):  # KMS refuses the data key under another account
        disk_store.load("acct_b", REF, new.sealed)
    with pytest.raises(StorageUnavailable):  # another generation of the same keypair
        disk_store.load("acct_a", OTHER_REF, new.sealed)


def test_material_of_another_key_does_not_open(disk_store: DiskKeyStore) -> None:
    """Same account, keypair and generation (one data key context), but another key's ciphertext."""
    first = disk_store.generate("acct_a", REF, KeySpec.build("EdDSA"))
    second = disk_store.generate("acct_a", REF + "1", KeySpec.build("EdDSA"))
    assert first.sealed is not None and second.sealed is not None
    mixed = dataclasses.replace(first.sealed, ciphertext=second.sealed.ciphertext, nonce=second.sealed.nonce)
    with pytest.raises(StorageUnavailable, match="does not belong"):
        disk_store.load("acct_a", REF, mixed)
