"""The named queries of Principal activity, Resource history and Access denied: each answered by the cache's query
and by the same question in lake SQL (lake_sql primitives, written in Trino), both giving the cache's frame."""

from __future__ import annotations

import sqlite3

import polars as pl
import sqlglot
from sqlglot import exp

from trailstream.analytics import lake_sql, policy, queries
from trailstream.analytics.detections import events, unauthorized
from trailstream.analytics.lake_sql import ACTOR, MEASURES, READ, NamedQuery, events_select, rows_sql
from trailstream.cache import rollups
from trailstream.cache.frames import UTC_TIME, read_frame
from trailstream.filters import EventFilter

SEEN = ("min(event_time) AS first_seen", "max(event_time) AS last_seen")
TIMES = ("event_time", "first_seen", "last_seen", "last_changed")
# A refused call's API as people write it ("s3:GetObject"), as detections.unauthorized spells it in polars.
API = ("CASE WHEN substr(event_source, -14) = '.amazonaws.com' THEN substr(event_source, 1, length(event_source) - 14) "
       "ELSE event_source END || ':' || event_name")
DENIED_BY = {"principal": ACTOR, "source_ip": "source_ip", "api": API, "error_code": "error_code"}
DENIED_TOP = 15  # refused calls by one column: the busiest values, as the chart shows them
DENIED_COUNTS_SCHEMA = {"calls": pl.Int64, "principals": pl.Int64, "source_ips": pl.Int64, "apis": pl.Int64,
                        "first_seen": UTC_TIME, "last_seen": UTC_TIME}


def _condition(sql: str) -> exp.Expression:
    return sqlglot.condition(sql, dialect=READ)


def _is_actor(principal: str) -> exp.Expression:
    """One principal as people think of it (a role: all its sessions), the cache's `actor`."""
    return _condition(f"({ACTOR})").eq(exp.Literal.string(principal))


def _counts(frame: pl.DataFrame) -> pl.DataFrame:
    present = [column for column in ("events", "failed", "calls", "changes") if column in frame.columns]
    return lake_sql.parsed_times(frame, TIMES).with_columns(pl.col(present).cast(pl.Int64))


def _rows(frame: pl.DataFrame, **options) -> pl.DataFrame:
    """Event rows as the cache's event tables type them."""
    return lake_sql.parsed_times(frame, TIMES).with_columns(pl.col("read_only").cast(pl.Boolean))


def _top_seen(table: exp.Table, event_filter: EventFilter, columns: dict[str, str], condition: exp.Expression,
              limit: int | None) -> exp.Select:
    """Events, failed calls, first and last seen per value of `columns` (name -> expression), busiest first, ties
    in the cache's order (NULL first)."""
    picked = [f"{sql} AS {name}" for name, sql in columns.items()]
    query = events_select(table, event_filter, *picked, *MEASURES, *SEEN).where(condition)
    query = query.group_by(*map(str, range(1, len(picked) + 1)))
    query = query.order_by("events DESC", *(f"{name} NULLS FIRST" for name in columns), dialect=READ)
    return query.limit(limit) if limit else query


def _bucket_ms(bucket: str) -> str:
    """The start of an event's timeline bucket in epoch milliseconds: integer arithmetic, the same in every engine."""
    size = int(queries.BUCKETS[bucket][1].total_seconds() * 1000)
    return f"event_time_ms - event_time_ms % {size} AS bucket_ms"


def _with_bucket(frame: pl.DataFrame, bucket: str) -> pl.DataFrame:
    start = pl.from_epoch("bucket_ms", "ms").dt.replace_time_zone("UTC").cast(UTC_TIME).alias("bucket")
    return queries.with_bucket_end(frame.select(start, pl.exclude("bucket_ms")), bucket)


# --- Principal activity ------------------------------------------------------------------------

ACTIVITY_KEYS = ("bucket", "event_source", "event_name", "aws_region")
CALL_KEYS = ("calls", "event_source", "event_name", "aws_region", "account_id", "denied", "resources",
             "request_parameters")


def _principal_origin(origin: str) -> str:
    if origin not in queries.PRINCIPAL_ORIGINS:
        raise ValueError(f"cannot break a principal down by {origin!r}; choose one of "
                         f"{', '.join(queries.PRINCIPAL_ORIGINS)}")
    return origin


def _activity_sql(table: exp.Table, event_filter: EventFilter, principal: str, bucket: str) -> exp.Select:
    """One principal's events and failed calls per bucket, service, API and region, as query_principal_activity."""
    columns = (_bucket_ms(bucket), "event_source", "event_name", "aws_region")
    query = events_select(table, event_filter, *columns, *MEASURES, *SEEN).where(_is_actor(principal))
    return query.group_by("1", "2", "3", "4")


