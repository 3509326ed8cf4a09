"""Signed JARs, made by the CLI's code with an in-memory account, judged by jarsigner.

The service's part (the signature and its time-stamp token) comes from the service's own signing and
TSA code (see localpki); everything else is what `rotasign sign --format jar` runs. The
certificates here expired days ago: only the token's time makes these signatures valid.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chalicelib.keys.algorithms import PrivateKey
from rotasign_cli import embedded, jar, ziparchive
from rotasign_cli.trust import from_certificates
from rotasign_cli.verify import evidence_from_jar_signer, verify
from tests.cli.localpki import NOW, Account, pem
from tests.support.signing_tools import (
    build_jar,
    jarsigner_verify,
    replace_jar_entry,
    truststore,
    without_unsigned_attributes,
)

KEYS: dict[str, tuple[Callable[[], PrivateKey], str, str]] = {
    "RSA": (lambda: rsa.generate_private_key(65537, 2048), "SHA256withRSA", "SHA-256"),
    "ECDSA": (lambda: ec.generate_private_key(ec.SECP256R1()), "SHA256withECDSA", "SHA-256"),
    "EdDSA": (ed25519.Ed25519PrivateKey.generate, "Ed25519", "SHA-512"),  # RFC 8419: SHA-512 with Ed25519
}
LONG_NAME = "com/example/" + "ünïcödé-" * 10 + "Resource.txt"  # wraps over several 72-byte manifest lines
ENTRIES = {
    "com/": b"",
    "com/example/Main.class": b"\xca\xfe\xba\xbe" + bytes(300),
    "com/example/stored.bin": bytes(range(256)) * 40,
    LONG_NAME: "données\n".encode(),
    "META-INF/services/com.example.Plugin": b"com.example.Main\n",
}
ALL_OK = dict.fromkeys(("digest", "signature", "timestamp", "chain", "usage", "time"), True)


@pytest.fixture(scope="module")
def account() -> Account:
    return Account.make()


@pytest.fixture(scope="module")
def store(account: Account, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trust")
    (folder / "ca.pem").write_text(pem(account.ca) + pem(account.tsa))
    return truststore(folder / "ca.pem", folder / "truststore.p12")


@pytest.fixture
def unsigned(tmp_path: Path) -> Path:
    return build_jar(tmp_path / "app.jar", ENTRIES, stored=("com/example/stored.bin",))


def sign(account: Account, source: Path, target: Path, algorithm: str = "ECDSA", signer: str = "RELEASE") -> Path:
    """`rotasign sign --format jar`'s two halves around an answer of the service."""
    make_key, sig_alg, hash_algorithm = KEYS[algorithm]
    key = make_key()
    embedded.check(source, "jar")
    job = embedded.prepare(source, "jar", hash_algorithm=hash_algorithm, sig_alg=sig_alg, tool="tests", now=NOW,
                           options=embedded.Options(signer_name=signer))
    answer = account.answer(key, job.request, account.issue(key), at=NOW + timedelta(minutes=1))
    embedded.write(job, answer, target, now=NOW)
    return target


