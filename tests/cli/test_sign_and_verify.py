"""End to end: `rotasign sign` in each format, checked by `rotasign verify`, by `openssl` and by `cryptography`.

A signature must verify with outside tools as well as with the CLI, and must stop verifying when one
byte of the file changes. Ed25519 CMS cannot be checked with the OpenSSL 3.0 of these machines (its CMS
code hands EdDSA a digest), so it is checked here with `cryptography` over the signed attributes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from tests.cli.conftest import Cli, Stack, assert_error, checks, flip_byte
from tests.support.openssl import openssl

pytestmark = pytest.mark.e2e

KEYS = {
    "RSA": ["--algorithm", "RSA", "--key-size", "3072", "--storage", "hsm"],
    "ECDSA": ["--algorithm", "ECDSA", "--curve", "P-384"],
    "EdDSA": ["--algorithm", "EdDSA"],
}
SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"
WAIT_FOR_EXPIRY = 120.0


@pytest.fixture(scope="module")
def keypairs(stack: Stack, installed: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One static keypair per algorithm (alias by algorithm)."""
    home = tmp_path_factory.mktemp("signing-home")
    rs = Cli(installed[1], installed[0], home, {"ROTASIGN_ENDPOINT": stack.endpoint, "ROTASIGN_API_KEY": stack.api_key})
    aliases = {}
    for algorithm, params in KEYS.items():
        aliases[algorithm] = f"sign-{algorithm.lower()}-{secrets.token_hex(3)}"
        rs("keypair", "create", aliases[algorithm], "--type", "static", *params).ok()
    return aliases


def artifact(tmp_path: Path, name: str = "app.bin", size: int = 200_000) -> Path:
    """A file to sign."""
    path = tmp_path / name
    path.write_bytes(secrets.token_bytes(size))
    return path


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_bundle_signs_and_verifies_and_one_changed_byte_fails(
    rs: Cli, keypairs: dict[str, str], ca_pem: Path, tmp_path: Path, algorithm: str
) -> None:
    target = artifact(tmp_path)
    line = rs("sign", "--keypair", keypairs[algorithm], str(target)).ok().out
    bundle_path = Path(f"{target}.rsig.json")
    assert line.startswith(f"Signed {target} -> {bundle_path} ({keypairs[algorithm]} generation 1, ")
    bundle = json.loads(bundle_path.read_text())
    expected_hash = "SHA-384" if algorithm == "ECDSA" else "SHA-256"  # P-384 keys default to SHA-384
    assert bundle["hash_algorithm"] == expected_hash
    digest = hashlib.new(expected_hash.replace("-", ""), target.read_bytes()).digest()
    assert base64.b64decode(bundle["digest"]) == digest
    me = rs("healthcheck", "--json").ok().json()
    assert bundle["account_id"] == me["account"]["id"]
    assert bundle["keypair_alias"] == keypairs[algorithm] and bundle["generation"] == 1
    assert bundle["certificate"].startswith("-----BEGIN CERTIFICATE-----") and len(bundle["chain"]) == 1
    for name in ("signature", "timestamp_token", "signature_log_id", "key_id", "keypair_id", "sig_alg"):
        assert bundle[name], name

    verified = rs("verify", str(target), "--bundle", str(bundle_path), "--ca", str(ca_pem)).ok()
    names = ("format", "digest", "signature", "timestamp", "chain", "usage", "time")
    assert checks(verified) == dict.fromkeys(names, "ok")
    assert verified.out.endswith(f"Verified: {target}\n")
    # Without --bundle, FILE.rsig.json is found beside the file.
    assert rs("verify", str(target), "--ca", str(ca_pem), "--json").ok().json()["verified"] is True

    flip_byte(target)
    failed = rs("verify", str(target), "--ca", str(ca_pem))
    assert_error(failed, 1, "verification failed (digest)")
    assert checks(failed)["digest"] == "FAILED" and checks(failed)["signature"] == "ok"


