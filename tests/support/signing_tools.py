"""The platforms' own verifiers of signed files, as outside judges: osslsigncode (Authenticode), jarsigner (JAR).

Also the files they judge: a real PE file (the launchers pip ships) and JARs built here, and a way
to take the time-stamp token out of a signature, to show what the token is worth.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import zipfile
from collections.abc import Mapping
from pathlib import Path

from asn1crypto import cms

STOREPASS = "changeit"  # a truststore holds public certificates only; keytool insists on a password


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool; never raises on its exit status (callers assert on it).

    TZ=UTC makes the times jarsigner prints (in the JVM's zone) the same on every machine.
    """
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "TZ": "UTC"})


def osslsigncode_verify(signed: Path, ca: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    """`osslsigncode verify -in FILE -CAfile CA -TSA-CAfile CA` (osslsigncode prints its report on stdout)."""
    return run("osslsigncode", "verify", "-in", signed, "-CAfile", ca, "-TSA-CAfile", ca, *extra)


def truststore(ca_pem: Path, path: Path) -> Path:
    """A PKCS#12 truststore with the first certificate of `ca_pem` (the production CA of `rotasign ca get`)."""
    made = run("keytool", "-importcert", "-noprompt", "-alias", "rotasign-production", "-file", ca_pem,
               "-keystore", path, "-storetype", "PKCS12", "-storepass", STOREPASS)
    assert made.returncode == 0, made.stdout + made.stderr
    return path


def jarsigner_verify(signed: Path, store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`jarsigner -verify -strict -certs` against `store` (extra: `-verbose`)."""
    return run("jarsigner", "-verify", "-strict", "-certs", *extra, "-keystore", store, "-storepass", STOREPASS,
               signed)


def pe_sample(name: str = "t64.exe") -> Path:
    """A small real, unsigned PE file: a launcher pip ships (t64.exe is PE32+, t32.exe PE32)."""
    spec = importlib.util.find_spec("pip")
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "_vendor" / "distlib" / name
    assert path.is_file(), path
    return path


def build_jar(path: Path, entries: Mapping[str, bytes], *, stored: tuple[str, ...] = ()) -> Path:
    """A JAR as the jar tool writes one: a manifest, then `entries`, deflated except those in `stored`.

    Like the jar tool's, its entries carry no POSIX permissions (jarsigner warns about those).
    """
    manifest = b"Manifest-Version: 1.0\r\nCreated-By: tests\r\n\r\n"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {"META-INF/": b"", "META-INF/MANIFEST.MF": manifest, **entries}.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 29, 12, 0, 0))
            info.create_system = 0
            info.external_attr = 0x10 if name.endswith("/") else 0
            info.compress_type = zipfile.ZIP_STORED if name in stored or name.endswith("/") else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def without_unsigned_attributes(signed_data_der: bytes) -> bytes:
    """The same PKCS#7 SignedData with its signer's unsigned attributes (the time-stamp token) removed."""
    info = cms.ContentInfo.load(signed_data_der)
    signer = info["content"]["signer_infos"][0]
    assert len(signer["unsigned_attrs"]) == 1
    signer["unsigned_attrs"] = None
    der: bytes = info.dump(force=True)
    return der


def replace_jar_entry(source: Path, target: Path, name: str, data: bytes) -> Path:
    """A copy of a JAR with one entry's content replaced (other entries rewritten, as a tool would)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, data if info.filename == name else old.read(info))
    return target
