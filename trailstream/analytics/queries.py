"""Read-only SQL behind every page: filtering and aggregation happen in SQLite, frames come back typed.

Every `query_*` takes a connection from `store.open_cache_readonly` and (most) an `EventFilter`, and returns a
polars DataFrame whose columns and dtypes are the same whether or not anything matched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import timedelta

import polars as pl

from trailstream import catalog
from trailstream.analytics.timebins import TIME_BINS, choose_bin
from trailstream.cache import bookkeeping, derived, rollups, wordindex
from trailstream.cache.frames import UTC_TIME, placeholders, read_frame
from trailstream.filters import EventFilter
from trailstream.timefmt import parse_iso_utc
DEFAULT_ROW_LIMIT = 10_000

# The columns of an event table (everything but the compressed raw record), and their frame dtypes.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String,
    "event_time": UTC_TIME,
    "event_source": pl.String,
    "event_name": pl.String,
    "aws_region": pl.String,
    "account_id": pl.String,
    "principal": pl.String,
    "principal_arn": pl.String,
    "user_type": pl.String,
    "access_key_id": pl.String,
    "source_ip": pl.String,
    "user_agent": pl.String,
    "error_code": pl.String,
    "error_message": pl.String,
    "read_only": pl.Boolean,
    "event_type": pl.String,
    "event_category": pl.String,
    "resources": pl.String,
    "request_parameters": pl.String,
    "response_elements": pl.String,
}
_EVENT_COLUMNS_SQL = ", ".join(f"e.{name}" for name in EVENT_SCHEMA)

# Timeline bucket name -> (the leading part of event_time that names the bucket, what completes it as a time).
_BUCKET_KEYS: dict[str, tuple[str, str]] = {
    "10min": ("substr(e.event_time, 1, 15)", "0:00Z"),
    "hour": ("substr(e.event_time, 1, 13)", ":00:00Z"),
    "day": ("substr(e.event_time, 1, 10)", "T00:00:00Z"),
}
# Timeline bucket name -> (SQL expression turning event_time into the bucket start, its length).
BUCKETS: dict[str, tuple[str, timedelta]] = {
    name: (f"{key} || '{suffix}'", length)
    for (name, (key, suffix)), length in zip(
        _BUCKET_KEYS.items(), (timedelta(minutes=10), timedelta(hours=1), timedelta(days=1))
    )
}
# Timeline bucket name -> the coarsest rollup rows that still fall wholly inside one bucket.
_BUCKET_FINENESS = {"10min": "event", "hour": "hour", "day": "day"}
TIMELINE_GROUPS = ("event_source", "event_category", "event_name", "account_id", "aws_region", "user_type")

NAME_INDEX = "events_name_time"
ERROR_INDEX = "events_error_time"


def indexed_by(conn: sqlite3.Connection, index: str) -> str:
    """'INDEXED BY index' when the cache has it: SQLite, without statistics, often prefers a worse plan."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", [index]).fetchone()
    return f"INDEXED BY {index}" if found else ""



def _where(event_filter: EventFilter | None, *extra: str) -> tuple[str, list]:
    where, params = (event_filter or EventFilter()).sql("e")
    return " AND ".join((where, *extra)), params


def _facts(conn: sqlite3.Connection, event_filter: EventFilter, columns: tuple[str, ...], *args, **kwargs):
    """rollups.facts_sql, from the rollups whenever they include every stored event."""
    return rollups.facts_sql(derived.is_current(conn), event_filter, columns, *args, **kwargs)


# --- Cache-wide facts --------------------------------------------------------


@dataclass(frozen=True)
class FilterOptions:
    """What the sidebar can offer: the accounts and regions present in the cache."""

    accounts: tuple[str, ...]
    regions: tuple[str, ...]


def query_filter_options(conn: sqlite3.Connection) -> FilterOptions:
    """Accounts and regions present, for the sidebar's choices."""
    source, params = _facts(conn, EventFilter(), ("account_id", "aws_region"))
    rows = conn.execute(f"SELECT DISTINCT account_id, aws_region FROM ({source})", params).fetchall()
    return FilterOptions(
        accounts=tuple(sorted({row[0] for row in rows if row[0]})),
        regions=tuple(sorted({row[1] for row in rows if row[1]})),
    )


