"""Structured JSON logs: one line per event, never a secret."""

from __future__ import annotations

import contextvars
import json
import logging
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_REQUEST_FIELDS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_fields", default=None)


def begin_request() -> contextvars.Token[dict[str, Any] | None]:
    """Start collecting the fields of this request's one log line; returns the token to end it with."""
    return _REQUEST_FIELDS.set({})


def annotate(**fields: Any) -> None:
    """Add fields to the current request's log line (a service's outcome: keypair id, generation, ...)."""
    collected = _REQUEST_FIELDS.get()
    if collected is not None:
        collected.update(fields)


def end_request(token: contextvars.Token[dict[str, Any] | None]) -> dict[str, Any]:
    """The fields collected for this request, and stop collecting."""
    collected = _REQUEST_FIELDS.get() or {}
    _REQUEST_FIELDS.reset(token)
    return collected


class JsonFormatter(logging.Formatter):
    """Formats a record and its `extra` fields as one JSON object; tracebacks are left out."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type only: messages and frames can carry request data.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Route the `rotasign` loggers through the JSON formatter (idempotent)."""
    logger = logging.getLogger("rotasign")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    # botocore logs whole responses at DEBUG, KMS GenerateDataKey plaintext included; PynamoDB logs
    # request items. Neither may ever reach a log line, whatever level the host sets.
    for noisy in ("botocore", "boto3", "urllib3", "pynamodb", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))
    # Metric lines must be the bare EMF object for CloudWatch to read them.
    metrics = logging.getLogger("rotasign.metrics")
    plain = logging.StreamHandler()
    plain.setFormatter(logging.Formatter("%(message)s"))
    metrics.addHandler(plain)
    metrics.propagate = False
