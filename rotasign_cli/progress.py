"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def human_bytes(count: float) -> str:
    """`512 B`, `1.5 MiB`, `1.0 GiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def render(done_bytes: int, total_bytes: int, done_files: int, total_files: int, width: int = BAR_WIDTH) -> str:
    """The bar's text: `[#####-----]  45%  450.0 MiB / 1.0 GiB  3/10 files`."""
    fraction = 1.0 if total_bytes == 0 else min(1.0, done_bytes / total_bytes)
    filled = int(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    return (
        f"[{bar}] {fraction * 100:3.0f}%  {human_bytes(done_bytes)} / {human_bytes(total_bytes)}"
        f"  {done_files}/{total_files} files"
    )


class Progress:
    """Counts hashed bytes and signed files; redraws at most every 0.1 s while enabled."""

    def __init__(self, total_bytes: int, total_files: int, *, enabled: bool, out: TextIO | None = None) -> None:
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.done_bytes = 0
        self.done_files = 0
        self.enabled = enabled
        self.out = out or sys.stderr
        self._drawn_at = 0.0
        self._shown = False

    @classmethod
    def for_terminal(cls, total_bytes: int, total_files: int, *, wanted: bool) -> Progress:
        """A bar that draws only when `wanted` and stderr is a terminal."""
        return cls(total_bytes, total_files, enabled=wanted and sys.stderr.isatty())

    def add_bytes(self, count: int) -> None:
        """Record hashed bytes."""
        self.done_bytes += count
        self._draw()

    def add_files(self, count: int) -> None:
        """Record signed files."""
        self.done_files += count
        self._draw(force=True)

    def clear(self) -> None:
        """Erase the bar so that the next line starts clean."""
        if self.enabled and self._shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self._shown = False

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < REDRAW_SECONDS:
            return
        self._drawn_at = now
        self.out.write("\r" + render(self.done_bytes, self.total_bytes, self.done_files, self.total_files))
        self.out.flush()
        self._shown = True