@pytest.mark.parametrize("algorithm", ["RSA", "ECDSA"])
def test_cms_verifies_with_openssl_and_rotasign_and_one_changed_byte_fails_both(
    rs: Cli, keypairs: dict[str, str], ca_pem: Path, tmp_path: Path, algorithm: str
) -> None:
    target = artifact(tmp_path)
    rs("sign", "--keypair", keypairs[algorithm], "--format", "cms", str(target)).ok()
    p7s = Path(f"{target}.p7s")
    command = ("cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s), "-content", str(target),
               "-CAfile", str(ca_pem), "-purpose", "any", "-out", os.devnull)
    accepted = openssl(*command)
    assert accepted.returncode == 0, accepted.stderr
    assert "Verification successful" in accepted.stderr
    assert checks(rs("verify", str(target), "--cms", str(p7s), "--ca", str(ca_pem)).ok())["timestamp"] == "ok"

    flip_byte(target)
    assert openssl(*command).returncode != 0
    assert_error(rs("verify", str(target), "--cms", str(p7s), "--ca", str(ca_pem)), 1, "(digest)")


def test_ed25519_cms_follows_rfc_8419(rs: Cli, keypairs: dict[str, str], ca_pem: Path, tmp_path: Path) -> None:
    target = artifact(tmp_path)
    rs("sign", "--keypair", keypairs["EdDSA"], "--format", "cms", str(target)).ok()
    p7s = Path(f"{target}.p7s")
    rs("verify", str(target), "--ca", str(ca_pem)).ok()  # finds FILE.p7s

    # An independent reading: asn1crypto for the structure, cryptography for the signature.
    signed_data = cms.ContentInfo.load(p7s.read_bytes())["content"]
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    signer = signed_data["signer_infos"][0]
    assert signer["digest_algorithm"]["algorithm"].dotted == "2.16.840.1.101.3.4.2.3"  # SHA-512, RFC 8419
    assert signer["signature_algorithm"]["algorithm"].dotted == "1.3.101.112"  # id-Ed25519
    attrs = {a["type"].native: a["values"][0].native for a in signer["signed_attrs"]}
    assert attrs["content_type"] == "data"
    assert attrs["message_digest"] == hashlib.sha512(target.read_bytes()).digest()
    assert "signing_time" in attrs
    # The signer's certificate by its issuer and serial: DER sorts a SET OF by encoding, so the leaf may
    # come after its CA.
    sid = signer["sid"].chosen
    (leaf,) = [c.chosen for c in signed_data["certificates"]
               if c.chosen.serial_number == sid["serial_number"].native and c.chosen.issuer == sid["issuer"]]
    certificate = x509.load_der_x509_certificate(leaf.dump())
    public_key = certificate.public_key()
    assert isinstance(public_key, ed25519.Ed25519PublicKey)
    stored = signer["signed_attrs"].dump()
    der_set = b"\x31" + stored[1:]  # the signature covers the attributes under the SET tag, not [0]
    signature = signer["signature"].native
    public_key.verify(signature, der_set)  # PureEdDSA over the DER itself

    unsigned = {a["type"].dotted: a["values"][0] for a in signer["unsigned_attrs"]}
    token = unsigned[SIGNATURE_TIME_STAMP_TOKEN]
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    assert isinstance(tst_info, tsp.TSTInfo)
    assert tst_info["message_imprint"]["hashed_message"].native == hashlib.sha256(signature).digest()

    flip_byte(target)
    assert_error(rs("verify", str(target), "--cms", str(p7s), "--ca", str(ca_pem)), 1, "(digest)")


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_raw_files_verify_with_plain_openssl(
    rs: Cli, keypairs: dict[str, str], ca_pem: Path, tmp_path: Path, algorithm: str
) -> None:
    target = artifact(tmp_path)
    out = rs("sign", "--keypair", keypairs[algorithm], "--format", "raw", "--hash-algorithm", "SHA-256",
             str(target)).ok().out
    sig, pem, tst = (Path(f"{target}{suffix}") for suffix in (".sig", ".sig.pem", ".sig.tst"))
    assert f"-> {sig}, {pem}, {tst} (" in out
    assert not list(tmp_path.glob("*.tsr"))
    certificates = x509.load_pem_x509_certificates(pem.read_bytes())
    assert len(certificates) == 2 and certificates[1].issuer == certificates[1].subject  # leaf, then its CA
    public = tmp_path / "public.pem"
    assert openssl("x509", "-in", str(pem), "-pubkey", "-noout", "-out", str(public)).returncode == 0
    if algorithm == "EdDSA":  # Ed25519 signs the digest bytes as its message
        digest = tmp_path / "digest.bin"
        digest.write_bytes(hashlib.sha256(target.read_bytes()).digest())
        result = openssl("pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin", "-in", str(digest),
                         "-sigfile", str(sig))
    else:
        result = openssl("dgst", "-sha256", "-verify", str(public), "-signature", str(sig), str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    stamped = openssl("ts", "-verify", "-data", str(sig), "-in", str(tst), "-token_in", "-CAfile", str(ca_pem))
    assert stamped.returncode == 0 and "Verification: OK" in stamped.stdout, stamped.stdout + stamped.stderr


def test_sign_hash_signs_a_digest(rs: Cli, keypairs: dict[str, str], tmp_path: Path) -> None:
    digest = hashlib.sha384(b"built elsewhere").digest()
    answer = rs("sign-hash", "--keypair", keypairs["ECDSA"], "--digest", digest.hex(), "--json").ok().json()
    assert answer["sig_alg"] == "SHA384withECDSA"  # the digest's length named the hash
    certificate = x509.load_pem_x509_certificate(answer["certificate"]["pem"].encode())
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(answer["signature"]), digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    line = rs("sign-hash", "--keypair", keypairs["ECDSA"], "--digest", base64.b64encode(digest).decode()).ok().out
    assert line.split()[1:4] == [f"({keypairs['ECDSA']}", "generation", "1,"]
    assert_error(rs("sign-hash", "--keypair", keypairs["ECDSA"], "--digest", "abcd"), 2, "--digest has 2 bytes")


def test_a_dynamic_signature_verifies_after_its_key_is_gone_through_its_time_stamp(
    rs: Cli, stack: Stack, ca_pem: Path, tmp_path: Path
) -> None:
    name = f"expiring-{secrets.token_hex(3)}"
    rs("keypair", "create", name, "--type", "dynamic", "--algorithm", "ECDSA", "--curve", "P-256").ok()
    target = artifact(tmp_path)
    rs("sign", "--keypair", name, str(target)).ok()
    cms_target = artifact(tmp_path, "cms.bin")
    rs("sign", "--keypair", name, "--format", "cms", str(cms_target)).ok()
    bundle = json.loads(Path(f"{target}.rsig.json").read_text())
    not_after = x509.load_pem_x509_certificate(bundle["certificate"].encode()).not_valid_after_utc.timestamp()
    deadline = time.monotonic() + WAIT_FOR_EXPIRY
    while time.time() <= not_after + 1 or _generation(rs, name) <= bundle["generation"]:
        assert time.monotonic() < deadline, "the dynamic keypair's certificate never expired"
        time.sleep(1)

    for signed in (target, cms_target):
        verified = rs("verify", str(signed), "--ca", str(ca_pem)).ok()
        assert checks(verified)["time"] == "ok"

    original = Path(f"{target}.rsig.json")
    signature = base64.b64decode(bundle["signature"])

    def edited(**changes: Any) -> Any:
        copy = tmp_path / "edited.rsig.json"
        copy.write_text(json.dumps({**bundle, **changes}))
        return rs("verify", str(target), "--bundle", str(copy), "--ca", str(ca_pem))

    # The bundle's own time is not evidence: moving it changes nothing, either way.
    assert edited(signed_at="2000-01-01T00:00:00Z").ok()
    removed = edited(timestamp_token=None, signed_at=bundle["signed_at"])
    assert_error(removed, 1, "timestamp", "time")
    # A token whose time was moved (one digit of genTime), or whose own signature was damaged.
    token = base64.b64decode(bundle["timestamp_token"])
    gen_time = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed["gen_time"].dump()
    assert token.count(gen_time) == 1
    backdated = gen_time[:-3] + bytes([gen_time[-3] ^ 0x01]) + gen_time[-2:]  # a seconds digit, e.g. 18 -> 19
    for altered in (token.replace(gen_time, backdated), token[:-1] + bytes([token[-1] ^ 0x01])):
        assert_error(edited(timestamp_token=base64.b64encode(altered).decode()), 1, "timestamp")

    # A genuine token over the same signature, from the other account's TSA.
    (tmp_path / "signature.bin").write_bytes(signature)
    query = openssl("ts", "-query", "-data", str(tmp_path / "signature.bin"), "-sha256", "-cert",
                    "-out", str(tmp_path / "query.tsq"))
    assert query.returncode == 0, query.stderr
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
        f"{stack.endpoint}/api/v1/timestamp", data=(tmp_path / "query.tsq").read_bytes(), method="POST",
        headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply",
                 "X-API-Key": stack.other_api_key},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=60) as answer:
        (tmp_path / "reply.tsr").write_bytes(answer.read())
    extracted = openssl("ts", "-reply", "-in", str(tmp_path / "reply.tsr"), "-token_out",
                        "-out", str(tmp_path / "other.tst"))
    assert extracted.returncode == 0, extracted.stderr
    foreign = base64.b64encode((tmp_path / "other.tst").read_bytes()).decode()
    failed = edited(timestamp_token=foreign)
    assert_error(failed, 1, "timestamp")
    assert "not from the account's TSA" in failed.out
    assert original.exists()


