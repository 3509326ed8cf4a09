"""Operator counters as CloudWatch Embedded Metric Format log lines (no agent, no extra API call)."""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger("rotasign.metrics")
NAMESPACE = "rotasign"


def emit(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
    """Write one metric; CloudWatch Logs turns EMF lines into metrics that alarms can watch.

    Every metric is recorded per stage (the deployment's alarms watch that) and, when it has more
    dimensions, per stage and those dimensions too.
    """
    from chalicelib.settings import get_settings

    sets = [["stage"]] + ([["stage", *sorted(dimensions)]] if dimensions else [])
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": sets, "Metrics": [{"Name": name, "Unit": unit}]}
            ],
        },
        name: value,
        **dimensions,
        "stage": get_settings().stage,
    }
    log.info(json.dumps(record, separators=(",", ":")), extra={"event": "metric", "metric": name})
