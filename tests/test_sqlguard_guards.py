"""The SQL guard says exactly why it refused or failed, and each of its limits holds on its own (mutation-tested, README)."""

import sqlite3
import time

import pytest

from trailstream.analytics import sqlguard
from trailstream.cache import store
from trailstream.ingest import sync

HINT = "queries here only read: write one SELECT (or WITH ... SELECT)"
SCHEMA_CHANGE = f"the query would change the cache's tables or indexes (CREATE, DROP, ALTER, ANALYZE): {HINT}"
TRANSACTION = f"transactions (BEGIN, COMMIT, SAVEPOINT) are not needed: {HINT}"
ATTACH = "ATTACH, DETACH and VACUUM are not allowed: queries read the TrailStream cache only"
PRAGMA_TAIL = ("is not allowed: only PRAGMAs that read run here, such as table_info(events), index_list(events) or "
               "user_version without a value")
PARAMETERS = ("the query's parameters do not match: {} (named parameters :start and :end hold the selected period)")


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory):
    """120 demo events: enough rows for the size and row caps, quick to build."""
    path = tmp_path_factory.mktemp("small") / "small.db"
    sync.import_demo(path, 120, seed=3)
    store.open_cache(path).close()
    return path


REFUSALS = {
    "": "the query is empty: write a SELECT, or pick an example query",
    "   ": "the query is empty: write a SELECT, or pick an example query",
    "-- only a comment": f"the query returns no rows to show: {HINT}",
    "DELETE FROM events": f"the query would change the cache (DELETE on events): {HINT}",
    "CREATE TEMP TABLE loot (x)": SCHEMA_CHANGE,
    "CREATE TEMP VIEW loot AS SELECT 1": SCHEMA_CHANGE,
    "DROP TABLE files": SCHEMA_CHANGE,
    "BEGIN": TRANSACTION,
    "RELEASE s": TRANSACTION,
    "ATTACH DATABASE ':memory:' AS o": ATTACH,
    "DETACH DATABASE o": ATTACH,
    "PRAGMA user_version = 5": f"PRAGMA user_version = 5 {PRAGMA_TAIL}",
    "PRAGMA query_only = 0": f"PRAGMA query_only = 0 {PRAGMA_TAIL}",
    "PRAGMA wal_checkpoint(TRUNCATE)": f"PRAGMA wal_checkpoint = TRUNCATE {PRAGMA_TAIL}",
    "PRAGMA wal_checkpoint": f"PRAGMA wal_checkpoint {PRAGMA_TAIL}",
    "SELECT LOAD_EXTENSION('x')": "the function load_extension() is not allowed here",
    "SELECT 1; SELECT 2": "only one statement per query: remove everything after the first ';'",
}


@pytest.mark.parametrize("sql", REFUSALS)
def test_each_refusal_says_exactly_why(small_cache, sql):
    with pytest.raises(sqlguard.QueryRefused) as refused:
        sqlguard.run_query(small_cache, sql)
    assert str(refused.value) == REFUSALS[sql]


FAILURES = [
    ("SELECT zeroblob(5000000)", None, "a value in the query grew beyond 4 MB: build smaller strings or blobs"),
    ("SELECT * FROM events WHERE event_id = ?", None, PARAMETERS.format(
        "Incorrect number of bindings supplied. The current statement uses 1, and there are 0 supplied.")),
    ("SELECT * FROM events WHERE event_time >= :since", {"start": "x"}, PARAMETERS.format(
        "You did not supply a value for binding parameter :since.")),
    ("SELECT nope FROM events", None, "SQLite could not run the query: no such column: nope; check the spelling of "
                                      "tables and columns against the schema, or start from an example query"),
]


@pytest.mark.parametrize(("sql", "params", "message"), FAILURES)
def test_each_failure_says_exactly_what_to_do(small_cache, sql, params, message):
    with pytest.raises(sqlguard.QueryFailed) as failed:
        sqlguard.run_query(small_cache, sql, params)
    assert str(failed.value) == message


