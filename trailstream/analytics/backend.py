"""One query interface over two stores: the SQLite cache (today's queries.py) and the Parquet lake, whose SQL is
built once as sqlglot expressions (written in Trino) and rendered per engine: Athena (Trino) or DuckDB.

The lake's SQL keeps SQLite's rules where dialects differ: ASCII-only case folding (SQLite's lower and LIKE),
NULLs first in ascending order, the word-start rule of free-text search, and the `actor` of a role's sessions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import polars as pl
from sqlglot import exp

from trailstream.analytics import activity_queries
from trailstream.analytics import queries, security_queries
from trailstream.analytics import choice_queries
from trailstream.analytics import lookup_queries
from trailstream.analytics import sigma_queries
from trailstream.analytics import alert_queries
from trailstream.analytics.timebins import TIME_BINS, choose_bin
from trailstream.analytics.lake_sql import (ACTOR, MEASURES, READ, NamedQuery, UnsupportedSearch,  # noqa: F401
                                            events_select, only_named, parsed_times, rows_sql, search_condition,
                                            top_sql)
from trailstream.cache.frames import UTC_TIME, placeholders, read_frame
from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc, parse_iso_utc

QUERY_NAMES = ("totals", "span", "top_event_names", "top_principals", "top_services", "account_regions", "timeline",
               "events", "search", "search_count", "error_counts", "error_first_seen", "error_events")
SPAN_SCHEMA = {"first_event": UTC_TIME, "last_event": UTC_TIME}
BUCKET_MS = {"10min": 600_000, "hour": 3_600_000, "day": 86_400_000}
ERROR_KEYS = ("day", "event_source", "event_name", "error_code")  # the order error counts come in, on every engine
TOTALS_COLUMNS = ("events", "failed", "principals", "accounts", "regions", "event_names", "first_event", "last_event")


def default_limit(name: str) -> int:
    """Rows a named query returns when the page does not say: event lists as their cache query, top lists 15."""
    return queries.DEFAULT_ROW_LIMIT if name == "error_events" else 1000 if name in ("search", "events") else 15


class LakeUnavailable(ValueError):
    """The lake cannot be read (no Parquet there yet, a damaged file); the message says what to do, for a person."""


class QueryBackend(Protocol):
    """What pages call: a named query over a period, returning the same frame whichever store answers."""

    def query(self, name: str, event_filter: EventFilter, **options) -> pl.DataFrame: ...


# The named queries beyond QUERY_NAMES, each page's kept in its own module as a QUERIES dict of lake_sql.NamedQuery.
PAGE_QUERIES: dict[str, NamedQuery] = {**security_queries.QUERIES, **activity_queries.QUERIES}
PAGE_QUERIES |= choice_queries.QUERIES  # the sidebar's account and region choices
PAGE_QUERIES |= lookup_queries.QUERIES  # an empty page's hint, a selected event's source file
PAGE_QUERIES |= sigma_queries.QUERIES  # the Sigma rules' candidate rows
PAGE_QUERIES |= alert_queries.QUERIES  # the alert rules' matching events


def query_names() -> tuple[str, ...]:
    return QUERY_NAMES + tuple(PAGE_QUERIES)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown query {name!r}; choose one of {', '.join(query_names())}")


# --- The SQLite cache: today's queries --------------------------------------------


@dataclass
class CacheBackend:
    """The embedded default: every query is queries.py's, over a read-only cache connection."""

    conn: sqlite3.Connection

    def query(self, name: str, event_filter: EventFilter, **options) -> pl.DataFrame:
        if name in PAGE_QUERIES:
            return PAGE_QUERIES[name].cache(self.conn, event_filter, **options)
        conn, limit = self.conn, options.get("limit", default_limit(name))
        if name == "totals":
            return queries.query_overview_totals(conn, event_filter).select(TOTALS_COLUMNS)
        if name == "span":
            return _cache_span(conn, event_filter, tuple(options.get("event_names", ())))
        if name == "top_event_names":
            return queries.query_top_event_names(conn, event_filter, limit)
        if name == "top_principals":
            return queries.query_top_principals(conn, event_filter, limit)
        if name == "top_services":
            daily = queries.query_event_timeline(conn, event_filter, "event_source", "day")
            return _top(daily.group_by("event_source").agg(pl.sum("events", "failed")), ("event_source",), limit)
        if name == "account_regions":
            return queries.query_account_region_counts(conn, event_filter)
        if name == "timeline":
            return queries.query_event_timeline(conn, event_filter, options.get("group_by"),
                                                options.get("bucket", "hour"), tuple(options.get("event_names", ())))
        if name == "events":
            return queries.query_events(conn, event_filter, tuple(options.get("event_names", ())), limit)
        if name == "search":
            return queries.query_search(conn, event_filter, options["search"], limit)
        if name == "search_count":
            return pl.DataFrame({"events": [queries.query_search_count(conn, event_filter, options["search"])]})
        if name == "error_counts":
            return queries.query_error_counts(conn, event_filter).sort(ERROR_KEYS, nulls_last=False)
        if name == "error_first_seen":
            return queries.query_error_first_seen(conn, event_filter).sort(ERROR_KEYS[1:], nulls_last=False)
        if name == "error_events":
            return queries.query_error_events(conn, event_filter, options["error_code"], options.get("event_source"),
                                              options.get("event_name"), limit)
        raise _unknown(name)