def rotasign_checks(account: Account, path: Path) -> dict[str, dict[str, bool]]:
    """rotasign's checks of every signer, by signer name."""
    trust = from_certificates([account.ca, account.tsa], "account")
    signed = jar.read_signed(path)
    digests = jar.EntryDigests(signed.archive)
    return {
        signer.name: {c.name: c.ok for c in verify(path, evidence_from_jar_signer(signed, signer, digests), trust)}
        for signer in signed.signers
    }


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_jarsigner_and_rotasign_accept_the_jar_at_its_time_stamp(
    account: Account, store: Path, unsigned: Path, tmp_path: Path, algorithm: str
) -> None:
    signed = sign(account, unsigned, tmp_path / "signed.jar", algorithm)
    result = jarsigner_verify(signed, store, "-verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jar verified." in result.stdout
    assert 'Timestamped by "O=acme, CN=rotasign Time-Stamping Authority" on Sun Nov 29 12:01:00 UTC 2026' in (
        result.stdout
    )
    assert "The signer certificate expired on 2026-11-29. However, the JAR will be valid until the timestamp " \
        "expires on" in result.stdout
    block = "EC" if algorithm in ("ECDSA", "EdDSA") else "RSA"
    assert [n for n in zipfile.ZipFile(signed).namelist() if n.startswith("META-INF/RELEASE")] == [
        "META-INF/RELEASE.SF", f"META-INF/RELEASE.{block}"
    ]
    assert rotasign_checks(account, signed) == {"RELEASE": ALL_OK}


def test_every_other_entry_is_kept_byte_for_byte_in_its_order(
    account: Account, unsigned: Path, tmp_path: Path
) -> None:
    signed = sign(account, unsigned, tmp_path / "signed.jar")
    before, after = ziparchive.read(unsigned), ziparchive.read(signed)
    names = [entry.name for entry in after.entries]
    assert names == ["META-INF/", "META-INF/MANIFEST.MF", "META-INF/RELEASE.SF", "META-INF/RELEASE.EC",
                     *(entry.name for entry in before.entries[2:])]
    original = unsigned.read_bytes()
    copy = signed.read_bytes()
    for old in before.entries:
        if old.name == "META-INF/MANIFEST.MF":
            continue
        new = after.find(old.name)
        assert new is not None
        assert copy[new.start : new.end] == original[old.start : old.end], old.name  # header, data, times
        assert new.central[:42] == old.central[:42] and new.central[46:] == old.central[46:]  # all but the offset
    stored = zipfile.ZipFile(signed).getinfo("com/example/stored.bin")
    assert stored.compress_type == zipfile.ZIP_STORED


def test_a_changed_entry_fails_jarsigner_and_rotasign(
    account: Account, store: Path, unsigned: Path, tmp_path: Path
) -> None:
    signed = sign(account, unsigned, tmp_path / "signed.jar")
    changed = replace_jar_entry(signed, tmp_path / "changed.jar", "com/example/Main.class", b"\xca\xfe\xba\xbe")
    result = jarsigner_verify(changed, store)
    assert result.returncode != 0
    assert "SHA-256 digest error for com/example/Main.class" in result.stdout + result.stderr
    checks = rotasign_checks(account, changed)["RELEASE"]
    assert checks["digest"] is False and checks["signature"] is True


def test_an_entry_added_after_signing_is_unsigned(
    account: Account, store: Path, unsigned: Path, tmp_path: Path
) -> None:
    signed = sign(account, unsigned, tmp_path / "signed.jar")
    with zipfile.ZipFile(signed, "a") as archive:
        archive.writestr("com/example/Added.class", b"injected")
    result = jarsigner_verify(signed, store)
    assert result.returncode == 16, result.stdout  # -strict: hasUnsignedEntry
    trust = from_certificates([account.ca, account.tsa], "account")
    read = jar.read_signed(signed)
    evidence = evidence_from_jar_signer(read, read.signers[0], jar.EntryDigests(read.archive))
    digest = verify(signed, evidence, trust)[0]
    assert not digest.ok and digest.detail == "com/example/Added.class is not signed by META-INF/RELEASE.SF"


def test_an_existing_signature_is_kept_and_the_same_signer_replaced(
    account: Account, store: Path, unsigned: Path, tmp_path: Path
) -> None:
    first = sign(account, unsigned, tmp_path / "first.jar", "RSA", signer="FIRST")
    second = sign(account, first, tmp_path / "second.jar", "ECDSA", signer="SECOND")
    manifest = "META-INF/MANIFEST.MF"
    assert zipfile.ZipFile(second).read(manifest) == zipfile.ZipFile(first).read(manifest)  # nothing to add
    result = jarsigner_verify(second, store, "-verbose")
    assert result.returncode == 0, result.stdout
    assert result.stdout.count('- Signed by "O=acme, CN=release"') == 2
    assert rotasign_checks(account, second) == {"FIRST": ALL_OK, "SECOND": ALL_OK}

    again = sign(account, second, tmp_path / "again.jar", "EdDSA", signer="FIRST")
    names = zipfile.ZipFile(again).namelist()
    assert [n for n in names if n.startswith("META-INF/FIRST")] == ["META-INF/FIRST.SF", "META-INF/FIRST.EC"]
    assert jarsigner_verify(again, store).returncode == 0


def test_a_launch_script_before_the_archive_is_kept(
    account: Account, store: Path, unsigned: Path, tmp_path: Path
) -> None:
    script = b"#!/bin/sh\nexec java -jar \"$0\" \"$@\"\n"
    executable = tmp_path / "app.run"
    executable.write_bytes(script + unsigned.read_bytes())  # offsets stay relative to the archive
    signed = sign(account, executable, tmp_path / "signed.run")
    assert signed.read_bytes().startswith(script)
    assert zipfile.ZipFile(signed).testzip() is None
    assert jarsigner_verify(signed, store).returncode == 0


def test_without_its_time_stamp_the_expired_signature_fails(
    account: Account, store: Path, unsigned: Path, tmp_path: Path
) -> None:
    signed = sign(account, unsigned, tmp_path / "signed.jar")
    block = zipfile.ZipFile(signed).read("META-INF/RELEASE.EC")
    stripped = replace_jar_entry(signed, tmp_path / "stripped.jar", "META-INF/RELEASE.EC",
                                 without_unsigned_attributes(block))
    result = jarsigner_verify(stripped, store)
    assert result.returncode == 4, result.stdout  # -strict: hasExpiredCert
    assert "This jar contains entries whose signer certificate has expired." in result.stdout
    checks = rotasign_checks(account, stripped)["RELEASE"]
    assert checks["timestamp"] is False and checks["time"] is False and checks["digest"] is True


def test_signer_names_follow_jarsigner() -> None:
    assert jar.signer_name_from_alias("release-signing") == "RELEASE-"
    assert jar.signer_name_from_alias("v1.2") == "V1_2"
    assert jar.check_signer_name("acme_1") == "ACME_1"
    for bad in ("", "toolongname", "a.b"):
        with pytest.raises(ValueError, match="1 to 8 characters"):
            jar.check_signer_name(bad)


def test_archives_that_cannot_be_signed_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.jar"
    text.write_bytes(b"not a zip at all")
    with pytest.raises(jar.JarError, match="not a ZIP archive"):
        embedded.check(text, "jar")


def test_a_file_that_changes_while_it_is_signed_is_not_written(
    account: Account, unsigned: Path, tmp_path: Path
) -> None:
    make_key, sig_alg, hash_algorithm = KEYS["ECDSA"]
    key = make_key()
    job = embedded.prepare(unsigned, "jar", hash_algorithm=hash_algorithm, sig_alg=sig_alg, tool="tests", now=NOW,
                           options=embedded.Options(signer_name="RELEASE"))
    with zipfile.ZipFile(unsigned, "a") as archive:
        archive.writestr("com/example/Late.class", b"added after it was read")
    with pytest.raises(ValueError, match="changed while it was being signed"):
        embedded.write(job, account.answer(key, job.request, account.issue(key)), tmp_path / "signed.jar", now=NOW)
    assert not (tmp_path / "signed.jar").exists()
