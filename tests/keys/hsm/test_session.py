"""The process's session on the token: lost sessions, refused PINs, missing modules and tokens, recovery.

Login and the module's view of its tokens are per process, so the PIN and outage scenarios run in a fresh
interpreter (as a new Lambda instance would) with a SoftHSM2 token of their own.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pkcs11.exceptions import DeviceRemoved

from chalicelib.errors import HsmUnavailable
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, PublicKey, sign, verify_signature
from chalicelib.keys.hsm.session import PKCS11_LOCK, Pkcs11Module, TokenSession
from chalicelib.keys.hsm.store import HsmKeyStore
from tests.keys.keytest import SoftHsm, openssl_verify

# python-pkcs11 leaves a search whose C_FindObjectsInit failed (on the dead session) for __del__ to
# finish, which fails again on the dead handle; the warning is about that discarded session.
LOST_SESSION_NOISE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
ED25519 = SIG_ALGS["Ed25519"]


@pytest.fixture(scope="module")
def ed25519_key(hsm_store: HsmKeyStore) -> Iterator[tuple[str, PublicKey]]:
    label = f"kp_session-tests-{os.getpid()}/1/1"
    yield label, hsm_store.generate("acct", label, KeySpec.build("EdDSA")).public_key
    hsm_store.destroy(label)


def run_script(script: str, *args: str, cwd: Path) -> dict[str, Any]:
    """Run `script` in a fresh interpreter; its last stdout line is JSON."""
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    out["stderr"] = result.stderr
    return out


# -- a session lost behind the store's back ----------------------------------------------------------------


@LOST_SESSION_NOISE
def test_session_closed_behind_its_back_is_reopened(
    hsm_store: HsmKeyStore, ed25519_key: tuple[str, PublicKey]
) -> None:
    label, public_key = ed25519_key
    key = hsm_store.load("acct", label, None)
    session = hsm_store.token.session
    lost = session.session
    assert lost is not None
    with PKCS11_LOCK:
        lost.close()  # C_Logout + C_CloseSession on the store's own session

    signature = sign(key, ED25519, b"after the loss")

    verify_signature(public_key, ED25519, signature, b"after the loss")
    assert session.session is not lost


@LOST_SESSION_NOISE
def test_module_reinitialised_behind_its_back_is_reopened(
    hsm_store: HsmKeyStore, softhsm: SoftHsm, ed25519_key: tuple[str, PublicKey]
) -> None:
    label, public_key = ed25519_key
    key = hsm_store.load("acct", label, None)
    hsm_store.health()
    with PKCS11_LOCK:
        Pkcs11Module.shared(softhsm.module).lib.reinitialize()  # C_Finalize + C_Initialize, not through the session

    verify_signature(public_key, ED25519, sign(key, ED25519, b"after a restart"), b"after a restart")


class _DeadSession:
    """Stands in for a session whose device keeps disappearing."""

    def __init__(self) -> None:
        self.calls = 0

    def get_objects(self, attrs: Any = None) -> Iterator[Any]:
        self.calls += 1
        raise DeviceRemoved()

    def close(self) -> None:
        raise DeviceRemoved()


def test_session_lost_twice_is_unavailable(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    # A session of its own: the failure below makes the session back off, which must not touch the shared one.
    session = TokenSession(softhsm.module, softhsm.label)
    store = HsmKeyStore(session, lambda: softhsm.pin)
    store.health()
    dead = _DeadSession()

    def reopen(pin_provider: Callable[[], str]) -> Any:
        session.session = dead  # type: ignore[assignment]
        return dead

    session.session = dead  # type: ignore[assignment]
    monkeypatch.setattr(session, "_open", reopen)

    with pytest.raises(HsmUnavailable, match="lost twice") as info:
        store.health()

    assert isinstance(info.value.__cause__, DeviceRemoved)
    assert dead.calls == 2  # tried, reopened, tried once more
    with pytest.raises(HsmUnavailable, match="Next attempt in"):  # backing off, nothing called
        store.health()
    assert dead.calls == 2


def test_stores_share_one_session_and_one_login(hsm_store: HsmKeyStore, softhsm: SoftHsm, tmp_path: Path) -> None:
    hsm_store.health()
    link = tmp_path / "libsofthsm2-link.so"
    link.symlink_to(os.path.realpath(softhsm.module))
    second = HsmKeyStore.connect(str(link), softhsm.label, lambda: "a second login would fail anyway")

    second.health()  # no second C_Login, so no UserAlreadyLoggedIn

    assert second.token.session is hsm_store.token.session


# -- nothing to talk to --------------------------------------------------------------------------------------


def test_unloadable_module_is_unavailable(softhsm: SoftHsm, tmp_path: Path) -> None:
    missing = HsmKeyStore.connect(str(tmp_path / "missing.so"), softhsm.label, lambda: "unused")
    with pytest.raises(HsmUnavailable, match="Cannot load the PKCS#11 module"):
        missing.health()
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"not a shared object")
    with pytest.raises(HsmUnavailable, match="Cannot load the PKCS#11 module"):
        HsmKeyStore.connect(str(garbage), softhsm.label, lambda: "unused").health()


def test_missing_token_is_unavailable(softhsm: SoftHsm) -> None:
    store = HsmKeyStore(TokenSession(softhsm.module, "no-such-token"), lambda: "unused")
    with pytest.raises(HsmUnavailable, match="no-such-token"):
        store.generate("acct", "kp_x/1/1", KeySpec.build("ECDSA", curve="P-256"))


# -- a refused PIN -------------------------------------------------------------------------------------------

WRONG_PIN_PROBE = """
import io, json, logging, sys
from chalicelib.errors import HsmUnavailable
from chalicelib.keys.hsm.store import HsmKeyStore

