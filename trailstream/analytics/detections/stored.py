"""Findings as pages and `findings` read them: from the post-sync store while it is current (same events, settings
and Sigma rules), computed now otherwise, with the reason, so a stale store never shows stale findings.

A stored finding is computed over the whole cache, so one that overlaps a period is shown whole (a burst that began
before the period keeps its first events).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
import polars as pl
import sqlite_utils

from trailstream import catalog
from trailstream.analytics.detections import impossible_travel
from trailstream.analytics.detections.common import SIGMA_PREFIX, Finding
from trailstream.analytics.detections.events import locate
from trailstream.analytics.detections.findings import detect_all_findings, detect_findings
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.cache import findings_store, sigma_state
from trailstream.cache.frames import UTC_TIME
from trailstream.filters import EventFilter
from trailstream.timefmt import TIME_FORMAT, iso_utc, parse_iso_utc

EARTH_HALF_KM = 20_040  # the farthest two places can be
FORMAT = 1  # bump when a detector's output changes: findings stored by an older version are then recomputed
_RULE_FIELDS = ("rule_id", "status", "level", "title", "author", "link", "kind", "query", "enabled")


@dataclass(frozen=True)
class PeriodFindings:
    """A period's findings and, when they were computed now instead of read from the store, the reason why."""

    findings: list[Finding] = field(default_factory=list)
    note: str = ""


def fingerprint(conn, settings: DetectionSettings) -> str:
    """What the findings depend on besides the events: the detection settings and the Sigma rules' text, state and
    exceptions (not their counters, which every run moves)."""
    rules = [[rule[name] for name in _RULE_FIELDS] for rule in sigma_state.query_catalog(conn)]
    exceptions = [[item["rule_id"], item["field"], item["value"]] for item in sigma_state.query_exceptions(conn)]
    payload = orjson.dumps([FORMAT, settings.to_dict(), rules, sorted(exceptions)], default=str)
    return hashlib.sha256(payload).hexdigest()


def staleness(conn, settings: DetectionSettings) -> str:
    """Empty when the stored findings are current; else why they are not, as a clause of a sentence."""
    state = findings_store.query_state(conn)
    if state is None:
        return "no findings are stored in this cache yet (the step after each sync stores them)"
    if (state["last_rowid"], state["generation"]) != findings_store.query_data_version(conn):
        return "the cache changed since the findings were stored (the step after the sync stores them again)"
    if state["fingerprint"] != fingerprint(conn, settings):
        return "the detection settings or Sigma rules changed since the findings were stored"
    return ""


def _unstored(event_filter: EventFilter, routes: bool = False) -> str:
    """Why a filter needs its own computation (the store answers periods and, for findings, accounts)."""
    if event_filter.regions or not event_filter.include_read_only or (routes and event_filter.accounts):
        return "the region, account or read-only choices need them computed for those events"
    return ""


def query_period_findings(conn, event_filter: EventFilter | None = None,
                          settings: DetectionSettings | None = None) -> PeriodFindings:
    """Every finding overlapping the period, newest first: stored ones when current, else detect_findings now."""
    settings = settings or DetectionSettings()
    event_filter = event_filter or EventFilter()
    reason = _unstored(event_filter) or staleness(conn, settings)
    if reason:
        return PeriodFindings(detect_findings(conn, event_filter, settings), reason)
    rows = findings_store.query_findings(conn, event_filter.start, event_filter.end, event_filter.accounts)
    return PeriodFindings([_finding(row) for row in rows])


def query_period_travel(conn, event_filter: EventFilter | None = None,
                        settings: DetectionSettings | None = None) -> tuple[list[Finding], pl.DataFrame, str]:
    """The period's travel findings and routes (ROUTE_SCHEMA, the stored days the period touches added up), and
    the reason when they were computed now."""
    settings = settings or DetectionSettings()
    event_filter = event_filter or EventFilter()
    reason = _unstored(event_filter, routes=True) or staleness(conn, settings)
    if reason:
        return (*impossible_travel.query_travel(conn, event_filter, settings), reason)
    rows = findings_store.query_findings(conn, event_filter.start, event_filter.end)
    travel = [_finding(row) for row in rows if row["type"] == impossible_travel.FINDING_TYPE]
    first_day = event_filter.start[:10] if event_filter.start else None
    wire = impossible_travel.ROUTE_SCHEMA | {"last_time": pl.String}
    routes = pl.DataFrame(findings_store.query_routes(conn, first_day, event_filter.end), schema=wire, orient="row")
    return travel, routes.with_columns(pl.col("last_time").str.to_datetime(TIME_FORMAT, time_zone="UTC",
                                                                           strict=False).cast(UTC_TIME)), ""


