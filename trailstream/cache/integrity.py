"""The cache's integrity tables: CloudTrail digests, the log files each lists, and the public keys that sign them.

Read functions take `conn`, write functions take `db`; verification itself lives in analytics.integrity.
"""

from __future__ import annotations

import sqlite3

import polars as pl
import sqlite_utils

from trailstream.cache.bookkeeping import FileRef, save_file_row
from trailstream.cache.frames import UTC_TIME, read_frame
from trailstream.cache.rows import DigestRow
from trailstream.timefmt import utc_now


DIGEST_FIELDS = (
    "account_id", "region", "home_region", "trail", "org_id", "start_time", "end_time", "backfill",
    "digest_s3_bucket", "digest_s3_object", "fingerprint", "signature_algorithm", "previous_bucket",
    "previous_object", "previous_hash", "previous_signature", "newest_event_time", "oldest_event_time",
    "sha256", "error",
)


def object_tail(key: str) -> str:
    """The part of an S3 key from "AWSLogs/" on: the same for an object in S3 and its copy made by `aws s3 sync`."""
    position = key.find("AWSLogs/")
    return key[position:] if position >= 0 else key


def save_digest(db: sqlite_utils.Database, ref: FileRef, digest: DigestRow, sync_run_id: int | None) -> int:
    """Store a digest, its listed log files and its `files` row together; storing it again replaces its listing."""
    with db.atomic():
        file_id = save_file_row(db, ref, "ok", sync_run_id, records=len(digest.log_files))
        values = {"file_id": file_id, "bucket": ref.bucket, "key": ref.key, "tail": object_tail(ref.key),
                  **{name: digest.values.get(name) for name in DIGEST_FIELDS}}
        updates = ", ".join(f"{name} = excluded.{name}" for name in values if name not in ("bucket", "key"))
        digest_id = db.execute(
            f"INSERT INTO digests ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)}) "
            f"ON CONFLICT (bucket, key) DO UPDATE SET {updates} RETURNING id",
            list(values.values()),
        ).fetchone()[0]
        db.execute("DELETE FROM digest_log_files WHERE digest_id = ?", [digest_id])
        db.conn.executemany(
            "INSERT INTO digest_log_files (digest_id, s3_bucket, s3_object, tail, hash_value, hash_algorithm) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(digest_id, bucket, key, object_tail(key or ""), value, algorithm)
             for bucket, key, value, algorithm in digest.log_files],
        )
    return digest_id


def save_digest_signature(db: sqlite_utils.Database, bucket: str, key: str, metadata: dict) -> None:
    """Keep a digest's S3 user metadata (the signature is there, not in the file); `{}` records that it had none."""
    with db.atomic():
        db.execute(
            "UPDATE digests SET signature = ?, metadata_algorithm = ?, backfill_generated_at = ?, metadata_checked = 1 "
            "WHERE bucket = ? AND key = ?",
            [metadata.get("signature"), metadata.get("signature-algorithm"),
             metadata.get("backfill-generation-timestamp"), bucket, key],
        )


def digests_without_metadata(conn: sqlite3.Connection, bucket: str) -> list[str]:
    """Keys of digests from this bucket whose S3 metadata was never read."""
    rows = conn.execute("SELECT key FROM digests WHERE bucket = ? AND metadata_checked = 0 ORDER BY key", [bucket])
    return [row[0] for row in rows]


def save_public_keys(db: sqlite_utils.Database, keys: list[dict]) -> None:
    """Keep CloudTrail public keys ({fingerprint, value (DER), region, validity_start, validity_end}) for offline use."""
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO public_keys (fingerprint, value, region, validity_start, validity_end, fetched_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET value = excluded.value",
            [(k["fingerprint"], k["value"], k.get("region"), k.get("validity_start"), k.get("validity_end"), utc_now())
             for k in keys],
        )


def query_public_keys(conn: sqlite3.Connection) -> dict[str, bytes]:
    """Stored public keys by fingerprint."""
    return {row[0]: bytes(row[1]) for row in conn.execute("SELECT fingerprint, value FROM public_keys")}


DIGEST_SCHEMA = {
    "digest_id": pl.Int64, "bucket": pl.String, "key": pl.String, "tail": pl.String, "account_id": pl.String,
    "region": pl.String, "home_region": pl.String, "trail": pl.String, "start": UTC_TIME, "end": UTC_TIME,
    "end_time": pl.String, "backfill": pl.Boolean, "digest_s3_bucket": pl.String, "digest_s3_object": pl.String,
    "fingerprint": pl.String, "signature_algorithm": pl.String, "previous_object": pl.String,
    "previous_hash": pl.String, "previous_signature": pl.String, "sha256": pl.String, "error": pl.String,
    "signature": pl.String, "metadata_checked": pl.Boolean, "backfill_generated_at": pl.String,
}