def query_cache_summary(conn: sqlite3.Connection) -> dict:
    """What the cache holds (events, span, accounts, regions, files, last sync) for `status` and the sidebar."""
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    first, last = _time_span(conn)
    options = query_filter_options(conn)
    files = bookkeeping.file_status_counts(conn)
    last_run = bookkeeping.last_sync_run(conn)
    last_sync = None
    if last_run is not None:
        source, started_at, ended_at, status, new_events, failures = last_run
        last_sync = f"{ended_at or started_at} ({source}, {status}, {new_events:,} new events, {failures:,} failures)"
    return {
        "events": events,
        "first_event": first,
        "last_event": last,
        "accounts": len(options.accounts),
        "regions": len(options.regions),
        "files": sum(files.values()),
        "failed_files": files.get("failed", 0),
        "skipped_files": files.get("skipped", 0),
        "last_sync": last_sync,
    }


def query_event_names(conn: sqlite3.Connection) -> list[str]:
    """Every event name in the cache, for search suggestions: one index seek per name (a skip scan), not a read of the
    whole name index (22 s on a cold 10M-event cache, 5 ms this way)."""
    sql = ("WITH RECURSIVE names(name) AS (SELECT min(event_name) FROM events UNION ALL "
           "SELECT (SELECT min(event_name) FROM events WHERE event_name > names.name) FROM names "
           "WHERE names.name IS NOT NULL) SELECT name FROM names WHERE name IS NOT NULL")
    return [row[0] for row in conn.execute(sql)]


def query_error_codes(conn: sqlite3.Connection) -> list[str]:
    """Every error code in the cache (from its partial index), for search suggestions."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT error_code FROM events WHERE error_code IS NOT NULL ORDER BY error_code"
        )
    ]


def query_newest_event(conn: sqlite3.Connection, event_filter: EventFilter) -> tuple[str | None, str | None]:
    """The newest event time in the whole cache, and the newest matching the filter's account, region and
    read-only choices whatever the period: what an empty page's hint is made of."""
    choices = EventFilter(accounts=event_filter.accounts, regions=event_filter.regions,
                          include_read_only=event_filter.include_read_only)
    where, params = _where(choices)
    newest = conn.execute("SELECT max(event_time) FROM events").fetchone()[0]
    chosen = conn.execute(f"SELECT e.event_time FROM events e WHERE {where} ORDER BY e.event_time DESC LIMIT 1",
                          params).fetchone()
    return newest, chosen[0] if chosen else None