def query_finding_types(conn) -> dict[str, str]:
    """Every finding type a person can filter on, with its title: the built-in ones, then each runnable Sigma rule's
    (`sigma:<rule id>`)."""
    rules = sigma_state.query_catalog(conn, runnable_only=True)
    return dict(catalog.FINDING_TYPES) | {f"{SIGMA_PREFIX}{rule['rule_id']}": rule["title"] for rule in rules}


def _finding(row: dict) -> Finding:
    return Finding(type=row["type"], severity=row["severity"], time=row["time"], principal=row["principal"],
                   account_id=row["account_id"], summary=row["summary"], event_ids=orjson.loads(row["event_ids"]),
                   details=orjson.loads(row["details"]))


def _row(finding: Finding) -> dict:
    return {"type": finding.type, "severity": finding.severity, "time": finding.time,
            "first_time": finding.details.get("first_time") or finding.time, "principal": finding.principal,
            "account_id": finding.account_id, "summary": finding.summary,
            "event_ids": orjson.dumps(finding.event_ids).decode(),
            "details": orjson.dumps(finding.details, default=str).decode()}


def save_sign_in_places(db: sqlite_utils.Database, settings: DetectionSettings) -> None:
    """Look up and store the place of every sign-in address not placed yet (NULLs for one that is no place)."""
    unplaced = findings_store.query_unplaced_sign_in_addresses(db.conn, settings.city_database)
    if unplaced:
        addresses = pl.DataFrame({"source_ip": unplaced}, schema={"source_ip": pl.String})
        places = addresses.join(locate(addresses.get_column("source_ip"), settings), on="source_ip", how="left")
        findings_store.save_places(db, places.to_dicts(), settings.city_database)


def _reach(settings: DetectionSettings) -> timedelta:
    """How far back from an event a detection can reach: the longest window or gap that joins events into one
    finding, and the longest hop that can be too fast (half the earth at the fastest allowed speed)."""
    windows = [settings.window(name) for name in ("unauthorized_window", "sign_in_failure_window",
                                                  "privilege_change_window", "country_change_window",
                                                  "root_session_gap")]
    longest_hop = timedelta(hours=EARTH_HALF_KM / settings.max_travel_speed_kmh)
    return max(timedelta(hours=24), longest_hop, *windows)  # travel and new-country incidents join within 24 h


def _recompute_from(conn, settings: DetectionSettings, signature: str) -> str | None:
    """Where to compute findings again after new events (a UTC midnight): the newest events' reach back, moved
    earlier until no stored finding spans it or ends within reach of it. None: everything (other settings or
    rules, a correlation rule, events removed), so the stored findings always equal a whole computation."""
    state = findings_store.query_state(conn)
    runs_correlations = any(rule["kind"] == "correlation" for rule in sigma_state.query_catalog(conn, True))
    if state is None or state["fingerprint"] != signature or runs_correlations:
        return None
    newest = findings_store.query_earliest_new_event(conn, state["last_rowid"])
    if newest is None:
        return None
    reach = _reach(settings)
    cut = _midnight(parse_iso_utc(newest) - 2 * reach)
    while (first := findings_store.query_first_time_since(conn, iso_utc(cut - reach))) and parse_iso_utc(first) < cut:
        cut = _midnight(parse_iso_utc(first))
    since = iso_utc(cut)
    return None if findings_store.query_orphaned_findings(conn, since) else since


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def save_detected_findings(db: sqlite_utils.Database, settings: DetectionSettings | None = None) -> str:
    """The post-sync step's part: run the detectors over the events that can change a finding (the whole cache when
    unsure) and store the findings and routes, unless the stored ones are current. Returns the line it reports."""
    settings = settings or DetectionSettings()
    if not staleness(db.conn, settings):
        return "findings: the stored findings are current"
    started = time.perf_counter()
    last_rowid, generation = findings_store.query_data_version(db.conn)  # before detecting: later events => stale
    signature = fingerprint(db.conn, settings)
    state = findings_store.query_state(db.conn)
    if state and (state["fingerprint"], state["last_rowid"]) == (signature, last_rowid):
        findings_store.mark_generation(db, generation)  # a sync that stored no event changes no finding
        return "findings: no new events; the stored findings are current"
    since = _recompute_from(db.conn, settings, signature)
    findings, routes = detect_all_findings(db.conn, settings, since)
    route_rows = routes.with_columns(pl.col("last_time").dt.strftime(TIME_FORMAT)).to_dicts()
    save_sign_in_places(db, settings)
    seconds = time.perf_counter() - started
    findings_store.save_findings(db, [_row(finding) for finding in findings], route_rows, {
        "fingerprint": signature, "last_rowid": last_rowid, "generation": generation, "seconds": seconds}, since)
    scope = f"from {since[:10]} on" if since else "over the whole cache"
    return f"findings: {len(findings):,} stored {scope} ({routes.height:,} travel routes by day) in {seconds:.1f} s"
