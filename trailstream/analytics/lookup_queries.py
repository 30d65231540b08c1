"""Small lookups the app's helpers make on whichever store is live: what an empty page's hint is made of (the newest
event, overall and in the sidebar's choices), and where a selected event came from (its lineage on the lake)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import polars as pl
from sqlglot import exp

from trailstream.analytics import queries
from trailstream.analytics.lake_sql import NamedQuery, events_select, filter_condition
from trailstream.cache.frames import read_frame
from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc, parse_iso_utc

NEWEST_SCHEMA = {"newest": pl.String, "chosen": pl.String}  # event time text, as the cache keeps it
SOURCE_SCHEMA = {"source_key": pl.String, "source_sha256": pl.String}


def choices_only(event_filter: EventFilter) -> EventFilter:
    """The filter's account, region and read-only choices, whatever the period."""
    return EventFilter(accounts=event_filter.accounts, regions=event_filter.regions,
                       include_read_only=event_filter.include_read_only)


def query_newest(conn: sqlite3.Connection, event_filter: EventFilter) -> pl.DataFrame:
    """queries.query_newest_event as one row: the newest event time, and the newest in the filter's choices."""
    newest, chosen = queries.query_newest_event(conn, event_filter)
    return pl.DataFrame({"newest": [newest], "chosen": [chosen]}, schema=NEWEST_SCHEMA)


def newest_sql(table: exp.Table, event_filter: EventFilter) -> exp.Select:
    """Both in one pass over the lake's time column, every partition up to the period's end (the app ends an open
    period at the next 5-minute mark, so a kept Athena result is never older than that)."""
    chosen = exp.Case().when(filter_condition(choices_only(event_filter)), exp.column("event_time"))
    return events_select(table, EventFilter(end=event_filter.end), "max(event_time) AS newest").select(
        exp.alias_(exp.Max(this=chosen), "chosen"))


def event_second(event_time: str) -> EventFilter:
    """The one second holding an event (its day's partition only, on the lake)."""
    moment = parse_iso_utc(event_time)
    return EventFilter(start=iso_utc(moment), end=iso_utc(moment + timedelta(seconds=1)))


def query_record_source(conn: sqlite3.Connection, event_filter: EventFilter, event_id: str,
                        event_time: str) -> pl.DataFrame:
    """The file the cache stored the event from (s3://bucket/key or the local path); the cache keeps no file SHA-256."""
    sql = ("SELECT CASE WHEN f.bucket != '' THEN 's3://' || f.bucket || '/' || f.key ELSE f.key END AS source_key, "
           "NULL AS source_sha256 FROM events e JOIN files f ON f.id = e.file_id WHERE e.event_id = ? LIMIT 1")
    return read_frame(conn, sql, [event_id], SOURCE_SCHEMA)


def record_source_sql(table: exp.Table, event_filter: EventFilter, event_id: str, event_time: str) -> exp.Select:
    """The lake's lineage of one event, read from the partition of its day and second only."""
    query = events_select(table, event_second(event_time), "source_key", "source_sha256")
    return query.where(exp.column("event_id").eq(exp.Literal.string(event_id))).limit(1)


def shape_strings(frame: pl.DataFrame, **options) -> pl.DataFrame:
    """An engine's answer with the cache's String columns (an all-NULL column comes back untyped)."""
    return frame.cast({name: pl.String for name in frame.columns})


QUERIES = {
    "newest_event": NamedQuery(query_newest, newest_sql, shape_strings),
    "record_source": NamedQuery(query_record_source, record_source_sql, shape_strings),
}