def _generation(rs: Cli, name: str) -> int:
    return int(rs("keypair", "desc", name, "--json").ok().json()["generation"])


def test_a_progress_bar_on_a_terminal_only(rs: Cli, keypairs: dict[str, str], tmp_path: Path) -> None:
    target = artifact(tmp_path, size=3 * 1024 * 1024)
    master, slave = pty.openpty()
    try:
        process = subprocess.run(rs.command("sign", "--keypair", keypairs["EdDSA"], str(target)),
                                 env=rs.environment(), stdout=subprocess.PIPE, stderr=slave, check=False, timeout=120)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert process.returncode == 0
    assert b"[########################] 100%  3.0 MiB / 3.0 MiB  1/1 files" in drawn
    assert process.stdout.decode().startswith(f"Signed {target} -> ")
    # Captured (not a terminal): no bar, nothing on stderr.
    assert rs("sign", "--keypair", keypairs["EdDSA"], str(target)).ok().err == ""


# Measures a command's peak memory from a small parent. Linux charges a child with its parent's resident
# memory up to exec (a fork shares it), so measured straight from a pytest worker the figure would be the
# worker's size, not the CLI's.
_PEAK_RSS = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss * 1024, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _max_rss(rs: Cli, *args: str) -> tuple[int, str]:
    """Run `rotasign args`; (its peak resident memory in bytes, its stdout)."""
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, *rs.command(*args)], env=rs.environment(),
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1]), done.stdout


def test_a_1_gib_file_signs_with_flat_memory(rs: Cli, keypairs: dict[str, str], tmp_path: Path) -> None:
    size = 1024**3
    big = tmp_path / "big.img"
    with big.open("wb") as handle:
        handle.truncate(size)  # sparse: a GiB to read, no GiB on disk
    small = artifact(tmp_path, "small.bin", size=1024)
    small_rss, _ = _max_rss(rs, "sign", "--keypair", keypairs["ECDSA"], "--format", "cms", str(small))
    big_rss, out = _max_rss(rs, "sign", "--keypair", keypairs["ECDSA"], "--format", "cms", str(big))
    print(f"max RSS signing 1 KiB: {small_rss / 2**20:.1f} MiB; signing {size >> 20} MiB: {big_rss / 2**20:.1f} MiB")
    assert out.startswith(f"Signed {big} -> {big}.p7s")
    assert big_rss < size / 10, f"{big_rss} bytes of memory for a {size}-byte file"
    assert big_rss - small_rss < 16 * 2**20  # flat: the file's size does not show in memory