def _activity(frame: pl.DataFrame, bucket: str, **options) -> pl.DataFrame:
    return _counts(_with_bucket(frame, bucket)).sort(ACTIVITY_KEYS, nulls_last=False)


def _cache_activity(conn: sqlite3.Connection, event_filter: EventFilter, principal: str, bucket: str) -> pl.DataFrame:
    activity = queries.query_principal_activity(conn, event_filter, principal, bucket)
    return activity.sort(ACTIVITY_KEYS, nulls_last=False)


def _principal_calls_sql(table: exp.Table, event_filter: EventFilter, principal: str,
                         limit: int = policy.ROW_LIMIT) -> exp.Select:
    """policy.query_principal_calls on the lake: successful and refused calls per resources, busiest first."""
    query = events_select(table, event_filter, "event_source", "event_name", "aws_region", "account_id",
                          "error_code IS NOT NULL AS denied", "resources",
                          "CASE WHEN coalesce(resources, '[]') = '[]' THEN request_parameters END AS request_parameters",
                          "count(*) AS calls")
    succeeded_or_refused = exp.or_(_condition("error_code IS NULL"), lake_sql.refused_as_unauthorized())
    query = query.where(_is_actor(principal)).where(succeeded_or_refused)
    query = query.group_by(*map(str, range(1, 8)))
    return query.order_by("calls DESC", *(f"{n} NULLS FIRST" for n in range(1, 8)), dialect=READ).limit(limit)


def _principal_calls(frame: pl.DataFrame, **options) -> pl.DataFrame:
    shaped = frame.cast({"calls": pl.Int64, "denied": pl.Boolean}).select(*policy.CALLS_SCHEMA)
    return shaped.sort(CALL_KEYS, descending=[True] + [False] * 7, nulls_last=False)


def _cache_principal_calls(conn: sqlite3.Connection, event_filter: EventFilter, principal: str,
                           limit: int = policy.ROW_LIMIT) -> pl.DataFrame:
    calls = policy.query_principal_calls(conn, event_filter, principal, limit)
    return calls.sort(CALL_KEYS, descending=[True] + [False] * 7, nulls_last=False)


# The origins Principal activity counts on first render: both kept in its index, so counted without reading rows.
COUNTED_ORIGINS = ("source_ip", "access_key_id")
ORIGIN_COUNTS_SCHEMA = {origin: pl.Int64 for origin in COUNTED_ORIGINS}


def _distinct(column: str) -> str:
    """How many values a column takes, a missing value counting as one: the rows of its breakdown, uncapped."""
    return f"count(DISTINCT {column}) + coalesce(max(CASE WHEN {column} IS NULL THEN 1 ELSE 0 END), 0) AS {column}"


def _cache_origin_counts(conn: sqlite3.Connection, event_filter: EventFilter, principal: str) -> pl.DataFrame:
    """One principal's distinct source IPs and access keys in one pass over its index entries in the period."""
    where, params = event_filter.sql("e")
    actor, actor_params = queries.actor_seek(conn, "e", principal)
    counted = ", ".join(_sqlite(_distinct(origin)) for origin in COUNTED_ORIGINS)
    sql = f"SELECT {counted} FROM events e {queries.indexed_by(conn, queries.PRINCIPAL_INDEX)} WHERE {where} AND {actor}"
    return read_frame(conn, sql, params + actor_params, ORIGIN_COUNTS_SCHEMA)


PRINCIPAL_QUERIES: dict[str, NamedQuery] = {
    "principals": NamedQuery(
        cache=queries.query_principals,
        lake=lambda table, event_filter, limit=500: _top_seen(
            table, event_filter, {"principal": ACTOR, "user_type": "user_type"}, exp.true(), limit),
        shape=lambda frame, **options: _counts(frame)),
    "principal_activity": NamedQuery(cache=_cache_activity, lake=_activity_sql, shape=_activity),
    "principal_origins": NamedQuery(
        cache=queries.query_principal_origins,
        lake=lambda table, event_filter, principal, origin, limit=queries.ORIGINS_LIMIT: _top_seen(
            table, event_filter, {_principal_origin(origin): origin}, _is_actor(principal), limit),
        shape=lambda frame, **options: _counts(frame)),
    "principal_origin_counts": NamedQuery(
        cache=_cache_origin_counts,
        lake=lambda table, event_filter, principal: events_select(
            table, event_filter, *map(_distinct, COUNTED_ORIGINS)).where(_is_actor(principal)),
        shape=lambda frame, **options: frame.cast(ORIGIN_COUNTS_SCHEMA)),
    "principal_sessions": NamedQuery(
        cache=queries.query_principal_sessions,
        lake=lambda table, event_filter, principal, limit=queries.SESSIONS_LIMIT: _top_seen(
            table, event_filter, {"principal": "principal"}, _is_actor(principal), limit),
        shape=lambda frame, **options: _counts(frame)),
    "principal_events": NamedQuery(
        cache=queries.query_principal_events,
        lake=lambda table, event_filter, principal, limit=queries.DEFAULT_ROW_LIMIT: rows_sql(
            table, event_filter, _is_actor(principal), limit),
        shape=_rows),
    "principal_calls": NamedQuery(cache=_cache_principal_calls, lake=_principal_calls_sql, shape=_principal_calls),
}


