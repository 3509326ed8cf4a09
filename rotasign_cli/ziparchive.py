"""Rewrite a ZIP archive (a JAR) entry by entry: existing entries are copied byte for byte.

A copied entry keeps its local header, compressed data, data descriptor, time stamps, extra fields
and central-directory record exactly as they were; only the offset that points at it changes when
entries before it change. New entries are written deflated. Whatever precedes the first entry (the
launch script of an executable JAR) and the archive comment are kept too.

ZIP64 archives (over 4 GiB or 65,535 entries), split archives and encrypted entries are refused:
JARs are none of those.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_EOCD_SIZE = 22
_CENTRAL_SIZE = 46
_MAX_COMMENT = 0xFFFF
_UTF8_NAMES = 0x0800
_ENCRYPTED = 0x0001


class ZipError(ValueError):
    """An archive this module cannot rewrite, and why."""


@dataclass(frozen=True)
class Entry:
    """An entry of the archive as found: its name and where its bytes are."""

    name: str
    start: int  # the local header's position in the file
    end: int  # where the next entry (or the central directory) starts
    central: bytes  # its central-directory record, byte for byte

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a directory."""
        return self.name.endswith("/")


@dataclass(frozen=True)
class NewEntry:
    """An entry to write: its name, its content and its time."""

    name: str
    data: bytes
    modified: datetime


@dataclass(frozen=True)
class Archive:
    """A ZIP archive's layout: the data before its entries, its entries in directory order, its comment."""

    path: Path
    prefix: int  # bytes before the first entry
    base: int  # positions in the file are offsets in the directory plus this (data prepended later)
    entries: tuple[Entry, ...]
    comment: bytes

    def find(self, name: str) -> Entry | None:
        """The entry named `name`, compared without case (as the JDK finds signature files)."""
        wanted = name.upper()
        return next((entry for entry in self.entries if entry.name.upper() == wanted), None)


def is_zip(path: Path) -> bool:
    """Whether the file starts like a ZIP archive."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) == _LOCAL
    except OSError:
        return False


def read(path: Path) -> Archive:
    """The layout of a ZIP archive; raises ZipError when it is not one this module can rewrite."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT)
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
        eocd = _find_eocd(tail)
        if eocd is None:
            raise ZipError("not a ZIP archive (no end of central directory).")
        position = size - tail_size + eocd
        disk, cd_disk, on_disk, count, cd_size, cd_offset, comment_size = struct.unpack_from(
            "<HHHHIIH", tail, eocd + 4
        )
        if disk or cd_disk or on_disk != count:
            raise ZipError("split ZIP archives are not supported.")
        if (eocd >= 20 and tail[eocd - 20 : eocd - 16] == _ZIP64_LOCATOR) or 0xFFFFFFFF in (cd_size, cd_offset):
            raise ZipError("ZIP64 archives (over 4 GiB or 65,535 entries) are not supported.")
        base = position - cd_size - cd_offset
        if base < 0:
            raise ZipError("the central directory lies outside the file.")
        handle.seek(cd_offset + base)
        directory = handle.read(cd_size)
        records = list(_central_records(directory, count))
        starts = sorted({offset + base for _, offset, _ in records})
        ends = dict(zip(starts, [*starts[1:], cd_offset + base], strict=True))
        entries = []
        for name, offset, record in records:
            handle.seek(offset + base)
            if handle.read(4) != _LOCAL:
                raise ZipError(f"{name}: no local header where the directory points.")
            entries.append(Entry(name, offset + base, ends[offset + base], record))
        comment = tail[eocd + _EOCD_SIZE : eocd + _EOCD_SIZE + comment_size]
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ZipError("the archive names an entry twice.")
    return Archive(path, min(starts, default=cd_offset + base), base, tuple(entries), comment)


def _find_eocd(tail: bytes) -> int | None:
    """The end-of-central-directory record whose comment runs exactly to the end of the file."""
    position = tail.rfind(_EOCD)
    while position >= 0:
        if len(tail) - position >= _EOCD_SIZE:
            comment_size = struct.unpack_from("<H", tail, position + 20)[0]
            if position + _EOCD_SIZE + comment_size == len(tail):
                return position
        position = tail.rfind(_EOCD, 0, position)
    return None


