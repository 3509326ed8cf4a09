"""Hash files while streaming them: memory stays flat whatever the file's size."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rotasign_cli.algorithms import new_hash
from rotasign_cli.errors import UsageError

CHUNK = 1024 * 1024


def check_readable(path: Path) -> int:
    """The size of a regular file the CLI can read; raises UsageError naming the problem."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file.") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}.") from exc
    if not os.path.isfile(path):
        raise UsageError(f"{path}: not a regular file.")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied.")
    return stat.st_size


def hash_file(path: Path, hash_algorithm: str, progress: Callable[[int], None] | None = None) -> bytes:
    """The digest of the file's bytes; `progress(n)` after each chunk; raises UsageError when unreadable."""
    digest = new_hash(hash_algorithm)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        with path.open("rb", buffering=0) as handle:
            while count := handle.readinto(view):
                digest.update(view[:count])
                if progress is not None:
                    progress(count)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}.") from exc
    result: bytes = digest.digest()
    return result