# --- Resource history --------------------------------------------------------------------------------

# Where a change call names the resource it changed (queries.CHANGED_RESOURCE_PATHS), in lake SQL.
_CHANGED_RESOURCE = "coalesce({})".format(", ".join(
    f"json_extract_scalar({column}, '{path}')" for column, path in queries.CHANGED_RESOURCE_PATHS))


def _mentions(resource_id: str) -> exp.Expression:
    """Events whose resources, request or response mention the ID (search's resource rule); nothing for no ID."""
    resource_id = resource_id.strip()
    return lake_sql.contains(queries.RESOURCE_COLUMNS, resource_id, False) if resource_id else exp.false()


def _recent_resources_sql(table: exp.Table, event_filter: EventFilter, limit: int = 200) -> exp.Select:
    """queries.query_recently_changed_resources on the lake: changed resources, the latest change first."""
    changes = events_select(table, event_filter, f"{_CHANGED_RESOURCE} AS resource", "event_name", "principal",
                            "event_time")
    changes = changes.where("coalesce(read_only, 0) = 0 AND event_category IS DISTINCT FROM 'Data'", dialect=READ)
    newest = sqlglot.select("resource", "event_name", "principal", "event_time",
                            "event_time = max(event_time) OVER (PARTITION BY resource) AS newest", dialect=READ)
    newest = newest.from_(changes.subquery("c")).where("resource IS NOT NULL", dialect=READ)
    query = sqlglot.select("resource", "max(event_name) FILTER (WHERE newest) AS last_call",
                           "max(principal) FILTER (WHERE newest) AS principal", "count(*) AS changes",
                           "max(event_time) AS last_changed", dialect=READ).from_(newest.subquery("r"))
    return query.group_by("resource").order_by("5 DESC", "1", dialect=READ).limit(limit)


RESOURCE_QUERIES: dict[str, NamedQuery] = {
    "recent_resources": NamedQuery(cache=queries.query_recently_changed_resources, lake=_recent_resources_sql,
                                   shape=lambda frame, **options: _counts(frame).select(
                                       *queries.RECENT_RESOURCES_SCHEMA)),
    "resource_history": NamedQuery(
        cache=queries.query_resource_history,
        lake=lambda table, event_filter, resource_id, limit=queries.DEFAULT_ROW_LIMIT: rows_sql(
            table, event_filter, _mentions(resource_id), limit),
        shape=lambda frame, **options: _rows(frame).reverse()),  # the newest `limit`, oldest first
    "resource_history_count": NamedQuery(
        cache=lambda conn, event_filter, resource_id: pl.DataFrame(
            {"events": [queries.query_resource_history_count(conn, event_filter, resource_id)]}),
        lake=lambda table, event_filter, resource_id: events_select(table, event_filter, "count(*) AS events").where(
            _mentions(resource_id)),
        shape=lambda frame, **options: frame.cast({"events": pl.Int64})),
}


# --- Access denied ----------------------------------------------------------------------------------


def _denied_where(event_filter: EventFilter) -> tuple[str, list]:
    """The cache's WHERE for refused calls in the period (detections.unauthorized's rule)."""
    condition, params = unauthorized.unauthorized_condition()
    where, filter_params = event_filter.sql("e")
    return f"{where} AND ({condition})", filter_params + params


def _sqlite(sql: str) -> str:
    """A lake expression over the flat columns (no time, no case rules) as SQLite spells it."""
    return sqlglot.transpile(sql, read=READ, write="sqlite")[0]


def _cache_denied_counts(conn: sqlite3.Connection, event_filter: EventFilter) -> pl.DataFrame:
    where, params = _denied_where(event_filter)
    sql = (f"SELECT count(*), count(DISTINCT {rollups.actor_sql('e')}), count(DISTINCT e.source_ip), "
           f"count(DISTINCT {_sqlite(API)}), min(e.event_time), max(e.event_time) "
           f"FROM {unauthorized.refused_calls_table(conn)} WHERE {where}")
    return read_frame(conn, sql, params, DENIED_COUNTS_SCHEMA)