def _cache_span(conn: sqlite3.Connection, event_filter: EventFilter, event_names: tuple[str, ...]) -> pl.DataFrame:
    """The oldest and newest event time matching the filter (and names): what a timeline's bucket is chosen from."""
    where, params = event_filter.sql("e")
    if event_names:
        where += f" AND e.event_name IN ({placeholders(event_names)})"
    sql = f"SELECT min(e.event_time), max(e.event_time) FROM events e WHERE {where}"
    return read_frame(conn, sql, [*params, *event_names], SPAN_SCHEMA)


def bucket_for(event_filter: EventFilter, first, last) -> str:
    """The SQL bucket for a timeline of events first..last (datetimes) in the period: the finest no wider than the
    chart's bin (charts fold it into that bin), chosen the same for every engine."""
    start = parse_iso_utc(event_filter.start) if event_filter.start else first
    end = parse_iso_utc(event_filter.end) if event_filter.end else last
    length = TIME_BINS[choose_bin(end - start if start and end else None, last - first if first and last else None)][1]
    fitting = [name for name, (_, size) in queries.BUCKETS.items() if size <= length]
    return max(fitting, key=lambda name: queries.BUCKETS[name][1])


def newest_period(event_filter: EventFilter, timeline: pl.DataFrame, limit: int) -> EventFilter:
    """The filter narrowed to the newest timeline buckets that hold `limit` events: the newest `limit` events are all
    inside, and the lake reads only those days' partitions instead of the whole period's."""
    counts = timeline.group_by("bucket").agg(pl.sum("events")).sort("bucket", descending=True)
    reached = counts.filter(pl.col("events").cum_sum() - pl.col("events") < limit)
    if reached.height == counts.height:  # every bucket is needed: the period as it is
        return event_filter
    start = iso_utc(reached["bucket"].min())
    return replace(event_filter, start=max(start, event_filter.start or start))


def _top(frame: pl.DataFrame, columns: tuple[str, ...], limit: int | None) -> pl.DataFrame:
    """Largest first, ties by the columns (NULL first, as SQLite orders), at most `limit` rows."""
    ordered = frame.sort(["events", *columns], descending=[True] + [False] * len(columns), nulls_last=False)
    return ordered.head(limit) if limit else ordered


# --- The lake: SQL built once (lake_sql), rendered per engine ------------------------------------


def totals_sql(table: exp.Table, event_filter: EventFilter) -> exp.Select:
    return events_select(table, event_filter, *MEASURES, f"count(DISTINCT {ACTOR}) AS principals",
                   "count(DISTINCT account_id) AS accounts", "count(DISTINCT aws_region) AS regions",
                   "count(DISTINCT event_name) AS event_names", "min(event_time) AS first_event",
                   "max(event_time) AS last_event")


def error_first_seen_sql(table: exp.Table, event_filter: EventFilter) -> exp.Select:
    """When each (service, API, error code) was first seen in the whole lake, in the filter's accounts and regions."""
    unbounded = EventFilter(accounts=event_filter.accounts, regions=event_filter.regions)
    query = events_select(table, unbounded, "event_source", "event_name", "error_code",
                          "min(event_time) AS first_seen_ever")
    query = query.where("error_code <> ''", dialect=READ).group_by("1", "2", "3")
    return query.order_by(*(f"{key} NULLS FIRST" for key in ERROR_KEYS[1:]), dialect=READ)


