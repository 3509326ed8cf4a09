"""rotasign: Chalice routes, the quarter-hour schedule, the refresh queue and the bootstrap function."""

from __future__ import annotations

from typing import Any

from chalice import Chalice

from chalicelib.api import identity, keypairs
from chalicelib.api.middleware import http_middleware
from chalicelib.logs import configure_logging

configure_logging()
app = Chalice(app_name="rotasign")
app.api.binary_types.extend(["application/timestamp-query", "application/timestamp-reply"])
app.register_middleware(http_middleware, "http")
app.register_blueprint(identity.bp, url_prefix="/api/v1")
app.register_blueprint(keypairs.bp, url_prefix="/api/v1")


@app.lambda_function(name="bootstrap")
def bootstrap(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Create an account (its CAs, TSA and first admin); returns the admin's API key once."""
    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.deps import get_deps

    result = bootstrap_account(get_deps(), str(event.get("account", "")), str(event.get("admin_name", "admin")))
    return {"account_id": result.account_id, "user_id": result.user_id, "api_key": result.api_key}
