"""Each layer of the SQL guard refuses on its own, and says why: the authorizer on a writable connection, the
read-only connection without the authorizer. A hole in one layer must turn a test red even though the other
layer would still have stopped the statement."""

import sqlite3

import pytest

from trailstream.analytics import sqlguard
from trailstream.cache import store

# statement -> words the authorizer's refusal must contain
WRITES = {
    "DELETE FROM events": "DELETE on events",
    "INSERT INTO meta (key, value) VALUES ('x', 'y')": "INSERT on meta",
    "UPDATE events SET principal = 'mallory'": "UPDATE on events",
    "DROP TABLE files": "change the cache's tables or indexes",
    "CREATE TABLE stolen (x)": "change the cache's tables or indexes",
    "CREATE INDEX planted ON events (principal)": "change the cache's tables or indexes",
    "ALTER TABLE events ADD COLUMN x": "ALTER TABLE",
    "BEGIN": "transactions (BEGIN, COMMIT, SAVEPOINT) are not needed",
    "SAVEPOINT s": "transactions (BEGIN, COMMIT, SAVEPOINT) are not needed",
    "PRAGMA user_version = 99": "PRAGMA user_version = 99 is not allowed",
    "PRAGMA journal_mode = delete": "PRAGMA journal_mode = delete is not allowed",
    "ATTACH DATABASE ':memory:' AS other": "ATTACH, DETACH and VACUUM are not allowed",
    "SELECT load_extension('x')": "the function load_extension() is not allowed here",
    "REINDEX": "REINDEX",
    "ANALYZE": "change the cache's tables or indexes",
}


@pytest.fixture
def writable_copy(demo_cache, tmp_path):
    """A writable copy of the demo cache: only the authorizer stands between a statement and the data."""
    path = tmp_path / "copy.db"
    with sqlite3.connect(demo_cache) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return path


def table_counts(conn) -> dict:
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                  "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'")]
    return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names
            if not name.startswith("sqlite_")}


@pytest.mark.parametrize("statement", WRITES)
def test_the_authorizer_alone_refuses_a_write_on_a_writable_connection_and_says_why(writable_copy, statement):
    conn = sqlite3.connect(writable_copy, isolation_level=None)
    before = table_counts(conn)
    guard = sqlguard._Guard()
    conn.set_authorizer(guard)
    with pytest.raises(sqlite3.DatabaseError, match="not authorized|prohibited"):
        conn.execute(statement)
    conn.set_authorizer(None)
    assert WRITES[statement] in guard.refusal
    assert not conn.in_transaction
    assert table_counts(conn) == before
    assert conn.execute("PRAGMA user_version").fetchone()[0] != 99
    conn.close()


@pytest.mark.parametrize("statement", [s for s in WRITES if not s.startswith(("SELECT", "ATTACH", "BEGIN",
                                                                               "SAVEPOINT", "PRAGMA journal"))])
def test_the_read_only_connection_alone_refuses_a_write(demo_cache, statement):
    conn = store.open_cache_readonly(demo_cache)
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize("statement", WRITES)
def test_run_query_refuses_with_the_authorizers_reason_not_a_generic_one(demo_cache, statement):
    with pytest.raises(sqlguard.QueryRefused) as refused:
        sqlguard.run_query(demo_cache, statement)
    assert WRITES[statement] in str(refused.value) or "only one statement" in str(refused.value)


def test_reads_pass_the_authorizer_on_a_writable_connection(writable_copy):
    conn = sqlite3.connect(writable_copy)
    guard = sqlguard._Guard()
    conn.set_authorizer(guard)
    assert conn.execute("SELECT count(*) FROM events e JOIN json_each('[1]')").fetchone()[0] > 0
    assert conn.execute("PRAGMA table_info(events)").fetchall()
    assert guard.refusal is None
    conn.close()


def test_the_copy_fixture_is_really_writable(writable_copy):
    """Without the authorizer the same DELETE goes through: the refusals above are the authorizer's doing."""
    conn = sqlite3.connect(writable_copy)
    assert conn.execute("DELETE FROM events").rowcount > 0
    conn.close()
