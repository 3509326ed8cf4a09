"""Log retention: DynamoDB TTL on the log tables, so entries whose `expires` has passed are removed.

`ROTASIGN_LOG_RETENTION_DAYS` (default 0: keep forever) decides whether an entry gets an `expires`
time when it is written; DynamoDB's TTL sweeper deletes it after that time. Entries without `expires`
are never touched. TTL is the only thing that ever removes a log entry: no code path deletes one.
"""

from __future__ import annotations

from typing import Any

from chalicelib.settings import Settings

TTL_ATTRIBUTE = "expires"
LOG_TABLES = ("audit_log", "signature_log")


def enable_log_ttl(settings: Settings, client: Any = None) -> list[str]:
    """Turn on TTL (attribute `expires`) on both log tables where it is off; returns the tables changed.

    Raises ValueError when a log table already has TTL on another attribute (an operator must fix it).
    """
    if client is None:
        import boto3

        client = boto3.client("dynamodb", region_name=settings.region)
    changed = []
    for table in LOG_TABLES:
        name = settings.table_name(table)
        current = client.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
        if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            if current.get("AttributeName") == TTL_ATTRIBUTE:
                continue  # updating TTL that is already on is a ValidationException
            raise ValueError(f"Table {name} has TTL on {current.get('AttributeName')!r}, not {TTL_ATTRIBUTE!r}.")
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
        changed.append(name)
    return changed