def _time_span(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
    """Oldest and newest event time, one index probe each (min and max together would scan)."""
    return tuple(conn.execute("SELECT (SELECT min(event_time) FROM events), (SELECT max(event_time) FROM events)").fetchone())


# --- Overview ----------------------------------------------------------------


def pick_bucket(conn: sqlite3.Connection, event_filter: EventFilter) -> str:
    """The SQL bucket for a timeline: the finest no wider than timebins.choose_bin's bin over the period and the events
    inside it (two index probes); charts fold it into that bin (3 hours, a week, a month...)."""
    low, high = event_filter.start or "", event_filter.end or "9999"
    first, last = conn.execute(
        "SELECT (SELECT min(event_time) FROM events WHERE event_time >= ? AND event_time < ?), "
        "(SELECT max(event_time) FROM events WHERE event_time >= ? AND event_time < ?)", (low, high, low, high)
    ).fetchone()
    start, end = event_filter.start or first, event_filter.end or last
    period = parse_iso_utc(end) - parse_iso_utc(start) if start and end else None
    data = parse_iso_utc(last) - parse_iso_utc(first) if first and last else None
    length = TIME_BINS[choose_bin(period, data)][1]
    return max((name for name in BUCKETS if BUCKETS[name][1] <= length), key=lambda name: BUCKETS[name][1])


TOTALS_SCHEMA = {
    "events": pl.Int64,
    "failed": pl.Int64,
    "principals": pl.Int64,
    "accounts": pl.Int64,
    "regions": pl.Int64,
    "event_names": pl.Int64,
    "first_event": UTC_TIME,
    "last_event": UTC_TIME,
}


def query_overview_totals(conn: sqlite3.Connection, event_filter: EventFilter) -> pl.DataFrame:
    """One row of headline numbers: events, failed calls, distinct principals, accounts, regions, event names."""
    names, names_params = _facts(conn, event_filter, ("account_id", "aws_region", "event_name"))
    people, people_params = _facts(conn, event_filter, ("actor",), seen=True)
    sql = (
        "SELECT n.events, n.failed, p.principals, n.accounts, n.regions, n.event_names, p.first_event, p.last_event "
        "FROM (SELECT coalesce(sum(events), 0) AS events, coalesce(sum(failed), 0) AS failed, "
        "count(DISTINCT account_id) AS accounts, count(DISTINCT aws_region) AS regions, "
        f"count(DISTINCT event_name) AS event_names FROM ({names})) n, "
        "(SELECT count(DISTINCT actor) AS principals, min(first_time) AS first_event, "
        f"max(last_time) AS last_event FROM ({people})) p"
    )
    params = names_params + people_params
    return read_frame(conn, sql, params, TOTALS_SCHEMA).with_columns(
        failed_share=pl.when(pl.col("events") > 0).then(pl.col("failed") / pl.col("events")).otherwise(0.0)
    )


def timeline_schema(group_by: str | None) -> dict[str, pl.DataType]:
    schema = {"bucket": UTC_TIME}
    if group_by:
        schema[group_by] = pl.String
    return schema | {"events": pl.Int64, "failed": pl.Int64}


def query_event_timeline(
    conn: sqlite3.Connection,
    event_filter: EventFilter,
    group_by: str | None = "event_source",
    bucket: str | None = None,
    event_names: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Events and failed calls per time bucket (and per group_by column), aggregated in SQL."""
    if group_by is not None and group_by not in TIMELINE_GROUPS:
        raise ValueError(f"cannot group the timeline by {group_by!r}; choose one of {', '.join(TIMELINE_GROUPS)}")
    bucket = bucket or pick_bucket(conn, event_filter)
    key, suffix = _BUCKET_KEYS[bucket]
    columns = tuple(filter(None, (group_by, "event_name" if event_names else None)))
    extra = (f"f.event_name IN ({placeholders(event_names)})",) if event_names else ()
    source, params = _facts(conn, event_filter, columns, _BUCKET_FINENESS[bucket], where=extra,
                            params=tuple(event_names))
    group_sql = f", e.{group_by}" if group_by else ""
    sql = (
        f"SELECT {key} || '{suffix}'{group_sql}, sum(e.events), sum(e.failed) "
        f"FROM ({source}) e GROUP BY {key}{group_sql} ORDER BY 1"
    )
    return with_bucket_end(read_frame(conn, sql, params, timeline_schema(group_by)), bucket)


def with_bucket_end(frame: pl.DataFrame, bucket: str) -> pl.DataFrame:
    """Add where each bucket ends, so charts draw bars exactly one bucket wide."""
    return frame.with_columns(bucket_end=pl.col("bucket") + BUCKETS[bucket][1]).select(
        "bucket", "bucket_end", pl.exclude("bucket", "bucket_end")
    )


TOP_SCHEMA = {"events": pl.Int64, "failed": pl.Int64}
SEEN_SCHEMA = {"first_seen": UTC_TIME, "last_seen": UTC_TIME}


def _query_top(conn, event_filter, columns: tuple[str, ...], limit: int | None, seen: bool = False,
               **narrowing) -> pl.DataFrame:
    """Events and failed calls per value of `columns`, largest first (with first and last seen when asked);
    `narrowing` is facts_sql's where, params and events_hint."""
    source, params = _facts(conn, event_filter, columns, seen=seen, **narrowing)
    column_sql = ", ".join(f"e.{c}" for c in columns)
    seen_sql = ", min(e.first_time), max(e.last_time)" if seen else ""
    limit_sql = "LIMIT ?" if limit else ""
    sql = (
        f"SELECT {column_sql}, sum(e.events) AS events, sum(e.failed){seen_sql} "
        f"FROM ({source}) e GROUP BY {column_sql} ORDER BY events DESC, {column_sql} {limit_sql}"
    )
    schema = {c: pl.String for c in columns} | TOP_SCHEMA | (SEEN_SCHEMA if seen else {})
    return read_frame(conn, sql, params + ([limit] if limit else []), schema)


def query_top_event_names(conn: sqlite3.Connection, event_filter: EventFilter, limit: int = 15) -> pl.DataFrame:
    """The most frequent event names (with their service) and their failed calls."""
    return _query_top(conn, event_filter, ("event_name", "event_source"), limit)


def query_top_principals(conn: sqlite3.Connection, event_filter: EventFilter, limit: int = 15) -> pl.DataFrame:
    """The busiest principals (users, roles with their sessions together, services) and their failed calls."""
    return _query_top(conn, event_filter, ("actor", "user_type"), limit).rename({"actor": "principal"})


def query_account_region_counts(conn: sqlite3.Connection, event_filter: EventFilter, seen: bool = False) -> pl.DataFrame:
    """Events and failed calls per account and region (with first and last event times when asked)."""
    return _query_top(conn, event_filter, ("account_id", "aws_region"), None, seen=seen)


# --- Event tables (use cases, drill-downs) ---------------------------------------


def query_events(
    conn: sqlite3.Connection,
    event_filter: EventFilter,
    event_names: tuple[str, ...] = (),
    limit: int | None = DEFAULT_ROW_LIMIT,
) -> pl.DataFrame:
    """The newest events in the period (only the named ones if given), without the raw record."""
    extra = [f"e.event_name IN ({placeholders(event_names)})"] if event_names else []
    return _query_event_rows(conn, event_filter, extra, list(event_names), limit)


def _query_event_rows(
    conn, event_filter, extra: list[str], extra_params: list, limit: int | None, index: str | None = None
) -> pl.DataFrame:
    where, params = _where(event_filter, *extra)
    limit_sql = "LIMIT ?" if limit else ""
    hint = indexed_by(conn, index) if index else ""
    sql = f"SELECT {_EVENT_COLUMNS_SQL} FROM events e {hint} WHERE {where} ORDER BY e.event_time DESC {limit_sql}"
    return read_frame(conn, sql, params + extra_params + ([limit] if limit else []), EVENT_SCHEMA)


def query_use_case_events(
    conn: sqlite3.Connection, event_filter: EventFilter, use_case: str, limit: int | None = DEFAULT_ROW_LIMIT
) -> pl.DataFrame:
    """The newest events of one catalog use case ('network', 'instances', 'elastic_ips', 'iam')."""
    return query_events(conn, event_filter, catalog.USE_CASES[use_case].event_names, limit)


def query_use_case_timeline(
    conn: sqlite3.Connection, event_filter: EventFilter, use_case: str, bucket: str | None = None
) -> pl.DataFrame:
    """Counts over time per event name for one catalog use case."""
    names = catalog.USE_CASES[use_case].event_names
    return query_event_timeline(conn, event_filter, "event_name", bucket, names)


# --- Rare errors -------------------------------------------------------------

ERROR_COUNTS_SCHEMA = {
    "event_source": pl.String,
    "event_name": pl.String,
    "error_code": pl.String,
    "day": UTC_TIME,
    "events": pl.Int64,
    "first_seen": UTC_TIME,
    "last_seen": UTC_TIME,
}


def query_error_counts(conn: sqlite3.Connection, event_filter: EventFilter) -> pl.DataFrame:
    """Failed calls per (service, API, error code, day) in the period, for ranking by rarity."""
    where, params = _where(event_filter, "e.error_code IS NOT NULL", "e.error_code != ''")
    sql = (
        "SELECT e.event_source, e.event_name, e.error_code, substr(e.event_time, 1, 10) || 'T00:00:00Z', "
        "count(*), min(e.event_time), max(e.event_time) "
        f"FROM events e {indexed_by(conn, ERROR_INDEX)} WHERE {where} GROUP BY 1, 2, 3, 4"
    )
    return read_frame(conn, sql, params, ERROR_COUNTS_SCHEMA)


def query_error_first_seen(conn: sqlite3.Connection, event_filter: EventFilter) -> pl.DataFrame:
    """When each (service, API, error code) was first seen in the whole cache (same accounts and regions)."""
    unbounded = EventFilter(accounts=event_filter.accounts, regions=event_filter.regions)
    where, params = _where(unbounded, "e.error_code IS NOT NULL", "e.error_code != ''")
    sql = (
        "SELECT e.event_source, e.event_name, e.error_code, min(e.event_time) "
        f"FROM events e {indexed_by(conn, ERROR_INDEX)} WHERE {where} GROUP BY 1, 2, 3"
    )
    schema = {"event_source": pl.String, "event_name": pl.String, "error_code": pl.String, "first_seen_ever": UTC_TIME}
    return read_frame(conn, sql, params, schema)


def query_error_events(
    conn: sqlite3.Connection,
    event_filter: EventFilter,
    error_code: str,
    event_source: str | None = None,
    event_name: str | None = None,
    limit: int | None = DEFAULT_ROW_LIMIT,
) -> pl.DataFrame:
    """The events behind one error code (optionally one service and API), newest first."""
    extra, extra_params = ["e.error_code = ?"], [error_code]
    for column, value in (("event_source", event_source), ("event_name", event_name)):
        if value is not None:
            extra.append(f"e.{column} = ?")
            extra_params.append(value)
    return _query_event_rows(conn, event_filter, extra, extra_params, limit)


# --- Search ------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    """An Event-history style lookup (exact fields) plus free text; empty fields do not filter."""

    event_name: str = ""
    user_name: str = ""
    resource_type: str = ""
    resource_name: str = ""
    event_source: str = ""
    access_key_id: str = ""
    read_only: bool | None = None
    event_id: str = ""
    source_ip: str = ""
    error_code: str = ""
    text: str = ""

    def to_dict(self) -> dict:
        """Only the fields that filter, so a saved search stays short and readable as JSON."""
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchQuery":
        """Rebuild a saved search; unknown keys (from a newer version) are ignored."""
        if data is not None and not isinstance(data, dict):
            raise ValueError('search fields must be a JSON object of field names and values, like {"event_name": '
                             '"StopLogging"}')
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        if "read_only" in values and values["read_only"] is not None:
            values["read_only"] = bool(values["read_only"])
        return cls(**{k: (v.strip() if isinstance(v, str) else v) for k, v in values.items()})

    def is_empty(self) -> bool:
        return not self.to_dict()

    def best_index(self) -> str | None:
        """The index that narrows this search most; without one, events are read newest first until the limit."""
        if self.event_id:
            return None  # the primary key
        if self.event_name:
            return NAME_INDEX
        if self.error_code:
            return ERROR_INDEX
        return None  # the time index, read newest first until the limit

    def sql(self, alias: str = "e", words: Callable[[str], str | None] = lambda text: None) -> tuple[list[str], list]:
        """WHERE clauses and parameters for the fields that are set. `words(text)` gives the word-index query that
        narrows free text or a resource name first (see word_query), or None to test every event in the period."""
        a = f"{alias}."
        clauses, params = [], []
        for column, value in (
            ("event_name", self.event_name),
            ("event_source", self.event_source),
            ("access_key_id", self.access_key_id),
            ("event_id", self.event_id),
            ("source_ip", self.source_ip),
            ("error_code", self.error_code),
        ):
            if value:
                clauses.append(f"{a}{column} = ?")
                params.append(value)
        if self.user_name:
            name = _escape_like(self.user_name)
            clauses.append(f"({a}principal = ? OR {a}principal LIKE ? ESCAPE '\\' OR {a}principal LIKE ? ESCAPE '\\')")
            params += [self.user_name, f"{name}/%", f"%/{name}"]
        if self.read_only is not None:
            clauses.append(f"coalesce({a}read_only, 0) = ?")
            params.append(int(self.read_only))
        if self.resource_type:
            clauses.append(
                f"EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({a}resources) THEN {a}resources END) r "
                "WHERE json_extract(r.value, '$.type') = ?)"
            )
            params.append(self.resource_type)
        for text, columns, ignore_case in (
            (self.resource_name, RESOURCE_COLUMNS, False),
            (self.text, wordindex.SEARCH_TEXT_COLUMNS, True),
        ):
            if text:
                found_clauses, found_params = _contains(alias, columns, text, words(text), ignore_case)
                clauses += found_clauses
                params += found_params
        return clauses, params


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


RESOURCE_COLUMNS = ("resources", "request_parameters", "response_elements")


# Beyond this many word-index candidates, reading the period newest first meets enough matches sooner.
WORD_INDEX_MAX_CANDIDATES = 50_000


def word_query(conn: sqlite3.Connection, text: str) -> str | None:
    """The word-index query narrowing `text`, or None when testing events newest first is the better plan: the
    index is behind, the text has no ASCII words, or its words are so common that the index would not narrow."""
    words = wordindex.match_query(text) if derived.is_current(conn) else None
    if not words:
        return None
    candidates = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {wordindex.TABLE} WHERE {wordindex.TABLE} MATCH ? LIMIT ?)",
        [words, WORD_INDEX_MAX_CANDIDATES + 1],
    ).fetchone()[0]
    return words if candidates <= WORD_INDEX_MAX_CANDIDATES else None


