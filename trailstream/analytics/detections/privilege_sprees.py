"""Sprees of changes to who may do what (IAM, security groups, bucket and key policies) in a short window."""

from __future__ import annotations

from trailstream import catalog
from trailstream.analytics.detections.common import Finding, duration, listing, plural, text
from trailstream.analytics.detections.events import (ACTOR_KEYS, SUCCEEDED, burst_findings, find_bursts,
                                                     from_source, names_condition, security_rows)
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.filters import EventFilter

FINDING_TYPE = "privilege_change_spree"
SETTINGS = ("privilege_change_threshold", "privilege_change_window_minutes")  # defaults: 15 within 15 minutes


def query_privilege_changes(conn, event_filter: EventFilter | None = None):
    """The security columns of the successful privilege changes the cache holds in the period."""
    condition, params = names_condition(catalog.PRIVILEGE_CHANGE_EVENTS)
    return security_rows(conn, event_filter, f"{condition} AND {SUCCEEDED}", params)


def detect_privilege_change_sprees(conn, event_filter: EventFilter | None = None,
                                   settings: DetectionSettings | None = None) -> list[Finding]:
    """Many successful privilege changes by one principal (a role, for role sessions) in a short window."""
    settings = settings or DetectionSettings()
    threshold = settings.privilege_change_threshold
    changes = from_source(conn, "security_privilege_changes", query_privilege_changes, event_filter)
    bursts = find_bursts(changes, ACTOR_KEYS, threshold, settings.window("privilege_change_window"))

    def describe(burst, span):
        return (
            f"{text(burst['principal'], 'Someone')} made {plural(burst['events'], 'access-privilege change')} in "
            f"{duration(span)} ({listing(burst['event_names'])})."
        )

    return burst_findings(bursts, FINDING_TYPE, threshold, describe)
