"""The cache's bookkeeping: which files were processed and how, sync runs, the generation, demo-ness.

Read functions take `conn`, write functions take `db` (a sqlite_utils.Database); the cache path stays with callers.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import sqlite_utils

from trailstream.cache.frames import UTC_TIME, placeholders, read_frame
from trailstream.timefmt import TIME_FORMAT, utc_now


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


# CloudTrail log file names: ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_RANDOM.json.gz, the stamp being the delivery
CLOUDTRAIL_FILE_NAME = re.compile(r"(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{8}T\d{4}Z)")
UNKNOWN_PLACE = "unknown"


def parse_delivery(key: str) -> tuple[str, str, str | None]:
    """(account, region, delivery time) CloudTrail writes in a log file's name; 'unknown' places for other files."""
    found = CLOUDTRAIL_FILE_NAME.search(key)
    if found is None:
        return UNKNOWN_PLACE, UNKNOWN_PLACE, None
    try:
        delivered_at = datetime.strptime(found[3], "%Y%m%dT%H%MZ").strftime(TIME_FORMAT)
    except ValueError:  # a stamp that is no time (month 13): no delivery time
        delivered_at = None
    return found[1], found[2], delivered_at


def save_file_row(db, ref: FileRef, status: str, sync_run_id: int | None, **fields) -> int:
    account_id, aws_region, delivered_at = parse_delivery(ref.key)
    row = {
        "source": ref.source,
        "bucket": ref.bucket,
        "key": ref.key,
        "account_id": account_id,
        "aws_region": aws_region,
        "delivered_at": delivered_at,
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
    updates = ", ".join(f"{c} = excluded.{c}" for c in row if c not in ("id", "bucket", "key"))
    cursor = db.execute(
        f"INSERT INTO files ({columns}) VALUES ({', '.join('?' for _ in row)}) "
        f"ON CONFLICT (bucket, key) DO UPDATE SET {updates} RETURNING id",
        list(row.values()),
    )
    return cursor.fetchone()[0]


def file_id_for(conn: sqlite3.Connection, ref: FileRef) -> int:
    """The id of a file's row, or the one it gets when first saved: its events name it before their counts are known,
    so the row is written once, with them (a second write cost an import of 5,184 small files about 0.3 s)."""
    found = conn.execute("SELECT id FROM files WHERE bucket = ? AND key = ?", [ref.bucket, ref.key]).fetchone()
    return found[0] if found else conn.execute("SELECT coalesce(max(id), 0) + 1 FROM files").fetchone()[0]


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


def sync_run_count(conn: sqlite3.Connection) -> int:
    """All sync runs, where the page lists the newest few hundred."""
    return conn.execute("SELECT count(*) FROM sync_runs").fetchone()[0]


def rejected_record_count(conn: sqlite3.Connection) -> int:
    """All refused records, where the page lists the newest thousand."""
    return conn.execute("SELECT count(*) FROM rejected_records").fetchone()[0]


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


# --- Ingestion health: per account and region summaries the files' triggers keep, read in a few rows -----------

DELIVERED = "status = 'ok' AND newest_event_time IS NOT NULL AND source != 'eventbridge'"  # log files, not messages
DELIVERY_TABLES = (
    f"CREATE INDEX files_delivery ON files (account_id, aws_region, newest_event_time, processed_at) WHERE {DELIVERED}",
    """CREATE TABLE delivery_places (account_id TEXT NOT NULL, aws_region TEXT NOT NULL, files INTEGER NOT NULL,
        records INTEGER NOT NULL, last_processed_at TEXT, PRIMARY KEY (account_id, aws_region)) WITHOUT ROWID""",
    """CREATE TABLE delivery_lags (account_id TEXT NOT NULL, aws_region TEXT NOT NULL, lag_seconds INTEGER NOT NULL,
        files INTEGER NOT NULL, PRIMARY KEY (account_id, aws_region, lag_seconds)) WITHOUT ROWID""",
    """CREATE TABLE delivery_gaps (account_id TEXT NOT NULL, aws_region TEXT NOT NULL, gap_seconds INTEGER NOT NULL,
        files INTEGER NOT NULL, PRIMARY KEY (account_id, aws_region, gap_seconds)) WITHOUT ROWID""",
)


def _lag(r: str) -> str:
    """A file's delivery lag in seconds: the delivery time in its name minus its oldest (else newest) event."""
    return (f"unixepoch({r}.delivered_at) - coalesce(unixepoch({r}.oldest_event_time), "
            f"unixepoch({r}.newest_event_time))")


def _same_place(r: str) -> str:
    return f"account_id = {r}.account_id AND aws_region = {r}.aws_region"


def _neighbour(r: str, before: bool) -> str:
    """The newest event time of the delivered file just before (or after) file `r` in its place, `r` itself left out."""
    compare, order = ("<=", "DESC") if before else (">", "ASC")
    return (f"(SELECT newest_event_time FROM files WHERE {_same_place(r)} AND {DELIVERED} "
            f"AND newest_event_time {compare} {r}.newest_event_time AND id != {r}.id "
            f"ORDER BY newest_event_time {order} LIMIT 1)")


def _place_change(r: str, sign: int) -> list[str]:
    """Count file `r` in (or out of) its place's files, records and newest processing time; taking out the newest
    processed file looks up the next newest through the index."""
    if sign > 0:
        return [(f"INSERT INTO delivery_places (account_id, aws_region, files, records, last_processed_at) VALUES "
                 f"({r}.account_id, {r}.aws_region, 1, {r}.records, {r}.processed_at) ON CONFLICT DO UPDATE SET "
                 "files = files + 1, records = records + excluded.records, "
                 "last_processed_at = max(last_processed_at, excluded.last_processed_at)")]
    return [(f"UPDATE delivery_places SET files = files - 1, records = records - {r}.records, last_processed_at = "
             f"CASE WHEN last_processed_at = {r}.processed_at THEN (SELECT max(processed_at) FROM files WHERE "
             f"{_same_place(r)} AND {DELIVERED} AND id != {r}.id) ELSE last_processed_at END WHERE {_same_place(r)}"),
            f"DELETE FROM delivery_places WHERE {_same_place(r)} AND files = 0"]


def _lag_change(r: str, sign: int) -> list[str]:
    """Count file `r`'s delivery lag in (or out of) its place's files per lag."""
    if sign > 0:
        return [(f"INSERT INTO delivery_lags (account_id, aws_region, lag_seconds, files) SELECT {r}.account_id, "
                 f"{r}.aws_region, lag, 1 FROM (SELECT {_lag(r)} AS lag) WHERE lag >= 0 "
                 "ON CONFLICT DO UPDATE SET files = files + 1")]
    lag = f"{_same_place(r)} AND lag_seconds = {_lag(r)}"
    return [f"UPDATE delivery_lags SET files = files - 1 WHERE {lag}",
            f"DELETE FROM delivery_lags WHERE {lag} AND files = 0"]


def _gap_changes(r: str, sign: int) -> list[str]:
    """File `r` between its neighbours splits their gap in two (or, taken out, joins its two gaps into one)."""
    before, after, own = _neighbour(r, True), _neighbour(r, False), f"unixepoch({r}.newest_event_time)"
    split = (f"{own} - unixepoch({before})", f"unixepoch({after}) - {own}")
    joined = (f"unixepoch({after}) - unixepoch({before})",)
    counted, uncounted = (split, joined) if sign > 0 else (joined, split)
    gaps = " UNION ALL ".join(f"SELECT {gap} AS gap" for gap in counted)
    drops = " + ".join(f"(gap_seconds IS ({gap}))" for gap in uncounted)  # two equal gaps count twice
    dropped = f"{_same_place(r)} AND gap_seconds IN ({', '.join(f'({gap})' for gap in uncounted)})"
    return [
        (f"INSERT INTO delivery_gaps (account_id, aws_region, gap_seconds, files) SELECT {r}.account_id, "
         f"{r}.aws_region, gap, 1 FROM ({gaps}) WHERE gap IS NOT NULL ON CONFLICT DO UPDATE SET files = files + 1"),
        f"UPDATE delivery_gaps SET files = files - ({drops}) WHERE {dropped}",
        f"DELETE FROM delivery_gaps WHERE {dropped} AND files = 0",
    ]


def _summary_changes(r: str, sign: int) -> list[str]:
    """Statements that add (sign 1) or take away (-1) delivered file `r` from its place's summaries."""
    return _place_change(r, sign) + _lag_change(r, sign) + _gap_changes(r, sign)


def _delivered(r: str) -> str:
    return f"({r}.status = 'ok' AND {r}.newest_event_time IS NOT NULL AND {r}.source != 'eventbridge')"


def _trigger(name: str, event: str, when: str, statements: list[str]) -> str:
    return f"CREATE TRIGGER {name} AFTER {event} ON files WHEN {when} BEGIN\n" + ";\n".join(statements) + ";\nEND"


_NEW_DELIVERED, _OLD_DELIVERED = _delivered("NEW"), _delivered("OLD")
DELIVERY_TRIGGERS = {  # only a delivered file's rows run any: a sync's first write of a file row is not one yet
    "files_delivery_insert": _trigger("files_delivery_insert", "INSERT", _NEW_DELIVERED, _summary_changes("NEW", 1)),
    "files_delivery_delete": _trigger("files_delivery_delete", "DELETE", _OLD_DELIVERED, _summary_changes("OLD", -1)),
    "files_delivery_stored": _trigger("files_delivery_stored", "UPDATE", f"{_NEW_DELIVERED} AND NOT {_OLD_DELIVERED}",
                                      _summary_changes("NEW", 1)),
    "files_delivery_dropped": _trigger("files_delivery_dropped", "UPDATE", f"{_OLD_DELIVERED} AND NOT {_NEW_DELIVERED}",
                                       _summary_changes("OLD", -1)),
    # the old row out before the new one in: both judged against the other files
    "files_delivery_update": _trigger("files_delivery_update", "UPDATE", f"{_OLD_DELIVERED} AND {_NEW_DELIVERED}",
                                      _summary_changes("OLD", -1) + _summary_changes("NEW", 1)),
}


def rebuild_delivery_summaries(db: sqlite_utils.Database) -> None:
    """Recount every place's delivery summaries from the files (a migration, or a check that the triggers agree)."""
    for table in ("delivery_places", "delivery_lags", "delivery_gaps"):
        db.execute(f"DELETE FROM {table}")
    db.execute("INSERT INTO delivery_places SELECT account_id, aws_region, count(*), sum(records), max(processed_at) "
               f"FROM files WHERE {DELIVERED} GROUP BY account_id, aws_region")
    db.execute(f"INSERT INTO delivery_lags SELECT account_id, aws_region, lag, count(*) FROM (SELECT account_id, "
               f"aws_region, {_lag('files')} AS lag FROM files WHERE {DELIVERED}) WHERE lag >= 0 GROUP BY 1, 2, 3")
    db.execute("INSERT INTO delivery_gaps SELECT account_id, aws_region, gap, count(*) FROM (SELECT account_id, "
               "aws_region, unixepoch(newest_event_time) - lag(unixepoch(newest_event_time)) OVER (PARTITION BY "
               f"account_id, aws_region ORDER BY newest_event_time) AS gap FROM files WHERE {DELIVERED}) "
               "WHERE gap IS NOT NULL GROUP BY 1, 2, 3")


def create_delivery_summaries(db: sqlite_utils.Database) -> None:
    """Give `files` each file's place and delivery time (from its name), then the summaries and the triggers that
    keep them as files are stored, replaced or removed (m018; ~2 min for 1.4 million files). A cache with a first
    draft of them gets the current triggers only."""
    if "delivered_at" not in {column.name for column in db["files"].columns}:
        for column in ("account_id TEXT NOT NULL DEFAULT 'unknown'", "aws_region TEXT NOT NULL DEFAULT 'unknown'",
                       "delivered_at TEXT"):
            db.execute(f"ALTER TABLE files ADD COLUMN {column}")
        parsed = functools.lru_cache(maxsize=1)(parse_delivery)  # three parts of one key, parsed once
        db.conn.create_function("trailstream_delivery", 2, lambda key, part: parsed(key)[part], deterministic=True)
        db.execute("UPDATE files SET account_id = trailstream_delivery(key, 0), aws_region = "
                   "trailstream_delivery(key, 1), delivered_at = trailstream_delivery(key, 2) "
                   r"WHERE key LIKE '%\_CloudTrail\_%' ESCAPE '\'")
    if "delivery_places" not in db.table_names():
        for statement in DELIVERY_TABLES:
            db.execute(statement)
        rebuild_delivery_summaries(db)
    for name, statement in DELIVERY_TRIGGERS.items():
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
        db.execute(statement)


DELIVERY_HEALTH_SCHEMA = {
    "account_id": pl.String,
    "aws_region": pl.String,
    "files": pl.Int64,
    "records": pl.Int64,
    "newest_file_event": UTC_TIME,
    "last_processed_at": UTC_TIME,
    "delivery_lag": pl.Float64,
    "delivery_lag_p95": pl.Float64,
    "longest_gap": pl.Float64,
}
DELIVERY_HEALTH_SQL = f"""
WITH ranked AS (
    SELECT account_id, aws_region, lag_seconds,
        sum(files) OVER (PARTITION BY account_id, aws_region ORDER BY lag_seconds) AS upto,
        sum(files) OVER (PARTITION BY account_id, aws_region) AS n
    FROM delivery_lags),
lags AS (  -- the median (two middle files averaged) and the nearest-rank 95th percentile, from the counts per lag
    SELECT account_id, aws_region,
        (min(lag_seconds) FILTER (WHERE upto > (n - 1) / 2) + min(lag_seconds) FILTER (WHERE upto > n / 2)) / 2.0
            AS delivery_lag,
        min(lag_seconds) FILTER (WHERE upto > CAST(0.95 * (n - 1) + 0.5 AS INTEGER)) AS delivery_lag_p95
    FROM ranked GROUP BY account_id, aws_region),
gaps AS (SELECT account_id, aws_region, max(gap_seconds) AS longest_gap FROM delivery_gaps GROUP BY 1, 2)
SELECT p.account_id, p.aws_region, p.files, p.records,
    (SELECT max(newest_event_time) FROM files f WHERE f.account_id = p.account_id AND f.aws_region = p.aws_region
        AND {DELIVERED}) AS newest_file_event,
    p.last_processed_at, l.delivery_lag, l.delivery_lag_p95, g.longest_gap
FROM delivery_places p LEFT JOIN lags l USING (account_id, aws_region) LEFT JOIN gaps g USING (account_id, aws_region)
"""
SECONDS = ("delivery_lag", "delivery_lag_p95", "longest_gap")


def has_delivery_summaries(conn: sqlite3.Connection) -> bool:
    """False for a cache made before m018, which a read-only page may meet until the next sync or command."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'delivery_places'").fetchone() is not None


def query_delivery_health(conn: sqlite3.Connection) -> pl.DataFrame:
    """Per account and region (from log file names): files, records, newest event, last processing, delivery lag
    (median, p95) and longest gap between files, in a few rows: the input of transforms.ingestion_health."""
    frame = (read_frame(conn, DELIVERY_HEALTH_SQL, [], DELIVERY_HEALTH_SCHEMA) if has_delivery_summaries(conn)
             else pl.DataFrame(schema=DELIVERY_HEALTH_SCHEMA))
    return frame.with_columns(pl.duration(microseconds=(pl.col(name) * 1_000_000).round().cast(pl.Int64))
                              .alias(name) for name in SECONDS)


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
