"""Sync history on a cache with more runs, failed files and refused records than it lists: it reads a bounded
number of rows and says how many there are in all, with hostile file names shown as text."""

from __future__ import annotations

from tests.conftest import metric, open_page
from trailstream.cache import bookkeeping, store
from trailstream.cache.bookkeeping import FileRef

HOSTILE = "<img src=x onerror=alert(1)>[click](https://evil.example)"


def test_long_histories_are_listed_newest_first_and_counted_in_full(app_empty_cache):
    db = store.open_cache(app_empty_cache)
    with db.atomic():
        for _ in range(201):
            bookkeeping.start_sync_run(db, "s3")
        for i in range(1001):
            bookkeeping.save_file_row(db, FileRef("s3", "trail-bucket", f"{HOSTILE}/{i}.json.gz"), "failed", None,
                                      error=f"{HOSTILE} broke")
        file_id = bookkeeping.save_file_row(db, FileRef("s3", "trail-bucket", "kept.json.gz"), "ok", None)
        db.conn.executemany("INSERT INTO rejected_records (file_id, position, event_id, reason) VALUES (?, ?, ?, ?)",
                            [(file_id, i, f"e{i}", HOSTILE) for i in range(1002)])
    db.conn.close()
    at = open_page("pages/sync_history.py")
    assert metric(at, "Sync runs") == 201 and metric(at, "Files failed") == 1001
    notes = [caption.value for caption in at.caption]
    assert "The newest 200 of 201 runs." in notes
    assert "The newest 1,000 of 1,001 failed files; a retry fetches them all." in notes
    assert "The newest 1,000 of 1,002 refused records." in notes
    failed = next(frame.value for frame in at.dataframe if "error" in frame.value.columns)
    assert len(failed) == 1000 and failed["error"].iloc[0] == f"{HOSTILE} broke"  # a cell's text, never markup
    assert not any(HOSTILE in block.value for block in at.markdown)


def test_a_cache_from_before_the_delivery_summaries_says_when_they_come_and_lists_the_rest(app_empty_cache):
    db = store.open_cache(app_empty_cache)
    bookkeeping.save_file_row(db, FileRef("s3", "trail-bucket", "broken.json.gz"), "failed", None, error="bad gzip")
    for trigger in bookkeeping.DELIVERY_TRIGGERS:
        db.execute(f"DROP TRIGGER {trigger}")
    for table in ("delivery_places", "delivery_lags", "delivery_gaps"):
        db.execute(f"DROP TABLE {table}")
    db.conn.close()
    at = open_page("pages/sync_history.py")  # read-only: the page never migrates the cache
    assert any("counted from the next sync on" in info.value for info in at.info)
    assert metric(at, "Files failed") == 1