def _contains(alias: str, columns: tuple[str, ...], text: str, words: str | None, ignore_case: bool
              ) -> tuple[list[str], list]:
    """Clauses for events whose `columns` contain `text` (wordindex.contains_sql's rule), narrowed first by the
    word-index query `words` when given."""
    narrowing = ([wordindex.candidates_sql(alias)], [words]) if words else ([], [])
    found, found_params = wordindex.contains_sql(alias, columns, text, ignore_case)
    return narrowing[0] + [found], narrowing[1] + found_params


def query_search(
    conn: sqlite3.Connection, event_filter: EventFilter, search: SearchQuery, limit: int | None = 1000
) -> pl.DataFrame:
    """Events in the period matching every field of the search, newest first."""
    clauses, params = search.sql("e", lambda text: word_query(conn, text))
    return _query_event_rows(conn, event_filter, clauses, params, limit, search.best_index())


def query_search_count(conn: sqlite3.Connection, event_filter: EventFilter, search: SearchQuery) -> int:
    """How many events in the period match the search in all, for the "showing N of M" of a capped list."""
    clauses, params = search.sql("e", lambda text: word_query(conn, text))
    where, filter_params = _where(event_filter, *clauses)
    hint = indexed_by(conn, search.best_index()) if search.best_index() else ""
    return conn.execute(f"SELECT count(*) FROM events e {hint} WHERE {where}", filter_params + params).fetchone()[0]