def test_a_runaway_query_is_stopped_at_its_time_limit_and_says_which(small_cache):
    with pytest.raises(sqlguard.QueryFailed) as failed:
        sqlguard.run_query(small_cache, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                                        "SELECT count(*) FROM n", time_limit=0.25)
    assert str(failed.value) == ("the query ran longer than the 0.25-second limit and was stopped: add LIMIT, narrow "
                                 "it with WHERE event_time >= '...', or aggregate with GROUP BY")


def test_a_missing_cache_is_named_in_the_message(tmp_path):
    with pytest.raises(sqlguard.QueryFailed) as failed:
        sqlguard.run_query(tmp_path / "none.db", "SELECT 1")
    assert str(failed.value) == f"there is no cache at {tmp_path / 'none.db'} yet: sync a source or load the demo data first"


def test_a_read_only_error_reaching_the_explainer_is_a_refusal_that_says_so():
    """The read-only connection is a layer of its own: its refusal must read as one even without the authorizer's."""
    for text in ("attempt to write a readonly database", "the database is read-only"):
        explained = sqlguard._explain(sqlite3.OperationalError(text), sqlguard._Guard(), False, 1.0)
        assert isinstance(explained, sqlguard.QueryRefused)
        assert str(explained) == f"the query would change the cache: {HINT}"


def test_the_result_size_cap_stops_fetching_across_batches(small_cache):
    """60 rows of 1.2 MB: the first batch of 50 stays under 64 MB, the second passes it."""
    result = sqlguard.run_query(small_cache, "SELECT zeroblob(1200000) AS b FROM events LIMIT 60")
    assert (result.too_large, result.truncated, result.frame.height) == (True, True, 60)
    assert result.notice == ("Only the first 60 rows are shown: the result passed 64 MB. Select fewer or shorter "
                             "columns, or add LIMIT.")
    under = sqlguard.run_query(small_cache, "SELECT zeroblob(1200000) AS b FROM events LIMIT 50")
    assert (under.too_large, under.truncated, under.notice) == (False, False, None)


def test_exactly_row_cap_rows_are_all_rows_and_one_more_is_truncated(small_cache):
    exact = sqlguard.run_query(small_cache, "SELECT event_id FROM events LIMIT 7", row_cap=7)
    assert (exact.truncated, exact.frame.height, exact.notice) == (False, 7, None)
    over = sqlguard.run_query(small_cache, "SELECT event_id FROM events LIMIT 8", row_cap=7)
    assert (over.truncated, over.frame.height) == (True, 7)
    assert over.notice == ("Only the first 7 rows are shown: add LIMIT, a narrower WHERE or GROUP BY to see what you "
                           "need.")


def test_elapsed_is_the_time_the_query_took(small_cache):
    before = time.monotonic()
    result = sqlguard.run_query(small_cache, "SELECT count(*) FROM events")
    assert 0 <= result.elapsed <= time.monotonic() - before


def test_the_guarded_connection_allows_no_attached_database_even_without_the_authorizer(small_cache):
    conn, _ = sqlguard.open_guarded(small_cache)
    conn.set_authorizer(None)
    with pytest.raises(sqlite3.OperationalError, match="too many attached databases"):
        conn.execute("ATTACH DATABASE ':memory:' AS other")
    with pytest.raises(sqlite3.DataError, match="too big"):
        conn.execute("SELECT zeroblob(?)", (sqlguard.MAX_VALUE_BYTES + 1,))
    assert tuple(conn.execute("SELECT length(zeroblob(?))", (sqlguard.MAX_VALUE_BYTES,)).fetchone()) == (
        sqlguard.MAX_VALUE_BYTES,)
    conn.close()


def test_the_guard_keeps_the_first_refusal_and_answers_deny(small_cache):
    guard = sqlguard._Guard()
    assert guard(sqlite3.SQLITE_READ, "events", "event_id", "main", None) == sqlite3.SQLITE_OK
    assert guard(sqlite3.SQLITE_DELETE, "events", None, "main", None) == sqlite3.SQLITE_DENY
    assert guard(sqlite3.SQLITE_ATTACH, "x.db", None, None, None) == sqlite3.SQLITE_DENY
    assert guard.refusal == f"the query would change the cache (DELETE on events): {HINT}"


