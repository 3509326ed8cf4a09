"""rotasign: Chalice routes, the quarter-hour schedule, the refresh queue and the bootstrap function."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Cron

from chalicelib.api import (
    console,
    groups,
    identity,
    keypairs,
    logs,
    openapi,
    profiles,
    refresh,
    release_windows,
    signing,
    teams,
    timestamp,
    transparency,
    trust,
    users,
)
from chalicelib.api.middleware import http_middleware
from chalicelib.structured_logging import configure_logging

configure_logging()
# configure_logs=False: Chalice would otherwise set the "rotasign" logger to ERROR with its own handler.
app = Chalice(app_name="rotasign", configure_logs=False)
app.api.binary_types.extend(["application/timestamp-query", "application/timestamp-reply",
                              "application/pkix-cert"])
app.register_middleware(http_middleware, "http")
app.register_blueprint(identity.bp, url_prefix="/api/v1")
app.register_blueprint(keypairs.bp, url_prefix="/api/v1")
app.register_blueprint(signing.bp, url_prefix="/api/v1")
app.register_blueprint(logs.bp, url_prefix="/api/v1")
app.register_blueprint(timestamp.bp, url_prefix="/api/v1")
app.register_blueprint(refresh.bp, url_prefix="/api/v1")
app.register_blueprint(transparency.bp, url_prefix="/api/v1")
app.register_blueprint(trust.bp, url_prefix="/api/v1")
app.register_blueprint(openapi.bp, url_prefix="/api/v1")
app.register_blueprint(console.bp, url_prefix="/console")
app.register_blueprint(users.bp, url_prefix="/api/v1")
app.register_blueprint(groups.bp, url_prefix="/api/v1")
app.register_blueprint(teams.bp, url_prefix="/api/v1")
app.register_blueprint(profiles.bp, url_prefix="/api/v1")
app.register_blueprint(release_windows.bp, url_prefix="/api/v1")


@app.lambda_function(name="bootstrap")
def bootstrap(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Create an account (its CAs, TSA and first admin); returns the admin's API key once."""
    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.container import get_deps

    result = bootstrap_account(get_deps(), str(event.get("account", "")), str(event.get("admin_name", "admin")))
    return {"account_id": result.account_id, "user_id": result.user_id, "api_key": result.api_key}


@app.schedule(Cron("0/15", "*", "*", "*", "?", "*"))
def refresh_tick(event: Any) -> dict[str, Any]:
    """Every quarter hour: sweep orphaned HSM keys, queue the due dynamic keypairs' refreshes, checkpoint the logs."""
    from chalicelib.services.container import get_services
    from chalicelib.services.scheduler import run_tick

    return run_tick(get_services()).as_dict()


@app.on_sqs_message(queue="rotasign-refresh", batch_size=10)
def refresh_worker(event: Any) -> dict[str, int]:
    """Refresh the keypairs of one SQS batch; raises (so Lambda redelivers) if any refresh failed."""
    from chalicelib.services.container import get_services

    result = get_services().queue.handle_records(record.to_dict() for record in event)
    return {"refreshed": result.refreshed, "skipped": result.skipped}
