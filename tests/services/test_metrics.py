"""Operator counters: CloudWatch EMF lines for signatures, refreshes and the refresh lag."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.support.api import Api
from tests.support.schedule import run_slices


class Lines(logging.Handler):
    """Collects the bare metric lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if name in r]


@pytest.fixture
def metric_lines() -> Iterator[Lines]:
    from chalicelib.structured_logging import configure_logging

    configure_logging()
    handler = Lines()
    logger = logging.getLogger("rotasign.metrics")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _is_emf(record: dict[str, Any], name: str) -> bool:
    metrics = record["_aws"]["CloudWatchMetrics"][0]
    return metrics["Namespace"] == "rotasign" and metrics["Metrics"][0]["Name"] == name


def test_signatures_are_counted_by_outcome_at_most_once_a_second(
    api: Api, metric_lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import metrics
    from tests.support.clock import FakeMonotonic

    clock = FakeMonotonic()
    monkeypatch.setattr(metrics, "signatures", metrics.Counter("signatures", clock=clock))
    kp = api.ok("POST", "/keypairs", {"alias": "m", "type": "static", "algorithm": "EdDSA"}, 201)
    digest = base64.b64encode(hashlib.sha256(b"artifact").digest()).decode()
    for _ in range(3):
        api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": digest})
    assert api.call("POST", f"/keypairs/{kp['id']}/sign", {"hash": "AAAA"}).status_code == 400
    assert metric_lines.named("signatures") == []  # a busy signer writes no line per request
    clock.advance(1.0)
    api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": digest})
    lines = {r["outcome"]: r for r in metric_lines.named("signatures")}
    assert {k: r["signatures"] for k, r in lines.items()} == {"success": 4, "failure": 1}
    assert all(_is_emf(r, "signatures") for r in lines.values())
    assert lines["success"]["storage"] == "disk" and lines["failure"]["error"] == "validation_error"


def test_a_tick_reports_the_refresh_lag_and_a_refresh_is_counted(api: Api, client: Any, metric_lines: Lines) -> None:
    from chalicelib.services.container import get_services
    from chalicelib.services.scheduler import run_tick

    kp = api.ok("POST", "/keypairs", {"alias": "lag", "type": "dynamic", "algorithm": "EdDSA"}, 201)
    services = get_services()
    deps = services.deps
    late = deps.clock() + timedelta(seconds=2 * deps.settings.schedule_seconds)
    real_clock, deps.clock = deps.clock, lambda: late
    sqs, url = deps.queue()
    try:
        run_tick(services, late)
        run_slices(client, sqs, url)  # the slices count the refresh messages they queue
    finally:
        deps.clock = real_clock
    # leave the shared session queue empty for other tests
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    (lag,) = metric_lines.named("refresh_lag_seconds")  # one per tick
    assert _is_emf(lag, "refresh_lag_seconds") and lag["refresh_lag_seconds"] > 0
    assert max(line["refreshes_enqueued"] for line in metric_lines.named("refreshes_enqueued")) >= 1
    api.ok("POST", f"/keypairs/{kp['id']}/refresh")
    assert [r["trigger"] for r in metric_lines.named("refreshes")] == ["manual"]


def test_every_metric_is_recorded_per_stage_for_the_deployment_alarms(metric_lines: Lines) -> None:
    from chalicelib import metrics

    metrics.emit("refresh_failures", 1, error="storage_unavailable")
    metrics.emit("refresh_lag_seconds", 2.5, unit="Seconds")
    failures, lag = metric_lines.records
    assert failures["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage"], ["stage", "error"]]
    assert lag["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage"]]
    assert failures["stage"] == lag["stage"] == "test" and failures["error"] == "storage_unavailable"
