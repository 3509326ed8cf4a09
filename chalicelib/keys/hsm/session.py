"""The PKCS#11 module and the one logged-in session per token that the whole process shares.

Plain PKCS#11 through python-pkcs11, so the same code drives SoftHSM2 (tests, local stack) and the AWS
CloudHSM library. Process-wide facts this module is built around:

* A module is loaded and `C_Initialize`d once per process (`Pkcs11Module`), and the user logs in once
  per process: login state belongs to the application, not to a session, so a second `C_Login` fails
  with UserAlreadyLoggedIn, and python-pkcs11 closes a logged-in session with `C_Logout`, which logs
  every session out. One logged-in R/W session per token (`TokenSession.shared`) is therefore reused by
  every store and every call (warm Lambda).
* python-pkcs11 initialises modules with `C_Initialize(NULL)`, which tells them not to lock, and
  releases the GIL during each call; concurrent calls crash SoftHSM (segfaults, aborts, hangs). One
  process-wide reentrant lock, `PKCS11_LOCK`, serialises every PKCS#11 call in the process, including
  those of code that opens its own sessions.
* A session can die behind our back (token restart, idle timeout, another `C_Logout`): the call is
  retried once on a freshly opened session. A key that is not found is only believed on a fresh
  session, because private objects are invisible to a session that is no longer logged in.
* A refused PIN is never tried again in this process, not even after a re-initialisation (repeated
  failures can lock an HSM user; CloudHSM does): the session remembers keyed fingerprints of refused
  PINs, never the PINs themselves. A different PIN (the operator's fix) is tried.
* Recovery: a module that lost its token keeps failing until it is finalized and initialised again
  (SoftHSM caches its slot list at `C_Initialize`; a token whose directory went away stays gone for
  that process even after it is back). After a module or token failure the next attempt re-initialises
  the module and finds the token by label again. Attempts are spaced by a back-off (0.5 s doubling up
  to 5 s) during which calls fail at once without touching the module, so a dead HSM is not hammered.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pkcs11
from pkcs11 import KeyType
from pkcs11 import exceptions as p11

from chalicelib.errors import HsmUnavailable, UnsupportedAlgorithm
from chalicelib.keys.algorithms import PublicKey

log = logging.getLogger(__name__)

T = TypeVar("T")

# The one lock around every PKCS#11 call in the process (see the module docstring). Reentrant so that
# an operation may call helpers that take it again.
PKCS11_LOCK = threading.RLock()

# After these the session cannot be trusted any more: reopen once and retry. UserNotLoggedIn covers a
# login that expired on the HSM side.
SESSION_LOST: tuple[type[Exception], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
)
# After these the module itself is suspect: the next attempt re-initialises it (after the back-off).
_MODULE_FAILED: tuple[type[Exception], ...] = (
    *SESSION_LOST,
    p11.GeneralError,
    p11.DeviceMemory,
    p11.FunctionFailed,
    p11.SlotIDInvalid,
    p11.NoSuchToken,
    p11.MultipleTokensReturned,
)
_PIN_REJECTED: tuple[type[Exception], ...] = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinLocked,
    p11.PinExpired,
    p11.UserPinNotInitialized,
)
_UNSUPPORTED: tuple[type[Exception], ...] = (p11.MechanismInvalid, p11.MechanismParamInvalid)

class KeyMaybeHidden(Exception):
    """A key was not found on a session that was not freshly opened: the caller re-checks on a new one."""


# A random per-process key: lets a session remember which PIN the token refused without keeping it.
_PIN_FINGERPRINT_KEY = secrets.token_bytes(32)

_RETRY_ONCE: tuple[type[Exception], ...] = (*SESSION_LOST, KeyMaybeHidden)

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0
_HANDLE_CACHE_SIZE = 4096
_REFUSED_PINS_KEPT = 16


class Pkcs11Module:
    """A PKCS#11 library, loaded and initialised once per process (per real path)."""

    _loaded: ClassVar[dict[str, Pkcs11Module]] = {}

    def __init__(self, path: str, lib: Any) -> None:
        self.path = path
        self.lib = lib
        # Bumped by every re-initialisation: sessions opened before it are gone, and their handle
        # numbers may already name new sessions, so they must be dropped, never closed.
        self.generation = 0

    @classmethod
    def shared(cls, module_path: str) -> Pkcs11Module:
        """The process's loaded module at `module_path`; raises HsmUnavailable if it cannot be loaded."""
        path = os.path.realpath(module_path)
        with PKCS11_LOCK:
            module = cls._loaded.get(path)
            if module is None:
                try:
                    lib = pkcs11.lib(path)
                except Exception as exc:  # dlopen errors surface as PKCS11Error, others as OSError
                    raise HsmUnavailable(f"Cannot load the PKCS#11 module {path!r}.") from exc
                module = cls._loaded[path] = cls(path, lib)
                log.info("Loaded PKCS#11 module %s (%s)", path, lib.manufacturer_id)
            return module

    def reinitialize(self) -> None:
        """`C_Finalize` + `C_Initialize`: forget every session, login and cached slot; raises HsmUnavailable."""
        with PKCS11_LOCK:
            log.warning("Re-initialising PKCS#11 module %s", self.path)
            self.generation += 1
            try:
                self.lib.finalize()
            except p11.PKCS11Error:
                # Typically "not initialized" after a module crash; initialising is what matters.
                log.debug("C_Finalize failed before re-initialising", exc_info=True)
            try:
                self.lib.initialize()
            except p11.PKCS11Error as exc:
                raise HsmUnavailable(f"Cannot re-initialise the PKCS#11 module ({type(exc).__name__}).") from exc


