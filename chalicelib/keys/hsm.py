"""Key backend on a PKCS#11 token: keys are generated, used and destroyed inside the HSM.

Plain PKCS#11 through python-pkcs11, so the same code drives SoftHSM2 (tests, local stack) and the
AWS CloudHSM library. Process-wide facts this module is built around:

* A module is loaded and `C_Initialize`d once per process, and the user logs in once per process
  (login state belongs to the application, not to a session: a second `C_Login` fails with
  UserAlreadyLoggedIn, and python-pkcs11 closes a logged-in session with C_Logout, which logs
  every session out).
* python-pkcs11 initialises modules with `C_Initialize(NULL)`, which tells them not to lock, and
  releases the GIL during each call; concurrent calls crash SoftHSM. One process-wide RLock
  therefore serialises every PKCS#11 call, and one logged-in R/W session per token is reused
  across calls (warm Lambda).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, NoReturn, Self, TypeVar, cast

import pkcs11
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import PSS, AsymmetricPadding, PKCS1v15
from cryptography.utils import Buffer
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_ecdsa_signature, encode_named_curve_parameters

from chalicelib.errors import Conflict, HsmUnavailable, UnsupportedAlgorithm, ValidationError
from chalicelib.keys.algorithms import (
    EC_CURVES,
    HASH_LENGTHS,
    KeySpec,
    PrivateKey,
    PublicKey,
    SigAlg,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# The one lock around every PKCS#11 call in the process (see the module docstring). Reentrant so
# that a backend method may call helpers that take it again.
_PKCS11_LOCK = threading.RLock()
_LIBS: dict[str, Any] = {}
_CONNECTIONS: dict[tuple[str, str], _Connection] = {}

# Errors after which the session (or the module's view of the token) cannot be trusted any more:
# reopen once and retry. UserNotLoggedIn covers a login that expired on the HSM side.
_SESSION_LOST: tuple[type[Exception], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
)
_PIN_REJECTED: tuple[type[Exception], ...] = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinLocked,
    p11.PinExpired,
    p11.UserPinNotInitialized,
)

# A random per-process key: lets the connection remember which PIN the token refused without
# keeping the PIN itself around.
_PIN_FINGERPRINT_KEY = secrets.token_bytes(32)

_KEY_TYPES: dict[str, KeyType] = {"RSA": KeyType.RSA, "ECDSA": KeyType.EC, "EdDSA": KeyType.EC_EDWARDS}
_EC_PARAMS: dict[str, bytes] = {
    "P-256": encode_named_curve_parameters("secp256r1"),
    "P-384": encode_named_curve_parameters("secp384r1"),
    "P-521": encode_named_curve_parameters("secp521r1"),
}
_CURVE_BY_PARAMS: dict[bytes, str] = {der: name for name, der in _EC_PARAMS.items()}
# id-Ed25519 (RFC 8410, 1.3.101.112) as a DER OID. PKCS#11 3.0 allows this or the printable string
# "edwards25519"; SoftHSM 2.6 takes both, and the OID is the form defined outside PKCS#11 too.
_ED25519_PARAMS = bytes.fromhex("06032b6570")

# name -> (digest mechanism, MGF1 with that digest, DER DigestInfo prefix for PKCS#1 v1.5)
_HASHES: dict[str, tuple[Mechanism, MGF, bytes]] = {
    "sha256": (Mechanism.SHA256, MGF.SHA256, bytes.fromhex("3031300d060960864801650304020105000420")),
    "sha384": (Mechanism.SHA384, MGF.SHA384, bytes.fromhex("3041300d060960864801650304020205000430")),
    "sha512": (Mechanism.SHA512, MGF.SHA512, bytes.fromhex("3051300d060960864801650304020305000440")),
}
_API_HASH_NAMES: dict[str, str] = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
_KEY_CACHE_SIZE = 4096
_HEALTH_PROBE_LABEL = "rotasign/health-probe"  # never a key label (those start with "kp_")


class _KeyMaybeHidden(Exception):
    """A key was not found on a session that was not freshly opened: re-check on a new session.

    Private objects are invisible to a session that is no longer logged in, so "not found" is only
    believed after a fresh login.
    """


_RETRY_ONCE: tuple[type[Exception], ...] = (*_SESSION_LOST, _KeyMaybeHidden)


class _Connection:
    """One (module, token) in this process: the logged-in R/W session shared by all backends."""

    def __init__(self, module_path: str, token_label: str) -> None:
        self.module_path = module_path
        self.token_label = token_label
        self.session: pkcs11.Session | None = None
        # label -> (private key object on `session`, its key type). A token search compares the
        # template with every object on the token (SoftHSM: ~20 ms with 300 keys), so signing
        # must not search each time. Only valid for `session`; cleared with it.
        self.keys: OrderedDict[str, tuple[Any, KeyType]] = OrderedDict()
        self._refused_pin: bytes | None = None

    def open(self, pin_provider: Callable[[], str]) -> pkcs11.Session:
        """Open and log in a new session; raises HsmUnavailable. Caller holds _PKCS11_LOCK."""
        lib = _load_module(self.module_path)
        try:
            token = lib.get_token(token_label=self.token_label)
        except (p11.NoSuchToken, p11.MultipleTokensReturned) as exc:
            raise HsmUnavailable(
                f"No single PKCS#11 token labelled {self.token_label!r} ({type(exc).__name__})."
            ) from exc
        except p11.PKCS11Error as exc:
            raise HsmUnavailable(f"Cannot list PKCS#11 tokens ({type(exc).__name__}).") from exc
        try:
            pin = pin_provider()
        except Exception as exc:
            raise HsmUnavailable("Cannot obtain the HSM PIN.") from exc
        fingerprint = hmac.new(_PIN_FINGERPRINT_KEY, pin.encode("utf-8"), hashlib.sha256).digest()
        if self._refused_pin is not None and hmac.compare_digest(fingerprint, self._refused_pin):
            # Repeating a refused login on every request can lock the HSM user (CloudHSM does).
            raise HsmUnavailable(f"The HSM refused this PIN for token {self.token_label!r} before.")
        try:
            session: pkcs11.Session = token.open(rw=True, user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            # Another session of this process is still logged in (e.g. a handle we lost track of);
            # login state is per application, so a plain session already sees the private keys.
            session = token.open(rw=True)
        except _PIN_REJECTED as exc:
            self._refused_pin = fingerprint
            raise HsmUnavailable(
                f"The HSM rejected the PIN for token {self.token_label!r} ({type(exc).__name__})."
            ) from exc
        except p11.PKCS11Error as exc:
            raise HsmUnavailable(
                f"Cannot open a session on token {self.token_label!r} ({type(exc).__name__})."
            ) from exc
        finally:
            del pin
        self._refused_pin = None
        self.session = session
        log.info("Opened a PKCS#11 session on token %r", self.token_label)
        return session

    def remember(self, label: str, key_type: KeyType, key: Any) -> None:
        """Cache the private key object of `label`, evicting the least recently used."""
        self.keys[label] = (key, key_type)
        self.keys.move_to_end(label)
        while len(self.keys) > _KEY_CACHE_SIZE:
            self.keys.popitem(last=False)

    def discard(self) -> None:
        """Forget the current session, closing it if the module still knows it."""
        session, self.session = self.session, None
        self.keys.clear()
        if session is None:
            return
        try:
            session.close()
        except p11.PKCS11Error:
            # Usually the handle is already invalid; nothing left to release.
            log.debug("Closing a lost PKCS#11 session failed", exc_info=True)


def _load_module(module_path: str) -> Any:
    """The loaded, initialised module (once per process); raises HsmUnavailable."""
    lib = _LIBS.get(module_path)
    if lib is not None:
        return lib
    try:
        lib = pkcs11.lib(module_path)
    except Exception as exc:  # dlopen errors surface as PKCS11Error, others as OSError/RuntimeError
        raise HsmUnavailable(f"Cannot load the PKCS#11 module {module_path!r}.") from exc
    _LIBS[module_path] = lib
    log.info("Loaded PKCS#11 module %s (%s)", module_path, lib.manufacturer_id)
    return lib


def _connection_for(module_path: str, token_label: str) -> _Connection:
    """The process-wide connection for this module and token (created, not opened)."""
    key = (os.path.realpath(module_path), token_label)
    with _PKCS11_LOCK:
        conn = _CONNECTIONS.get(key)
        if conn is None:
            conn = _CONNECTIONS[key] = _Connection(key[0], token_label)
        return conn


class HsmBackend:
    """Keys generated, used and destroyed on a PKCS#11 token."""

    def __init__(self, module_path: str, token_label: str, pin_provider: Callable[[], str]) -> None:
        # Lazy: the module is loaded and the user logged in on first use, not here.
        self._connection = _connection_for(module_path, token_label)
        self._pin_provider = pin_provider

    # -- public interface -------------------------------------------------------------------------

    def generate(self, label: str, spec: KeySpec) -> PublicKey:
        """Generate a non-extractable key pair on the token and return its public key.

        Raises Conflict if the label is already on the token, UnsupportedAlgorithm if the module
        lacks the mechanism, HsmUnavailable otherwise; a failed call leaves no object behind.
        """
        key_type = _KEY_TYPES[spec.algorithm]
        public_template: dict[Attribute, Any] = {}
        if spec.algorithm == "ECDSA":
            assert spec.curve is not None
            public_template[Attribute.EC_PARAMS] = _EC_PARAMS[spec.curve]
        elif spec.algorithm == "EdDSA":
            public_template[Attribute.EC_PARAMS] = _ED25519_PARAMS
        private_template = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.PRIVATE: True,
        }
        ours = False  # set once objects with this label can only be ours

        def op(session: pkcs11.Session, fresh: bool) -> PublicKey:
            nonlocal ours
            leftovers = _objects(session, {Attribute.LABEL: label})
            if leftovers and not ours:
                raise Conflict("A key with this label already exists on the token.")
            for obj in leftovers:  # from our own attempt that lost its session
                obj.destroy()
            ours = True
            try:
                public_obj, private_obj = session.generate_keypair(
                    key_type,
                    spec.key_size,
                    id=label.encode("utf-8"),
                    label=label,
                    store=True,
                    capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                    public_template=public_template,
                    private_template=private_template,
                )
                public_key = _public_key_of(public_obj)
            except BaseException:
                # Leave nothing behind; if the session itself is gone, the retry cleans up instead.
                _destroy_quietly(session, label)
                raise
            self._connection.remember(label, key_type, private_obj)
            return public_key

        return self._run(f"generate {spec.algorithm}", op)

    def sign(self, label: str, sig_alg: SigAlg, data: bytes) -> bytes:
        """Sign a digest (RSA, ECDSA) or message (Ed25519) like `algorithms.sign_with_private_key`.

        Raises ValidationError for a digest of the wrong length, UnsupportedAlgorithm for a sig_alg
        that does not fit the key, Conflict if the key is gone, HsmUnavailable otherwise.
        """
        if sig_alg.algorithm == "EdDSA":
            return self._sign_raw(label, "EdDSA", Mechanism.EDDSA, None, data)
        assert sig_alg.hash_algorithm is not None
        expected = HASH_LENGTHS[sig_alg.hash_algorithm]
        if len(data) != expected:
            raise ValidationError(
                f"{sig_alg.name} signs a {expected}-byte {sig_alg.hash_algorithm} digest, not {len(data)} bytes."
            )
        name = _API_HASH_NAMES[sig_alg.hash_algorithm]
        digest_mech, mgf, prefix = _HASHES[name]
        if sig_alg.algorithm == "RSA":
            if sig_alg.pss:
                pss_param = (digest_mech, mgf, expected)  # MGF1 with the same hash, salt = digest length
                return self._sign_raw(label, "RSA", Mechanism.RSA_PKCS_PSS, pss_param, data)
            return self._sign_raw(label, "RSA", Mechanism.RSA_PKCS, None, prefix + data)
        return encode_ecdsa_signature(self._sign_ecdsa_raw(label, data))

    def destroy(self, label: str) -> int:
        """Destroy every object labelled `label`; returns how many (0 when already gone).

        Raises HsmUnavailable.
        """

        def op(session: pkcs11.Session, fresh: bool) -> int:
            self._connection.keys.pop(label, None)
            found = _objects(session, {Attribute.LABEL: label})
            for obj in found:
                obj.destroy()
            return len(found)

        count = self._run("destroy", op)
        if count:
            log.info("Destroyed %d PKCS#11 objects of key %s", count, label)
        return count

    def list_labels(self, prefix: str = "") -> list[str]:
        """Sorted labels of the private keys on the token that start with `prefix`; raises HsmUnavailable."""

        def op(session: pkcs11.Session, fresh: bool) -> list[str]:
            found = _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            return sorted({lbl for obj in found if (lbl := obj[Attribute.LABEL]).startswith(prefix)})

        return self._run("list keys", op)

    def private_key(self, label: str) -> PrivateKey:
        """A `cryptography` private key whose sign() runs on the token; raises Conflict if gone."""

        def op(session: pkcs11.Session, fresh: bool) -> PublicKey:
            private = _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
            public = _objects(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label})
            if not private or not public:
                _key_missing(fresh)
            return _public_key_of(public[0])

        public_key = self._run("load key", op)
        if isinstance(public_key, rsa.RSAPublicKey):
            return _HsmRsaPrivateKey(self, label, public_key)
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return _HsmEcPrivateKey(self, label, public_key)
        return _HsmEd25519PrivateKey(self, label, public_key)

    def health(self) -> None:
        """Open (or reuse) and exercise the session; raises HsmUnavailable."""

        def op(session: pkcs11.Session, fresh: bool) -> None:
            # A search is the cheapest call every module supports that needs a live session.
            _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: _HEALTH_PROBE_LABEL})

        self._run("health check", op)

    # -- internals --------------------------------------------------------------------------------

    def _sign_raw(self, label: str, algorithm: str, mechanism: Mechanism, param: Any, payload: bytes) -> bytes:
        """Run one C_Sign with the private key `label` of `algorithm`; returns the token's bytes."""
        key_type = _KEY_TYPES[algorithm]
        conn = self._connection

        def op(session: pkcs11.Session, fresh: bool) -> bytes:
            cached = conn.keys.get(label)
            if cached is not None:
                key, cached_type = cached
                try:
                    # Another process may have destroyed the key, and a module may hand its
                    # handle to a new object: sign only if the handle still names this label.
                    if cached_type == key_type and key[Attribute.LABEL] == label:
                        conn.keys.move_to_end(label)
                        return cast(bytes, key.sign(payload, mechanism=mechanism, mechanism_param=param))
                except (p11.ObjectHandleInvalid, p11.KeyHandleInvalid):
                    pass
                del conn.keys[label]
            template = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
            found = _objects(session, {**template, Attribute.KEY_TYPE: key_type})
            if not found:
                if _objects(session, template):
                    raise UnsupportedAlgorithm(f"This key is not an {algorithm} key.")
                _key_missing(fresh)
            if len(found) > 1:
                raise Conflict("More than one key on the token has this label.")
            signer = cast(pkcs11.SignMixin, found[0])
            conn.remember(label, key_type, signer)
            return signer.sign(payload, mechanism=mechanism, mechanism_param=param)

        return self._run("sign", op)

    def _sign_ecdsa_raw(self, label: str, digest: bytes) -> bytes:
        """Raw r||s ECDSA over `digest`."""
        return self._sign_raw(label, "ECDSA", Mechanism.ECDSA, None, digest)

    def _run(self, what: str, op: Callable[[pkcs11.Session, bool], T]) -> T:
        """Run `op(session, fresh)` under the process-wide lock, reopening a lost session once.

        Raises UnsupportedAlgorithm for a mechanism the module lacks, HsmUnavailable for any other
        PKCS#11 failure; domain errors from `op` pass through.
        """
        conn = self._connection
        with _PKCS11_LOCK:
            try:
                session = conn.session
                fresh = session is None
                if session is None:
                    session = conn.open(self._pin_provider)
                try:
                    return op(session, fresh)
                except _RETRY_ONCE as exc:
                    log.warning("PKCS#11 session unusable during %s (%s); reopening", what, type(exc).__name__)
                    conn.discard()
                session = conn.open(self._pin_provider)
                try:
                    return op(session, True)
                except _SESSION_LOST as exc:
                    conn.discard()
                    raise HsmUnavailable(f"The HSM session was lost twice during {what}.") from exc
            except (p11.MechanismInvalid, p11.MechanismParamInvalid) as exc:
                raise UnsupportedAlgorithm(f"The HSM does not support this {what} mechanism.") from exc
            except p11.PKCS11Error as exc:
                raise HsmUnavailable(f"The HSM failed during {what} ({type(exc).__name__}).") from exc


