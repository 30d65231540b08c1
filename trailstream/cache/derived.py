"""What is derived from `events` (the rollups and the word index), kept in step with it inside every commit.

One rowid watermark in `meta` says how far both have read. `refresh` runs in the transaction that stored the events,
so a crash keeps events and derived data together; readers use the derived data only while `is_current`, and
otherwise read `events` directly (slower, same answers).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from trailstream.cache import bookkeeping, rollups, wordindex

WATERMARK_KEY = "derived_rowid"  # in `meta`: the newest events rowid the rollups and word index include


def schema_sql() -> list[str]:
    return rollups.schema_sql() + wordindex.schema_sql()


def _watermark(conn: sqlite3.Connection) -> int | None:
    try:
        value = bookkeeping.read_meta(conn, WATERMARK_KEY)
    except sqlite3.OperationalError:
        return None
    return int(value) if value is not None else None


def _newest_rowid(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]


def is_current(conn: sqlite3.Connection) -> bool:
    """True when the derived data includes every stored event (two index probes)."""
    watermark = _watermark(conn)
    return watermark is not None and watermark == _newest_rowid(conn)


def refresh(conn: sqlite3.Connection) -> int:
    """Fold the events stored since the last refresh into the rollups and the word index; returns how many."""
    done = _watermark(conn) or 0
    newest = _newest_rowid(conn)
    if newest <= done:
        return 0
    rollups.fold(conn, done, newest)
    wordindex.fold(conn, done, newest)
    bookkeeping.write_meta(conn, WATERMARK_KEY, str(newest))
    return newest - done


def replace_event(conn: sqlite3.Connection, rowid: int, update: Callable[[], object]) -> None:
    """Rewrite one stored event in place with `update` (an early event its log file confirms), keeping the word
    index and the rollups in step: its old contribution is taken out only where its dimensions changed."""
    done = _watermark(conn) or 0
    if rowid > done:  # not folded yet: the next refresh reads the new values
        update()
        return
    before, old_text = rollups.row_keys(conn, rowid), wordindex.row_text(conn, rowid)
    update()
    wordindex.reindex_row(conn, rowid, old_text)
    after = rollups.row_keys(conn, rowid)
    changed = tuple(rollup for rollup in rollups.ROLLUPS if before[rollup] != after[rollup])
    if changed:
        rollups.unfold_row(conn, rowid, done, {rollup: before[rollup] for rollup in changed})
        rollups.fold(conn, rowid - 1, rowid, changed)


def refold(conn: sqlite3.Connection, only: tuple[rollups.Rollup, ...]) -> None:
    """Rebuild some rollups from every event the derived data includes (a migration that changed their shape)."""
    rollups.clear(conn, only)
    rollups.fold(conn, 0, _watermark(conn) or 0, only)


def rebuild_word_index(conn: sqlite3.Connection) -> None:
    """Make the word index again, holding every event the derived data includes (a migration that changed it)."""
    wordindex.rebuild(conn, _watermark(conn) or 0)


def clear(conn: sqlite3.Connection) -> None:
    """Empty the derived data, for when `events` itself is emptied (its rowids then start again from 1)."""
    rollups.clear(conn)
    wordindex.clear(conn)
    bookkeeping.write_meta(conn, WATERMARK_KEY, "0")
