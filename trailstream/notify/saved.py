"""Saved searches and reports: a named Search (SearchQuery + EventFilter) or SQL query, kept in the cache.

A report is a saved search with a format; its period ("7d") is re-read at every run, and an optional schedule
(daily or weekly) with recipients has it emailed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from urllib.parse import urlencode

import sqlite_utils

from trailstream.notify import mailer
from trailstream.cache import store
from trailstream.filters import TIME_PRESETS, EventFilter
from trailstream.analytics.queries import SearchQuery
from trailstream.timefmt import parse_iso_utc, utc_now

KINDS = {"search": "Search filter", "sql": "SQL query"}
REPORT_FORMATS = {"csv": "CSV", "parquet": "Parquet", "html": "HTML page (chart and table)"}
SCHEDULES = {"daily": "Daily (first run each UTC day)", "weekly": "Weekly (first run each ISO week, from Monday)"}
DEFAULT_REPORT_PERIOD = "7d"
MAX_NAME_LENGTH = 100
SHARE_PARAM = "saved"
class SavedSearchError(ValueError):
    """A saved search or report cannot be stored or found; the message says what to change."""


@dataclass(frozen=True)
class SavedSearch:
    """A Search (search + event_filter) or a SQL query under a name; with a format it is also a report.

    `period` (a filters.TIME_PRESETS key) replaces the filter's start and end at every run; None keeps them.
    `chart` holds the quick-chart choices {"x", "y", "color", "kind"} for SQL results.
    """

    name: str
    kind: str
    search: SearchQuery = field(default_factory=SearchQuery)
    event_filter: EventFilter = field(default_factory=EventFilter)
    sql: str = ""
    chart: dict | None = None
    period: str | None = None
    format: str | None = None
    schedule: str | None = None
    recipients: tuple[str, ...] = ()
    last_sent_at: str | None = None

    @property
    def is_report(self) -> bool:
        return self.format is not None

    def filter_at(self, now: datetime | None = None) -> EventFilter:
        """The filter for a run now: the period counted back from now, with the saved accounts, regions, read-only."""
        if self.period is None:
            return self.event_filter
        return EventFilter.from_preset(self.period, now, accounts=self.event_filter.accounts,
                                       regions=self.event_filter.regions,
                                       include_read_only=self.event_filter.include_read_only)

    def definition(self) -> dict:
        """What is stored as JSON: the search and filter, or the SQL, and the chart choices."""
        if self.kind == "sql":
            body = {"sql": self.sql}
        else:
            body = {"search": self.search.to_dict(), "filter": filter_to_dict(self.event_filter)}
        return body | ({"chart": self.chart} if self.chart else {})

    def describe(self) -> str:
        """One line for lists and email subjects: what it is, its period, and its schedule."""
        parts = [KINDS[self.kind]]
        if self.period:
            parts.append("all time" if self.period == "all" else f"last {self.period}")
        if self.format:
            parts.append(REPORT_FORMATS[self.format].split(" ")[0])
        if self.schedule:
            parts.append(f"{self.schedule} to {', '.join(self.recipients) or 'the [smtp] recipients'}")
        return ", ".join(parts)


def filter_to_dict(event_filter: EventFilter) -> dict:
    return {
        "start": event_filter.start,
        "end": event_filter.end,
        "accounts": list(event_filter.accounts),
        "regions": list(event_filter.regions),
        "include_read_only": event_filter.include_read_only,
    }


def filter_from_dict(data: dict) -> EventFilter:
    return EventFilter(
        start=data.get("start"),
        end=data.get("end"),
        accounts=tuple(data.get("accounts") or ()),
        regions=tuple(data.get("regions") or ()),
        include_read_only=bool(data.get("include_read_only", True)),
    )


def check_saved(saved: SavedSearch) -> list[str]:
    """What keeps this from being saved, as sentences (empty when it can be)."""
    problems = []
    name = saved.name.strip()
    if not name:
        problems.append("give the search a name")
    elif len(name) > MAX_NAME_LENGTH:
        problems.append(f"the name is longer than {MAX_NAME_LENGTH} characters; shorten it")
    if saved.kind not in KINDS:
        problems.append(f"kind {saved.kind!r} is not one of {', '.join(KINDS)}")
    if saved.kind == "sql" and not saved.sql.strip():
        problems.append("the SQL query is empty; write one on the SQL page first")
    if saved.period is not None and saved.period not in TIME_PRESETS:
        problems.append(f"period {saved.period!r} is not one of {', '.join(TIME_PRESETS)}")
    if saved.format is not None and saved.format not in REPORT_FORMATS:
        problems.append(f"format {saved.format!r} is not one of {', '.join(REPORT_FORMATS)}")
    if saved.schedule is not None and saved.schedule not in SCHEDULES:
        problems.append(f"schedule {saved.schedule!r} is not one of {', '.join(SCHEDULES)}")
    if saved.schedule and not saved.format:
        problems.append("only a report can be scheduled: choose its format first")
    problems.extend(f'"{item}" is not an email address' for item in saved.recipients
                    if not mailer.parse_addresses(item))
    return problems


def _writable(db_path) -> sqlite_utils.Database:
    return store.open_cache(db_path)


def save_search(db_path, saved: SavedSearch) -> SavedSearch:
    """Insert or replace (by name) a saved search; raises SavedSearchError listing what to fix."""
    saved = replace(saved, name=saved.name.strip(), recipients=tuple(item.strip() for item in saved.recipients))
    problems = check_saved(saved)
    if problems:
        raise SavedSearchError("; ".join(problems))
    now = utc_now()
    db = _writable(db_path)
    try:
        with db.atomic():
            db.execute(
                "INSERT INTO saved_searches (name, kind, definition, period, format, schedule, recipients, "
                "last_sent_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, definition = excluded.definition, "
                "period = excluded.period, format = excluded.format, schedule = excluded.schedule, "
                "recipients = excluded.recipients, updated_at = excluded.updated_at",
                [saved.name, saved.kind, json.dumps(saved.definition()), saved.period, saved.format, saved.schedule,
                 json.dumps(list(saved.recipients)), saved.last_sent_at, now, now],
            )
    finally:
        db.close()
    return saved


def delete_saved_search(db_path, name: str) -> None:
    db = _writable(db_path)
    try:
        with db.atomic():
            db.execute("DELETE FROM saved_searches WHERE name = ?", [name])
    finally:
        db.close()


def mark_report_sent(db_path, name: str, sent_at: str) -> None:
    """Remember when a scheduled report went out, so it is sent once per day or week."""
    db = _writable(db_path)
    try:
        with db.atomic():
            db.execute("UPDATE saved_searches SET last_sent_at = ? WHERE name = ?", [sent_at, name])
    finally:
        db.close()


_COLUMNS = "name, kind, definition, period, format, schedule, recipients, last_sent_at"


def parse_saved_row(row) -> SavedSearch:
    name, kind, definition, period, fmt, schedule, recipients, last_sent_at = tuple(row)
    body = json.loads(definition or "{}")
    return SavedSearch(
        name=name,
        kind=kind,
        search=SearchQuery.from_dict(body.get("search") or {}),
        event_filter=filter_from_dict(body.get("filter") or {}),
        sql=body.get("sql", ""),
        chart=body.get("chart"),
        period=period,
        format=fmt,
        schedule=schedule,
        recipients=tuple(json.loads(recipients or "[]")),
        last_sent_at=last_sent_at,
    )


def query_saved_searches(conn: sqlite3.Connection) -> list[SavedSearch]:
    """Every saved search and report by name; none while the cache has no saved_searches table."""
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM saved_searches ORDER BY name COLLATE NOCASE").fetchall()
    except sqlite3.OperationalError:
        return []
    return [parse_saved_row(row) for row in rows]


def load_saved_searches(db_path) -> list[SavedSearch]:
    """Every saved search, read fresh (not cached: saving does not start a new sync generation)."""
    conn = store.open_cache_readonly(db_path)
    try:
        return query_saved_searches(conn)
    finally:
        conn.close()


def query_saved_search(conn: sqlite3.Connection, name: str) -> SavedSearch:
    """One saved search by name; raises SavedSearchError naming the ones that exist."""
    found = {saved.name: saved for saved in query_saved_searches(conn)}
    if name in found:
        return found[name]
    known = ", ".join(repr(item) for item in found) or "none yet"
    raise SavedSearchError(f"no saved search or report is named {name!r} (saved: {known}); "
                           "save one on the SQL or Reports page first")


def is_due(saved: SavedSearch, now: datetime) -> bool:
    """A scheduled report not yet sent this UTC day (daily) or ISO week (weekly)."""
    if not (saved.is_report and saved.schedule):
        return False
    if saved.last_sent_at is None:
        return True
    last = parse_iso_utc(saved.last_sent_at)
    if saved.schedule == "daily":
        return last.date() < now.astimezone(timezone.utc).date()
    return last.isocalendar()[:2] < now.astimezone(timezone.utc).isocalendar()[:2]


def due_reports(conn: sqlite3.Connection, now: datetime | None = None) -> list[SavedSearch]:
    """Scheduled reports to send now."""
    now = now or datetime.now(timezone.utc)
    return [saved for saved in query_saved_searches(conn) if is_due(saved, now)]


def share_query(saved: SavedSearch) -> str:
    """The query string ('?saved=...') that opens the Reports page on this saved search (same app, same cache)."""
    return "?" + urlencode({SHARE_PARAM: saved.name})
