"""Windows PE files (`.exe`, `.dll`, `.sys`, ...) as Authenticode sees them: the image digest and the certificate table.

Authenticode hashes the whole file except three places that signing changes: the optional header's
`CheckSum`, the certificate-table entry of the data directory, and the certificate table itself
(which must come last in the file). An unsigned file is hashed as if zero-padded to a multiple of
8 bytes, because the table that signing appends starts on an 8-byte boundary and the padding
becomes part of the file. Writing a signed copy appends one `WIN_CERTIFICATE` (revision 2.0, type
PKCS#7 SignedData), points the data directory at it and recomputes the `CheckSum`.

Files are streamed in 1 MiB chunks: memory stays flat whatever their size.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rotasign_cli.algorithms import new_hash

CHUNK = 1024 * 1024
WIN_CERT_REVISION_2_0 = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002
_PE32, _PE32_PLUS = 0x10B, 0x20B
_MAX_SIZE = 2**32  # the data directory holds 32-bit file offsets


class PeError(ValueError):
    """A file that is not a PE image Authenticode can sign or check, and why."""


@dataclass(frozen=True)
class Layout:
    """Where the fields that signing changes lie in one PE file."""

    size: int
    checksum_offset: int
    directory_offset: int  # the certificate-table entry: file offset and size, 4 bytes each
    table_offset: int  # 0 when the file has no certificate table
    table_size: int

    @property
    def signed(self) -> bool:
        """Whether the file carries a certificate table."""
        return self.table_offset != 0

    @property
    def image_end(self) -> int:
        """Where the hashed image ends: the certificate table, else the end of the file."""
        return self.table_offset if self.signed else self.size


def is_pe(path: Path) -> bool:
    """Whether the file starts like a PE image (`MZ`, then `PE\\0\\0` where the DOS header points)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
            if len(head) < 64 or head[:2] != b"MZ":
                return False
            handle.seek(struct.unpack_from("<I", head, 60)[0])
            return handle.read(4) == b"PE\0\0"
    except OSError:
        return False


def read_layout(handle: BinaryIO) -> Layout:
    """The layout of an open PE file; raises PeError when it is not one Authenticode can handle."""
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    head = handle.read(64)
    if len(head) < 64 or head[:2] != b"MZ":
        raise PeError("not a PE file (no MZ header).")
    if size >= _MAX_SIZE:
        raise PeError("a PE file must be smaller than 4 GiB.")
    pe = struct.unpack_from("<I", head, 60)[0]
    handle.seek(pe)
    header = handle.read(24 + 96 + 16 + 8 * 16)
    if len(header) < 4 or header[:4] != b"PE\0\0":
        raise PeError("not a PE file (no PE signature where the DOS header points).")
    if len(header) < 26:
        raise PeError("the PE file is truncated in its headers.")
    magic = struct.unpack_from("<H", header, 24)[0]
    if magic not in (_PE32, _PE32_PLUS):
        raise PeError(f"unknown optional header magic 0x{magic:04x}.")
    wide = 16 if magic == _PE32_PLUS else 0
    directory = 152 + wide
    if len(header) < directory + 8:
        raise PeError("the PE file is truncated in its headers.")
    if struct.unpack_from("<I", header, 116 + wide)[0] < 5:
        raise PeError("the PE file's data directory has no certificate-table entry.")
    table_offset, table_size = struct.unpack_from("<II", header, directory)
    if (table_offset, table_size) != (0, 0) and (
        table_offset == 0 or table_size == 0 or table_offset + table_size != size
    ):
        # Since MS12-024 Windows rejects a certificate table that is not the end of the file.
        raise PeError("the PE file's certificate table is not at the end of the file.")
    return Layout(size, pe + 88, pe + directory, table_offset, table_size)


def is_signed(path: Path) -> bool:
    """Whether a PE file carries a certificate table; raises PeError when it is not a PE file."""
    with path.open("rb") as handle:
        return read_layout(handle).signed


def image_digest(path: Path, hash_algorithm: str, progress: Callable[[int], None] | None = None) -> bytes:
    """The Authenticode digest of a PE file, signed or not; raises PeError or OSError."""
    digest = new_hash(hash_algorithm)
    with path.open("rb") as handle:
        layout = read_layout(handle)
        for chunk in _image(handle, layout):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
        if not layout.signed:
            digest.update(bytes(_padding(layout.size)))
    result: bytes = digest.digest()
    return result