def query_digests(conn: sqlite3.Connection, accounts=(), regions=(), since: str | None = None,
                  until: str | None = None) -> pl.DataFrame:
    """Stored digests (of some accounts/regions, ending in since..until when given), with what verification needs."""
    clauses, params = _scope("", accounts, regions, since, until)
    return read_frame(conn, f"SELECT {_DIGEST_COLUMNS} FROM digests {clauses}", params, DIGEST_SCHEMA)


def query_digests_and_successors(conn: sqlite3.Connection, digest_ids: list[int]) -> pl.DataFrame:
    """These digests and the ones that link back to them: enough to check their signatures (the raw-record badge)."""
    marks = ", ".join("?" for _ in digest_ids)
    return read_frame(
        conn,
        f"SELECT {_DIGEST_COLUMNS} FROM digests WHERE id IN ({marks}) OR "
        f"{TAIL_SQL.format('previous_object')} IN (SELECT tail FROM digests WHERE id IN ({marks}))",
        [*digest_ids, *digest_ids],
        DIGEST_SCHEMA,
    )


_DIGEST_COLUMNS = (
    "id, bucket, key, tail, account_id, region, home_region, trail, start_time, end_time, end_time, backfill, "
    "digest_s3_bucket, digest_s3_object, fingerprint, signature_algorithm, previous_object, previous_hash, "
    "previous_signature, sha256, error, signature, metadata_checked, backfill_generated_at"
)


# The part of a key from "AWSLogs/" on, in SQL; compared with `+l.tail` so that SQLite uses the files_tail index.
TAIL_SQL = "substr({0}, instr({0}, 'AWSLogs/'))"
_FILE_OF_LISTING = f"LEFT JOIN files f ON {TAIL_SQL.format('f.key')} = +l.tail"
_VERIFIED = "(f.status = 'ok' AND f.trailing_data = 0 AND f.sha256 = l.hash_value)"


def query_listing_counts(conn: sqlite3.Connection, accounts=(), regions=(), since: str | None = None,
                         until: str | None = None) -> pl.DataFrame:
    """Per digest of query_digests: how many log files it lists, and how many are stored with the listed SHA-256."""
    clauses, params = _scope("d.", accounts, regions, since, until)
    return read_frame(
        conn,
        f"SELECT l.digest_id, count(*), coalesce(sum({_VERIFIED}), 0) FROM digest_log_files l "
        f"JOIN digests d ON d.id = l.digest_id {_FILE_OF_LISTING} {clauses} GROUP BY l.digest_id",
        params,
        {"digest_id": pl.Int64, "listed": pl.Int64, "verified": pl.Int64},
    )


LISTED_SCHEMA = {"digest_id": pl.Int64, "s3_object": pl.String, "tail": pl.String, "hash_value": pl.String,
                 "file_id": pl.Int64, "file_status": pl.String, "file_sha256": pl.String, "trailing_data": pl.Boolean,
                 "file_error": pl.String}


def query_listed_problems(conn: sqlite3.Connection, digest_ids: list[int]) -> pl.DataFrame:
    """The log files these digests list that are not stored whole with the listed SHA-256."""
    frames = [read_frame(
        conn,
        "SELECT l.digest_id, l.s3_object, l.tail, l.hash_value, f.id, f.status, f.sha256, f.trailing_data, f.error "
        f"FROM digest_log_files l {_FILE_OF_LISTING} WHERE l.digest_id IN ({', '.join('?' for _ in chunk)}) "
        f"AND NOT coalesce({_VERIFIED}, 0)",
        chunk,
        LISTED_SCHEMA,
    ) for chunk in (digest_ids[start:start + 500] for start in range(0, len(digest_ids), 500))]
    return pl.concat(frames) if frames else pl.DataFrame(schema=LISTED_SCHEMA)


STORED_SCHEMA = {"file_id": pl.Int64, "key": pl.String, "tail": pl.String, "status": pl.String,
                 "sha256": pl.String, "trailing_data": pl.Boolean, "error": pl.String}