module, label, wrong, right = sys.argv[1:5]
logs = io.StringIO()
logging.basicConfig(stream=logs, level=logging.DEBUG)
out = {}
store = HsmKeyStore.connect(module, label, lambda: wrong)
for attempt in ("first", "second"):
    try:
        store.health()
    except HsmUnavailable as exc:
        out[attempt] = {
            "shown": [str(exc), repr(exc), json.dumps(exc.body()), str(exc.__cause__), repr(exc.__cause__)],
            "cause": type(exc.__cause__).__name__,
        }
HsmKeyStore.connect(module, label, lambda: right).health()
out["right_pin_ok"] = True
out["logs"] = logs.getvalue()
print(json.dumps(out))
"""


def test_wrong_pin_is_unavailable_never_retried_and_never_shown(
    softhsm: SoftHsm, request: pytest.FixtureRequest
) -> None:
    wrong = "2468-not-the-pin"
    env = {**os.environ, "SOFTHSM2_CONF": str(softhsm.conf)}
    result = subprocess.run(
        [sys.executable, "-c", WRONG_PIN_PROBE, softhsm.module, softhsm.label, wrong, softhsm.pin],
        cwd=request.config.rootpath, env=env, capture_output=True, text=True, check=True,
    )
    out = json.loads(result.stdout)

    assert out["first"]["cause"] == "PinIncorrect"
    # A refused PIN is not tried again (repeated failures can lock an HSM user) ...
    assert "before" in out["second"]["shown"][0] and out["second"]["cause"] == "NoneType"
    # ... but a corrected one is.
    assert out["right_pin_ok"] is True
    shown = [*out["first"]["shown"], *out["second"]["shown"], out["logs"], result.stderr]
    assert all(wrong not in text for text in shown)
    assert all(softhsm.pin not in text for text in shown)


# -- recovery after an outage ----------------------------------------------------------------------------

# The token goes away (its directory moved, as when a CloudHSM cluster becomes unreachable), comes back,
# and the same process signs again. Time is a fake clock, so the back-off is exact and nothing waits.
OUTAGE = """
import base64, io, json, logging, os, shutil, sys
from pathlib import Path
from localdev.softhsm import ensure_token
from chalicelib.errors import HsmUnavailable
from chalicelib.keys.algorithms import SIG_ALGS, KeySpec, public_key_pem, sign
from chalicelib.keys.hsm.session import TokenSession
from chalicelib.keys.hsm.store import HsmKeyStore

module, state, pin, wrong = sys.argv[1:5]
os.environ["SOFTHSM2_CONF"] = str(ensure_token(Path(state), "outage", pin, "outage-so-5678"))
tokens = Path(state).resolve() / "tokens"
logs = io.StringIO()
logging.basicConfig(stream=logs, level=logging.INFO)
now = [1000.0]
session = TokenSession(module, "outage", clock=lambda: now[0])
refused = HsmKeyStore(session, lambda: wrong)   # an operator's typo, deployed once
store = HsmKeyStore(session, lambda: pin)
sig_alg = SIG_ALGS["SHA256withECDSA"]
digest = bytes(range(32))
out = {"steps": []}