def _error_calls(options: dict) -> exp.Expression:
    """The calls behind one error code (and, when given, one service and API)."""
    wanted = {"error_code": options["error_code"]} | {key: options[key] for key in ("event_source", "event_name")
                                                      if options.get(key) is not None}
    return exp.and_(*(exp.column(key).eq(exp.Literal.string(value)) for key, value in wanted.items()))


def timeline_sql(table: exp.Table, event_filter: EventFilter, bucket: str, group_by: str | None,
                 event_names: tuple[str, ...] = ()) -> exp.Select:
    """Events per bucket (integer arithmetic on epoch milliseconds: the same in every engine)."""
    size = BUCKET_MS[bucket]
    columns = [f"event_time_ms - event_time_ms % {size} AS bucket_ms", *([group_by] if group_by else [])]
    query = only_named(events_select(table, event_filter, *columns, *MEASURES), event_names)
    query = query.group_by(*map(str, range(1, len(columns) + 1)))
    return query.order_by(*(f"{n} NULLS FIRST" for n in range(1, len(columns) + 1)), dialect=READ)


def error_counts_sql(table: exp.Table, event_filter: EventFilter) -> exp.Select:
    """Failed calls per (day, service, API, error code), as queries.query_error_counts counts them."""
    query = events_select(table, event_filter, "event_source", "event_name", "error_code",
                    "substr(event_time, 1, 10) || 'T00:00:00Z' AS day", "count(*) AS events",
                    "min(event_time) AS first_seen", "max(event_time) AS last_seen")
    query = query.where("error_code <> ''", dialect=READ).group_by("1", "2", "3", "4")
    return query.order_by(*(f"{key} NULLS FIRST" for key in ERROR_KEYS), dialect=READ)


def build_query(table: exp.Table, name: str, event_filter: EventFilter, **options) -> exp.Select:
    """The named query as one sqlglot expression, for any engine."""
    if name in PAGE_QUERIES:
        return PAGE_QUERIES[name].lake(table, event_filter, **options)
    limit = options.get("limit", default_limit(name))
    if name == "totals":
        return totals_sql(table, event_filter)
    if name == "span":
        span = events_select(table, event_filter, "min(event_time) AS first_event", "max(event_time) AS last_event")
        return only_named(span, tuple(options.get("event_names", ())))
    if name == "top_event_names":
        return top_sql(table, event_filter, {"event_name": "event_name", "event_source": "event_source"}, limit)
    if name == "top_principals":
        return top_sql(table, event_filter, {"principal": ACTOR, "user_type": "user_type"}, limit)
    if name == "top_services":
        return top_sql(table, event_filter, {"event_source": "event_source"}, limit)
    if name == "account_regions":
        return top_sql(table, event_filter, {"account_id": "account_id", "aws_region": "aws_region"}, None)
    if name == "timeline":
        return timeline_sql(table, event_filter, options.get("bucket", "hour"), options.get("group_by"),
                            tuple(options.get("event_names", ())))
    if name == "events":
        return rows_sql(table, event_filter, None, limit, tuple(options.get("event_names", ())))
    if name == "search":
        return rows_sql(table, event_filter, search_condition(options["search"]), limit)
    if name == "search_count":
        return events_select(table, event_filter, "count(*) AS events").where(search_condition(options["search"]))
    if name == "error_counts":
        return error_counts_sql(table, event_filter)
    if name == "error_first_seen":
        return error_first_seen_sql(table, event_filter)
    if name == "error_events":
        return rows_sql(table, event_filter, _error_calls(options), limit)
    raise _unknown(name)


def shape_result(name: str, frame: pl.DataFrame, **options) -> pl.DataFrame:
    """An engine's raw result as the frame the cache's query returns (same columns, same dtypes)."""
    if name in PAGE_QUERIES:
        return PAGE_QUERIES[name].shape(frame, **options)
    if name == "totals":
        return parsed_times(frame).with_columns(pl.col(TOTALS_COLUMNS[:6]).cast(pl.Int64))
    if name == "span":
        return parsed_times(frame)
    if name == "timeline":
        timeline = frame.select(pl.from_epoch("bucket_ms", "ms").dt.replace_time_zone("UTC").cast(UTC_TIME).alias(
            "bucket"), pl.exclude("bucket_ms")).cast({"events": pl.Int64, "failed": pl.Int64})
        return queries.with_bucket_end(timeline, options.get("bucket", "hour"))
    if name in ("search", "events", "error_events"):
        return parsed_times(frame).with_columns(pl.col("read_only").cast(pl.Boolean))
    if name == "error_first_seen":
        return parsed_times(frame)
    if name == "search_count":
        return frame.cast({"events": pl.Int64})
    if name == "error_counts":
        return parsed_times(frame).with_columns(pl.col("events").cast(pl.Int64))
    return frame.cast({"events": pl.Int64, "failed": pl.Int64})


