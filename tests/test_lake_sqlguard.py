"""The SQL page's guard on the lake, a layer at a time: one read-only statement (sqlglot, Trino), only the events
table, the period bound as text, a row cap; then DuckDB's own sandbox; then whole queries on a DuckDB lake answering
what the cache's SQL answers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlglot
from polars.testing import assert_frame_equal
from sqlglot import exp

from tests.conftest import write_demo_logs
from trailstream.analytics import backend, lake_sqlguard, sqlguard
from trailstream.analytics.sqlguard import QueryRefused
from trailstream.filters import EventFilter
from trailstream.ingest import lake, sync

SNAPSHOTS = Path(__file__).parent / "data" / "athena_sql_page.json"
ATHENA_TABLE = exp.to_table('"trailstream"."cloudtrail"', dialect="trino")
PERIOD = {"start": "2026-02-23T00:00:00Z", "end": "9999-12-31T23:59:59Z"}
END = datetime(2026, 3, 2, tzinfo=timezone.utc)


def _render(sql: str, row_cap: int = 100) -> str:
    return lake_sqlguard.render_lake_sql(sql, PERIOD, ATHENA_TABLE, "athena", row_cap)


@pytest.mark.parametrize("sql, why", [
    ("", "empty"),
    ("DROP TABLE events", "nothing here may change the lake"),
    ("CREATE TABLE copy AS SELECT * FROM events", "nothing here may change the lake"),
    ("INSERT INTO events SELECT * FROM events", "nothing here may change the lake"),
    ("DELETE FROM events", "nothing here may change the lake"),
    ("SELECT * INTO copy FROM events", "nothing here may change the lake"),
    ("UNLOAD (SELECT * FROM events) TO 's3://elsewhere/' WITH (format = 'CSV')", "not SQL the lake understands"),
    ("SELECT 1; SELECT 2", "one statement at a time"),
    ("SELEC nonsense FROM", "not SQL the lake understands"),
])
def test_only_one_select_statement_is_accepted(sql, why):
    with pytest.raises(QueryRefused, match=why):
        lake_sqlguard.parse_lake_sql(sql)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "FROM '/etc/passwd'",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_parquet('/tmp/other/*.parquet')",
    "SELECT * FROM TABLE(read_text('/etc/passwd'))",
    "SELECT * FROM other_table",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM trailstream.events",
    'WITH "/etc/passwd" AS (SELECT 1) SELECT * FROM "/etc/passwd"',
    "SELECT (SELECT max(x) FROM secrets) FROM events",
    "SELECT * FROM events UNION ALL SELECT * FROM duckdb_settings",
])
def test_no_file_table_function_or_other_table_is_read(sql):
    with pytest.raises(QueryRefused, match="reads only the events table"):
        lake_sqlguard.lake_tables(lake_sqlguard.parse_lake_sql(sql))


@pytest.mark.parametrize("sql, tables", [
    ("SELECT * FROM events", 1),
    ("SELECT e.principal FROM events e JOIN events f ON e.event_id = f.event_id", 2),
    ("WITH recent AS (SELECT * FROM events) SELECT count(*) FROM recent", 1),
    ("SELECT * FROM (SELECT event_name FROM Events) AS inner_query", 1),
])
def test_the_events_table_and_the_querys_own_with_names_are_read(sql, tables):
    assert len(lake_sqlguard.lake_tables(lake_sqlguard.parse_lake_sql(sql))) == tables


def test_events_becomes_the_configured_athena_table_keeping_column_qualifiers():
    rendered = _render("SELECT events.event_name, e.principal FROM events JOIN events AS e ON events.event_id = e.event_id")
    assert rendered.count('"trailstream"."cloudtrail"') == 2
    assert "AS events" in rendered and "AS e " in rendered


def test_the_period_is_bound_as_text_and_unknown_parameters_are_refused():
    rendered = lake_sqlguard.render_lake_sql("SELECT * FROM events WHERE event_time >= :start AND event_time < :end",
                                             {"start": "x' OR '1'='1", "end": "z"}, ATHENA_TABLE, "athena")
    [literal, _] = [found.name for found in sqlglot.parse_one(rendered, read="trino").find_all(exp.Literal)
                    if found.is_string]
    assert literal == "x' OR '1'='1"
    with pytest.raises(QueryRefused, match=":account"):
        _render("SELECT * FROM events WHERE account_id = :account")


@pytest.mark.parametrize("sql, limit", [
    ("SELECT * FROM events", 101),
    ("SELECT * FROM events LIMIT 5", 5),
    ("SELECT * FROM events LIMIT 1000000", 101),
    ("SELECT event_name FROM events UNION SELECT event_source FROM events", 101),
])
def test_every_query_is_capped_one_row_past_the_row_cap(sql, limit):
    assert sqlglot.parse_one(_render(sql), read="trino").args["limit"].expression.name == str(limit)


def test_a_limit_that_is_not_a_number_is_refused():
    with pytest.raises(QueryRefused, match="whole number"):
        _render("SELECT * FROM events LIMIT :start")


SNAPSHOT_QUERIES = {
    "count per API": "SELECT event_name, count(*) AS calls FROM events WHERE event_time >= :start GROUP BY 1 "
                     "ORDER BY 2 DESC",
    "with": "WITH denied AS (SELECT * FROM events WHERE error_code = 'AccessDenied') SELECT principal, count(*) "
            "FROM denied GROUP BY 1",
    "self join": "SELECT a.event_id FROM events a JOIN events b ON a.source_ip = b.source_ip LIMIT 10",
}


def test_every_athena_rendering_parses_back_as_trino_and_matches_its_snapshot():
    rendered = {name: _render(sql) for name, sql in SNAPSHOT_QUERIES.items()}
    for sql in rendered.values():
        assert isinstance(sqlglot.parse_one(sql, read="trino"), exp.Query)
    assert rendered == json.loads(SNAPSHOTS.read_text())


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A cache and a lake compacted from the same demo files."""
    logs, folder = tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("stores")
    write_demo_logs(logs, 2000, 4, END)
    sync.import_paths(folder / "cache.db", [logs], workers=1)
    lake.compact_paths(folder / "lake", [logs], workers=1)
    return folder / "cache.db", backend.duckdb_backend(str(folder / "lake"))


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "COPY (SELECT 1) TO '/tmp/trailstream-escape.csv'",
    "SET enable_external_access = true",
])
def test_duckdb_itself_reads_no_file_outside_the_lake_nor_lifts_that(stores, sql):
    with pytest.raises(backend.LakeUnavailable):
        stores[1].run(sql)  # straight to DuckDB: the sandbox holds even if the guard let a statement through
    assert not Path("/tmp/trailstream-escape.csv").exists()


