"""Authenticode signatures of PE files, made by the CLI's code with an in-memory account, judged by osslsigncode.

The service's part (the signature and its time-stamp token) comes from the service's own signing and
TSA code (see localpki); everything else is what `rotasign sign --format authenticode` runs. The
certificates here expired days ago: only the token's time makes these signatures valid.
"""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from rotasign_cli import authenticode, embedded, pe
from rotasign_cli.trust import from_certificates
from rotasign_cli.verify import evidence_from_authenticode, verify
from tests.cli.localpki import NOW, Account, pem
from tests.support.signing_tools import osslsigncode_verify, pe_sample, without_unsigned_attributes

STAMPED_AT = NOW + timedelta(minutes=1)
KEYS = {
    "RSA": (lambda: rsa.generate_private_key(65537, 2048), "SHA256withRSA"),
    "ECDSA": (lambda: ec.generate_private_key(ec.SECP256R1()), "SHA256withECDSA"),
}


@pytest.fixture(scope="module")
def account() -> Account:
    return Account.make()


@pytest.fixture(scope="module")
def ca_file(account: Account, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(pem(account.ca))
    return path


def sign(account: Account, source: Path, target: Path, algorithm: str = "ECDSA", **options: str) -> Path:
    """`rotasign sign --format authenticode`'s two halves around an answer of the service."""
    make_key, sig_alg = KEYS[algorithm]
    key = make_key()
    embedded.check(source, "authenticode")
    job = embedded.prepare(source, "authenticode", hash_algorithm="SHA-256", sig_alg=sig_alg, tool="tests",
                           now=NOW, options=embedded.Options(**options))
    answer = account.answer(key, job.request, account.issue(key), at=STAMPED_AT)
    embedded.write(job, answer, target, now=NOW)
    return target


def rotasign_checks(account: Account, path: Path) -> dict[str, bool]:
    trust = from_certificates([account.ca, account.tsa], "account")
    return {c.name: c.ok for c in verify(path, evidence_from_authenticode(path), trust)}


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("sample", ["t64.exe", "t32.exe"])
@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_osslsigncode_and_rotasign_accept_the_signature_at_its_time_stamp(
    account: Account, ca_file: Path, tmp_path: Path, algorithm: str, sample: str
) -> None:
    signed = sign(account, pe_sample(sample), tmp_path / "app.exe", algorithm)
    result = osslsigncode_verify(signed, ca_file)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "Signature verification: ok" in report
    assert "Timestamp Server Signature verification: ok" in report
    assert "Signature verification time: Nov 29 12:01:00 2026 GMT" in report  # the token's time
    assert "MISMATCH" not in report and "invalid PE checksum" not in report  # the CheckSum was recomputed
    assert rotasign_checks(account, signed) == dict.fromkeys(
        ("digest", "signature", "timestamp", "chain", "usage", "time"), True
    )


def test_the_image_digest_leaves_out_what_signing_changes(account: Account, tmp_path: Path) -> None:
    source = pe_sample()
    signed = sign(account, source, tmp_path / "app.exe")
    assert pe.image_digest(signed, "SHA-256") == pe.image_digest(source, "SHA-256")
    with signed.open("rb") as handle:
        layout = pe.read_layout(handle)
    assert layout.table_offset == source.stat().st_size and layout.table_offset + layout.table_size == layout.size
    flip(signed, layout.checksum_offset)  # outside the digest, as Authenticode defines it
    assert pe.image_digest(signed, "SHA-256") == pe.image_digest(source, "SHA-256")
    flip(signed, 2000)
    assert pe.image_digest(signed, "SHA-256") != pe.image_digest(source, "SHA-256")


@pytest.mark.parametrize("offset", [64, 2000, -1])  # the DOS stub, a section, the file's last byte
def test_one_changed_byte_fails_osslsigncode_and_rotasign(
    account: Account, ca_file: Path, tmp_path: Path, offset: int
) -> None:
    source = tmp_path / "unsigned.exe"
    source.write_bytes(pe_sample().read_bytes() + b"overlay data")  # data after the sections counts too
    signed = sign(account, source, tmp_path / "app.exe")
    flip(signed, source.stat().st_size - 1 if offset == -1 else offset)
    result = osslsigncode_verify(signed, ca_file)
    assert result.returncode != 0
    assert "Signature verification: failed" in result.stdout + result.stderr
    checks = rotasign_checks(account, signed)
    assert checks["digest"] is False and checks["signature"] is True


def test_an_unaligned_file_is_padded_as_authenticode_requires(
    account: Account, ca_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "unaligned.exe"
    source.write_bytes(pe_sample().read_bytes() + b"abc")  # 3 bytes past a multiple of 8
    signed = sign(account, source, tmp_path / "app.exe")
    with signed.open("rb") as handle:
        layout = pe.read_layout(handle)
    assert layout.table_offset % 8 == 0 and layout.size % 8 == 0
    assert signed.read_bytes()[source.stat().st_size : layout.table_offset] == b"\0" * 5
    assert osslsigncode_verify(signed, ca_file).returncode == 0


def test_the_program_name_and_url_are_signed_attributes(account: Account, ca_file: Path, tmp_path: Path) -> None:
    signed = sign(account, pe_sample(), tmp_path / "app.exe", program_name="Acme Tool Ünïcode",
                  program_url="https://acme.example/tool")
    result = osslsigncode_verify(signed, ca_file)
    assert result.returncode == 0, result.stdout
    assert "Text description: Acme Tool Ünïcode" in result.stdout
    assert "URL description: https://acme.example/tool" in result.stdout


def test_without_its_time_stamp_the_expired_signature_fails(account: Account, ca_file: Path, tmp_path: Path) -> None:
    source = pe_sample()
    signed = sign(account, source, tmp_path / "app.exe")
    stripped = tmp_path / "stripped.exe"
    with stripped.open("w+b") as handle:
        pe.write_signed(source, handle, without_unsigned_attributes(pe.signature_der(signed)))
    assert osslsigncode_verify(signed, ca_file).returncode == 0
    result = osslsigncode_verify(stripped, ca_file)
    assert result.returncode != 0
    assert "certificate has expired" in result.stdout + result.stderr
    checks = rotasign_checks(account, stripped)
    assert checks["timestamp"] is False and checks["time"] is False and checks["signature"] is True


def test_files_that_cannot_be_signed_are_refused_before_signing(account: Account, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"MZ but not a PE file" + b"\0" * 100)
    with pytest.raises(pe.PeError, match="not a PE file"):
        embedded.check(text, "authenticode")
    signed = sign(account, pe_sample(), tmp_path / "app.exe")
    with pytest.raises(pe.PeError, match="already has an Authenticode signature"):
        embedded.check(signed, "authenticode")
    # A certificate table that is not the end of the file (appended data after it) is refused.
    appended = tmp_path / "appended.exe"
    appended.write_bytes(signed.read_bytes() + b"tail")
    with pytest.raises(pe.PeError, match="not at the end of the file"):
        embedded.check(appended, "authenticode")


def test_eddsa_has_no_authenticode(account: Account, tmp_path: Path) -> None:
    job = embedded.prepare(pe_sample(), "authenticode", hash_algorithm="SHA-256", sig_alg=None, tool="tests",
                           now=NOW, options=embedded.Options())
    key = ed25519.Ed25519PrivateKey.generate()
    answer = account.answer(key, {**job.request, "sig_alg": "Ed25519"}, account.issue(key))
    with pytest.raises(ValueError, match="Authenticode has no EdDSA"):
        embedded.write(job, answer, tmp_path / "app.exe", now=NOW)
    assert not (tmp_path / "app.exe").exists()


def test_the_signature_is_the_last_thing_in_the_file(account: Account, tmp_path: Path) -> None:
    signed = sign(account, pe_sample(), tmp_path / "app.exe")
    data = signed.read_bytes()
    with signed.open("rb") as handle:
        layout = pe.read_layout(handle)
    length, revision, kind = struct.unpack_from("<IHH", data, layout.table_offset)
    assert (length, revision, kind) == (layout.table_size, 0x0200, 0x0002)
    der = pe.signature_der(signed)
    assert data[layout.table_offset + 8 :].rstrip(b"\0") == der.rstrip(b"\0")
    parsed = authenticode.read(der)
    assert parsed.image_hash_algorithm == "SHA-256" and parsed.content_digest_ok


def test_rsa_pss_is_refused_as_authenticode_verifiers_reject_it(account: Account, tmp_path: Path) -> None:
    job = embedded.prepare(pe_sample(), "authenticode", hash_algorithm="SHA-256", sig_alg="SHA256withRSA/PSS",
                           tool="tests", now=NOW, options=embedded.Options())
    key = rsa.generate_private_key(65537, 2048)
    with pytest.raises(ValueError, match="rejects RSA-PSS"):
        embedded.write(job, account.answer(key, job.request, account.issue(key)), tmp_path / "app.exe", now=NOW)