@pytest.mark.parametrize(("action", "arg1", "arg2", "db_name"), [
    (sqlite3.SQLITE_UPDATE, "sqlite_master", "sql", "temp"),
    (sqlite3.SQLITE_UPDATE, "events", "principal", "main"),
    (sqlite3.SQLITE_INSERT, "sqlite_master", None, "main"),
    (sqlite3.SQLITE_PRAGMA, "page_size", "4096", None),
])
def test_only_the_declared_no_op_and_reading_pragmas_pass_the_guard(action, arg1, arg2, db_name):
    assert sqlguard._Guard.check(action, arg1, arg2, db_name) is not None
    assert sqlguard._Guard.check(sqlite3.SQLITE_UPDATE, "sqlite_master", "sql", "main") is None
    assert sqlguard._Guard.check(sqlite3.SQLITE_PRAGMA, "Page_Size", None, None) is None


def test_a_statement_kind_the_guard_does_not_know_is_refused_with_the_hint():
    obsolete_copy = 0  # SQLITE_COPY, which no SQLite since 3.0 sends
    assert sqlguard._Guard.check(obsolete_copy, "x", None, "main") == f"this kind of statement is not allowed: {HINT}"


def test_table_valued_functions_pass_the_guard_through_their_declared_no_op(small_cache):
    """SQLite declares json_each and pragma_* tables with an UPDATE of the main schema the guard must let through."""
    assert sqlguard.run_query(small_cache, "SELECT count(*) AS n FROM json_each('[1, 2]')").frame.item() == 2


def test_raw_record_gives_the_stored_record_as_json_text(small_cache):
    import json

    frame = sqlguard.run_query(small_cache, "SELECT event_id, raw_record(event_id) AS record, "
                                            "RAW_RECORD(42) AS other FROM events LIMIT 1").frame
    event_id, record, other = frame.row(0)
    with store.open_cache_readonly(small_cache) as conn:
        assert json.loads(record) == store.load_record(conn, event_id) and json.loads(record)["eventID"] == event_id
    assert other is None


NUMBERS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) SELECT i FROM n"


def test_fetching_stops_at_the_limit_even_in_the_middle_of_a_batch():
    """60 of 100 rows: a batch of 50, then only the 10 still wanted; the 61st row is left unread."""
    with sqlite3.connect(":memory:") as conn:
        cursor = conn.execute(NUMBERS)
        rows, cut = sqlguard._fetch(cursor, 60)
        assert (len(rows), rows[-1], cut, cursor.fetchone()) == (60, (60,), False, (61,))


def test_a_result_of_exactly_the_size_budget_is_whole_and_one_byte_more_is_cut(monkeypatch):
    monkeypatch.setattr(sqlguard, "MAX_RESULT_BYTES", 10)
    with sqlite3.connect(":memory:") as conn:
        assert sqlguard._fetch(conn.execute("SELECT 'abcde' UNION ALL SELECT x'0102030405'"), 5) == (
            [("abcde",), (b"\x01\x02\x03\x04\x05",)], False)
        assert sqlguard._fetch(conn.execute("SELECT 'abcdef' UNION ALL SELECT x'0102030405'"), 5)[1] is True


def test_a_result_as_many_rows_as_columns_is_read_row_by_row(small_cache):
    """Two rows of two columns must not be taken for two columns of two values."""
    result = sqlguard.run_query(small_cache, "SELECT 1 AS n, 'a' AS t UNION ALL SELECT 2, 'b'")
    assert result.frame.rows() == [(1, "a"), (2, "b")]


def test_a_column_keeps_a_value_of_another_type_after_a_hundred_rows(small_cache):
    """The 101st value, a real after 100 integers, is shown as it is, not cut to the integers' type."""
    sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 101) "
           "SELECT CASE WHEN i <= 100 THEN i ELSE 1.5 END AS v FROM n")
    assert sqlguard.run_query(small_cache, sql).frame["v"].to_list()[-2:] == [100, 1.5]
