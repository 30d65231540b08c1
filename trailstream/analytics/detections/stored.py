"""Findings as pages and `findings` read them: from the post-sync store while it is current (same events, settings
and Sigma rules), computed now otherwise, with the reason, so a stale store never shows stale findings.

A stored finding is computed over the whole cache, so one that overlaps a period is shown whole (a burst that began
before the period keeps its first events).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
import polars as pl
import sqlite_utils

from trailstream import catalog
from trailstream.analytics.detections import impossible_travel, new_country, travel_update
from trailstream.analytics.detections.common import SIGMA_PREFIX, Finding, plural
from trailstream.analytics.detections.events import locate
from trailstream.analytics.detections.findings import DETECTORS, detect_all_findings, detect_findings
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.cache import findings_store, sigma_state
from trailstream.cache.frames import UTC_TIME
from trailstream.filters import EventFilter
from trailstream.timefmt import TIME_FORMAT, iso_utc, parse_iso_utc

FORMAT = 2  # bump when a detector's output changes: findings stored by an older version are then recomputed
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


# Per-principal detectors: after a sync only the principals with new events are judged again (new-country sign-ins,
# few rows, are computed again whole); the others are windowed and recomputed from their reach before the new events.
PER_PRINCIPAL = (impossible_travel.FINDING_TYPE, new_country.FINDING_TYPE)
SIGMA_EPISODE_GAP = timedelta(hours=1)  # sigma.evaluation.EPISODE_GAP (importing it loads pySigma)


def _reach(settings: DetectionSettings) -> timedelta:
    """How far back from an event a windowed detection can reach: the longest window or gap that joins events into
    one finding."""
    windows = [settings.window(name) for name in ("unauthorized_window", "sign_in_failure_window",
                                                  "privilege_change_window", "root_session_gap")]
    return max(SIGMA_EPISODE_GAP, *windows)


def _recompute_from(conn, settings: DetectionSettings, signature: str) -> str | None:
    """Where the windowed detectors compute again after new events: the newest events' reach back, moved earlier
    until no stored windowed finding spans it. None: everything (other settings or rules, a correlation rule, events
    removed), so the stored findings always equal a whole computation."""
    state = findings_store.query_state(conn)
    runs_correlations = any(rule["kind"] == "correlation" for rule in sigma_state.query_catalog(conn, True))
    if state is None or state["fingerprint"] != signature or runs_correlations:
        return None
    newest = findings_store.query_earliest_new_event(conn, state["last_rowid"])
    if newest is None:
        return None
    reach = _reach(settings)
    cut = parse_iso_utc(newest) - 2 * reach
    while ((first := findings_store.query_first_time_since(conn, iso_utc(cut - reach), PER_PRINCIPAL))
           and parse_iso_utc(first) < cut):
        cut = parse_iso_utc(first)
    return None if findings_store.query_orphaned_findings(conn, "~") else iso_utc(cut)


def _route_rows(routes: pl.DataFrame) -> Iterator[tuple]:
    """Routes per day and principal as the store's rows (findings_store.PRINCIPAL_ROUTE_COLUMNS, times as text), one
    at a time (a roaming day has a hundred thousand), in the table's key order: each row lands after the one before
    instead of somewhere in the tree (half the time of the store's writes on 1M roaming events). Sorted by the key's
    rank: a sort by its five columns ties on the day for every row, three times slower."""
    in_key_order = routes.sort(pl.struct(findings_store.PRINCIPAL_ROUTE_KEY).rank("dense"))
    frame = in_key_order.with_columns(pl.col("last_time").dt.strftime(TIME_FORMAT))
    return frame.select(findings_store.PRINCIPAL_ROUTE_COLUMNS).iter_rows()


def _store_update(db: sqlite_utils.Database, settings: DetectionSettings, since: str, state: dict,
                  started: float) -> str:
    """Store what the events after the state's last rowid change: windowed findings from `since`, new-country
    sign-ins again, travel of the principals with new moments."""
    windowed = [detect for detect in DETECTORS if detect not in (impossible_travel.detect_impossible_travel,
                                                                 new_country.detect_new_country_sign_ins)]
    with findings_store.small_page_cache(db):
        findings = detect_findings(db.conn, EventFilter(start=since), settings, windowed)
        findings += new_country.detect_new_country_sign_ins(db.conn, None, settings)
        update = travel_update.query_travel_update(db.conn, findings_store.query_state(db.conn)["last_rowid"],
                                                   settings)
    route_rows = _route_rows(update.routes)
    save_sign_in_places(db, settings)
    state["seconds"] = time.perf_counter() - started
    first_day = min([since[:10] for _principal, since in update.recomputed]
                    + ([update.routes.get_column("day").min()] if update.routes.height else []), default=None)
    findings_store.save_findings_update(db, [_row(finding) for finding in findings + update.findings], route_rows,
                                        state, since, PER_PRINCIPAL, (new_country.FINDING_TYPE,), update.recomputed,
                                        update.replaced, first_day)
    late = plural(len(update.recomputed), "principal")
    return (f"findings: {len(findings) + len(update.findings):,} computed again (windowed ones from {since[:16]} on; "
            f"travel extended, and recomputed from a midnight for {late} with late moves) in {state['seconds']:.1f} s")


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
    new_state = {"fingerprint": signature, "last_rowid": last_rowid, "generation": generation}
    if since is not None:
        return _store_update(db, settings, since, new_state, started)
    with findings_store.small_page_cache(db):
        findings, routes = detect_all_findings(db.conn, settings)
    route_rows = _route_rows(routes)
    save_sign_in_places(db, settings)
    new_state["seconds"] = time.perf_counter() - started
    findings_store.save_findings(db, [_row(finding) for finding in findings], route_rows, new_state)
    return (f"findings: {len(findings):,} stored over the whole cache ({routes.height:,} travel routes by day and "
            f"principal) in {new_state['seconds']:.1f} s")
