"""End to end: `rotasign sign --format authenticode|jar` with dynamic keypairs, judged by the platforms' own tools.

osslsigncode checks the Windows executables, jarsigner the JARs, each against the account's
production CA only; `rotasign verify` checks both as well. The stack's schedule is scaled down (see
conftest), so a dynamic keypair's certificate expires within seconds: the signed files must still
verify after several refreshes and that expiry, through the service's time-stamp token.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import tsp

from rotasign_cli import authenticode, pe
from tests.cli.conftest import Cli, assert_error, checks, flip_byte
from tests.support.signing_tools import (
    build_jar,
    jarsigner_verify,
    osslsigncode_verify,
    pe_sample,
    replace_jar_entry,
    truststore,
    without_unsigned_attributes,
)

pytestmark = pytest.mark.e2e

KEYS = {
    "RSA": ["--algorithm", "RSA", "--key-size", "2048", "--storage", "hsm"],
    "ECDSA": ["--algorithm", "ECDSA", "--curve", "P-256", "--storage", "disk"],
}
ALL_OK = dict.fromkeys(("format", "digest", "signature", "timestamp", "chain", "usage", "time"), "ok")
WAIT_FOR_EXPIRY = 120.0


def dynamic(rs: Cli, algorithm: str, *extra: str) -> str:
    """A new dynamic keypair; its alias."""
    alias = f"rel-{algorithm.lower()}-{secrets.token_hex(3)}"
    rs("keypair", "create", alias, "--type", "dynamic", *KEYS[algorithm], *extra).ok()
    return alias


def executable(tmp_path: Path, name: str = "app.exe") -> Path:
    """A copy of a real PE file to sign."""
    return Path(shutil.copy(pe_sample(), tmp_path / name))


def java_archive(tmp_path: Path, name: str = "app.jar") -> Path:
    """A small JAR with a class, a resource and a service file."""
    return build_jar(tmp_path / name, {
        "com/example/Main.class": b"\xca\xfe\xba\xbe" + secrets.token_bytes(2000),
        "com/example/messages.properties": b"greeting=hello\n",
        "META-INF/services/com.example.Plugin": b"com.example.Main\n",
    })


def token_time(signed_exe: Path) -> datetime:
    """The time in the service's token inside a signed PE file."""
    token = authenticode.read(pe.signature_der(signed_exe)).signer.timestamp_token
    assert token is not None
    tst_info = asn1_cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].contents
    gen_time: datetime = tsp.TSTInfo.load(tst_info)["gen_time"].native
    return gen_time


def osslsigncode_time(moment: datetime) -> str:
    """A time as osslsigncode prints it: `Dec  3 15:18:59 2026 GMT`."""
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_authenticode_from_a_dynamic_keypair_passes_osslsigncode_and_one_changed_byte_fails_it(
    rs: Cli, ca_pem: Path, tmp_path: Path, algorithm: str
) -> None:
    alias = dynamic(rs, algorithm)
    source = executable(tmp_path)
    line = rs("sign", "--keypair", alias, "--format", "authenticode", "--program-name", "Acme App",
              "--program-url", "https://acme.example/app", str(source)).ok().out
    signed = tmp_path / "app.signed.exe"
    # The generation is whichever was current: the scaled-down schedule refreshes every few seconds.
    assert re.fullmatch(rf"Signed {source} -> {signed} \({alias} generation \d+, SHA256with{algorithm}, log_\w+\)\n",
                        line), line
    assert source.read_bytes() == pe_sample().read_bytes()  # a signed copy; the original is left alone

    result = osslsigncode_verify(signed, ca_pem)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "Signature verification: ok" in report
    assert "Timestamp Server Signature verification: ok" in report
    assert f"Signature verification time: {osslsigncode_time(token_time(signed))}" in report
    assert "Text description: Acme App" in report
    assert checks(rs("verify", str(signed), "--ca", str(ca_pem)).ok()) == ALL_OK

    flip_byte(signed, 2000)
    failed = osslsigncode_verify(signed, ca_pem)
    assert failed.returncode != 0 and "Signature verification: failed" in failed.stdout + failed.stderr
    assert_error(rs("verify", str(signed), "--ca", str(ca_pem)), 1, "verification failed (digest)")