def attempt(step, fn):
    log_mark = len(logs.getvalue())
    try:
        fn()
        result = {"step": step, "ok": True}
    except HsmUnavailable as exc:
        result = {"step": step, "ok": False, "error": exc.body()["error"], "cause": type(exc.__cause__).__name__}
    text = logs.getvalue()[log_mark:]
    result["reinitialised"] = text.count("Re-initialising PKCS#11 module")
    result["failures_logged"] = text.count("PKCS#11 failure")
    out["steps"].append(result)

attempt("wrong pin", refused.health)
public_key = store.generate("acct_outage", "kp_outage/1/1", KeySpec.build("ECDSA", curve="P-256")).public_key
key = store.load("acct_outage", "kp_outage/1/1", None)
attempt("before", lambda: sign(key, sig_alg, digest))

shutil.move(tokens, tokens.with_name("tokens.away"))
attempt("token gone", lambda: sign(key, sig_alg, digest))
for i in range(20):
    attempt("token gone, backing off", lambda: sign(key, sig_alg, digest))
now[0] += 0.6
attempt("token gone, after the back-off", lambda: sign(key, sig_alg, digest))

shutil.move(tokens.with_name("tokens.away"), tokens)
attempt("token back, backing off", lambda: sign(key, sig_alg, digest))
now[0] += 1.1
attempt("token back, the refused pin", refused.health)
attempt("token back", lambda: out.update(signature=base64.b64encode(sign(key, sig_alg, digest)).decode()))
attempt("load again", lambda: store.load("acct_outage", "kp_outage/1/1", None))
attempt("list", lambda: out.update(refs=store.list_refs("kp_outage/")))
out["public_key"] = public_key_pem(public_key)
out["digest"] = base64.b64encode(digest).decode()
out["logs"] = logs.getvalue()
print(json.dumps(out))
"""


def test_the_token_back_after_an_outage_is_used_again(
    softhsm: SoftHsm, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    wrong = "1357-typo-pin"
    out = run_script(OUTAGE, softhsm.module, str(tmp_path / "hsm"), "outage-pin-2468", wrong,
                     cwd=request.config.rootpath)
    steps: dict[str, list[dict[str, Any]]] = {}
    for step in out["steps"]:
        steps.setdefault(step["step"], []).append(step)

    assert steps["wrong pin"][0]["cause"] == "PinIncorrect"
    assert steps["before"][0]["ok"]
    # The outage answers 503 hsm_unavailable ...
    (gone,) = steps["token gone"]
    assert not gone["ok"] and gone["error"]["code"] == "hsm_unavailable"
    # ... and while backing off, calls fail at once without touching the module.
    assert len(steps["token gone, backing off"]) == 20
    for step in steps["token gone, backing off"]:
        assert not step["ok"] and "Next attempt in" in step["error"]["message"]
        assert (step["reinitialised"], step["failures_logged"]) == (0, 0)
    (retried,) = steps["token gone, after the back-off"]
    assert not retried["ok"] and (retried["reinitialised"], retried["failures_logged"]) == (1, 1)
    (waiting,) = steps["token back, backing off"]
    assert not waiting["ok"] and waiting["reinitialised"] == 0
    # Once the back-off is over, the same process signs again with the same key ...
    recovered = {name: steps[name][0].get("error", "ok") for name in ("token back", "load again", "list")}
    assert recovered == {"token back": "ok", "load again": "ok", "list": "ok"}
    assert out["refs"] == ["kp_outage/1/1"]
    # ... but never tries the refused PIN, not even on the re-initialised module.
    (refused,) = steps["token back, the refused pin"]
    assert not refused["ok"] and "before" in refused["error"]["message"] and refused["cause"] == "NoneType"
    public_key = load_pem_public_key(out["public_key"].encode())
    signature, digest = base64.b64decode(out["signature"]), base64.b64decode(out["digest"])
    sig_alg = SIG_ALGS["SHA256withECDSA"]
    verify_signature(public_key, sig_alg, signature, digest)  # type: ignore[arg-type]
    assert openssl_verify(tmp_path, public_key, sig_alg, signature, digest)  # type: ignore[arg-type]
    assert all(secret not in out["logs"] + out["stderr"] for secret in (wrong, "outage-pin-2468"))