@dataclass
class LakeBackend:
    """The lake through an engine: `run(sql)` returns the rows as a frame, `dialect` says how to render."""

    table: exp.Table
    dialect: str
    run: Callable[[str], pl.DataFrame]
    interrupt: Callable[[], None] | None = None  # stops the running statement (DuckDB's), for the SQL page's limit

    def render(self, name: str, event_filter: EventFilter, **options) -> str:
        return build_query(self.table, name, event_filter, **options).sql(dialect=self.dialect)

    def query(self, name: str, event_filter: EventFilter, **options) -> pl.DataFrame:
        answer = self.run(self.render(name, event_filter, **options))
        try:
            return shape_result(name, answer, **options)
        except pl.exceptions.PolarsError as exc:
            raise LakeUnavailable(f"the lake's answer to the {name} query does not have the columns the compactor "
                                  f"writes ({_first_line(exc)}): check [backend] database and table") from None


def duckdb_backend(location: str) -> LakeBackend:
    """The lake read by DuckDB (a folder, hive-partitioned): the local stand-in for Athena."""
    import duckdb

    conn = duckdb.connect()
    folder = str(Path(location).resolve())
    source = exp.Literal.string(f"{folder}/**/*.parquet").sql(dialect="duckdb")
    try:
        # Every file has the compactor's one schema: union_by_name would read each file's footer on every query
        # (3.5 s of each query on a 4,380-file lake).
        conn.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet({source}, hive_partitioning = true, "
                     "hive_types_autocast = false)")
        # Nothing it runs (the SQL page's included) may read or write files outside the lake, nor undo that.
        conn.execute(f"SET allowed_directories = [{exp.Literal.string(folder + '/').sql(dialect='duckdb')}]")
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        raise LakeUnavailable(f"the lake at {location} has no Parquet files DuckDB can read ({_first_line(exc)}): "
                              f"run `python -m trailstream compact --to {location}` first") from None

    def run(sql: str) -> pl.DataFrame:
        try:
            return conn.sql(sql).pl()
        except duckdb.Error as exc:
            raise LakeUnavailable(f"DuckDB could not read the lake at {location}: {_first_line(exc)}") from None

    return LakeBackend(exp.to_table("events"), "duckdb", run, conn.interrupt)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def athena_table(settings) -> exp.Table:
    """The lake's table as [backend] names it; an entry point pairs it with an ingest.athena.AthenaRunner (analytics
    and ingest do not import each other): LakeBackend(athena_table(s), "athena", runner.frame)."""
    return exp.Table(this=exp.to_identifier(settings.table, quoted=True),
                     db=exp.to_identifier(settings.database, quoted=True))


def lake_engine(settings) -> str | None:
    """None for the cache; "duckdb" for a lake in a local folder (the stand-in for Athena); else "athena"."""
    if settings.kind != "athena":
        return None
    return "duckdb" if settings.lake and "://" not in settings.lake else "athena"


def backend_for(settings, conn: sqlite3.Connection | None, athena_run: Callable[[str], pl.DataFrame] | None = None):
    """The store [backend] names, outside the app too (reports, CLI): the cache over `conn`, a local lake with DuckDB,
    or Athena through `athena_run` (an entry point's ingest.athena.AthenaRunner(...).frame)."""
    engine = lake_engine(settings)
    if engine is None:
        return CacheBackend(conn)
    if settings.problems():
        raise LakeUnavailable("; ".join(settings.problems()) + ": fix [backend] in the settings file")
    if engine == "duckdb":
        return duckdb_backend(settings.lake)
    if athena_run is None:
        raise LakeUnavailable("this command cannot reach Athena: run it where [backend] is set up")
    return LakeBackend(athena_table(settings), "athena", athena_run)
