"""The cache's bookkeeping: which files were processed and how, sync runs, the generation, demo-ness.

Read functions take `conn`, write functions take `db` (a sqlite_utils.Database); the cache path stays with callers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import polars as pl
import sqlite_utils

from trailstream.cache.frames import UTC_TIME, placeholders, read_frame
from trailstream.timefmt import utc_now


@dataclass
class FileRef:
    """Where a file came from: source kind ('sqs', 's3', 'local', 'demo'), bucket ('' for local) and key or path."""

    source: str
    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else self.key


@dataclass
class FileOutcome:
    ref: FileRef
    status: str
    records: int = 0
    new_events: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    error: str | None = None
    confirmed: int = 0  # early (EventBridge) events this log file's records replaced


def save_file_row(db, ref: FileRef, status: str, sync_run_id: int | None, **fields) -> int:
    row = {
        "source": ref.source,
        "bucket": ref.bucket,
        "key": ref.key,
        "etag": ref.etag,
        "size": ref.size,
        "status": status,
        "processed_at": utc_now(),
        "sync_run_id": sync_run_id,
        "records": 0,
        "new_events": 0,
        "duplicates": 0,
        "rejected": 0,
        "error": None,
        "oldest_event_time": None,
        "newest_event_time": None,
        **fields,
    }
    columns = ", ".join(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in row if c not in ("bucket", "key"))
    cursor = db.execute(
        f"INSERT INTO files ({columns}) VALUES ({', '.join('?' for _ in row)}) "
        f"ON CONFLICT (bucket, key) DO UPDATE SET {updates} RETURNING id",
        list(row.values()),
    )
    return cursor.fetchone()[0]


def mark_file(
    db: sqlite_utils.Database, ref: FileRef, status: str, error: str | None, sync_run_id: int | None
) -> FileOutcome:
    """Record a file that was skipped (not a log file) or failed (with the reason), so nothing is forgotten."""
    with db.atomic():
        save_file_row(db, ref, status, sync_run_id, error=error)
    return FileOutcome(ref, status, error=error)


def stored_file_etags(db: sqlite_utils.Database, bucket: str, keys: list[str]) -> dict[str, str | None]:
    """Etags of files already stored ok or skipped, to avoid fetching them again."""
    found = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        placeholders = ", ".join("?" for _ in chunk)
        found.update(
            db.execute(
                f"SELECT key, etag FROM files WHERE bucket = ? AND status IN ('ok', 'skipped') AND key IN ({placeholders})",
                [bucket, *chunk],
            ).fetchall()
        )
    return found


def start_sync_run(db: sqlite_utils.Database, source: str) -> int:
    with db.atomic():
        cursor = db.execute("INSERT INTO sync_runs (source, started_at) VALUES (?, ?)", [source, utc_now()])
    return cursor.lastrowid


def finish_sync_run(db: sqlite_utils.Database, run_id: int, status: str, counts: dict, message: str | None) -> None:
    """Close a sync run and bump the generation so cached page data is refreshed."""
    with db.atomic():
        db.execute(
            "UPDATE sync_runs SET ended_at = ?, status = ?, files = ?, new_events = ?, duplicates = ?, "
            "skipped = ?, failures = ?, message = ? WHERE id = ?",
            [
                utc_now(),
                status,
                counts.get("files", 0),
                counts.get("new_events", 0),
                counts.get("duplicates", 0),
                counts.get("skipped", 0),
                counts.get("failures", 0),
                message,
                run_id,
            ],
        )
        bump_generation(db)



def mark_interrupted_runs(db: sqlite_utils.Database) -> None:
    """Runs left 'running' by a killed process are shown as interrupted (call while holding the sync lock)."""
    with db.atomic():
        db.execute("UPDATE sync_runs SET status = 'interrupted' WHERE status = 'running'")


def cache_generation(conn: sqlite3.Connection) -> int:
    """A number that changes after every sync: the key for cached page data."""
    try:
        value = read_meta(conn, "generation")
    except sqlite3.OperationalError:
        return -1
    return int(value) if value else 0



SYNC_RUN_SCHEMA = {
    "id": pl.Int64,
    "source": pl.String,
    "started_at": UTC_TIME,
    "ended_at": UTC_TIME,
    "status": pl.String,
    "files": pl.Int64,
    "new_events": pl.Int64,
    "duplicates": pl.Int64,
    "skipped": pl.Int64,
    "failures": pl.Int64,
    "message": pl.String,
}


FILE_SCHEMA = {
    "id": pl.Int64,
    "source": pl.String,
    "bucket": pl.String,
    "key": pl.String,
    "size": pl.Int64,
    "status": pl.String,
    "error": pl.String,
    "records": pl.Int64,
    "new_events": pl.Int64,
    "duplicates": pl.Int64,
    "rejected": pl.Int64,
    "oldest_event_time": UTC_TIME,
    "newest_event_time": UTC_TIME,
    "processed_at": UTC_TIME,
    "sync_run_id": pl.Int64,
}


def query_sync_runs(conn: sqlite3.Connection, limit: int = 200) -> pl.DataFrame:
    """The newest sync runs with their counts and status."""
    sql = f"SELECT {', '.join(SYNC_RUN_SCHEMA)} FROM sync_runs ORDER BY id DESC LIMIT ?"
    return read_frame(conn, sql, [limit], SYNC_RUN_SCHEMA)


def query_files(
    conn: sqlite3.Connection, statuses: tuple[str, ...] = (), limit: int | None = 1000, sync_run_id: int | None = None
) -> pl.DataFrame:
    """Processed files, newest first; only the given statuses ('ok', 'skipped', 'failed') or run if asked."""
    clauses, params = ["1"], []
    if statuses:
        clauses.append(f"status IN ({placeholders(statuses)})")
        params += list(statuses)
    if sync_run_id is not None:
        clauses.append("sync_run_id = ?")
        params.append(sync_run_id)
    limit_sql = "LIMIT ?" if limit else ""
    sql = (
        f"SELECT {', '.join(FILE_SCHEMA)} FROM files WHERE {' AND '.join(clauses)} "
        f"ORDER BY processed_at DESC, id DESC {limit_sql}"
    )
    return read_frame(conn, sql, params + ([limit] if limit else []), FILE_SCHEMA)


def query_rejected_records(conn: sqlite3.Connection, limit: int = 1000) -> pl.DataFrame:
    """Records refused while importing, with the file they came from and why."""
    sql = (
        "SELECT f.bucket, f.key, r.position, r.event_id, r.reason, f.processed_at FROM rejected_records r "
        "JOIN files f ON f.id = r.file_id ORDER BY r.id DESC LIMIT ?"
    )
    schema = {
        "bucket": pl.String,
        "key": pl.String,
        "position": pl.Int64,
        "event_id": pl.String,
        "reason": pl.String,
        "processed_at": UTC_TIME,
    }
    return read_frame(conn, sql, [limit], schema)


DELIVERY_SCHEMA = {
    "source": pl.String,
    "bucket": pl.String,
    "key": pl.String,
    "records": pl.Int64,
    "oldest_event_time": UTC_TIME,
    "newest_event_time": UTC_TIME,
    "processed_at": UTC_TIME,
}


def query_delivered_files(conn: sqlite3.Connection) -> pl.DataFrame:
    """Every stored log file's name, event times and processing time: the input of transforms.ingestion_health."""
    sql = (
        f"SELECT {', '.join(DELIVERY_SCHEMA)} FROM files "
        "WHERE status = 'ok' AND newest_event_time IS NOT NULL AND source != 'eventbridge'"  # messages, not files
    )
    return read_frame(conn, sql, [], DELIVERY_SCHEMA)



