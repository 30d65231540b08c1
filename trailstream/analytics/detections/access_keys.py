"""Access keys created by one identity for another IAM user (a classic persistence step)."""

from __future__ import annotations

import polars as pl

from trailstream import catalog
from trailstream.analytics.detections.common import Finding
from trailstream.analytics.detections.events import request_text, single_event_findings, successful_calls, who
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.filters import EventFilter

FINDING_TYPE = "access_key_for_other_user"
SETTINGS = ()  # every successful call counts


def detect_access_keys_for_others(conn, event_filter: EventFilter | None = None,
                                  settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per access key created for a user other than the caller."""
    events = successful_calls(conn, event_filter, catalog.ACCESS_KEY_CREATION_EVENTS)
    user = request_text("$.userName")
    own_name = pl.col("principal").str.split("/").list.last()
    someone_else = ((pl.col("user_type") != "IAMUser") | (user != own_name)).fill_null(True)
    others = events.filter(user.is_not_null() & someone_else)
    summary = pl.format("{} created an access key for IAM user {}.", who(), user)
    return single_event_findings(others, FINDING_TYPE, summary, details={"target_user": user})
