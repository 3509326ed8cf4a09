"""Domain errors: each carries the HTTP status and the docs/api.md error code it maps to."""

from __future__ import annotations

from typing import Any


class RotasignError(Exception):
    """Base of every error the service reports to a client."""

    status: int = 500
    code: str = "internal_error"
    default_message: str = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The docs/api.md error body for this error."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(RotasignError):
    status, code = 400, "validation_error"
    default_message = "The request is not valid."


class InvalidJson(RotasignError):
    status, code = 400, "invalid_json"
    default_message = "The request body is not valid JSON."


class UnsupportedAlgorithm(RotasignError):
    status, code = 400, "unsupported_algorithm"
    default_message = "The algorithm is not supported for this key."


class InvalidPaginationToken(RotasignError):
    status, code = 400, "invalid_pagination_token"
    default_message = "The pagination token is not valid for this request."


class Unauthenticated(RotasignError):
    status, code = 401, "unauthenticated"
    default_message = "A valid API key is required."


class Forbidden(RotasignError):
    status, code = 403, "forbidden"
    default_message = "You do not have permission to do this."


class KeypairOffline(RotasignError):
    status, code = 403, "keypair_offline"
    default_message = "The keypair is offline and no active release window allows signing."


class NotAllowed(RotasignError):
    status, code = 403, "not_allowed"
    default_message = "You are not allowed to use this keypair."


class NotFound(RotasignError):
    status, code = 404, "not_found"
    default_message = "No such object."


class MethodNotAllowed(RotasignError):
    status, code = 405, "method_not_allowed"
    default_message = "This method is not allowed on this path."


class AliasTaken(RotasignError):
    status, code = 409, "alias_taken"
    default_message = "The alias is already used by another keypair."


class NotDynamic(RotasignError):
    status, code = 409, "not_dynamic"
    default_message = "Only dynamic keypairs can be refreshed."


class Conflict(RotasignError):
    status, code = 409, "conflict"
    default_message = "The object was changed by another request; try again."


class KeyMissing(Conflict):
    """The private key a key reference names is gone (destroyed by a refresh or delete that won a race)."""

    default_message = "The key of this generation no longer exists."


class PayloadTooLarge(RotasignError):
    status, code = 413, "payload_too_large"
    default_message = "The request body is larger than 64 KiB."


class UnsupportedMediaType(RotasignError):
    status, code = 415, "unsupported_media_type"
    default_message = "This route does not accept the request's Content-Type."


class Throttled(RotasignError):
    status, code = 429, "throttled"
    default_message = "A backend is throttling requests; retry later."


class HsmUnavailable(RotasignError):
    status, code = 503, "hsm_unavailable"
    default_message = "The HSM is unavailable; nothing was changed."


class StorageUnavailable(RotasignError):
    status, code = 503, "storage_unavailable"
    default_message = "Storage is unavailable; nothing was changed."