# --- Principal activity --------------------------------------------------------

PRINCIPAL_ACTIVITY_SCHEMA = {
    "bucket": UTC_TIME,
    "event_source": pl.String,
    "event_name": pl.String,
    "aws_region": pl.String,
    "events": pl.Int64,
    "failed": pl.Int64,
    "first_seen": UTC_TIME,
    "last_seen": UTC_TIME,
}
PRINCIPAL_INDEX = "events_principal_activity"  # covers what the activity reads from events (migrations m007, m009)
# What a principal's calls come from, read through its index (no rollup keeps these unbounded values).
PRINCIPAL_ORIGINS = ("source_ip", "user_agent", "access_key_id")
ORIGINS_LIMIT = 1000  # a roaming user has thousands of addresses a day: the busiest are enough to show
SESSIONS_LIMIT = 500


def query_principals(conn: sqlite3.Connection, event_filter: EventFilter, limit: int = 500) -> pl.DataFrame:
    """Principals active in the period as people think of them (an assumed role's sessions count as the role),
    busiest first, with first and last seen, for the principal picker."""
    return _query_top(conn, event_filter, ("actor", "user_type"), limit, seen=True).rename({"actor": "principal"})


# A role's stored principals (itself, then each `role/session` in order), one index seek each: a skip scan.
_ROLE_PRINCIPALS = (
    "WITH RECURSIVE found(p) AS (SELECT ? UNION ALL SELECT (SELECT s.principal FROM events s {hint} "
    "WHERE s.principal > max(found.p, ?) AND s.principal < ? ORDER BY s.principal LIMIT 1) "
    "FROM found WHERE found.p IS NOT NULL) SELECT p FROM found WHERE p IS NOT NULL"
)


