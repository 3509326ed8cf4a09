"""The text files of a signed JAR: `META-INF/MANIFEST.MF` and the signer's `.SF`.

Both are sections of `Name: value` lines separated by blank lines; a line holds at most 72 bytes
and continues on the next line after one space. The manifest's main section comes first; each
other section names an entry and carries its digest (`SHA-256-Digest: base64`). The `.SF` file
repeats that shape one level up: the digest of the whole manifest (`SHA-256-Digest-Manifest`), of
its main section (`...-Digest-Manifest-Main-Attributes`) and of each of its sections, where a
section's digest covers its bytes exactly as they are in the file, blank line included.

Signatures over the manifest are over its raw bytes, so sections that are kept are kept byte for
byte: the sections another signer signed stay valid when this one adds its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from rotasign_cli.algorithms import HASH_ALGORITHMS, api_hash_name, hashlib_name

CRLF = b"\r\n"
MAX_LINE = 72
MANIFEST_NAME = "META-INF/MANIFEST.MF"


class ManifestError(ValueError):
    """A manifest or signature file that cannot be read, and why."""


@dataclass(frozen=True)
class Section:
    """One section: its attributes in order, and its bytes as found (blank line included)."""

    attributes: tuple[tuple[str, str], ...]
    raw: bytes

    @property
    def name(self) -> str | None:
        """The entry this section is about: its first line's `Name` (None for a main or empty section)."""
        if self.attributes and self.attributes[0][0].lower() == "name":
            return self.attributes[0][1]
        return None

    def get(self, attribute: str) -> str | None:
        """An attribute's value by case-insensitive name, or None."""
        wanted = attribute.lower()
        return next((value for key, value in self.attributes if key.lower() == wanted), None)

    def delimited(self) -> bool:
        """Whether the section ends with a blank line, so that another can follow it."""
        return self.raw.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest or signature file: its main section and the named ones."""

    main: Section
    sections: tuple[Section, ...]

    @property
    def raw(self) -> bytes:
        """The file's bytes."""
        return self.main.raw + b"".join(section.raw for section in self.sections)

    def named(self) -> dict[str, Section]:
        """The named sections by name; raises ManifestError when a name has two sections."""
        found: dict[str, Section] = {}
        for current in self.sections:
            name = current.name
            if name is None:
                continue
            if name in found:
                raise ManifestError(f"{name} has two sections.")
            found[name] = current
        return found


def parse(data: bytes) -> Manifest:
    """Split a manifest into sections as the JDK does; raises ManifestError for malformed lines."""
    chunks = _sections(data)
    if not chunks:
        raise ManifestError("the file is empty.")
    parsed = [Section(_attributes(chunk), chunk) for chunk in chunks]
    return Manifest(parsed[0], tuple(parsed[1:]))


def _sections(data: bytes) -> list[bytes]:
    """Raw sections, as the JDK's ManifestDigester cuts them.

    A section runs to the end of the first blank line after it (or of the data). A blank line that
    follows a section's own is a section of its own with no attributes: the digest of the section
    before covers one blank line, not two.
    """
    sections: list[bytes] = []
    current: list[bytes] = []
    for line in data.splitlines(keepends=True):
        current.append(line)
        if line in (b"\r\n", b"\n", b"\r"):
            sections.append(b"".join(current))
            current = []
    if current:
        sections.append(b"".join(current))
    return sections


