"""Hash files while streaming them: memory stays flat whatever the file's size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rotasign_cli.algorithms import new_hash
from rotasign_cli.errors import UsageError

CHUNK = 1024 * 1024


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
