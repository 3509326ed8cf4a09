"""Local files: read them with one-line errors, replace them atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rotasign_cli.errors import UsageError


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


def read_bytes(path: Path) -> bytes:
    """A small file's bytes (a signature, a certificate file); raises UsageError."""
    check_readable(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}.") from exc


@contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A new file to write that replaces `path` only when the block ends without error; raises UsageError.

    The file is written beside `path` and renamed over it, so that a reader never sees half a file
    and a failure leaves `path` as it was. It is created with mode 0600 (mkstemp), so a secret is
    never readable by others, even for an instant, when `mode` is 0600.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}.") from exc
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: {exc.strerror or exc}.") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a reader never sees half a file; raises UsageError."""
    with atomic_output(path, mode) as handle:
        handle.write(data)
