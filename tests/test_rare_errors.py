"""Rare errors counts failed calls from the failed calls' index alone (migration m019): no event row is read, and
every count, first-seen time and trend is what the narrower index gave."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

import pytest
from polars.testing import assert_frame_equal

from trailstream.analytics import queries, transforms
from trailstream.cache import store
from trailstream.filters import EventFilter
from trailstream.timefmt import parse_iso_utc

PERIODS = ("all", "two days ago on", "one account, writes")


def _periods(conn: sqlite3.Connection) -> dict[str, EventFilter]:
    """The whole cache, its last two days, and its last two days' writes in its busiest account."""
    newest = parse_iso_utc(queries.query_cache_summary(conn)["last_event"])
    start = f"{(newest - timedelta(days=2)).date().isoformat()}T00:00:00Z"
    account = queries.query_account_region_counts(conn, EventFilter()).item(0, "account_id")
    return {"all": EventFilter(), "two days ago on": EventFilter(start=start),
            "one account, writes": EventFilter(start=start, accounts=(account,), include_read_only=False)}


def _rare_errors(conn: sqlite3.Connection, event_filter: EventFilter):
    counts = queries.query_error_counts(conn, event_filter).sort(["day", "event_source", "event_name", "error_code"])
    first = queries.query_error_first_seen(conn, event_filter).sort(["event_source", "event_name", "error_code"])
    start = parse_iso_utc(event_filter.start) if event_filter.start else None
    return counts, first, transforms.rank_rare_errors(counts, first, start)


@pytest.mark.parametrize("period", PERIODS)
def test_rare_errors_read_only_the_failed_calls_index(demo_cache, period):
    conn = store.open_cache_readonly(demo_cache)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)  # the SQL as run, its parameters in place
    counts, _first, ranked = _rare_errors(conn, _periods(conn)[period])
    conn.set_trace_callback(None)
    assert counts.height and ranked.height
    for sql in [sql for sql in statements if "error_code" in sql]:
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "COVERING INDEX events_error_time" in plan, (sql, plan)


@pytest.mark.parametrize("period", PERIODS)
def test_the_covering_index_counts_what_the_narrow_one_did(demo_cache, tmp_path, period):
    narrow = tmp_path / "narrow.db"
    shutil.copy(demo_cache, narrow)
    with sqlite3.connect(narrow) as conn:  # the failed calls' index as m001 made it, before m019
        conn.execute("DROP INDEX events_error_time")
        conn.execute("CREATE INDEX events_error_time ON events (error_code, event_time) WHERE error_code IS NOT NULL")
    covering, before = store.open_cache_readonly(demo_cache), store.open_cache_readonly(narrow)
    event_filter = _periods(covering)[period]
    for now, then in zip(_rare_errors(covering, event_filter), _rare_errors(before, event_filter)):
        assert now.height > 0
        assert_frame_equal(now, then)


def test_m019_keeps_the_failed_calls_index_name_and_leading_columns(demo_cache):
    conn = store.open_cache_readonly(demo_cache)
    columns = [row[2] for row in conn.execute("PRAGMA index_info(events_error_time)")]
    assert columns[:2] == ["error_code", "event_time"] and columns == list(store.ERROR_INDEX_COLUMNS)
    assert "WHERE error_code IS NOT NULL" in conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'events_error_time'").fetchone()[0]