def _central_records(directory: bytes, count: int) -> Iterator[tuple[str, int, bytes]]:
    """(name, local header offset, the whole record) of each central-directory record."""
    position = 0
    for _ in range(count):
        if directory[position : position + 4] != _CENTRAL or len(directory) < position + _CENTRAL_SIZE:
            raise ZipError("the central directory is malformed.")
        flags = struct.unpack_from("<H", directory, position + 8)[0]
        name_size, extra_size, comment_size = struct.unpack_from("<HHH", directory, position + 28)
        offset = struct.unpack_from("<I", directory, position + 42)[0]
        end = position + _CENTRAL_SIZE + name_size + extra_size + comment_size
        raw_name = directory[position + _CENTRAL_SIZE : position + _CENTRAL_SIZE + name_size]
        name = raw_name.decode("utf-8" if flags & _UTF8_NAMES else "cp437")
        if flags & _ENCRYPTED:
            raise ZipError(f"{name}: encrypted entries are not supported.")
        if offset == 0xFFFFFFFF:
            raise ZipError("ZIP64 archives (over 4 GiB or 65,535 entries) are not supported.")
        yield name, offset, directory[position:end]
        position = end
    if position != len(directory):
        raise ZipError("the central directory is malformed.")


def write(archive: Archive, target: BinaryIO, plan: Sequence[Entry | NewEntry]) -> None:
    """Write to `target` the archive's prefix, then `plan` in order (copied or new entries), its directory."""
    directory = bytearray()
    with archive.path.open("rb") as source:
        _copy(source, target, 0, archive.prefix)
        for item in plan:
            offset = target.tell() - archive.base
            if offset >= 0xFFFFFFFF:
                raise ZipError("the signed archive would need ZIP64 (over 4 GiB).")
            if isinstance(item, Entry):
                _copy(source, target, item.start, item.end - item.start)
                record = bytearray(item.central)
                struct.pack_into("<I", record, 42, offset)
                directory += record
            else:
                local, central = _new_records(item, offset)
                target.write(local)
                directory += central
    if len(plan) > 0xFFFF:
        raise ZipError("the signed archive would need ZIP64 (over 65,535 entries).")
    start = target.tell() - archive.base
    target.write(directory)
    target.write(
        _EOCD
        + struct.pack("<HHHHIIH", 0, 0, len(plan), len(plan), len(directory), start, len(archive.comment))
        + archive.comment
    )


def _copy(source: BinaryIO, target: BinaryIO, start: int, count: int) -> None:
    source.seek(start)
    while count > 0:
        chunk = source.read(min(CHUNK, count))
        if not chunk:
            raise ZipError("the archive ended early.")
        target.write(chunk)
        count -= len(chunk)


def _new_records(entry: NewEntry, offset: int) -> tuple[bytes, bytes]:
    """The local record (header and deflated data) and the central-directory record of a new entry."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(entry.data) + compressor.flush()
    name = entry.name.encode("utf-8")
    flags = 0 if name.isascii() else _UTF8_NAMES
    dos_time, dos_date = _dos_time(entry.modified)
    crc = zlib.crc32(entry.data)
    common = struct.pack("<HHHHHIII", 20, flags, 8, dos_time, dos_date, crc, len(data), len(entry.data))
    local = _LOCAL + common + struct.pack("<HH", len(name), 0) + name + data
    central = (
        _CENTRAL + struct.pack("<H", 20) + common + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name
    )
    return local, central


def _dos_time(moment: datetime) -> tuple[int, int]:
    """MS-DOS time and date, in local time as ZIP tools write them (two-second resolution)."""
    local = time.localtime(moment.timestamp())
    year = min(max(local.tm_year, 1980), 2107)
    return (
        (local.tm_hour << 11) | (local.tm_min << 5) | (local.tm_sec // 2),
        ((year - 1980) << 9) | (local.tm_mon << 5) | local.tm_mday,
    )
