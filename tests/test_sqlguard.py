"""The SQL guard: hostile or broken queries are refused and leave the cache untouched; examples and views work."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3

import pytest

from trailstream import catalog
from trailstream.analytics import sqlguard
from trailstream.cache import store, views
from trailstream.filters import EventFilter

DEMO_EVENTS = 3000  # what the demo_cache fixture holds

def fingerprint(path) -> tuple[str, int, list]:
    """Checksum of the cache file (and any WAL), the event count, and the schema."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + "-wal")):
        if part.exists():
            digest.update(part.read_bytes())
    conn = sqlite3.connect(path)
    try:
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    return digest.hexdigest(), count, schema


WRITES = [
    "INSERT INTO events (event_id, event_time, event_name, raw, raw_codec, record_hash) VALUES ('x', 't', 'n', x'00', 0, x'00')",
    "UPDATE events SET principal = 'mallory'",
    "DELETE FROM events",
    "DROP TABLE events",
    "DROP VIEW iam_changes",
    "CREATE TABLE loot (secret TEXT)",
    "CREATE TEMP TABLE loot (secret TEXT)",
    "CREATE INDEX loot ON events (user_agent)",
    "CREATE VIEW loot AS SELECT 1",
    "CREATE TRIGGER loot AFTER INSERT ON meta BEGIN DELETE FROM events; END",
    "ALTER TABLE events ADD COLUMN loot TEXT",
    "REPLACE INTO meta (key, value) VALUES ('generation', '999')",
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', '999')",
    "WITH doomed AS (SELECT event_id FROM events LIMIT 5) DELETE FROM events WHERE event_id IN doomed",
    "BEGIN IMMEDIATE",
    "SAVEPOINT loot",
    "COMMIT",
    "ANALYZE",
    "REINDEX events",
    "VACUUM",
    "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so.0')",
    "SELECT load_extension('mod_spatialite')",
    "SELECT upper(load_extension('anything', 'sqlite3_extension_init'))",
    "PRAGMA writable_schema = 1",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 5",
    "PRAGMA query_only = 0",
    "PRAGMA temp_store_directory = '/tmp'",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "SELECT 1; DELETE FROM events",
    "SELECT count(*) FROM events; DROP TABLE events",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_and_state_changes_are_refused_and_the_cache_is_untouched(demo_cache, sql):
    before = fingerprint(demo_cache)
    with pytest.raises(sqlguard.QueryRefused) as refused:
        sqlguard.run_query(demo_cache, sql)
    message = str(refused.value)
    assert "Traceback" not in message and len(message) > 20
    assert fingerprint(demo_cache) == before


@pytest.mark.parametrize("statement", ["ATTACH DATABASE '{other}' AS other",
                                       "ATTACH DATABASE '{other}' AS other; CREATE TABLE other.loot (x)",
                                       "VACUUM INTO '{other}'"])
def test_attach_and_vacuum_into_create_no_file(demo_cache, tmp_path, statement):
    other = tmp_path / "other.db"
    before = fingerprint(demo_cache)
    with pytest.raises(sqlguard.QueryRefused, match="ATTACH|one statement"):
        sqlguard.run_query(demo_cache, statement.format(other=other))
    assert not other.exists()
    assert fingerprint(demo_cache) == before


RUNAWAYS = [
    ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n", "limit"),
    ("SELECT count(*) FROM events a, events b, events c", "limit"),
    ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n ORDER BY i DESC", "limit"),
    ("SELECT zeroblob(2000000000)", "MB"),
    ("SELECT replace(hex(zeroblob(3000000)), '0', '00')", "MB"),
    ("SELEC * FROM events", "syntax error"),
    ("SELECT * FROM no_such_table", "no such table"),
    ("SELECT no_such_column FROM events", "no such column"),
    ("SELECT * FROM events WHERE event_time >= :since", "parameters"),
]


@pytest.mark.parametrize("sql, reason", RUNAWAYS)
def test_runaway_and_broken_queries_fail_with_a_reason(demo_cache, sql, reason):
    before = fingerprint(demo_cache)
    with pytest.raises(sqlguard.QueryFailed, match=reason):
        sqlguard.run_query(demo_cache, sql, time_limit=0.5)
    assert fingerprint(demo_cache) == before


def test_a_huge_cross_join_stops_at_the_row_cap(demo_cache):
    result = sqlguard.run_query(demo_cache, "SELECT a.event_id, b.event_id FROM events a, events b", row_cap=500)
    assert result.truncated and result.frame.height == 500
    assert "first 500 rows" in result.notice
    assert result.frame.columns == ["event_id", "event_id_2"]


def test_empty_and_comment_only_queries_are_refused(demo_cache):
    for sql in ("", "   ", "-- only a comment"):
        with pytest.raises(sqlguard.QueryRefused):
            sqlguard.run_query(demo_cache, sql)


def test_a_missing_cache_is_reported_not_created(tmp_path):
    missing = tmp_path / "nothing.db"
    with pytest.raises(sqlguard.QueryFailed, match="no cache"):
        sqlguard.run_query(missing, "SELECT 1")
    assert not missing.exists()


@pytest.mark.parametrize("sql", ["PRAGMA table_info(events)", "SELECT * FROM pragma_index_list('events')",
                                 "PRAGMA user_version", "SELECT name FROM sqlite_master WHERE type = 'view'",
                                 "EXPLAIN QUERY PLAN SELECT * FROM events WHERE event_time > '2026'",
                                 "SELECT count(*) FROM events;"])
def test_reading_statements_run(demo_cache, sql):
    assert sqlguard.run_query(demo_cache, sql).frame.height >= 1


@pytest.mark.parametrize("example", sqlguard.EXAMPLE_QUERIES, ids=lambda example: example.key)
def test_every_example_query_runs_on_the_demo_cache_and_finds_rows(demo_cache, example):
    result = sqlguard.run_query(demo_cache, example.sql)
    assert result.frame.height > 0, f"{example.key} found nothing in the demo data"


def test_example_keys_are_unique_and_titled():
    assert len(sqlguard.EXAMPLES_BY_KEY) == len(sqlguard.EXAMPLE_QUERIES)
    assert all(example.title and example.sql.strip() for example in sqlguard.EXAMPLE_QUERIES)


def test_raw_record_returns_the_original_record(demo_cache):
    result = sqlguard.run_query(demo_cache, "SELECT event_id, raw_record(event_id) AS record, "
                                            "raw_record(event_id) ->> '$.eventName' AS name FROM events LIMIT 5")
    conn = store.open_cache_readonly(demo_cache)
    try:
        for event_id, record, name in result.frame.iter_rows():
            assert json.loads(record) == store.load_record(conn, event_id)
            assert name == json.loads(record)["eventName"]
    finally:
        conn.close()
    missing = sqlguard.run_query(demo_cache, "SELECT raw_record('no-such-event') AS record, raw_record(42) AS other")
    assert missing.frame.row(0) == (None, None)


def test_blobs_are_described_not_dumped(demo_cache):
    frame = sqlguard.run_query(demo_cache, "SELECT raw, record_hash FROM events LIMIT 3").frame
    assert frame.schema["raw"] == frame.schema["record_hash"]
    assert all(value.startswith("<") and value.endswith(" bytes>") for value in frame["raw"])


def test_period_parameters_filter_by_event_time(demo_cache):
    sql = "SELECT count(*) AS n FROM events WHERE event_time >= :start AND event_time < :end"
    everything = sqlguard.run_query(demo_cache, sql, sqlguard.period_params(EventFilter()))
    total = sqlguard.run_query(demo_cache, "SELECT count(*) AS n FROM events")
    assert everything.frame.item() == total.frame.item() == DEMO_EVENTS
    nothing = sqlguard.run_query(demo_cache, sql, sqlguard.period_params(EventFilter(end="2000-01-01T00:00:00Z")))
    assert nothing.frame.item() == 0


VIEW_LISTS = {
    "iam_changes": catalog.IAM_EVENTS,
    "security_group_changes": catalog.SECURITY_GROUP_EVENTS,
    "trail_tampering": catalog.TRAIL_TAMPERING_EVENTS,
    "privilege_changes": catalog.PRIVILEGE_CHANGE_EVENTS,
    "console_logins": (catalog.CONSOLE_LOGIN_EVENT,),
}


@pytest.mark.parametrize("view, names", VIEW_LISTS.items())
def test_views_hold_exactly_the_catalog_events(demo_cache, view, names):
    in_view = sqlguard.run_query(demo_cache, f"SELECT DISTINCT event_name FROM {view}").frame["event_name"]
    assert set(in_view) <= set(names)
    placeholders = ", ".join("?" for _ in names)
    expected = sqlguard.run_query(demo_cache, f"SELECT count(*) FROM events WHERE event_name IN ({placeholders})"
                                  + (" AND event_source = 'iam.amazonaws.com'" if view == "iam_changes" else "")
                                  + (" AND event_source = 'ec2.amazonaws.com'" if view == "security_group_changes" else ""),
                                  list(names)).frame.item()
    assert sqlguard.run_query(demo_cache, f"SELECT count(*) FROM {view}").frame.item() == expected


def test_ensure_views_replaces_a_stale_definition(db_path):
    db = store.open_cache(db_path)
    db.execute("DROP VIEW iam_changes")
    db.execute("CREATE VIEW iam_changes AS SELECT * FROM events WHERE 0")
    views.ensure_views(db)
    stored = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall())
    db.close()
    assert stored == {view.name: view.sql for view in views.VIEWS}


def test_format_result_as_csv_json_and_table(demo_cache):
    result = sqlguard.run_query(demo_cache, "SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 3")
    rows = list(csv.DictReader(io.StringIO(sqlguard.format_result(result, "csv"))))
    assert [row["event_name"] for row in rows] == result.frame["event_name"].to_list()
    assert json.loads(sqlguard.format_result(result, "json")) == result.frame.to_dicts()
    table = sqlguard.format_result(result, "table")
    assert result.frame.item(0, "event_name") in table and "3 row(s)" in table
