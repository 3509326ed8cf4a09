"""Just enough DER (X.690) to fill in a pre-encoded structure: lengths, wrappers and three primitives.

The TSA encodes its fixed parts once with asn1crypto; per token it only has to wrap bytes in a tag and
a length and encode a serial, a nonce and a time. Building asn1crypto objects for that costs ~40 times
the signature itself, so these helpers write the bytes directly.
"""

from __future__ import annotations

from datetime import UTC, datetime

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
GENERALIZED_TIME = 0x18

# One-byte encodings, built once: a token needs ~18 tags and lengths, and bytes((n,)) is the slow part.
_BYTE: tuple[bytes, ...] = tuple(bytes((n,)) for n in range(256))


def context(number: int) -> int:
    """The tag byte of a constructed context-specific [number] (EXPLICIT, or IMPLICIT over SET/SEQUENCE)."""
    if not 0 <= number <= 30:
        raise ValueError("Only low tag numbers (0-30) fit in one byte.")
    return 0xA0 | number


def length(n: int) -> bytes:
    """The definite-length octets for `n` content bytes: short form below 128, else minimal long form."""
    if n < 0:
        raise ValueError("A length cannot be negative.")
    if n < 0x80:
        return _BYTE[n]
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return _BYTE[0x80 | len(octets)] + octets


def tlv(tag: int, content: bytes) -> bytes:
    """One element: a single-byte `tag`, the length of `content`, then `content`."""
    n = len(content)
    return _BYTE[tag] + (_BYTE[n] if n < 0x80 else length(n)) + content


def sequence(*parts: bytes) -> bytes:
    """A SEQUENCE of already-encoded elements, in the order given."""
    return tlv(SEQUENCE, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    """A SET OF already-encoded elements, sorted by their encodings as DER requires (X.690 11.6)."""
    # Python orders bytes lexicographically with a prefix first, which is X.690's rule of padding the
    # shorter encoding with trailing zero octets (two distinct DER elements never differ only there).
    return tlv(SET, b"".join(sorted(parts)))


def integer(value: int) -> bytes:
    """An INTEGER in the fewest two's-complement octets (a leading 0x00 only before a set high bit)."""
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def octet_string(value: bytes) -> bytes:
    """An OCTET STRING."""
    return tlv(OCTET_STRING, value)


def generalized_time(value: datetime) -> bytes:
    """A GeneralizedTime in UTC (`YYYYMMDDHHMMSS[.fff]Z`): no trailing zeros in the fraction (X.690 11.7)."""
    if value.tzinfo is None:
        raise ValueError("A GeneralizedTime needs a timezone-aware datetime.")
    t = value.astimezone(UTC)
    text = "%04d%02d%02d%02d%02d%02d" % (t.year, t.month, t.day, t.hour, t.minute, t.second)  # noqa: UP031 -- faster
    if t.microsecond:
        text += ".%s" % ("%06d" % t.microsecond).rstrip("0")  # noqa: UP031
    return tlv(GENERALIZED_TIME, (text + "Z").encode("ascii"))
