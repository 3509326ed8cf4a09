"""Signed JARs as `jarsigner` makes and checks them.

Signing a JAR as signer `NAME` writes three entries: `META-INF/MANIFEST.MF` with the digest of every
entry, `META-INF/NAME.SF` with the digests of the manifest and of its sections, and the signature
block `META-INF/NAME.RSA` (or `.EC`): a detached PKCS#7 SignedData over the `.SF` (see `cms`), with
the certificate chain and the service's time-stamp token as `id-aa-signatureTimeStampToken`
(1.2.840.113549.1.9.16.2.14), where jarsigner puts the token of a TSA.

Everything else stays as it was (see `ziparchive`): other entries byte for byte, in their order, with
their times and compression; the manifest's sections that were already right byte for byte, so
another signer's signature stays valid. A new manifest goes first, and the signer's files right
after it, where `JarInputStream` expects them. Signing again under the same name replaces that
signer's files, as jarsigner does.

The signer name follows jarsigner's rule for an alias: its first 8 characters, upper case, with
any character other than A-Z, 0-9, `-` and `_` replaced by `_`.
"""

from __future__ import annotations

import base64
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from rotasign_cli import jar_manifest, ziparchive
from rotasign_cli.algorithms import new_hash
from rotasign_cli.jar_manifest import MANIFEST_NAME, ManifestError

META_INF = "META-INF/"
BLOCK_EXTENSIONS = {"RSA": "RSA", "ECDSA": "EC", "EdDSA": "EC"}  # the JDK's extension by key algorithm
_BLOCK_SUFFIXES = (".RSA", ".EC", ".DSA")
_SIGNER_NAME = re.compile(r"[A-Za-z0-9_-]{1,8}")


class JarError(ValueError):
    """A JAR this CLI cannot sign or check, and why."""


def signer_name_from_alias(alias: str) -> str:
    """jarsigner's signer name for a key alias: 8 characters at most, upper case, others as `_`."""
    return re.sub(r"[^A-Z0-9_-]", "_", alias[:8].upper()) or "SIGNER"


def check_signer_name(name: str) -> str:
    """An explicit signer name, upper-cased; raises ValueError unless it is 1-8 of A-Z a-z 0-9 _ -."""
    if not _SIGNER_NAME.fullmatch(name):
        raise ValueError("a signer name is 1 to 8 characters of A-Z, a-z, 0-9, - and _")
    return name.upper()


def is_signature_related(name: str) -> bool:
    """The manifest, `.SF` files, signature blocks and `SIG-*` files right inside META-INF (never digested)."""
    upper = name.upper()
    if not upper.startswith(META_INF) or "/" in upper[len(META_INF) :]:
        return False
    base = upper[len(META_INF) :]
    return upper == MANIFEST_NAME or upper.endswith((".SF", *_BLOCK_SUFFIXES)) or base.startswith("SIG-")


def digested(entry: ziparchive.Entry) -> bool:
    """Whether the manifest carries this entry's digest: files that are not signature files."""
    return not entry.is_dir and not is_signature_related(entry.name)


def entry_digests(
    archive: ziparchive.Archive, algorithms: set[str], progress: Callable[[int], None] | None = None
) -> dict[str, dict[str, bytes]]:
    """Every digested entry's digests under `algorithms`, by name, in one read; raises JarError."""
    wanted = {entry.name for entry in archive.entries if digested(entry)}
    digests: dict[str, dict[str, bytes]] = {}
    try:
        with zipfile.ZipFile(archive.path) as opened:
            for info in opened.infolist():
                if info.filename not in wanted:
                    continue
                hashes = {algorithm: new_hash(algorithm) for algorithm in algorithms}
                with opened.open(info) as stream:
                    while chunk := stream.read(ziparchive.CHUNK):
                        for running in hashes.values():
                            running.update(chunk)
                digests[info.filename] = {algorithm: running.digest() for algorithm, running in hashes.items()}
                if progress is not None:
                    progress(info.compress_size)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError) as exc:
        raise JarError(f"an entry cannot be read: {exc}.") from exc
    return digests


@dataclass(frozen=True)
class Plan:
    """What signing one JAR writes: the new manifest and `.SF`, and where they go."""

    archive: ziparchive.Archive
    signer_name: str
    hash_algorithm: str
    manifest: bytes
    manifest_changed: bool
    signature_file: bytes
    entries: int  # how many entries the manifest covers


