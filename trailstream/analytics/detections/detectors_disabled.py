"""GuardDuty, Config, Security Hub or Access Analyzer switched off (an UpdateDetector only when it disables)."""

from __future__ import annotations

import polars as pl

from trailstream import catalog
from trailstream.analytics.detections.common import Finding
from trailstream.analytics.detections.events import request_text, single_event_findings, successful_calls, who
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.filters import EventFilter

FINDING_TYPE = "detector_disabled"
SETTINGS = ()  # every successful call counts


def detect_detectors_disabled(conn, event_filter: EventFilter | None = None,
                              settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per successful call switching a detector off."""
    events = successful_calls(conn, event_filter, catalog.DETECTOR_DISABLING_EVENTS)
    enable = request_text("$.enable").str.to_lowercase()
    disabled = events.filter((pl.col("event_name") != "UpdateDetector") | (enable == "false").fill_null(False))
    service = pl.col("event_source").str.replace(r"\.amazonaws\.com$", "")
    summary = pl.format("{} called {} on {}, switching a detector off.", who(), pl.col("event_name"),
                        service.fill_null("(unknown service)"))
    return single_event_findings(disabled, FINDING_TYPE, summary, details={"service": service})
