"""Bursts of failed console sign-ins for one principal (password guessing)."""

from __future__ import annotations

from trailstream.analytics.detections.common import Finding, duration, listing, plural, text
from trailstream.analytics.detections.events import burst_findings, find_bursts
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.analytics.detections.sign_ins import SIGN_IN_KEYS, SUCCESS, query_sign_ins
from trailstream.filters import EventFilter

FINDING_TYPE = "console_login_failure_burst"
SETTINGS = ("sign_in_failure_threshold", "sign_in_failure_window_minutes")  # defaults: 10 within 5 minutes


def detect_failed_sign_in_bursts(conn, event_filter: EventFilter | None = None,
                                 settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per burst of failed sign-ins of one principal."""
    settings = settings or DetectionSettings()
    threshold = settings.sign_in_failure_threshold
    failures = query_sign_ins(conn, event_filter, settings).filter(~SUCCESS.fill_null(False))
    bursts = find_bursts(failures, SIGN_IN_KEYS, threshold, settings.window("sign_in_failure_window"))

    def describe(burst, span):
        return (
            f"{plural(burst['events'], 'failed console sign-in')} for {text(burst['principal'], 'someone')} in "
            f"{duration(span)} from {listing(burst['source_ips']) or 'an unknown address'}."
        )

    return burst_findings(bursts, FINDING_TYPE, threshold, describe, who="principal")