def test_a_query_on_the_lake_answers_what_the_same_query_answers_on_the_cache(stores):
    cache_path, duck = stores
    sql = ("SELECT event_name, count(*) AS calls FROM events WHERE event_time >= :start AND error_code <> '' "
           "GROUP BY 1 ORDER BY 2 DESC, 1")
    params = sqlguard.period_params(EventFilter(start="2026-02-20T00:00:00Z"))
    on_cache = sqlguard.run_query(cache_path, sql, params)
    on_lake = lake_sqlguard.run_lake_query(duck.run, duck.table, duck.dialect, sql, params)
    assert on_lake.frame.height > 0 and not on_lake.truncated
    assert_frame_equal(on_cache.frame, on_lake.frame)


def test_a_result_past_the_row_cap_is_cut_and_says_so(stores):
    duck = stores[1]
    result = lake_sqlguard.run_lake_query(duck.run, duck.table, duck.dialect, "SELECT event_id FROM events", {}, 25)
    assert result.frame.height == 25 and result.truncated and "first 25 rows" in result.notice


def test_an_engine_error_reaches_the_caller_as_a_sentence(stores):
    duck = stores[1]
    with pytest.raises(backend.LakeUnavailable, match="no_such_column"):
        lake_sqlguard.run_lake_query(duck.run, duck.table, duck.dialect, "SELECT no_such_column FROM events", {})