def prepare(
    path: Path, *, signer_name: str, hash_algorithm: str, created_by: str,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Read the JAR, digest its entries, and build its manifest and `.SF`; raises JarError."""
    try:
        archive = ziparchive.read(path)
        existing = _read_entry(archive, archive.find(MANIFEST_NAME))
        algorithms = {hash_algorithm, *jar_manifest.algorithms_in(existing)}
        digests = entry_digests(archive, algorithms, progress)
        encoded = {
            name: {algorithm: base64.b64encode(value).decode("ascii") for algorithm, value in by_algorithm.items()}
            for name, by_algorithm in digests.items()
        }
        manifest = jar_manifest.updated_manifest(existing, encoded, hash_algorithm, created_by)
        signature_file = jar_manifest.signature_file(manifest, hash_algorithm, created_by)
    except (ziparchive.ZipError, ManifestError) as exc:
        raise JarError(str(exc).rstrip(".") + ".") from exc
    return Plan(archive, signer_name, hash_algorithm, manifest, manifest != existing, signature_file, len(digests))


def _read_entry(archive: ziparchive.Archive, entry: ziparchive.Entry | None) -> bytes | None:
    if entry is None:
        return None
    with zipfile.ZipFile(archive.path) as opened:
        return opened.read(entry.name)


def write(plan: Plan, target: BinaryIO, *, block: bytes, key_algorithm: str, now: datetime) -> list[str]:
    """Write the signed JAR to `target`; returns the names of the signature entries written."""
    base = f"{META_INF}{plan.signer_name}"
    sf_name, block_name = f"{base}.SF", f"{base}.{BLOCK_EXTENSIONS[key_algorithm]}"
    own = {f"{base}.SF".upper(), *(f"{base}{suffix}".upper() for suffix in _BLOCK_SUFFIXES)}
    manifest_entry = plan.archive.find(MANIFEST_NAME)
    new_manifest: ziparchive.Entry | ziparchive.NewEntry
    if manifest_entry is not None and not plan.manifest_changed:
        new_manifest = manifest_entry
    else:
        new_manifest = ziparchive.NewEntry(MANIFEST_NAME, plan.manifest, now)
    signature = [ziparchive.NewEntry(sf_name, plan.signature_file, now), ziparchive.NewEntry(block_name, block, now)]
    kept = [entry for entry in plan.archive.entries if entry.name.upper() not in own and entry is not manifest_entry]
    if manifest_entry is not None:
        at = plan.archive.entries.index(manifest_entry)
        before = [entry for entry in kept if plan.archive.entries.index(entry) < at]
    else:
        # A new manifest goes first, after a leading META-INF/ directory entry as the jar tool writes it.
        before = kept[:1] if kept and kept[0].name.upper() == META_INF else []
    after = kept[len(before) :]
    try:
        ziparchive.write(plan.archive, target, [*before, new_manifest, *signature, *after])
    except ziparchive.ZipError as exc:
        raise JarError(str(exc)) from exc
    return [sf_name, block_name]


# -- checking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerFiles:
    """One signer of a JAR: its `.SF` and its signature block."""

    name: str
    signature_file_name: str
    block_name: str
    signature_file: bytes
    block: bytes


@dataclass(frozen=True)
class SignedJar:
    """A JAR's manifest and signers, read for checking."""

    archive: ziparchive.Archive
    manifest: bytes
    signers: tuple[SignerFiles, ...]


def read_signed(path: Path) -> SignedJar:
    """The manifest and every signer (a `.SF` with its block); raises JarError when there is none."""
    try:
        archive = ziparchive.read(path)
    except ziparchive.ZipError as exc:
        raise JarError(str(exc)) from exc
    manifest = _read_entry(archive, archive.find(MANIFEST_NAME))
    if manifest is None:
        raise JarError(f"the archive has no {MANIFEST_NAME}: it is not a signed JAR.")
    signers = []
    for entry in archive.entries:
        upper = entry.name.upper()
        if not (is_signature_related(entry.name) and upper.endswith(".SF")):
            continue
        stem = entry.name[: -len(".SF")]
        blocks = [found for suffix in _BLOCK_SUFFIXES if (found := archive.find(stem + suffix)) is not None]
        if not blocks:
            raise JarError(f"{entry.name} has no signature block ({stem}.RSA, .EC or .DSA).")
        signers.append(
            SignerFiles(
                stem[len(META_INF) :], entry.name, blocks[0].name,
                _read_entry(archive, entry) or b"", _read_entry(archive, blocks[0]) or b"",
            )
        )
    if not signers:
        raise JarError("the JAR is not signed (no META-INF/*.SF).")
    return SignedJar(archive, manifest, tuple(signers))


class EntryDigests:
    """Entry digests of one JAR, computed once per hash algorithm however many signers ask."""

    def __init__(self, archive: ziparchive.Archive) -> None:
        self.archive = archive
        self._by_algorithm: dict[str, dict[str, bytes]] = {}

    def get(self, hash_algorithm: str) -> dict[str, bytes]:
        """Every digested entry's digest under `hash_algorithm`; raises JarError."""
        if hash_algorithm not in self._by_algorithm:
            found = entry_digests(self.archive, {hash_algorithm})
            self._by_algorithm[hash_algorithm] = {name: digests[hash_algorithm] for name, digests in found.items()}
        return self._by_algorithm[hash_algorithm]


def check_signer(signed: SignedJar, signer: SignerFiles, digests: EntryDigests) -> tuple[bool, str]:
    """Whether the signer's `.SF` covers the manifest and the manifest every entry, as jarsigner checks.

    The `.SF` must carry the digest of the whole manifest, or else of its main section and of each
    section it names; every entry that is not a signature file must be named by a covered section
    whose digest is the entry's. SHA-1 and MD5 digests do not count. Returns (ok, what was found).
    """
    try:
        manifest = jar_manifest.parse(signed.manifest)
        sections = manifest.named()
        signature_file = jar_manifest.parse(signer.signature_file)
        covered = _covered(manifest, sections, signature_file, signed.manifest, signer)
    except (ManifestError, _Uncovered) as exc:
        return False, str(exc)
    files = [entry.name for entry in signed.archive.entries if digested(entry)]
    algorithms: set[str] = set()
    for name in files:
        if name not in covered:
            return False, f"{name} is not signed by {signer.signature_file_name}"
        expected = jar_manifest.digests_in(sections[name])
        if not expected:
            return False, f"{name} has no SHA-256, SHA-384 or SHA-512 digest in the manifest"
        for algorithm, value in expected.items():
            try:
                actual = digests.get(algorithm)[name]
            except JarError as exc:
                return False, str(exc).rstrip(".")
            if base64.b64encode(actual).decode("ascii") != value:
                return False, f"{name} does not match its {algorithm} digest in the manifest"
            algorithms.add(algorithm)
    names = ", ".join(sorted(algorithms)) or "no"
    return True, (
        f"{signer.signature_file_name} covers the manifest, whose {names} digests match all {len(files)} entries"
    )


class _Uncovered(Exception):
    """The `.SF` does not cover the manifest (the message says where)."""


def _covered(
    manifest: jar_manifest.Manifest, sections: dict[str, jar_manifest.Section],
    signature_file: jar_manifest.Manifest, manifest_bytes: bytes, signer: SignerFiles,
) -> set[str]:
    """The names whose manifest sections the `.SF` covers; raises _Uncovered when it covers none."""
    listed = signature_file.named()
    whole = jar_manifest.digests_in(signature_file.main, "-Digest-Manifest")
    if whole and all(jar_manifest.digest_b64(manifest_bytes, a) == v for a, v in whole.items()):
        return set(listed)
    main = jar_manifest.digests_in(signature_file.main, "-Digest-Manifest-Main-Attributes")
    if any(jar_manifest.digest_b64(manifest.main.raw, a) != v for a, v in main.items()):
        raise _Uncovered(f"the manifest's main attributes do not match {signer.signature_file_name}")
    covered = set()
    for name, listed_section in listed.items():
        expected = jar_manifest.digests_in(listed_section)
        found = sections.get(name)
        if found is None or not expected:
            continue
        if all(jar_manifest.digest_b64(found.raw, a) == v for a, v in expected.items()):
            covered.add(name)
    if not covered and listed:
        raise _Uncovered(f"{signer.signature_file_name} does not match the manifest")
    return covered
