"""Times clients send are RFC 3339 date-times, read one way; other ISO 8601 forms are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.clock import parse_rfc3339
from tests.support.api import Api


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-29T12:00:00Z", datetime(2026, 11, 29, 12, tzinfo=UTC)),
    ("2026-11-29t12:00:00.250z", datetime(2026, 11, 29, 12, 0, 0, 250000, tzinfo=UTC)),
    ("2026-11-29T13:00:00+01:00", datetime(2026, 11, 29, 12, tzinfo=UTC)),
])
def test_rfc_3339_date_times_parse(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", ["20261129T120000+00:00", "2026-11-29 12:00:00+00:00", "2026-11-29T12:00:00",
                                  "2026-11-29", "2026-11-29T12:00Z", "\uff12\uff10\uff12\uff16-11-29T12:00:00Z"])
def test_other_iso_8601_forms_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_a_query_time_in_another_form_is_a_400_naming_the_field(api: Api, client: Any) -> None:
    error = api.error("GET", f"/audit-logs?from={quote('2026-11-29 12:00:00+00:00')}", None, 400, "validation_error")
    assert error["details"]["field"] == "from"
