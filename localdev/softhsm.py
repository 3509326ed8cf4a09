"""SoftHSM2 helpers for tests and the local stack: find the module, create a token once.

Everything SoftHSM-specific lives here, outside the deployed package, so that `chalicelib.keys.hsm`
stays plain PKCS#11 (it must also run against the AWS CloudHSM library). SoftHSM reads
`SOFTHSM2_CONF` and scans its token directory only when the module is initialised, so call
`ensure_token` for every token a process will use *before* the first `HsmKeyStore` call in that
process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chalicelib.errors import HsmUnavailable

log = logging.getLogger(__name__)

MODULE_ENV = "ROTASIGN_PKCS11_MODULE"

# Where distributions put the module; Debian's multiarch path and its compatibility symlink first.
KNOWN_MODULE_PATHS: tuple[str, ...] = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)

_LABEL_LINE = re.compile(r"^\s*Label:[ \t]*(.*?)\s*$", re.MULTILINE)
_MAX_LABEL_LENGTH = 32  # CK_TOKEN_INFO.label is 32 bytes, blank-padded


def find_module() -> str:
    """Path of the PKCS#11 module: `$ROTASIGN_PKCS11_MODULE`, else libsofthsm2.so; raises HsmUnavailable."""
    configured = os.environ.get(MODULE_ENV)
    if configured:
        return configured
    for path in KNOWN_MODULE_PATHS:
        if os.path.isfile(path):
            return path
    raise HsmUnavailable(f"libsofthsm2.so not found; install softhsm2 or set {MODULE_ENV}.")


def ensure_token(state_dir: Path, label: str, pin: str, so_pin: str) -> Path:
    """Write `state_dir/softhsm2.conf`, initialise token `label` unless it exists; returns the conf path.

    The caller exports the returned path as `SOFTHSM2_CONF`. Raises ValueError for a label that does
    not fit a token and RuntimeError when softhsm2-util fails.
    """
    if not label or len(label.encode("utf-8")) > _MAX_LABEL_LENGTH or label != label.strip():
        raise ValueError("A token label is 1-32 bytes without leading or trailing blanks.")
    state_dir = state_dir.resolve()
    token_dir = state_dir / "tokens"
    token_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "softhsm2.conf"
    # Serialise concurrent callers (parallel test workers, two local processes): two --init-token
    # runs for the same label would leave two tokens that no lookup by label can tell apart.
    with _locked(state_dir / ".softhsm.lock"):
        _write_if_changed(
            conf,
            f"directories.tokendir = {token_dir}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n",
        )
        env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
        if label in _token_labels(env):
            return conf
        result = subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        # The command line carries the PINs: report the exit status and tool output only.
        if result.returncode != 0:
            raise RuntimeError(
                f"softhsm2-util --init-token failed for token {label!r} "
                f"(exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        log.info("Initialised SoftHSM token %r in %s", label, token_dir)
    return conf


def _token_labels(env: dict[str, str]) -> set[str]:
    """Labels of the initialised tokens that softhsm2-util sees with this environment."""
    result = subprocess.run(["softhsm2-util", "--show-slots"], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"softhsm2-util --show-slots failed (exit {result.returncode}): {result.stderr}")
    # The free slot SoftHSM always offers has an empty label; it is not a token we made.
    return {m.group(1) for m in _LABEL_LINE.finditer(result.stdout) if m.group(1)}


def _write_if_changed(path: Path, text: str) -> None:
    """Atomically replace `path` with `text` unless it already holds exactly that."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if missing)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
