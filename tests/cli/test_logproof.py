"""Proof files: where they lie beside a signed file or bundle, and what is refused as one."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from rotasign_cli import logproof
from rotasign_cli.errors import UsageError


def test_a_proof_lies_beside_the_signed_file_whatever_the_signature_format(tmp_path: Path) -> None:
    assert logproof.path_for_file(tmp_path / "app.tar.gz") == tmp_path / "app.tar.gz.rsig.proof.json"
    assert logproof.path_for_bundle(tmp_path / "app.tar.gz.rsig.json") == tmp_path / "app.tar.gz.rsig.proof.json"
    assert logproof.path_for_bundle(tmp_path / "sig.json") == tmp_path / "sig.json.proof.json"


def test_a_saved_proof_reads_back_with_what_it_proves(tmp_path: Path) -> None:
    proof = {"leaf_index": 3, "tree_size": 9, "leaf_data": base64.b64encode(b'{"id":"log_1"}').decode(),
             "hashes": [], "checkpoint": "origin\n9\nroot\n\n- sig\n"}
    path = tmp_path / "p.json"
    logproof.save(path, proof, log="signatures", entry_id="log_1", account_id="acct_1")
    loaded = logproof.load(path)
    assert {k: loaded[k] for k in proof} == proof
    assert (loaded["media_type"], loaded["entry_id"], loaded["account_id"]) == (logproof.MEDIA_TYPE, "log_1", "acct_1")
    assert logproof.proven_entry(loaded) == {"id": "log_1"}


@pytest.mark.parametrize(("text", "fragment"), [
    ("not json", "not JSON"), ('{"leaf_index": 1}', "not an inclusion proof"), ("[]", "not an inclusion proof"),
])
def test_what_is_not_a_proof_is_a_usage_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=fragment):
        logproof.load(path)
    with pytest.raises(UsageError, match="no such file"):
        logproof.load(tmp_path / "missing.json")
