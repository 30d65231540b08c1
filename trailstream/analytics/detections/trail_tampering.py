"""CloudTrail logging stopped, deleted, or narrowed (trail updates and event selectors)."""

from __future__ import annotations

import polars as pl

from trailstream import catalog
from trailstream.analytics import transforms
from trailstream.analytics.detections.common import Finding
from trailstream.analytics.detections.events import request_text, single_event_findings, successful_calls, who
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.filters import EventFilter

FINDING_TYPE = "trail_tampering"
SETTINGS = ()  # every successful call counts


def detect_trail_tampering(conn, event_filter: EventFilter | None = None,
                           settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per successful tampering call; stopping or deleting a trail is critical."""
    tampering = successful_calls(conn, event_filter, catalog.TRAIL_TAMPERING_EVENTS)
    trail = transforms.first_of(request_text("$.name"), request_text("$.trailName"), request_text("$.eventDataStore"))
    summary = pl.format("{} called {} on trail {}.", who(), pl.col("event_name"), trail.fill_null("(unnamed)"))
    severity = pl.when(pl.col("event_name").is_in(catalog.TRAIL_STOPPING_EVENTS)).then(pl.lit("critical")).otherwise(
        pl.lit(catalog.FINDING_SEVERITY[FINDING_TYPE]))
    return single_event_findings(tampering, FINDING_TYPE, summary, severity, {"trail": trail})