def _image(handle: BinaryIO, layout: Layout) -> Iterator[bytes]:
    """The hashed bytes: everything up to the certificate table but the CheckSum and the table's entry."""
    skipped = ((layout.checksum_offset, 4), (layout.directory_offset, 8))
    position = 0
    handle.seek(0)
    for start, length in (*skipped, (layout.image_end, 0)):
        yield from _copy(handle, start - position)
        handle.seek(start + length)
        position = start + length


def _copy(handle: BinaryIO, count: int) -> Iterator[bytes]:
    while count > 0:
        chunk = handle.read(min(CHUNK, count))
        if not chunk:
            raise PeError("the PE file ended early.")
        count -= len(chunk)
        yield chunk


def _padding(size: int) -> int:
    return -size % 8


def signature_der(path: Path) -> bytes:
    """The PKCS#7 SignedData DER of a signed PE file's first Authenticode signature; raises PeError."""
    with path.open("rb") as handle:
        layout = read_layout(handle)
        if not layout.signed:
            raise PeError("the file has no Authenticode signature.")
        handle.seek(layout.table_offset)
        table = handle.read(layout.table_size)
    position = 0
    while position + 8 <= len(table):
        length, revision, kind = struct.unpack_from("<IHH", table, position)
        if length < 8 or position + length > len(table):
            raise PeError("the certificate table is malformed.")
        if revision == WIN_CERT_REVISION_2_0 and kind == WIN_CERT_TYPE_PKCS_SIGNED_DATA:
            return _der_prefix(table[position + 8 : position + length])
        position += length + _padding(length)
    raise PeError("the certificate table holds no PKCS#7 signature.")


def _der_prefix(blob: bytes) -> bytes:
    """The DER element at the start of `blob` without the zero padding after it."""
    if len(blob) < 2 or blob[0] != 0x30:
        raise PeError("the Authenticode signature is not DER.")
    first = blob[1]
    if first < 0x80:
        end = 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(blob) < 2 + count:
            raise PeError("the Authenticode signature is not DER.")
        end = 2 + count + int.from_bytes(blob[2 : 2 + count], "big")
    if end > len(blob):
        raise PeError("the Authenticode signature is truncated.")
    return blob[:end]


def write_signed(source: Path, target: BinaryIO, signature: bytes) -> None:
    """Write to `target` (seekable, empty) the unsigned `source` with `signature` (DER) as its certificate table."""
    with source.open("rb") as handle:
        layout = read_layout(handle)
        if layout.signed:
            raise PeError("the file already has an Authenticode signature.")
        table_offset = layout.size + _padding(layout.size)
        entry = signature + bytes(_padding(len(signature)))
        table = struct.pack("<IHH", 8 + len(entry), WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_PKCS_SIGNED_DATA) + entry
        if table_offset + len(table) >= _MAX_SIZE:
            raise PeError("the signed file would be 4 GiB or larger.")
        checksum = _Checksum()
        handle.seek(0)
        head = bytearray(handle.read(layout.directory_offset + 8))
        struct.pack_into("<I", head, layout.checksum_offset, 0)
        struct.pack_into("<II", head, layout.directory_offset, table_offset, len(table))
        for chunk in (bytes(head), *_copy(handle, layout.size - len(head)), bytes(_padding(layout.size)), table):
            target.write(chunk)
            checksum.update(chunk)
    target.seek(layout.checksum_offset)
    target.write(struct.pack("<I", checksum.value()))
    target.seek(0, 2)


class _Checksum:
    """The PE image checksum (as `CheckSumMappedFile`): a ones'-complement sum of 16-bit words plus the length.

    The CheckSum field itself must read as zero in the bytes given.
    """

    def __init__(self) -> None:
        self.total = 0
        self.length = 0
        self._odd = b""

    def update(self, data: bytes) -> None:
        self.length += len(data)
        data = self._odd + data
        even = len(data) - len(data) % 2
        self._odd = data[even:]
        words = array.array("H")
        words.frombytes(data[:even])
        if sys.byteorder == "big":
            words.byteswap()
        self.total += sum(words)

    def value(self) -> int:
        # A trailing odd byte counts as a word of its own, as Windows counts it.
        total = self.total + (self._odd[0] if self._odd else 0)
        folded = 0 if total == 0 else (total - 1) % 0xFFFF + 1
        return (folded + self.length) & 0xFFFFFFFF