def bump_generation(db: sqlite_utils.Database) -> None:
    """Tell readers the cache changed, so page data cached for the old generation is dropped."""
    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


def read_meta(conn: sqlite3.Connection, key: str) -> str | None:
    """One value of the cache's `meta` table, or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def write_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set one value of `meta` inside the caller's transaction."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])


def file_sources(conn: sqlite3.Connection) -> set[str]:
    """The kinds of source the stored files came from ('sqs', 's3', 'local', 'demo', ...)."""
    return {row[0] for row in conn.execute("SELECT DISTINCT source FROM files")}


def holds_only_demo_data(conn: sqlite3.Connection) -> bool:
    """True when every file in the cache came from the demo generator."""
    return file_sources(conn) == {"demo"}


def real_file_count(conn: sqlite3.Connection) -> int:
    """Files that did not come from the demo generator."""
    return conn.execute("SELECT count(*) FROM files WHERE source != 'demo'").fetchone()[0]


def failed_file_refs(conn: sqlite3.Connection) -> list[FileRef]:
    """Files recorded as failed that can be fetched again: S3 ones (with a bucket) and local ones."""
    rows = conn.execute(
        "SELECT source, bucket, key FROM files WHERE status = 'failed' AND source != 'refused' "
        "AND (bucket != '' OR source = 'local') ORDER BY id"
    ).fetchall()
    return [FileRef(source, bucket, key) for source, bucket, key in rows]


def file_status_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many files are ok, skipped, failed, ..."""
    return dict(conn.execute("SELECT status, count(*) FROM files GROUP BY status").fetchall())


def last_sync_run(conn: sqlite3.Connection) -> tuple | None:
    """(source, started_at, ended_at, status, new_events, failures) of the newest sync run, or None."""
    return conn.execute(
        "SELECT source, started_at, ended_at, status, new_events, failures FROM sync_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