def query_unlisted_log_files(conn: sqlite3.Connection, since: str | None, until: str | None,
                             untrusted: list[int]) -> pl.DataFrame:
    """Stored CloudTrail log files (with events in since..until, or failed) that no digest but the untrusted ones
    lists: the candidates for 'unreferenced'."""
    marks = ", ".join("?" for _ in untrusted)
    return read_frame(
        conn,
        f"SELECT f.id, f.key, {TAIL_SQL.format('f.key')}, f.status, f.sha256, f.trailing_data, f.error FROM files f "
        "WHERE f.key LIKE '%/CloudTrail/%' AND f.status != 'skipped' AND f.source NOT IN ('demo', 'refused') "
        "AND (f.newest_event_time IS NULL OR f.newest_event_time >= ?) "
        "AND (f.oldest_event_time IS NULL OR f.oldest_event_time < ?) "
        f"AND NOT EXISTS (SELECT 1 FROM digest_log_files l WHERE l.tail = {TAIL_SQL.format('f.key')} "
        f"AND l.digest_id NOT IN ({marks}))",
        [since or "", until or "9999", *untrusted],
        STORED_SCHEMA,
    )


def query_trail_changes(conn: sqlite3.Connection, event_names: tuple[str, ...]) -> pl.DataFrame:
    """When logging or validation may have been switched: the trail API calls in the cache."""
    return read_frame(
        conn,
        f"SELECT event_time, event_name, principal, aws_region FROM events "
        f"WHERE event_name IN ({', '.join('?' for _ in event_names)}) ORDER BY event_time",
        event_names,
        {"event_time": UTC_TIME, "event_name": pl.String, "principal": pl.String, "aws_region": pl.String},
    )


def query_event_file(conn: sqlite3.Connection, event_id: str) -> tuple | None:
    """(key, sha256, trailing_data) of the file an event was stored from."""
    return conn.execute("SELECT f.key, f.sha256, f.trailing_data FROM events e JOIN files f ON f.id = e.file_id "
                        "WHERE e.event_id = ?", [event_id]).fetchone()


def query_listings_of(conn: sqlite3.Connection, key: str) -> list[tuple[int, str]]:
    """(digest id, listed SHA-256) of every digest that lists this file."""
    return conn.execute("SELECT digest_id, hash_value FROM digest_log_files WHERE tail = ?",
                        [object_tail(key)]).fetchall()


def _scope(prefix: str, accounts, regions, since: str | None = None, until: str | None = None) -> tuple[str, list]:
    clauses, params = [], []
    if since:
        clauses.append(f"{prefix}end_time >= ?")
        params.append(since)
    if until:
        clauses.append(f"{prefix}end_time < ?")
        params.append(until)
    if accounts:
        clauses.append(f"{prefix}account_id IN ({', '.join('?' for _ in accounts)})")
        params += list(accounts)
    if regions:
        clauses.append(f"{prefix}region IN ({', '.join('?' for _ in regions)})")
        params += list(regions)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


MIGRATION_SQL = f"""
DELETE FROM files WHERE status = 'skipped' AND key LIKE '%/CloudTrail-Digest/%';
ALTER TABLE files ADD COLUMN sha256 TEXT;
ALTER TABLE files ADD COLUMN trailing_data INTEGER NOT NULL DEFAULT 0;
CREATE INDEX files_tail ON files ({TAIL_SQL.format('key')});
CREATE TABLE digests (
    id INTEGER PRIMARY KEY,
    file_id INTEGER REFERENCES files (id),
    bucket TEXT NOT NULL DEFAULT '',
    key TEXT NOT NULL,
    tail TEXT NOT NULL,
    account_id TEXT, region TEXT, home_region TEXT, trail TEXT, org_id TEXT,
    start_time TEXT, end_time TEXT, backfill INTEGER NOT NULL DEFAULT 0,
    digest_s3_bucket TEXT, digest_s3_object TEXT, fingerprint TEXT, signature_algorithm TEXT,
    previous_bucket TEXT, previous_object TEXT, previous_hash TEXT, previous_signature TEXT,
    newest_event_time TEXT, oldest_event_time TEXT,
    sha256 TEXT,
    error TEXT,
    signature TEXT, metadata_algorithm TEXT, backfill_generated_at TEXT,
    metadata_checked INTEGER NOT NULL DEFAULT 0,
    UNIQUE (bucket, key)
);
CREATE INDEX digests_scope ON digests (account_id, region, end_time);
CREATE TABLE digest_log_files (
    digest_id INTEGER NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    s3_bucket TEXT, s3_object TEXT, tail TEXT NOT NULL,
    hash_value TEXT, hash_algorithm TEXT
);
CREATE INDEX digest_log_files_digest ON digest_log_files (digest_id);
CREATE INDEX digest_log_files_tail ON digest_log_files (tail);
CREATE TABLE public_keys (
    fingerprint TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    region TEXT, validity_start TEXT, validity_end TEXT,
    fetched_at TEXT NOT NULL
);
"""