def actor_seek(conn: sqlite3.Connection, alias: str, actor: str) -> tuple[str, list]:
    """rollups.actor_where as index seeks on (principal, event_time): a role's sessions are listed first, so the
    period bounds each session's read instead of reading every session's events the cache holds."""
    if "/" in actor:
        return rollups.actor_where(alias, actor)
    _clause, (_actor, after, before) = rollups.actor_where(alias, actor)  # its sessions lie between these
    sessions = _ROLE_PRINCIPALS.format(hint=indexed_by(conn, PRINCIPAL_INDEX))
    return (f"{alias}.principal IN ({sessions}) AND ({alias}.principal = ? OR {alias}.user_type = 'AssumedRole')",
            [actor, after, before, actor])


def _one_principal(conn: sqlite3.Connection, principal: str) -> dict:
    """facts_sql arguments keeping one principal's events (a role: all its sessions), read through its index."""
    clause, params = actor_seek(conn, "f", principal)
    return {"where": ("f.actor = ?",), "params": (principal,), "events_where": (clause,), "events_params": tuple(params),
            "events_hint": indexed_by(conn, PRINCIPAL_INDEX)}


def query_principal_activity(
    conn: sqlite3.Connection, event_filter: EventFilter, principal: str, bucket: str | None = None
) -> pl.DataFrame:
    """What one principal (a role: all its sessions) did: events and failed calls per time bucket, API and region."""
    bucket = bucket or pick_bucket(conn, event_filter)
    key, suffix = _BUCKET_KEYS[bucket]
    columns = ("actor", "event_source", "event_name", "aws_region")
    source, params = _facts(conn, event_filter, columns, _BUCKET_FINENESS[bucket], seen=True,
                            **_one_principal(conn, principal))
    group = "e.event_source, e.event_name, e.aws_region"
    sql = (
        f"SELECT {key} || '{suffix}', {group}, sum(e.events), sum(e.failed), min(e.first_time), max(e.last_time) "
        f"FROM ({source}) e GROUP BY {key}, {group} ORDER BY 1"
    )
    return with_bucket_end(read_frame(conn, sql, params, PRINCIPAL_ACTIVITY_SCHEMA), bucket)


