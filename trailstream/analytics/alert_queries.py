"""What the alert rules ask the lake (backend.PAGE_QUERIES): the events an 'events' rule (its names and its SQLite
condition over alias e) or a 'search' rule (lake_sql.search_condition) matches in a period, oldest first."""

from __future__ import annotations

import sqlite3

import orjson
import polars as pl
import sqlglot
from sqlglot import exp

from trailstream.analytics import queries
from trailstream.analytics.lake_sql import READ, NamedQuery, filter_condition, only_named, search_condition
from trailstream.cache.frames import placeholders, read_frame
from trailstream.filters import EventFilter

ALERT_SCHEMA = {"event_id": pl.String, "event_time": pl.String, "principal": pl.String}


def _search(text: str) -> queries.SearchQuery | None:
    return queries.SearchQuery.from_dict(orjson.loads(text)) if text else None


def lake_condition(condition: str, table: exp.Table) -> exp.Expression:
    """A built-in rule's SQLite condition over alias e, for the lake: its `events` subqueries read the lake's table."""
    parsed = sqlglot.condition(condition, dialect="sqlite")
    for found in list(parsed.find_all(exp.Table)):
        if found.name == "events":
            found.replace(exp.alias_(table.copy(), found.alias or "events", table=True))
    return parsed


def _once(table: exp.Table) -> exp.Expression:
    """An error code the whole store holds once: per error code one count, not a subquery per event (on a 10M-event
    lake the rare-error rule's NOT EXISTS took 77 s through DuckDB)."""
    counted = sqlglot.select("error_code", dialect=READ).from_(table.copy()).where("error_code <> ''", dialect=READ)
    return exp.column("error_code", table="e").isin(query=counted.group_by("error_code").having("count(*) = 1"))


def alert_events_sql(table: exp.Table, event_filter: EventFilter, event_names=(), condition: str = "",
                     search: str = "", once: bool = False, **options) -> exp.Select:
    """The period's events a rule matches: named ones, meeting `condition` (SQLite, alias e) and the search; `once`:
    only those whose error code the whole store holds once (the rare-error rule)."""
    query = sqlglot.select(*ALERT_SCHEMA, dialect=READ).from_(exp.alias_(table.copy(), "e", table=True))
    query = only_named(query.where(filter_condition(event_filter)), tuple(event_names))
    if condition:
        query = query.where(lake_condition(condition, table))
    if once:
        query = query.where(_once(table))
    if search:
        query = query.where(search_condition(_search(search)))
    return query.order_by("event_time", "event_id", dialect=READ)


def query_alert_events(conn: sqlite3.Connection, event_filter: EventFilter, event_names=(), condition: str = "",
                       search: str = "", once: bool = False, **options) -> pl.DataFrame:
    """alert_events_sql on the cache (the alert run itself reads the cache by insertion order: this compares)."""
    where, params = event_filter.sql("e")
    clauses = [where] + ([f"e.event_name IN ({placeholders(event_names)})"] if event_names else [])
    params += list(event_names)
    clauses += [condition] if condition else []
    clauses += [_once(exp.to_table("events")).sql(dialect="sqlite")] if once else []
    if search:
        found, found_params = _search(search).sql("e", lambda text: queries.word_query(conn, text))
        clauses, params = clauses + found, params + found_params
    sql = f"SELECT e.event_id, e.event_time, e.principal FROM events e WHERE {' AND '.join(clauses)} ORDER BY 2, 1"
    return read_frame(conn, sql, params, ALERT_SCHEMA)


QUERIES: dict[str, NamedQuery] = {
    "alert_events": NamedQuery(query_alert_events, alert_events_sql,
                               lambda frame, **options: frame.select(pl.col(ALERT_SCHEMA).cast(pl.String))),
}
