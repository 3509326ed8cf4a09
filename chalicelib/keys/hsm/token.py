"""Key pairs on a token, by label: generate, find, sign with, destroy and list them.

Every call runs through the token's shared `TokenSession` (the process-wide lock, one login, one retry
on a fresh session, recovery). Private keys are generated `sensitive`, not `extractable`, `private`,
with the label as CKA_LABEL and CKA_ID of both halves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

import pkcs11
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from chalicelib.errors import Conflict, KeyMissing, UnsupportedAlgorithm
from chalicelib.keys.algorithms import EC_CURVES, KeySpec, PublicKey
from chalicelib.keys.hsm.mechanisms import (
    CURVE_BY_PARAMS,
    EC_PARAMS,
    ED25519_PARAMS,
    KEY_TYPES,
    TokenSignature,
    field_bytes,
)
from chalicelib.keys.hsm.session import CachedKey, KeyMaybeHidden, TokenSession

log = logging.getLogger(__name__)

T = TypeVar("T")

_HEALTH_PROBE_LABEL = "rotasign/health-probe"  # never a key label (those start with "kp_" or "acct_")
_STALE_HANDLE = (p11.ObjectHandleInvalid, p11.KeyHandleInvalid)


class TokenKeys:
    """The key pairs on one token, named by label; every method raises HsmUnavailable when the token fails."""

    def __init__(self, session: TokenSession, pin_provider: Callable[[], str]) -> None:
        self.session = session
        self._pin_provider = pin_provider

    def generate(self, label: str, spec: KeySpec) -> PublicKey:
        """Generate a non-extractable key pair on the token and return its public key.

        Raises Conflict if the label is already on the token, UnsupportedAlgorithm if the module lacks
        the mechanism; a failed call leaves no object behind.
        """
        key_type = KEY_TYPES[spec.algorithm]
        public_template: dict[Attribute, Any] = {}
        if spec.algorithm == "ECDSA":
            assert spec.curve is not None
            public_template[Attribute.EC_PARAMS] = EC_PARAMS[spec.curve]
        elif spec.algorithm == "EdDSA":
            public_template[Attribute.EC_PARAMS] = ED25519_PARAMS
        private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True}
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
                public_key = public_key_of(public_obj)
            except BaseException:
                # Leave nothing behind; if the session itself is gone, the retry cleans up instead.
                _destroy_quietly(session, label)
                raise
            self.session.handles.put(label, CachedKey(private_obj, key_type, public_key))
            return public_key

        return self._run(f"generate {spec.algorithm}", op)

    def public_key(self, label: str) -> PublicKey:
        """The public key of the key pair `label`, checking that its private half is on the token.

        Raises KeyMissing when either half is gone.
        """
        handles = self.session.handles

        def op(session: pkcs11.Session, fresh: bool) -> PublicKey:
            cached = handles.get(label)
            if cached is not None and cached.public_key is not None and _still_names(cached.private, label):
                return cached.public_key
            private = _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
            public = _objects(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label})
            if not private or not public:
                _key_missing(fresh)
            if len(private) > 1 or len(public) > 1:
                raise Conflict("More than one key on the token has this label.")
            public_key = public_key_of(public[0])
            handles.put(label, CachedKey(private[0], private[0][Attribute.KEY_TYPE], public_key))
            return public_key

        return self._run("load key", op)

    def sign(self, label: str, signature: TokenSignature) -> bytes:
        """Run one C_Sign with the private key `label`; returns the token's bytes.

        Raises KeyMissing if the key is gone, UnsupportedAlgorithm if it is not of the signature's key type.
        """
        handles = self.session.handles

        def op(session: pkcs11.Session, fresh: bool) -> bytes:
            cached = handles.get(label)
            if cached is not None:
                # Another process may have destroyed the key, and a module may hand its handle to a new
                # object: sign only if the handle still names this label.
                if cached.key_type == signature.key_type and _still_names(cached.private, label):
                    try:
                        return _c_sign(cached.private, signature)
                    except _STALE_HANDLE:
                        pass  # destroyed between the check and the signature: search below
                handles.forget(label)
            template = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
            found = _objects(session, {**template, Attribute.KEY_TYPE: signature.key_type})
            if not found:
                if _objects(session, template):
                    raise UnsupportedAlgorithm("This key does not make this kind of signature.")
                _key_missing(fresh)
            if len(found) > 1:
                raise Conflict("More than one key on the token has this label.")
            handles.put(label, CachedKey(found[0], signature.key_type, None))
            return _c_sign(found[0], signature)

        return self._run("sign", op)

    def destroy(self, label: str) -> int:
        """Destroy every object labelled `label`; returns how many (0 when already gone)."""

        def op(session: pkcs11.Session, fresh: bool) -> int:
            self.session.handles.forget(label)
            found = _objects(session, {Attribute.LABEL: label})
            for obj in found:
                obj.destroy()
            return len(found)

        count = self._run("destroy", op)
        if count:
            log.info("Destroyed %d PKCS#11 objects of key %s", count, label)
        return count

    def labels(self, prefix: str = "") -> list[str]:
        """Sorted labels of the private keys on the token that start with `prefix`."""

        def op(session: pkcs11.Session, fresh: bool) -> list[str]:
            found = _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            return sorted({lbl for obj in found if (lbl := obj[Attribute.LABEL]).startswith(prefix)})

        return self._run("list keys", op)

    def health(self) -> None:
        """Open (or reuse, or recover) the session and exercise it."""

        def op(session: pkcs11.Session, fresh: bool) -> None:
            # A search is the cheapest call every module supports that needs a live session.
            _objects(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: _HEALTH_PROBE_LABEL})

        self._run("health check", op)

    def _run(self, what: str, op: Callable[[pkcs11.Session, bool], T]) -> T:
        return self.session.run(what, op, self._pin_provider)


def _c_sign(key: Any, signature: TokenSignature) -> bytes:
    signer = cast(pkcs11.SignMixin, key)
    return bytes(signer.sign(signature.payload, mechanism=signature.mechanism, mechanism_param=signature.param))


def _still_names(key: Any, label: str) -> bool:
    """Whether a remembered handle still names the object labelled `label` (False if it went stale)."""
    try:
        return bool(key[Attribute.LABEL] == label)
    except _STALE_HANDLE:
        return False


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
        raise KeyMaybeHidden
    raise KeyMissing()


def public_key_of(obj: Any) -> PublicKey:
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
        curve_name = CURVE_BY_PARAMS.get(params)
        if curve_name is None:
            raise UnsupportedAlgorithm("The token key uses a curve this service does not support.")
        curve = EC_CURVES[curve_name]()
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, _ec_point(point, 1 + 2 * field_bytes(curve)))
    if key_type == KeyType.EC_EDWARDS:
        return ed25519.Ed25519PublicKey.from_public_bytes(_ec_point(point, 32))
    raise UnsupportedAlgorithm(f"The token key has unsupported key type {key_type!r}.")


def _ec_point(value: bytes, bare_length: int) -> bytes:
    """The point inside CKA_EC_POINT: a DER OCTET STRING per PKCS#11, bare on some modules."""
    if len(value) == bare_length:
        return value
    return bytes(OctetString.load(value).native)