def query_principal_origins(
    conn: sqlite3.Connection, event_filter: EventFilter, principal: str, origin: str, limit: int | None = ORIGINS_LIMIT
) -> pl.DataFrame:
    """One principal's events per source IP, user agent or access key (PRINCIPAL_ORIGINS), the busiest `limit`."""
    if origin not in PRINCIPAL_ORIGINS:
        raise ValueError(f"cannot break a principal down by {origin!r}; choose one of {', '.join(PRINCIPAL_ORIGINS)}")
    return _query_top(conn, event_filter, ("actor", origin), limit, seen=True,
                      **_one_principal(conn, principal)).drop("actor")


def query_principal_sessions(
    conn: sqlite3.Connection, event_filter: EventFilter, principal: str, limit: int | None = SESSIONS_LIMIT
) -> pl.DataFrame:
    """The session-level principals behind one (a role's `Role/session` names), busiest first: one click deeper."""
    narrowing = _one_principal(conn, principal)
    return _query_top(conn, event_filter, ("actor", "principal"), limit, seen=True, **narrowing).drop("actor")


def query_principal_events(
    conn: sqlite3.Connection, event_filter: EventFilter, principal: str, limit: int | None = DEFAULT_ROW_LIMIT
) -> pl.DataFrame:
    """One principal's newest events (a role: all its sessions')."""
    clause, params = actor_seek(conn, "e", principal)
    return _query_event_rows(conn, event_filter, [clause], params, limit)