def _attributes(raw: bytes) -> tuple[tuple[str, str], ...]:
    logical: list[bytes] = []
    for line in raw.splitlines():
        if not line:
            continue
        if line.startswith(b" "):
            if not logical:
                raise ManifestError("a continuation line starts a section.")
            logical[-1] += line[1:]
        else:
            logical.append(line)
    attributes = []
    for line in logical:
        key, separator, value = line.partition(b": ")
        if not separator or not key:
            raise ManifestError(f"not a `Name: value` line: {line[:40]!r}.")
        try:
            attributes.append((key.decode("ascii"), value.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise ManifestError("a line is not UTF-8.") from exc
    return tuple(attributes)


def section(attributes: Iterable[tuple[str, str]]) -> Section:
    """A new section: each attribute on lines of at most 72 bytes, CRLF, then a blank line."""
    pairs = tuple(attributes)
    raw = b"".join(_wrap(f"{key}: {value}") for key, value in pairs) + CRLF
    return Section(pairs, raw)


def _wrap(line: str) -> bytes:
    """One attribute as 72-byte lines, never splitting a UTF-8 character."""
    out = bytearray()
    current = bytearray()
    for char in line:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > MAX_LINE:
            out += current + CRLF
            current = bytearray(b" ")
        current += encoded
    return bytes(out + current + CRLF)


def digest_attribute(hash_algorithm: str) -> str:
    """`SHA-256-Digest` for SHA-256: the JAR specification's name for an entry digest."""
    return f"{hash_algorithm}-Digest"


def digest_b64(data: bytes, hash_algorithm: str) -> str:
    """The base64 digest a manifest or signature file writes."""
    return base64.b64encode(hashlib.new(hashlib_name(hash_algorithm), data).digest()).decode("ascii")


def digests_in(section_: Section, suffix: str = "-Digest") -> dict[str, str]:
    """The section's digests by hash algorithm (`SHA-256`), for the supported ones.

    `suffix` picks the kind (`-Digest`, `-Digest-Manifest`, `-Digest-Manifest-Main-Attributes`).
    SHA-1 and MD5 digests are ignored: they no longer bind content (the JDK rejects them too).
    """
    found = {}
    for key, value in section_.attributes:
        if key.lower().endswith(suffix.lower()):
            algorithm = api_hash_name(key[: -len(suffix)])
            if algorithm in HASH_ALGORITHMS:
                found[algorithm] = value
    return found


def algorithms_in(manifest: bytes | None) -> set[str]:
    """The hash algorithms (SHA-256, -384, -512) of the entry digests a manifest already carries."""
    if manifest is None:
        return set()
    return {algorithm for current in parse(manifest).sections for algorithm in digests_in(current)}


def updated_manifest(
    existing: bytes | None, entry_digests: dict[str, dict[str, str]], hash_algorithm: str, created_by: str
) -> bytes:
    """The manifest that carries every entry's digest: `entry_digests` is name -> {algorithm: base64 digest}.

    Without a manifest a new one is written with `hash_algorithm`'s digests. Otherwise its main
    section stays as it is, and so does every section whose SHA-2 digests are all right, whatever
    their algorithm: another signer signed those bytes, and rewriting them would break its signature
    (the JDK then rejects the whole JAR). A section with a stale digest, or none, is rewritten with
    `hash_algorithm`'s; entries without a section get one at the end, in the order given.
    `entry_digests` must hold every algorithm the existing sections use (see `algorithms_in`).
    """
    attribute = digest_attribute(hash_algorithm)
    remaining = dict(entry_digests)
    if existing is None:
        main = section([("Manifest-Version", "1.0"), ("Created-By", created_by)])
        sections: list[Section] = []
    else:
        parsed = parse(existing)
        main = parsed.main
        sections = list(parsed.sections)
        for index, current in enumerate(sections):
            name = current.name
            if name is None or name not in entry_digests:
                continue
            remaining.pop(name, None)
            found = digests_in(current)
            if found and all(entry_digests[name][algorithm] == value for algorithm, value in found.items()):
                continue
            kept = [(key, value) for key, value in current.attributes if _digest_algorithm(key) is None]
            sections[index] = section([*kept, (attribute, entry_digests[name][hash_algorithm])])
    blocks = [main, *sections]
    # A section without its blank line cannot be followed by another: end it first.
    if remaining and not blocks[-1].delimited():
        blocks[-1] = _delimit(blocks[-1])
    for name, digests in remaining.items():
        blocks.append(section([("Name", name), (attribute, digests[hash_algorithm])]))
    return b"".join(block.raw for block in blocks)


def _digest_algorithm(attribute: str) -> str | None:
    """The algorithm of an entry digest attribute (`SHA-256-Digest`, `SHA1-Digest`, ...); None for another one."""
    suffix = "-digest"
    return attribute[: -len(suffix)] if attribute.lower().endswith(suffix) else None


def _delimit(last: Section) -> Section:
    """The section with a blank line after it, in the line ending it already uses."""
    for ending in (CRLF, b"\n", b"\r"):
        if last.raw.endswith(ending):
            return Section(last.attributes, last.raw + ending)
    return Section(last.attributes, last.raw + CRLF + CRLF)  # its last line has no line end


def signature_file(manifest: bytes, hash_algorithm: str, created_by: str) -> bytes:
    """The `.SF` over `manifest`: digests of the whole, of its main section and of every named section."""
    parsed = parse(manifest)
    head = section(
        [
            ("Signature-Version", "1.0"),
            ("Created-By", created_by),
            (f"{hash_algorithm}-Digest-Manifest-Main-Attributes", digest_b64(parsed.main.raw, hash_algorithm)),
            (f"{hash_algorithm}-Digest-Manifest", digest_b64(manifest, hash_algorithm)),
        ]
    )
    attribute = digest_attribute(hash_algorithm)
    named = [
        section([("Name", name), (attribute, digest_b64(current.raw, hash_algorithm))])
        for name, current in parsed.named().items()
    ]
    return head.raw + b"".join(block.raw for block in named)
