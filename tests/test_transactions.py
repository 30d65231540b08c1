"""Blocks that read the cache and then write to it wait for another writer instead of failing with "database is
locked": while one connection holds a write, the other's block starts, reads, then must wait for the commit."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from trailstream.cache import audit, sigma_state, store
from trailstream.cache.bookkeeping import FileRef
from trailstream.ingest import records
from trailstream.cache.transaction import write_transaction

WRITES = ("BEGIN IMMEDIATE", "INSERT", "UPDATE", "DELETE")
CATALOG_ROW = {**dict.fromkeys(sigma_state.CATALOG_COLUMNS, ""), "rule_id": "r1", "title": "A rule",
               "status": "converted", "kind": "rule", "query": "1", "alert": 0}


def read_then_count(db) -> None:
    """The shape every such block has: read something, then write."""
    with write_transaction(db):
        seen = db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        db.execute("INSERT INTO meta (key, value) VALUES ('audit_rows_seen', ?)", [str(seen)])


def store_a_log_file(db) -> None:
    record = {"eventID": "e-1", "eventTime": "2026-01-01T00:00:00Z", "eventName": "ListBuckets",
              "eventSource": "s3.amazonaws.com", "userIdentity": {"type": "Root"}}
    parsed = records.parse_log_file(json.dumps({"Records": [record]}).encode(), store.current_compressor(db))
    store.save_parsed_file(db, FileRef("local", "", "/logs/one.json"), parsed, None)


BLOCKS = {
    "the helper": read_then_count,
    "store.save_parsed_file": store_a_log_file,
    "sigma_state.save_catalog": lambda db: sigma_state.save_catalog(db, [CATALOG_ROW]),
    "audit.save_audit, unique": lambda db: audit.save_audit(db, "ann", "sync", "once", unique=True),
}


@pytest.mark.parametrize("block", BLOCKS.values(), ids=BLOCKS.keys())
def test_a_read_then_write_block_waits_for_another_writer_and_succeeds(tmp_path, block):
    holder, other = store.open_cache(tmp_path / "cache.db"), store.open_cache(tmp_path / "cache.db")
    about_to_write, finished, failure = threading.Event(), threading.Event(), []

    def noticed(statement: str) -> None:  # the other connection has read and reaches its first write (or BEGIN)
        if statement.lstrip().upper().startswith(WRITES):
            about_to_write.set()

    def run_block() -> None:
        try:
            block(other)
        except sqlite3.Error as exc:
            failure.append(exc)
        finally:
            finished.set()

    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO audit_log (at, actor, action) VALUES ('2026-01-01T00:00:00Z', 'bob', 'sign_in')")
    other.conn.set_trace_callback(noticed)
    worker = threading.Thread(target=run_block)
    worker.start()
    assert about_to_write.wait(30)
    assert not finished.is_set()  # the block cannot finish while the holder has the write lock
    holder.execute("COMMIT")  # a commit after the block began: a deferred read would now be stale
    worker.join(60)
    assert finished.is_set() and failure == []
    assert other.execute("SELECT count(*) FROM audit_log WHERE actor = 'bob'").fetchone()[0] == 1


def test_inside_a_transaction_the_helper_is_a_savepoint_that_rolls_back_alone(tmp_path):
    db = store.open_cache(tmp_path / "cache.db")
    with db.atomic():
        db.execute("INSERT INTO meta (key, value) VALUES ('kept', '1')")
        with pytest.raises(ZeroDivisionError), write_transaction(db):
            db.execute("INSERT INTO meta (key, value) VALUES ('dropped', '1')")
            raise ZeroDivisionError
    assert dict(db.execute("SELECT key, value FROM meta WHERE key IN ('kept', 'dropped')").fetchall()) == {"kept": "1"}


def test_a_batch_sync_holds_the_write_lock_only_from_its_first_write_to_its_checkpoint(tmp_path):
    from trailstream.ingest import sync

    db_path = tmp_path / "cache.db"
    store.open_cache(db_path).close()
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)  # a writer that would fail if it had to wait

    def other_writes() -> bool:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        other.execute("COMMIT")
        return True

    record = {"eventID": "e-1", "eventTime": "2026-01-01T00:00:00Z", "eventName": "ListBuckets"}
    with sync.Ingester(db_path, "s3", batch=True, workers=1) as ingester:
        assert other_writes()  # waiting for its first files (an SQS long poll): no lock held
        parsed = records.parse_log_file(json.dumps({"Records": [record]}).encode(), ingester.compressor)
        assert ingester.store(FileRef("s3", "bucket", "AWSLogs/one.json"), parsed).status == "ok"
        assert not other_writes()  # its files are being stored: the lock is the sync's until the checkpoint
        ingester.checkpoint()
        assert other_writes()  # between checkpoints, waiting for the next messages: no lock held again