@dataclass
class CachedKey:
    """A private-key object found on the token, its key type, and its public key once read."""

    private: Any
    key_type: KeyType
    public_key: PublicKey | None


class HandleCache:
    """Label -> private-key object of the current session (LRU), so that signing does not search.

    A token search compares the template with every object on the token (SoftHSM: ~20 ms with 300
    keys). The objects belong to one session: the cache is cleared whenever the session is dropped.
    """

    def __init__(self, size: int = _HANDLE_CACHE_SIZE) -> None:
        self._size = size
        self._keys: OrderedDict[str, CachedKey] = OrderedDict()

    def get(self, label: str) -> CachedKey | None:
        """The cached key of `label`, marked as recently used."""
        hit = self._keys.get(label)
        if hit is not None:
            self._keys.move_to_end(label)
        return hit

    def put(self, label: str, key: CachedKey) -> None:
        """Cache `key` under `label`, evicting the least recently used."""
        self._keys[label] = key
        self._keys.move_to_end(label)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def forget(self, label: str) -> None:
        """Drop `label` (its key was destroyed, or its handle went stale)."""
        self._keys.pop(label, None)

    def clear(self) -> None:
        """Drop everything (the session is gone)."""
        self._keys.clear()


class TokenSession:
    """The logged-in session on one token of one module, reopened and recovered as the facts above require."""

    _shared: ClassVar[dict[tuple[str, str], TokenSession]] = {}

    def __init__(self, module_path: str, token_label: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        """A session object (nothing is loaded or opened yet). In a process use `shared`: one per token."""
        self.module_path = os.path.realpath(module_path)
        self.token_label = token_label
        self.session: pkcs11.Session | None = None
        self.handles = HandleCache()
        self._clock = clock
        self._module: Pkcs11Module | None = None
        self._module_generation = -1
        self._refused_pins: set[bytes] = set()
        self._reinitialize = False
        self._retry_at: float | None = None
        self._backoff = 0.0
        self._failure = ""

    @classmethod
    def shared(cls, module_path: str, token_label: str) -> TokenSession:
        """The process-wide session for this module and token (created, not opened)."""
        key = (os.path.realpath(module_path), token_label)
        with PKCS11_LOCK:
            found = cls._shared.get(key)
            if found is None:
                found = cls._shared[key] = cls(*key)
            return found

    def run(self, what: str, op: Callable[[pkcs11.Session, bool], T], pin_provider: Callable[[], str]) -> T:
        """Run `op(session, fresh)` under the process-wide lock, reopening a lost session once.

        `fresh` is True when the session was opened for this call. Raises UnsupportedAlgorithm for a
        mechanism the module lacks, HsmUnavailable for any other PKCS#11 failure (and, without a module
        call, while backing off after one); domain errors from `op` pass through.
        """
        with PKCS11_LOCK:
            self._check_backoff()
            try:
                session, fresh = self._current(pin_provider)
                try:
                    return op(session, fresh)
                except _RETRY_ONCE as exc:
                    log.warning("PKCS#11 session unusable during %s (%s); reopening", what, type(exc).__name__)
                    self.discard()
                session = self._open(pin_provider)
                try:
                    return op(session, True)
                except SESSION_LOST as exc:
                    raise self._failed(f"The HSM session was lost twice during {what}.", exc) from exc
            except _UNSUPPORTED as exc:
                raise UnsupportedAlgorithm(f"The HSM does not support this {what} mechanism.") from exc
            except _MODULE_FAILED as exc:
                raise self._failed(f"The HSM failed during {what} ({type(exc).__name__}).", exc) from exc
            except p11.PKCS11Error as exc:
                if type(exc) is p11.PKCS11Error:  # unmapped codes, e.g. CKR_CRYPTOKI_NOT_INITIALIZED
                    raise self._failed(f"The HSM failed during {what} ({type(exc).__name__}).", exc) from exc
                raise HsmUnavailable(f"The HSM failed during {what} ({type(exc).__name__}).") from exc

    def discard(self) -> None:
        """Forget the current session, closing it if the module still knows it. Caller holds PKCS11_LOCK."""
        session, self.session = self.session, None
        self.handles.clear()
        module = self._module
        if session is None or module is None or module.generation != self._module_generation:
            return
        try:
            session.close()
        except p11.PKCS11Error:
            # Usually the handle is already invalid; nothing left to release.
            log.debug("Closing a lost PKCS#11 session failed", exc_info=True)

    # -- internals ----------------------------------------------------------------------------------

    def _current(self, pin_provider: Callable[[], str]) -> tuple[pkcs11.Session, bool]:
        """The open session (and False), or a newly opened one (and True)."""
        module = self._module
        if self.session is not None and module is not None and module.generation == self._module_generation:
            return self.session, False
        self.discard()
        return self._open(pin_provider), True

    def _open(self, pin_provider: Callable[[], str]) -> pkcs11.Session:
        """Load (or re-initialise) the module, find the token by label and log in; raises HsmUnavailable."""
        try:
            module = Pkcs11Module.shared(self.module_path)
        except HsmUnavailable as exc:
            raise self._failed(exc.message, exc) from exc.__cause__
        if self._reinitialize or module.generation != self._module_generation:
            self.session = None
            self.handles.clear()
        if self._reinitialize:
            try:
                module.reinitialize()  # SoftHSM's C_Initialize fails while its token directory is gone
            except HsmUnavailable as exc:
                raise self._failed(exc.message, exc) from exc.__cause__
            self._reinitialize = False
        self._module, self._module_generation = module, module.generation
        try:
            token = module.lib.get_token(token_label=self.token_label)
        except (p11.NoSuchToken, p11.MultipleTokensReturned) as exc:
            message = f"No single PKCS#11 token labelled {self.token_label!r} ({type(exc).__name__})."
            raise self._failed(message, exc) from exc
        except p11.PKCS11Error as exc:
            raise self._failed(f"Cannot list PKCS#11 tokens ({type(exc).__name__}).", exc) from exc
        session = self._login(token, pin_provider)
        self.session = session
        self._retry_at, self._backoff, self._failure = None, 0.0, ""
        log.info("Opened a PKCS#11 session on token %r", self.token_label)
        return session

    def _login(self, token: Any, pin_provider: Callable[[], str]) -> pkcs11.Session:
        """Open a logged-in R/W session, never repeating a PIN the token refused; raises HsmUnavailable."""
        try:
            pin = pin_provider()
        except Exception as exc:
            raise HsmUnavailable("Cannot obtain the HSM PIN.") from exc
        fingerprint = hmac.new(_PIN_FINGERPRINT_KEY, pin.encode("utf-8"), hashlib.sha256).digest()
        if any(hmac.compare_digest(fingerprint, refused) for refused in self._refused_pins):
            raise HsmUnavailable(f"The HSM refused this PIN for token {self.token_label!r} before.")
        try:
            session: pkcs11.Session = token.open(rw=True, user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            # Another session of this process is still logged in (e.g. a handle we lost track of);
            # login state is per application, so a plain session already sees the private keys.
            session = token.open(rw=True)
        except _PIN_REJECTED as exc:
            if len(self._refused_pins) < _REFUSED_PINS_KEPT:
                self._refused_pins.add(fingerprint)
            raise HsmUnavailable(
                f"The HSM rejected the PIN for token {self.token_label!r} ({type(exc).__name__})."
            ) from exc
        except p11.PKCS11Error as exc:
            message = f"Cannot open a session on token {self.token_label!r} ({type(exc).__name__})."
            raise self._failed(message, exc) from exc
        finally:
            del pin
        return session

    def _failed(self, message: str, exc: BaseException) -> HsmUnavailable:
        """Record a module or token failure: drop the session, re-initialise on the next attempt, back off."""
        self.session = None
        self.handles.clear()
        self._reinitialize = True
        self._backoff = min(BACKOFF_MAX_SECONDS, self._backoff * 2 or BACKOFF_FIRST_SECONDS)
        self._retry_at = self._clock() + self._backoff
        self._failure = message
        log.warning("PKCS#11 failure (%s); next attempt in %.1f s", type(exc).__name__, self._backoff)
        return HsmUnavailable(message)

    def _check_backoff(self) -> None:
        """Raise HsmUnavailable, touching nothing, while the back-off after a failure lasts."""
        if self._retry_at is None:
            return
        wait = self._retry_at - self._clock()
        if wait > 0:
            raise HsmUnavailable(f"{self._failure} Next attempt in {wait:.1f} s.")