def _denied_counts_sql(table: exp.Table, event_filter: EventFilter) -> exp.Select:
    return events_select(table, event_filter, "count(*) AS calls", f"count(DISTINCT {ACTOR}) AS principals",
                         "count(DISTINCT source_ip) AS source_ips", f"count(DISTINCT {API}) AS apis",
                         *SEEN).where(lake_sql.refused_as_unauthorized())


def _cache_denied_timeline(conn: sqlite3.Connection, event_filter: EventFilter, bucket: str) -> pl.DataFrame:
    where, params = _denied_where(event_filter)
    key = queries.BUCKETS[bucket][0]
    sql = (f"SELECT {key}, e.event_source, count(*) FROM {unauthorized.refused_calls_table(conn)} WHERE {where} "
           "GROUP BY 1, 2")
    schema = {"bucket": UTC_TIME, "event_source": pl.String, "events": pl.Int64}
    frame = queries.with_bucket_end(read_frame(conn, sql, params, schema), bucket)
    return frame.sort("bucket", "event_source", nulls_last=False)


def _denied_timeline_sql(table: exp.Table, event_filter: EventFilter, bucket: str) -> exp.Select:
    query = events_select(table, event_filter, _bucket_ms(bucket), "event_source", "count(*) AS events")
    return query.where(lake_sql.refused_as_unauthorized()).group_by("1", "2")


def _denied_column(by: str) -> str:
    if by not in DENIED_BY:
        raise ValueError(f"cannot count refused calls by {by!r}; choose one of {', '.join(DENIED_BY)}")
    return DENIED_BY[by]


def _cache_denied_breakdown(conn: sqlite3.Connection, event_filter: EventFilter, by: str,
                            limit: int = DENIED_TOP) -> pl.DataFrame:
    """Refused calls per principal (a role: its sessions together), address, API or error code, busiest first."""
    where, params = _denied_where(event_filter)
    column = rollups.actor_sql("e") if by == "principal" else _sqlite(_denied_column(by))
    sql = (f"SELECT {column}, count(*), min(e.event_time), max(e.event_time) "
           f"FROM {unauthorized.refused_calls_table(conn)} WHERE {where} "
           "GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST LIMIT ?")
    schema = {by: pl.String, "events": pl.Int64, "first_seen": UTC_TIME, "last_seen": UTC_TIME}
    return read_frame(conn, sql, [*params, limit], schema)


def _denied_breakdown_sql(table: exp.Table, event_filter: EventFilter, by: str, limit: int = DENIED_TOP) -> exp.Select:
    query = events_select(table, event_filter, f"{_denied_column(by)} AS {by}", "count(*) AS events", *SEEN)
    query = query.where(lake_sql.refused_as_unauthorized()).group_by("1")
    return query.order_by("2 DESC", "1 NULLS LAST", dialect=READ).limit(limit)


def _cache_denied_calls(conn: sqlite3.Connection, event_filter: EventFilter,
                        limit: int | None = queries.DEFAULT_ROW_LIMIT) -> pl.DataFrame:
    calls = unauthorized.query_unauthorized_calls(conn, event_filter)
    return calls.head(limit) if limit else calls


def _denied_calls_sql(table: exp.Table, event_filter: EventFilter,
                      limit: int | None = queries.DEFAULT_ROW_LIMIT) -> exp.Select:
    """The refused calls' security columns (what the table and the burst detection read), newest first."""
    columns = [f"{ACTOR} AS actor" if name == "actor" else name for name in events.SECURITY_SCHEMA]
    query = events_select(table, event_filter, *columns, f"{API} AS api").where(lake_sql.refused_as_unauthorized())
    query = query.order_by("event_time_ms DESC", "event_id", dialect=READ)
    return query.limit(limit) if limit else query


DENIED_QUERIES: dict[str, NamedQuery] = {
    "denied_counts": NamedQuery(cache=_cache_denied_counts, lake=_denied_counts_sql,
                                shape=lambda frame, **options: _counts(frame).cast(DENIED_COUNTS_SCHEMA)),
    "denied_timeline": NamedQuery(
        cache=_cache_denied_timeline, lake=_denied_timeline_sql,
        shape=lambda frame, bucket, **options: _counts(_with_bucket(frame, bucket)).sort(
            "bucket", "event_source", nulls_last=False)),
    "denied_breakdown": NamedQuery(cache=_cache_denied_breakdown, lake=_denied_breakdown_sql,
                                   shape=lambda frame, **options: _counts(frame)),
    "denied_calls": NamedQuery(cache=_cache_denied_calls, lake=_denied_calls_sql,
                               shape=lambda frame, **options: lake_sql.parsed_times(frame, TIMES)),
}

QUERIES: dict[str, NamedQuery] = {**PRINCIPAL_QUERIES, **RESOURCE_QUERIES, **DENIED_QUERIES}
