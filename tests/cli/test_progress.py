"""The progress bar's text and when it draws."""

from __future__ import annotations

import io

from rotasign_cli.progress import Progress, human_bytes, render


def test_the_bar_shows_bytes_and_files() -> None:
    assert render(0, 1024**3, 0, 10, width=10) == "[----------]   0%  0 B / 1.0 GiB  0/10 files"
    assert render(512 * 1024**2, 1024**3, 3, 10, width=10) == "[#####-----]  50%  512.0 MiB / 1.0 GiB  3/10 files"
    assert render(0, 0, 1, 1, width=4) == "[####] 100%  0 B / 0 B  1/1 files"
    assert human_bytes(1536) == "1.5 KiB"


def test_it_draws_only_when_enabled_and_clears_itself() -> None:
    out = io.StringIO()
    Progress(100, 1, enabled=False, out=out).add_files(1)
    assert out.getvalue() == ""
    bar = Progress(100, 1, enabled=True, out=out)
    bar.add_bytes(100)
    bar.add_files(1)
    bar.clear()
    assert out.getvalue().endswith("100 B / 100 B  1/1 files\r\x1b[K")