# --- Resource history -----------------------------------------------------------


def query_resource_history(
    conn: sqlite3.Connection, event_filter: EventFilter, resource_id: str, limit: int | None = DEFAULT_ROW_LIMIT
) -> pl.DataFrame:
    """Every event whose resources, request or response mention the resource ID, oldest first."""
    resource_id = resource_id.strip()
    if not resource_id:
        return read_frame(conn, "SELECT * FROM (SELECT 1) WHERE 0", [], EVENT_SCHEMA)
    clauses, params = _contains("e", RESOURCE_COLUMNS, resource_id, word_query(conn, resource_id), ignore_case=False)
    newest = _query_event_rows(conn, event_filter, clauses, params, limit)
    return newest.reverse()


def query_resource_history_count(conn: sqlite3.Connection, event_filter: EventFilter, resource_id: str) -> int:
    """How many events in the period mention the resource in all, for the "N of M" of a capped history."""
    resource_id = resource_id.strip()
    if not resource_id:  # no ID mentions nothing, as in query_resource_history
        return 0
    clauses, params = _contains("e", RESOURCE_COLUMNS, resource_id, word_query(conn, resource_id), ignore_case=False)
    where, filter_params = _where(event_filter, *clauses)
    return conn.execute(f"SELECT count(*) FROM events e WHERE {where}", filter_params + params).fetchone()[0]


# Where a change call names the resource it changed: (column, JSON path), first match wins.
CHANGED_RESOURCE_PATHS = (
    ("request_parameters", "$.instancesSet.items[0].instanceId"), ("response_elements", "$.instancesSet.items[0].instanceId"),
    ("request_parameters", "$.instanceId"), ("request_parameters", "$.groupId"),
    ("request_parameters", "$.publicIp"), ("response_elements", "$.publicIp"), ("request_parameters", "$.allocationId"),
    ("request_parameters", "$.userName"), ("request_parameters", "$.roleName"), ("request_parameters", "$.bucketName"),
)
RECENT_RESOURCES_SCHEMA = {"resource": pl.String, "last_call": pl.String, "principal": pl.String, "changes": pl.Int64,
                           "last_changed": UTC_TIME}


def query_recently_changed_resources(conn: sqlite3.Connection, event_filter: EventFilter,
                                     limit: int = 200) -> pl.DataFrame:
    """Instances, groups, addresses, users, roles and buckets changed in the period, latest change first: what
    Resource history offers to pick from."""
    paths = ", ".join(f"CASE WHEN json_valid(e.{column}) THEN json_extract(e.{column}, '{path}') END"
                      for column, path in CHANGED_RESOURCE_PATHS)
    where, params = _where(event_filter, "COALESCE(e.read_only, 0) = 0", "e.event_category IS NOT 'Data'")
    sql = (
        "SELECT resource, max(event_name) FILTER (WHERE newest), max(principal) FILTER (WHERE newest), count(*), "
        "max(event_time) FROM (SELECT r.*, r.event_time = max(r.event_time) OVER (PARTITION BY resource) AS newest "
        f"FROM (SELECT coalesce({paths}) AS resource, e.event_name, e.principal, e.event_time "
        f"FROM events e WHERE {where}) r WHERE resource IS NOT NULL AND typeof(resource) = 'text') "
        "GROUP BY resource ORDER BY 5 DESC, 1 LIMIT ?"
    )
    return read_frame(conn, sql, params + [limit], RECENT_RESOURCES_SCHEMA)


# --- Sync history and ingestion health --------------------------------------------


