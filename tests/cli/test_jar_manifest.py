"""The manifest and `.SF` text formats: 72-byte lines, sections cut as the JDK cuts them, kept sections kept."""

from __future__ import annotations

import base64
import hashlib

from rotasign_cli import jar_manifest


def _b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_long_names_wrap_at_72_bytes_without_splitting_a_character() -> None:
    name = "com/example/" + "ünïcödé-" * 12 + "Main.class"
    raw = jar_manifest.section([("Name", name), ("SHA-256-Digest", _b64(b"x"))]).raw
    lines = raw.split(b"\r\n")
    assert lines[-2:] == [b"", b""]  # CRLF, then the blank line that ends the section
    assert all(len(line) <= 72 for line in lines)
    assert len(lines) > 5 and all(line.startswith(b" ") for line in lines[1:-3])  # continuation lines
    for line in lines:
        line.decode("utf-8")  # no line ends inside a character
    assert jar_manifest.parse(b"Manifest-Version: 1.0\r\n\r\n" + raw).named()[name].get("SHA-256-Digest") == _b64(b"x")


def test_sections_are_cut_as_the_jdk_cuts_them() -> None:
    main = b"Manifest-Version: 1.0\nMain-Class: com.example.Main\n\n"
    first = b"Name: a.txt\nSHA-256-Digest: AAAA\n\n"
    extra_blank = b"\n"
    second = b"Name: b.txt\nSHA-256-Digest: BBBB\n"  # the last section may end without its blank line
    manifest = jar_manifest.parse(main + first + extra_blank + second)
    assert manifest.main.raw == main
    named = manifest.named()
    assert named["a.txt"].raw == first  # one blank line belongs to it; the next is a section of its own
    assert named["b.txt"].raw == second and not named["b.txt"].delimited()
    assert manifest.raw == main + first + extra_blank + second


def test_an_update_keeps_right_sections_byte_for_byte_and_fixes_the_rest() -> None:
    main = b"Manifest-Version: 1.0\nMain-Class: com.example.Main\nCreated-By: elsewhere\n\n"
    right = f"Name: a.txt\nSHA-256-Digest: {_b64(b'a')}\nX-Note: kept\n\n".encode()
    stale = f"Name: b.txt\nSHA-256-Digest: {_b64(b'old')}\nSHA1-Digest: x\n\n".encode()
    other = b"Name: gone.txt\nSHA-256-Digest: AAAA\n"
    existing = main + right + stale + other
    digests = {name: {"SHA-256": _b64(name[0].encode())} for name in ("a.txt", "b.txt", "c.txt")}
    updated = jar_manifest.updated_manifest(existing, digests, "SHA-256", "tests")
    assert updated.startswith(main + right)  # untouched: another signer's digests of them still hold
    sections = jar_manifest.parse(updated).named()
    assert sections["b.txt"].attributes == (("Name", "b.txt"), ("SHA-256-Digest", _b64(b"b")))
    assert sections["gone.txt"].raw == other + b"\n"  # ended with a blank line so that a section can follow
    assert sections["c.txt"].raw == f"Name: c.txt\r\nSHA-256-Digest: {_b64(b'c')}\r\n\r\n".encode()
    assert updated.endswith(sections["c.txt"].raw)


def test_a_new_manifest_and_its_signature_file() -> None:
    manifest = jar_manifest.updated_manifest(None, {"a.txt": {"SHA-256": _b64(b"a")}}, "SHA-256", "rotasign-cli/1")
    assert manifest == (
        f"Manifest-Version: 1.0\r\nCreated-By: rotasign-cli/1\r\n\r\nName: a.txt\r\nSHA-256-Digest: {_b64(b'a')}"
        "\r\n\r\n"
    ).encode()
    sf = jar_manifest.parse(jar_manifest.signature_file(manifest, "SHA-256", "rotasign-cli/1"))
    parsed = jar_manifest.parse(manifest)
    assert sf.main.get("Signature-Version") == "1.0"
    assert sf.main.get("SHA-256-Digest-Manifest") == _b64(manifest)
    assert sf.main.get("SHA-256-Digest-Manifest-Main-Attributes") == _b64(parsed.main.raw)
    assert sf.named()["a.txt"].get("SHA-256-Digest") == _b64(parsed.named()["a.txt"].raw)


def test_sections_right_under_another_algorithm_are_kept() -> None:
    existing = f"Manifest-Version: 1.0\r\n\r\nName: a.txt\r\nSHA-256-Digest: {_b64(b'a')}\r\n\r\n".encode()
    assert jar_manifest.algorithms_in(existing) == {"SHA-256"}
    sha512 = base64.b64encode(hashlib.sha512(b"a").digest()).decode()
    updated = jar_manifest.updated_manifest(
        existing, {"a.txt": {"SHA-256": _b64(b"a"), "SHA-512": sha512}}, "SHA-512", "tests"
    )
    assert updated == existing  # a SHA-512 signer signs the SHA-256 section as it is
