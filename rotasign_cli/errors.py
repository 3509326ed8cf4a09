"""The CLI's errors and the exit code each one means.

Every failure the CLI can explain is a `CliError`: `main` prints its message as one line on stderr
and exits with its code. Scripts rely on the codes, so they are part of the CLI's contract.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNAVAILABLE = 5
EXIT_INTERNAL = 70  # a bug in the CLI (sysexits' EX_SOFTWARE): none of the above explains it
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure with a one-line message and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    """A bad command line, a missing setting, or a local file that cannot be used (exit 2)."""

    exit_code = EXIT_USAGE


class VerificationFailed(CliError):
    """A signature that does not verify (exit 1)."""

    exit_code = EXIT_VERIFICATION_FAILED


class AuthError(CliError):
    """No API key, or one the service refuses, or a missing permission (exit 3)."""

    exit_code = EXIT_AUTH


class NotFoundError(CliError):
    """The named object does not exist in the caller's account (exit 4)."""

    exit_code = EXIT_NOT_FOUND


class UnavailableError(CliError):
    """The service cannot be reached or answers that it is unavailable (exit 5)."""

    exit_code = EXIT_UNAVAILABLE


def exit_code_for_status(status: int) -> int:
    """The exit code for an HTTP error status of the API."""
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 429 or status >= 500:
        return EXIT_UNAVAILABLE
    # 400, 405, 409, 413, 415: the service refused the request as given.
    return EXIT_USAGE


class ApiError(CliError):
    """An error answer of the API (`{"error": {"code", "message", "details"}}`), with its status."""

    NOT_API = "http_error"  # the code of an answer that is not an API error body (a proxy, another server)

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message if code == self.NOT_API else f"{message} ({status} {code})")
        self.status = status
        self.code = code
        self.api_message = message
        self.details = details or {}
        self.exit_code = exit_code_for_status(status)
