"""Operator counters as CloudWatch Embedded Metric Format log lines (no agent, no extra API call)."""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger("rotasign.metrics")
NAMESPACE = "rotasign"


def emit(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
    """Write one metric; CloudWatch Logs turns EMF lines into metrics that alarms can watch."""
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": [sorted(dimensions)], "Metrics": [{"Name": name, "Unit": unit}]}
            ],
        },
        name: value,
        **dimensions,
    }
    log.info(json.dumps(record, separators=(",", ":")), extra={"event": "metric", "metric": name})