def _objects(session: pkcs11.Session, attrs: dict[Attribute, Any]) -> list[Any]:
    """All objects matching `attrs`, with the search finished (an open search blocks the session)."""
    return list(session.get_objects(attrs))


def _destroy_quietly(session: pkcs11.Session, label: str) -> None:
    """Best-effort removal of every object labelled `label`."""
    try:
        for obj in _objects(session, {Attribute.LABEL: label}):
            obj.destroy()
    except p11.PKCS11Error:
        log.warning("Could not clean up PKCS#11 objects of failed key %s", label, exc_info=True)


def _key_missing(fresh: bool) -> NoReturn:
    """Raise: a missing key is believed only on a freshly logged-in session."""
    if not fresh:
        raise _KeyMaybeHidden
    raise Conflict("The key of this generation no longer exists.")


def _public_key_of(obj: Any) -> PublicKey:
    """Build a `cryptography` public key from a token public-key object's attributes."""
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        attrs = obj.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT])
        return rsa.RSAPublicNumbers(
            int.from_bytes(attrs[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(attrs[Attribute.MODULUS], "big"),
        ).public_key()
    attrs = obj.get_attributes([Attribute.EC_PARAMS, Attribute.EC_POINT])
    params, point = bytes(attrs[Attribute.EC_PARAMS]), bytes(attrs[Attribute.EC_POINT])
    if key_type == KeyType.EC:
        curve_name = _CURVE_BY_PARAMS.get(params)
        if curve_name is None:
            raise UnsupportedAlgorithm("The token key uses a curve this service does not support.")
        curve = EC_CURVES[curve_name]()
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, _ec_point(point, 1 + 2 * _bytes(curve)))
    if key_type == KeyType.EC_EDWARDS:
        return ed25519.Ed25519PublicKey.from_public_bytes(_ec_point(point, 32))
    raise UnsupportedAlgorithm(f"The token key has unsupported key type {key_type!r}.")


def _ec_point(value: bytes, bare_length: int) -> bytes:
    """The point inside CKA_EC_POINT: a DER OCTET STRING per PKCS#11, bare on some modules."""
    if len(value) == bare_length:
        return value
    return bytes(OctetString.load(value).native)


def _bytes(curve: ec.EllipticCurve) -> int:
    """Field element size of `curve` in bytes."""
    return (curve.key_size + 7) // 8


# -- cryptography private keys backed by the token ----------------------------------------------


def _no_export() -> NoReturn:
    raise TypeError("This private key is held by the HSM and cannot be exported.")


def _hash_input(data: bytes, algorithm: Any) -> tuple[bytes, hashes.HashAlgorithm]:
    """(digest, hash) for `data` given a HashAlgorithm or a Prehashed wrapper."""
    if isinstance(algorithm, utils.Prehashed):
        hash_alg = algorithm._algorithm
        if len(data) != hash_alg.digest_size:
            raise ValueError("The provided data must be the same length as the hash algorithm's digest size.")
        return bytes(data), hash_alg
    if isinstance(algorithm, hashes.HashAlgorithm):
        h = hashes.Hash(algorithm)
        h.update(data)
        return h.finalize(), algorithm
    raise UnsupportedAlgorithm(f"Unsupported hash {algorithm!r} for an HSM key.")


def _hash_params(hash_alg: hashes.HashAlgorithm) -> tuple[Mechanism, MGF, bytes]:
    try:
        return _HASHES[hash_alg.name]
    except KeyError:
        raise UnsupportedAlgorithm(f"HSM keys sign with SHA-256/384/512, not {hash_alg.name}.") from None


_P = TypeVar("_P", rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)


class _OnToken(Generic[_P]):
    """What every token-backed key shares: its handle, and no way to get the private key out."""

    def __init__(self, backend: HsmBackend, label: str, public_key: _P) -> None:
        self._backend = backend
        self._label = label
        self._public_key: _P = public_key

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        """Not possible: raises TypeError."""
        _no_export()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class _HsmRsaPrivateKey(_OnToken[rsa.RSAPublicKey], rsa.RSAPrivateKey):
    """An RSA key on the token, usable wherever `cryptography` expects an RSAPrivateKey."""

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        """RSA PKCS#1 v1.5 or PSS signature made on the token."""
        if isinstance(algorithm, utils.NoDigestInfo):
            if not isinstance(padding, PKCS1v15):
                raise UnsupportedAlgorithm("NoDigestInfo only works with PKCS#1 v1.5 padding.")
            return self._backend._sign_raw(self._label, "RSA", Mechanism.RSA_PKCS, None, bytes(data))
        digest, hash_alg = _hash_input(data, algorithm)
        digest_mech, _, prefix = _hash_params(hash_alg)
        if isinstance(padding, PKCS1v15):
            return self._backend._sign_raw(self._label, "RSA", Mechanism.RSA_PKCS, None, prefix + digest)
        if isinstance(padding, PSS):
            mgf_hash = cast(hashes.HashAlgorithm, getattr(padding.mgf, "_algorithm", None))
            if not isinstance(mgf_hash, hashes.HashAlgorithm):
                raise UnsupportedAlgorithm("PSS on the HSM needs MGF1.")
            _, mgf, _ = _hash_params(mgf_hash)
            param = (digest_mech, mgf, self._salt_length(padding, hash_alg))
            return self._backend._sign_raw(self._label, "RSA", Mechanism.RSA_PKCS_PSS, param, digest)
        raise UnsupportedAlgorithm(f"Unsupported RSA padding {padding.name} for an HSM key.")

    def _salt_length(self, pss: PSS, hash_alg: hashes.HashAlgorithm) -> int:
        salt = pss._salt_length
        if isinstance(salt, int):
            return salt
        if salt is PSS.DIGEST_LENGTH:
            return hash_alg.digest_size
        if salt is PSS.MAX_LENGTH:
            return (self.key_size + 6) // 8 - hash_alg.digest_size - 2  # emLen - hLen - 2
        raise ValueError("PSS salt length AUTO is only valid when verifying.")

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        """Not offered: HSM keys are generated for signing only."""
        raise TypeError("HSM keys are for signing only.")

    @property
    def key_size(self) -> int:
        """Modulus size in bits."""
        return self._public_key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        """The matching public key (read from the token when the key was loaded)."""
        return self._public_key

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        """Not possible: raises TypeError."""
        _no_export()



class _HsmEcPrivateKey(_OnToken[ec.EllipticCurvePublicKey], ec.EllipticCurvePrivateKey):
    """An ECDSA key on the token, usable wherever `cryptography` expects an EllipticCurvePrivateKey."""

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """DER ECDSA signature made on the token."""
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm("HSM EC keys sign with ECDSA only.")
        if signature_algorithm.deterministic_signing:
            raise UnsupportedAlgorithm("The HSM does not offer deterministic (RFC 6979) ECDSA.")
        digest, _ = _hash_input(bytes(data), signature_algorithm.algorithm)
        # X9.62 uses the leftmost bits of a digest longer than the group order. For the curves
        # served here that is a whole-byte cut (P-521 never gets a digest longer than 66 bytes),
        # and doing it here spares modules that reject over-long input.
        digest = digest[: _bytes(self.curve)]
        return encode_ecdsa_signature(self._backend._sign_ecdsa_raw(self._label, digest))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        """Not offered: HSM keys are generated for signing only."""
        raise TypeError("HSM keys are for signing only.")

    @property
    def curve(self) -> ec.EllipticCurve:
        """The key's curve."""
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        """Curve size in bits."""
        return self._public_key.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The matching public key (read from the token when the key was loaded)."""
        return self._public_key

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        """Not possible: raises TypeError."""
        _no_export()



class _HsmEd25519PrivateKey(_OnToken[ed25519.Ed25519PublicKey], ed25519.Ed25519PrivateKey):
    """An Ed25519 key on the token, usable wherever `cryptography` expects an Ed25519PrivateKey."""

    def sign(self, data: Buffer) -> bytes:
        """PureEdDSA signature made on the token."""
        return self._backend._sign_raw(self._label, "EdDSA", Mechanism.EDDSA, None, bytes(data))

    def public_key(self) -> ed25519.Ed25519PublicKey:
        """The matching public key (read from the token when the key was loaded)."""
        return self._public_key

    def private_bytes_raw(self) -> bytes:
        """Not possible: raises TypeError."""
        _no_export()

