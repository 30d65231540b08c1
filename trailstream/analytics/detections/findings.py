"""The one pipeline over every detector (an explicit registry), and findings as tables for pages and the terminal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from trailstream import catalog
from trailstream.analytics.detections import (access_keys, admin_grants, detectors_disabled, failed_sign_ins,
                                              impossible_travel, new_country, open_security_groups,
                                              privilege_sprees, root_activity, sign_ins_without_mfa,
                                              trail_tampering, unauthorized)
from trailstream.analytics.detections.common import Finding
from trailstream.analytics.detections.events import on_cache
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.cache.frames import UTC_TIME
from trailstream.filters import EventFilter
from trailstream.timefmt import TIME_FORMAT

Detector = Callable[..., list[Finding]]  # detect_*(conn, event_filter, settings) -> findings


def detect_sigma_findings(conn, event_filter: EventFilter | None = None,
                          settings: DetectionSettings | None = None) -> list[Finding]:
    """The enabled community (Sigma) rules; imported late because the sigma package builds on this one."""
    from trailstream.analytics.sigma.evaluation import detect_sigma_findings as detect

    return detect(conn, event_filter, settings)

# Single successful calls that are dangerous on their own, one finding each.
SINGLE_EVENT_DETECTORS: list[Detector] = [
    trail_tampering.detect_trail_tampering,
    detectors_disabled.detect_detectors_disabled,
    admin_grants.detect_admin_grants,
    access_keys.detect_access_keys_for_others,
    open_security_groups.detect_world_open_security_groups,
]
# Every detector detect_findings runs; a new one (Sigma rules, say) is one more entry here.
DETECTORS: list[Detector] = [
    unauthorized.detect_unauthorized_bursts,
    failed_sign_ins.detect_failed_sign_in_bursts,
    sign_ins_without_mfa.detect_sign_ins_without_mfa,
    new_country.detect_new_country_sign_ins,
    root_activity.detect_root_activity,
    impossible_travel.detect_impossible_travel,
    privilege_sprees.detect_privilege_change_sprees,
    *SINGLE_EVENT_DETECTORS,
    detect_sigma_findings,  # findings of type sigma:<rule id>
]
_RANK = {severity: index for index, severity in enumerate(catalog.SEVERITIES)}


def detect_findings(conn, event_filter: EventFilter | None = None, settings: DetectionSettings | None = None,
                    detectors: list[Detector] | None = None) -> list[Finding]:
    """Every detector over the period, newest first (most severe first among equal times); `conn` may be an events
    source (the lake), where travel reads its moves and Sigma rules do not run."""
    settings = settings or DetectionSettings()
    detectors = DETECTORS if detectors is None else detectors
    if not on_cache(conn):
        detectors = [_SOURCE_DETECTORS.get(detect, detect) for detect in detectors if detect is not detect_sigma_findings]
        conn = _ReadOnce(conn)  # the sign-in detectors share one slice: the lake is asked once
    return newest_first([finding for detect in detectors for finding in detect(conn, event_filter, settings)])


@dataclass
class _ReadOnce:
    """An events source that answers each (query, period, options) once per computation."""

    source: object
    answers: dict = field(default_factory=dict)

    def query(self, name: str, event_filter: EventFilter, **options) -> pl.DataFrame:
        key = (name, event_filter, tuple(sorted(options.items())))
        if key not in self.answers:
            self.answers[key] = self.source.query(name, event_filter, **options)
        return self.answers[key]


def detect_travel_on_source(source, event_filter: EventFilter | None = None,
                            settings: DetectionSettings | None = None) -> tuple[list[Finding], pl.DataFrame]:
    """Impossible travel findings and routes from an events source's moves (security_queries' security_moves): the
    lake has no stored rows to number the moves by."""
    moves = source.query("security_moves", event_filter or EventFilter())
    return impossible_travel.detect_travel_in_moves(moves, settings or DetectionSettings())


def _detect_travel_on_source(source, event_filter: EventFilter | None = None,
                             settings: DetectionSettings | None = None) -> list[Finding]:
    return detect_travel_on_source(source, event_filter, settings)[0]


# The detectors whose cache code needs stored rows, and what runs instead on an events source.
_SOURCE_DETECTORS: dict[Detector, Detector] = {impossible_travel.detect_impossible_travel: _detect_travel_on_source}


def newest_first(findings: list[Finding]) -> list[Finding]:
    """detect_findings' order: newest first, most severe first among equal times (stable within a detector)."""
    return sorted(findings, key=lambda finding: (finding.time, _RANK.get(finding.severity, 0), finding.type),
                  reverse=True)