def test_a_test_keypairs_signature_fails_against_the_production_ca(rs: Cli, ca_pem: Path, tmp_path: Path) -> None:
    alias = dynamic(rs, "ECDSA", "--category", "test")
    rs("sign", "--keypair", alias, "--format", "authenticode", str(executable(tmp_path))).ok()
    signed = tmp_path / "app.signed.exe"
    result = osslsigncode_verify(signed, ca_pem)
    assert result.returncode != 0
    assert "Signature verification: failed" in result.stdout + result.stderr
    assert_error(rs("verify", str(signed), "--ca", str(ca_pem)), 1, "(chain)")
    with_test_ca = tmp_path / "with-test.pem"
    rs("ca", "get", "--include-test", "--output", str(with_test_ca)).ok()
    assert osslsigncode_verify(signed, with_test_ca).returncode == 0  # the test CA is what it chains to


def test_authenticode_refuses_eddsa_and_files_it_cannot_sign_before_signing(
    rs: Cli, tmp_path: Path
) -> None:
    alias = f"ed-{secrets.token_hex(3)}"
    rs("keypair", "create", alias, "--type", "dynamic", "--algorithm", "EdDSA").ok()
    source = executable(tmp_path)
    assert_error(rs("sign", "--keypair", alias, "--format", "authenticode", str(source)), 2,
                 "Authenticode has no EdDSA")
    ecdsa = dynamic(rs, "ECDSA")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a program\n")
    assert_error(rs("sign", "--keypair", ecdsa, "--format", "authenticode", str(source), str(notes)), 2,
                 f"{notes}: cannot be signed as authenticode: not a PE file (no MZ header).")
    assert not list(tmp_path.glob("*.signed.*"))
    for keypair in (alias, ecdsa):  # refused before the service was asked: nothing signed, nothing logged
        assert rs("logs", "signatures", "--keypair", keypair, "--json").ok().json() == []
    assert_error(rs("sign", "--keypair", ecdsa, "--in-place", str(source)), 2,
                 "--in-place needs --format authenticode or jar")
    assert_error(rs("sign", "--keypair", ecdsa, "--format", "jar", "--program-name", "x", str(source)), 2,
                 "--program-name needs --format authenticode")
    assert_error(rs("sign", "--keypair", ecdsa, "--format", "jar", "--signer-name", "a.b", str(source)), 2,
                 "--signer-name 'a.b': a signer name is 1 to 8 characters")
    assert_error(rs("sign", "--keypair", ecdsa, "--format", "authenticode", "--sig-alg", "SHA256withRSA/PSS",
                    str(source)), 2, "osslsigncode (OpenSSL's PKCS#7) rejects RSA-PSS")
    assert_error(rs("sign", "--keypair", ecdsa, "--format", "authenticode", "--output-dir", str(tmp_path),
                    str(source)), 2, "would be replaced (--output-dir is its own folder): give --in-place")


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_a_jar_from_a_dynamic_keypair_passes_jarsigner_and_a_changed_entry_fails_it(
    rs: Cli, ca_pem: Path, tmp_path: Path, algorithm: str
) -> None:
    alias = dynamic(rs, algorithm)
    source = java_archive(tmp_path)
    rs("sign", "--keypair", alias, "--format", "jar", "--signer-name", "release", str(source)).ok()
    signed = tmp_path / "app.signed.jar"
    store = truststore(ca_pem, tmp_path / "truststore.p12")
    result = jarsigner_verify(signed, store, "-verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jar verified." in result.stdout
    assert f'- Signed by "O=cli, CN={alias}"' in result.stdout
    assert 'Timestamped by "O=cli, CN=rotasign Time-Stamping Authority" on ' in result.stdout
    block = "RSA" if algorithm == "RSA" else "EC"
    assert {"META-INF/RELEASE.SF", f"META-INF/RELEASE.{block}"} <= set(zipfile.ZipFile(signed).namelist())
    assert checks(rs("verify", str(signed), "--ca", str(ca_pem)).ok()) == ALL_OK

    changed = replace_jar_entry(signed, tmp_path / "changed.jar", "com/example/messages.properties",
                                b"greeting=pwned\n")
    failed = jarsigner_verify(changed, store)
    assert failed.returncode != 0
    assert "digest error for com/example/messages.properties" in failed.stdout + failed.stderr
    assert_error(rs("verify", str(changed), "--ca", str(ca_pem)), 1, "verification failed (digest)")


def test_signed_files_verify_after_refreshes_and_expiry_through_their_time_stamps(
    rs: Cli, ca_pem: Path, tmp_path: Path
) -> None:
    alias = dynamic(rs, "ECDSA")
    exe, jar_file = executable(tmp_path), java_archive(tmp_path)
    report = rs("sign", "--keypair", alias, "--format", "authenticode", "--json", str(exe)).ok().json()
    rs("sign", "--keypair", alias, "--format", "jar", str(jar_file)).ok()
    signed_exe, signed_jar = tmp_path / "app.signed.exe", tmp_path / "app.signed.jar"
    certificate = authenticode.read(pe.signature_der(signed_exe)).signer.signer_certificate
    for _ in range(3):
        rs("keypair", "refresh", alias).ok()
    deadline = time.monotonic() + WAIT_FOR_EXPIRY
    while time.time() <= certificate.not_valid_after_utc.timestamp() + 1:
        assert time.monotonic() < deadline, "the signing certificate never expired"
        time.sleep(1)
    generations = rs("keypair", "generations", alias, "--json").ok().json()
    assert len(generations) >= 4
    signing = next(g for g in generations if g["generation"] == report[0]["generation"])
    assert signing["retired_at"] is not None  # its key is gone

    result = osslsigncode_verify(signed_exe, ca_pem)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Signature verification time: {osslsigncode_time(token_time(signed_exe))}" in result.stdout
    store = truststore(ca_pem, tmp_path / "truststore.p12")
    verified = jarsigner_verify(signed_jar, store, "-verbose")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "jar verified." in verified.stdout
    assert "The signer certificate expired on" in verified.stdout
    assert "Warning" not in verified.stdout
    for signed in (signed_exe, signed_jar):
        assert checks(rs("verify", str(signed), "--ca", str(ca_pem)).ok()) == ALL_OK

    # The token is what keeps them valid: without it the expired certificate fails the same tools.
    stripped = tmp_path / "stripped.exe"
    with stripped.open("w+b") as handle:
        pe.write_signed(exe, handle, without_unsigned_attributes(pe.signature_der(signed_exe)))
    failed = osslsigncode_verify(stripped, ca_pem)
    assert failed.returncode != 0 and "certificate has expired" in failed.stdout + failed.stderr


def test_many_files_in_place_and_into_a_folder(rs: Cli, ca_pem: Path, tmp_path: Path) -> None:
    alias = dynamic(rs, "ECDSA")
    jars = [java_archive(tmp_path, f"lib-{i}.jar") for i in range(3)]
    out = tmp_path / "signed"
    out.mkdir()
    report = rs("sign", "--keypair", alias, "--format", "jar", "--output-dir", str(out), "--json",
                *map(str, jars)).ok().json()
    assert [entry["outputs"] for entry in report] == [[str(out / path.name)] for path in jars]
    assert len({entry["signature_log_id"] for entry in report}) == 3
    store = truststore(ca_pem, tmp_path / "truststore.p12")
    for path in jars:
        assert jarsigner_verify(out / path.name, store).returncode == 0
        assert not [name for name in zipfile.ZipFile(path).namelist() if name.endswith(".SF")]  # originals untouched

    exe = executable(tmp_path)
    os.chmod(exe, 0o700)
    line = rs("sign", "--keypair", alias, "--format", "authenticode", "--in-place", str(exe)).ok().out
    assert line.startswith(f"Signed {exe} -> {exe} (")
    assert stat.S_IMODE(exe.stat().st_mode) == 0o700  # the mode is kept
    assert osslsigncode_verify(exe, ca_pem).returncode == 0
    assert_error(rs("sign", "--keypair", alias, "--format", "authenticode", str(exe)), 2,
                 "already has an Authenticode signature")
