"""Early events: CloudTrail records EventBridge delivered seconds after the call, stored in `events` like any other
and listed in `early_events` until the log file with the same eventID replaces them (the log files stay the record).

Read functions take `conn`, write functions take `db` or run inside the caller's transaction on `conn`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from trailstream.cache import derived
from trailstream.cache.frames import UTC_TIME, placeholders, read_frame
from trailstream.cache.rows import STORED_COLUMNS
from trailstream.timefmt import iso_utc, utc_now

SCHEMA_SQL = (
    """CREATE TABLE early_events (
        event_id TEXT PRIMARY KEY,
        event_time TEXT NOT NULL,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        file_id INTEGER,
        confirmed_at TEXT,
        confirmed_file_id INTEGER
    )""",
    "CREATE INDEX early_events_unconfirmed ON early_events (received_at) WHERE confirmed_at IS NULL",
    "CREATE INDEX early_events_time ON early_events (event_time)",
)
DEFAULT_GRACE = timedelta(hours=2)  # [eventbridge] grace: log files usually come within 15 minutes
_UPDATE_EVENT = "UPDATE events SET {}, file_id = ? WHERE rowid = ?".format(", ".join(f"{c} = ?" for c in STORED_COLUMNS))


@dataclass(frozen=True)
class EarlyMessage:
    """Where an early event came from: the queue and the SQS message that carried it."""

    queue: str
    message_id: str


def save_early_rows(conn: sqlite3.Connection, rows: list[tuple], file_id: int, message: EarlyMessage) -> int:
    """List the rows this message just stored as early (not those a log file or another message stored first)."""
    ids = [row[0] for row in rows]
    if not ids:
        return 0
    stored = conn.execute(
        f"SELECT event_id, event_time FROM events WHERE file_id = ? AND event_id IN ({placeholders(ids)})",
        [file_id, *ids],
    ).fetchall()
    received = utc_now()
    conn.executemany(
        "INSERT OR IGNORE INTO early_events (event_id, event_time, queue, message_id, received_at, file_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(event_id, event_time, message.queue, message.message_id, received, file_id) for event_id, event_time in stored],
    )
    return len(stored)


def confirm_early(conn: sqlite3.Connection, rows: list[tuple], positions: list[int],
                  file_id: int) -> tuple[list[tuple], list[int], int]:
    """Replace the early events among a log file's rows by the file's version (in place, derived data kept in
    step); returns the rows and positions still to insert, and how many early events the file confirmed."""
    ids = sorted({row[0] for row in rows})
    waiting = conn.execute("SELECT EXISTS (SELECT 1 FROM early_events WHERE confirmed_at IS NULL)").fetchone()[0]
    if not ids or not waiting:  # the usual case without EventBridge: one index probe per chunk, not one per row
        return rows, positions, 0
    early = dict(conn.execute(
        f"SELECT x.event_id, e.rowid FROM early_events x JOIN events e ON e.event_id = x.event_id "
        f"WHERE x.confirmed_at IS NULL AND x.event_id IN ({placeholders(ids)})",
        ids,
    ).fetchall())
    if not early:
        return rows, positions, 0
    kept_rows, kept_positions, confirmed = [], [], []
    for row, position in zip(rows, positions):
        rowid = early.pop(row[0], None)
        if rowid is None:  # not early, or its second copy in this file: stored (or refused) as usual
            kept_rows.append(row)
            kept_positions.append(position)
            continue
        derived.replace_event(conn, rowid, lambda: conn.execute(_UPDATE_EVENT, [*row, file_id, rowid]))
        confirmed.append(row[0])
    conn.executemany("UPDATE early_events SET confirmed_at = ?, confirmed_file_id = ? WHERE event_id = ?",
                     [(utc_now(), file_id, event_id) for event_id in confirmed])
    return kept_rows, kept_positions, len(confirmed)


UNCONFIRMED_SCHEMA = {
    "event_time": UTC_TIME,
    "event_name": pl.String,
    "event_source": pl.String,
    "principal": pl.String,
    "account_id": pl.String,
    "aws_region": pl.String,
    "event_id": pl.String,
    "received_at": UTC_TIME,
    "queue": pl.String,
    "message_id": pl.String,
}


def query_unconfirmed(conn: sqlite3.Connection, now: datetime, grace: timedelta = DEFAULT_GRACE,
                      limit: int = 500) -> tuple[pl.DataFrame, int]:
    """Early events no log file has confirmed within the grace period (seen live, missing from the delivered
    files: worth a look), newest first and capped; with how many there are in all."""
    cutoff = iso_utc(now - grace)
    try:
        total = conn.execute("SELECT count(*) FROM early_events WHERE confirmed_at IS NULL AND received_at <= ?",
                             [cutoff]).fetchone()[0]
    except sqlite3.OperationalError:  # a cache from before early events
        return pl.DataFrame(schema=UNCONFIRMED_SCHEMA), 0
    frame = read_frame(
        conn,
        "SELECT x.event_time, e.event_name, e.event_source, e.principal, e.account_id, e.aws_region, x.event_id, "
        "x.received_at, x.queue, x.message_id FROM early_events x LEFT JOIN events e ON e.event_id = x.event_id "
        "WHERE x.confirmed_at IS NULL AND x.received_at <= ? ORDER BY x.event_time DESC LIMIT ?",
        [cutoff, limit],
        UNCONFIRMED_SCHEMA,
    )
    return frame, total


def query_freshness(conn: sqlite3.Connection) -> dict[str, str | None]:
    """How fresh each path is: the newest event EventBridge delivered early, and the newest from a log file."""
    try:
        early = conn.execute("SELECT max(event_time) FROM early_events").fetchone()[0]
    except sqlite3.OperationalError:
        early = None
    logged = conn.execute(
        "SELECT max(newest_event_time) FROM files WHERE status = 'ok' AND source != 'eventbridge'"
    ).fetchone()[0]
    return {"early": early, "log_files": logged}