def detect_all_findings(conn, settings: DetectionSettings,
                        since: str | None = None) -> tuple[list[Finding], pl.DataFrame]:
    """Every finding of the cache (of the events from `since` on) and the travel routes per day, with one pass over
    the hops: what the post-sync step stores."""
    others = [detect for detect in DETECTORS if detect is not impossible_travel.detect_impossible_travel]
    travel, routes = impossible_travel.query_travel_days(conn, settings, since)
    return newest_first(detect_findings(conn, EventFilter(start=since), settings, others) + travel), routes


def detect_high_risk_events(conn, event_filter: EventFilter | None = None,
                            settings: DetectionSettings | None = None) -> list[Finding]:
    """The single-event detectors only."""
    return detect_findings(conn, event_filter, settings, SINGLE_EVENT_DETECTORS)


FINDINGS_SCHEMA = {"time": UTC_TIME, "severity": pl.String, "type": pl.String, "title": pl.String,
                   "principal": pl.String, "account_id": pl.String, "summary": pl.String, "events": pl.Int64,
                   "event_ids": pl.List(pl.String), "key": pl.String}


def findings_frame(findings: list[Finding]) -> pl.DataFrame:
    """Findings as a table (one row each) for pages, charts and downloads."""
    rows = [
        {"time": finding.time, "severity": finding.severity, "type": finding.type, "title": finding.title,
         "principal": finding.principal, "account_id": finding.account_id, "summary": finding.summary,
         "events": finding.details.get("events", len(finding.event_ids)), "event_ids": finding.event_ids,
         "key": finding.key}
        for finding in findings
    ]
    wire = FINDINGS_SCHEMA | {"time": pl.String}
    return pl.DataFrame(rows, schema=wire).with_columns(
        pl.col("time").str.to_datetime(TIME_FORMAT, time_zone="UTC", strict=False))


def filter_findings(findings: list[Finding], severities=(), types=()) -> list[Finding]:
    """Only the chosen severities and types (all when none are chosen)."""
    return [finding for finding in findings if (not severities or finding.severity in severities)
            and (not types or finding.type in types)]


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    """Findings per severity, most severe first (every severity present, zero when none)."""
    return {severity: sum(finding.severity == severity for finding in findings)
            for severity in reversed(catalog.SEVERITIES)}


def findings_by_type(frame: pl.DataFrame) -> pl.DataFrame:
    """Findings counted per type and severity (from findings_frame), for a bar chart."""
    return frame.group_by("title", "severity").agg(findings=pl.len()).sort("findings", "title", descending=[True, False])


def format_findings_table(findings: list[Finding]) -> str:
    """A plain-text table for the terminal (`trailstream findings --format table`)."""
    if not findings:
        return "No findings in this period."
    headers = ("time", "severity", "type", "principal", "account", "summary")
    rows = [
        (finding.time or "", finding.severity, finding.type, finding.principal or "", finding.account_id or "",
         finding.summary or "")
        for finding in findings
    ]
    widths = [max(len(header), *(len(row[index]) for row in rows)) for index, header in enumerate(headers[:-1])]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths + [0])).rstrip()]
    lines.append("  ".join("-" * width for width in widths + [len(headers[-1])]))
    lines.extend("  ".join(value.ljust(width) for value, width in zip(row, widths + [0])).rstrip() for row in rows)
    return "\n".join(lines)
