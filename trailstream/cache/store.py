"""The SQLite cache: schema and migrations, and the only code that opens it for writing."""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from trailstream.cache import codec, derived, early as early_events, rollups, integrity, sigma_state, views, watermarks
from trailstream.cache import bookkeeping, findings_store, wordindex
from trailstream.cache.rows import (EVENT_COLUMNS, LOOKUP_COLUMN_FIELDS, RESTORE_COLUMNS, STORED_COLUMNS, ParsedLog,
                                   restore_record, split_record, stored_lookup_values)
from trailstream.cache.bookkeeping import FileOutcome, FileRef, bump_generation, file_id_for, save_file_row
from trailstream.cache.transaction import write_transaction
from trailstream.timefmt import utc_now

migrations = Migrations("trailstream")


def _execute_script(db: sqlite_utils.Database, script: str) -> None:
    """Run DDL statement by statement: executescript would COMMIT and break the migration's transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


@migrations()
def m001_initial_schema(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE events (
            event_id TEXT PRIMARY KEY,
            event_time TEXT NOT NULL,
            event_source TEXT,
            event_name TEXT NOT NULL,
            aws_region TEXT,
            account_id TEXT,
            principal TEXT,
            principal_arn TEXT,
            user_type TEXT,
            access_key_id TEXT,
            source_ip TEXT,
            user_agent TEXT,
            error_code TEXT,
            error_message TEXT,
            read_only INTEGER,
            event_type TEXT,
            event_category TEXT,
            resources TEXT,
            request_parameters TEXT,
            response_elements TEXT,
            additional_event_data TEXT,
            raw BLOB NOT NULL,
            raw_codec INTEGER NOT NULL,
            record_hash BLOB NOT NULL,
            file_id INTEGER
        );
        CREATE INDEX events_time ON events (event_time);
        CREATE INDEX events_name_time ON events (event_name, event_time);
        CREATE INDEX events_principal_time ON events (principal, event_time);
        CREATE INDEX events_error_time ON events (error_code, event_time) WHERE error_code IS NOT NULL;

        CREATE TABLE codecs (
            id INTEGER PRIMARY KEY,
            dictionary BLOB,
            created_at TEXT NOT NULL
        );

        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            bucket TEXT NOT NULL DEFAULT '',
            key TEXT NOT NULL,
            etag TEXT,
            size INTEGER,
            records INTEGER NOT NULL DEFAULT 0,
            new_events INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK (status IN ('ok', 'skipped', 'failed')),
            error TEXT,
            oldest_event_time TEXT,
            newest_event_time TEXT,
            processed_at TEXT NOT NULL,
            sync_run_id INTEGER,
            UNIQUE (bucket, key)
        );
        CREATE INDEX files_status ON files (status);

        CREATE TABLE rejected_records (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files (id),
            position INTEGER NOT NULL,
            event_id TEXT,
            reason TEXT NOT NULL
        );
        CREATE INDEX rejected_records_file ON rejected_records (file_id);

        CREATE TABLE sync_runs (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            files INTEGER NOT NULL DEFAULT 0,
            new_events INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            message TEXT
        );

        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        INSERT INTO meta (key, value) VALUES ('generation', '0');
        """
    )


@migrations()
def m002_saved_searches(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE saved_searches (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('search', 'sql')),
            definition TEXT NOT NULL,
            period TEXT,
            format TEXT CHECK (format IN ('csv', 'parquet', 'html')),
            schedule TEXT CHECK (schedule IN ('daily', 'weekly')),
            recipients TEXT NOT NULL DEFAULT '[]',
            last_sent_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m003_alerts(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE alert_rules (
            id INTEGER PRIMARY KEY,
            key TEXT UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('finding', 'events', 'search', 'sql')),
            name TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            severity TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
            recipients TEXT NOT NULL DEFAULT '[]',
            delivery TEXT NOT NULL DEFAULT 'immediate' CHECK (delivery IN ('immediate', 'digest')),
            query TEXT NOT NULL DEFAULT '',
            threshold INTEGER NOT NULL DEFAULT 1 CHECK (threshold >= 1),
            window_minutes INTEGER NOT NULL DEFAULT 60 CHECK (window_minutes >= 1),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE alert_watermarks (
            rule_id INTEGER PRIMARY KEY REFERENCES alert_rules (id) ON DELETE CASCADE,
            last_rowid INTEGER NOT NULL DEFAULT 0,
            evaluated_at TEXT
        );
        CREATE TABLE fired_alerts (
            id INTEGER PRIMARY KEY,
            rule_id INTEGER REFERENCES alert_rules (id) ON DELETE SET NULL,
            rule_name TEXT NOT NULL,
            severity TEXT NOT NULL,
            delivery TEXT NOT NULL,
            recipients TEXT NOT NULL DEFAULT '[]',
            summary TEXT NOT NULL,
            events INTEGER NOT NULL DEFAULT 0,
            fired_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TEXT,
            sent_at TEXT,
            error TEXT
        );
        CREATE INDEX fired_alerts_status ON fired_alerts (status) WHERE status != 'sent';
        CREATE INDEX fired_alerts_fired_at ON fired_alerts (fired_at);
        CREATE TABLE fired_alert_events (
            alert_id INTEGER NOT NULL REFERENCES fired_alerts (id) ON DELETE CASCADE,
            rule_id INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            PRIMARY KEY (rule_id, event_id)
        );
        CREATE INDEX fired_alert_events_alert ON fired_alert_events (alert_id);
        CREATE TABLE alert_state (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        """
    )


@migrations()
def m004_audit_log(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT
        );
        CREATE INDEX audit_log_at ON audit_log (at);
        """
    )



@migrations()
def m005_events_principal_ip(db: sqlite_utils.Database) -> None:
    """One per-principal index that also covers impossible travel (principal, time, address, account): that
    detection then reads no table row, per-principal pages still seek by (principal, time), and inserts keep the
    same number of indexes."""
    db.execute("DROP INDEX IF EXISTS events_principal_time")
    db.execute("DROP INDEX IF EXISTS events_principal_ip")
    db.execute("CREATE INDEX events_principal_ip ON events (principal, event_time, source_ip, account_id)")


@migrations()
def m006_derived(db: sqlite_utils.Database) -> None:
    """Hourly and daily counts and a word index, which pages read instead of scanning weeks of events, filled from
    what is already stored (about 17 s per million events)."""
    for statement in derived.schema_sql():
        db.execute(statement)
    derived.clear(db.conn)
    derived.refresh(db.conn)


PRINCIPAL_ACTIVITY_COLUMNS = (
    "principal", "event_time", "source_ip", "account_id", "aws_region", "read_only",
    "event_source", "event_name", "access_key_id", "error_code",
)


@migrations()
def m007_events_principal_activity(db: sqlite_utils.Database) -> None:
    """Widen the per-principal index to what the Principal activity page groups by (all but the long user agent,
    which the principal rollup carries), so a busy role's month is read from the index alone; impossible travel
    reads its prefix."""
    db.execute("DROP INDEX IF EXISTS events_principal_ip")
    db.execute(f"CREATE INDEX events_principal_activity ON events ({', '.join(PRINCIPAL_ACTIVITY_COLUMNS)})")


@migrations()
def m008_alert_channels(db: sqlite_utils.Database) -> None:
    """Alert channels beside email (apprise URLs): a rule's own channels, and one delivery row per fired alert and
    channel so each channel gets each alert once and a channel that is down is retried. A channel is stored by a
    digest of its URL and a label with the secrets masked, never the URL itself."""
    _execute_script(
        db,
        """
        ALTER TABLE alert_rules ADD COLUMN channels TEXT NOT NULL DEFAULT '[]';
        CREATE TABLE alert_channel_deliveries (
            alert_id INTEGER NOT NULL REFERENCES fired_alerts (id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            label TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TEXT,
            sent_at TEXT,
            error TEXT,
            PRIMARY KEY (alert_id, channel)
        );
        CREATE INDEX alert_channel_deliveries_unsent ON alert_channel_deliveries (status) WHERE status != 'sent';
        """,
    )


@migrations()
def m012_lookup_watermarks(db: sqlite_utils.Database) -> None:
    """How far Event history (LookupEvents) was read per account, region and category, so a lookup resumes."""
    db.execute(watermarks.SCHEMA_SQL)


@migrations()
def m011_sigma(db: sqlite_utils.Database) -> None:
    """Sigma rules: the loaded catalog, each rule's state and exceptions, and a NOCASE event-name index so that
    case-insensitive rules seek instead of scanning."""
    for statement in sigma_state.SCHEMA:
        db.execute(statement)


@migrations()
def m010_integrity(db: sqlite_utils.Database) -> None:
    """Log integrity: digests, the log files each lists, CloudTrail's public keys, and each log file's SHA-256."""
    _execute_script(db, integrity.MIGRATION_SQL)


@migrations()
def m009_lean_rollups(db: sqlite_utils.Database) -> None:
    """Principal rollups keyed by role (session issuer) instead of session, address and user agent, which made them
    as large as `events` on a real organisation's trail; the per-principal index gains user_type, so a role's
    sessions are read from the index alone."""
    for table in rollups.RETIRED_TABLES:
        db.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in derived.schema_sql():
        db.execute(statement)
    derived.refold(db.conn, (rollups.PRINCIPALS,))
    db.execute("DROP INDEX IF EXISTS events_principal_activity")
    db.execute(f"CREATE INDEX events_principal_activity ON events ({', '.join(PRINCIPAL_ACTIVITY_COLUMNS)}, user_type)")


@migrations()
def m013_early_events(db: sqlite_utils.Database) -> None:
    """Early events: CloudTrail records EventBridge delivered before their log file, until the file replaces them."""
    for statement in early_events.SCHEMA_SQL:
        db.execute(statement)


@migrations()
def m014_stored_findings(db: sqlite_utils.Database) -> None:
    """Findings stored by the post-sync step (and the travel routes per day), so pages read them, not recompute them."""
    for statement in findings_store.SCHEMA:
        db.execute(statement)


@migrations()
def m015_events_lookup_columns(db: sqlite_utils.Database) -> None:
    """Record fields rules filter on get columns (rows.LOOKUP_COLUMN_FIELDS), filled from the stored records: Sigma's
    AssumeRole rule read sessionIssuer.type by decompressing half of all records."""
    for column in LOOKUP_COLUMN_FIELDS.values():
        db.execute(f"ALTER TABLE events ADD COLUMN {column} TEXT")
    dictionaries = dict(db.execute("SELECT id, dictionary FROM codecs").fetchall())
    assignments = ", ".join(f"{column} = ?" for column in LOOKUP_COLUMN_FIELDS.values())
    last = 0
    while batch := db.execute("SELECT rowid, raw, raw_codec FROM events WHERE rowid > ? ORDER BY rowid LIMIT 20000",
                              [last]).fetchall():
        last = batch[-1][0]
        updates = []
        for rowid, blob, codec_id in batch:
            values = stored_lookup_values(codec.decompress(blob, dictionaries.get(codec_id)))
            if any(value is not None for value in values):
                updates.append((*values, rowid))
        db.conn.executemany(f"UPDATE events SET {assignments} WHERE rowid = ?", updates)


@migrations()
def m016_travel_routes_per_principal(db: sqlite_utils.Database) -> None:
    """Travel routes per principal beside the day totals, so the post-sync step adds only the principals with new
    events."""
    for statement in findings_store.PRINCIPAL_ROUTES:
        db.execute(statement)


@migrations()
def m018_delivery_summaries_kept_by_triggers(db: sqlite_utils.Database) -> None:
    """Each account and region's delivery summaries, kept by triggers on `files`: Sync history read every file's row.
    (Renamed from m018_delivery_summaries, whose triggers cost an import 0.3 ms a file: it replaces them.)"""
    bookkeeping.create_delivery_summaries(db)


# What Rare errors reads of a failed call: its index covers it, so the page reads no event row.
ERROR_INDEX_COLUMNS = ("error_code", "event_time", "event_source", "event_name", "account_id", "aws_region", "read_only")


@migrations()
def m019_covering_error_index(db: sqlite_utils.Database) -> None:
    """The failed calls' index (same name and leading columns) also holds what Rare errors counts: the page read
    every failed call's row of the whole cache to know which errors are new, seconds on a cold 10M-event file."""
    db.execute("DROP INDEX IF EXISTS events_error_time")
    columns = ", ".join(ERROR_INDEX_COLUMNS)
    db.execute(f"CREATE INDEX events_error_time ON events ({columns}) WHERE error_code IS NOT NULL")


@migrations()
def m020_word_index_merges_less_often(db: sqlite_utils.Database) -> None:
    """The word index merges its segments 16 at a time, not FTS5's 4: every import and sync does a third less
    indexing work, and searches read as fast."""
    db.execute(wordindex.merge_setting_sql())


@migrations()
def m021_word_index_by_column(db: sqlite_utils.Database) -> None:
    """The word index takes each text column as a column of its own instead of their concatenation, which cost
    storing a file a quarter of its indexing time; made again from `events` (5.3 s for a million demo events)."""
    derived.rebuild_word_index(db.conn)


class SyncAlreadyRunning(RuntimeError):
    """Another process is syncing into this cache."""


class CacheUnreadable(RuntimeError):
    """The cache file exists but is not a TrailStream SQLite cache."""


BUSY_TIMEOUT_SECONDS = 30  # how long a writer waits for another's lock before giving up with a sentence
# A new cache's page size (one made before keeps its own): with 16 KiB instead of SQLite's 4 KiB, an import's single
# writer spent 0.8 s less of its 7.8 s of CPU on 200,000 events (fewer pages to split, link and copy to the WAL).
PAGE_SIZE = 16384


def open_cache(path: str | os.PathLike) -> sqlite_utils.Database:
    """Open (creating if needed) the cache for writing, with WAL and every migration applied."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # takes effect only on a file not written yet
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: index pages stay in memory during a large import
        conn.execute("PRAGMA foreign_keys=ON")
        db = sqlite_utils.Database(conn)
        migrations.apply(db)
        views.ensure_views(db)
        if missing_event_indexes(conn):  # a first import was killed before building them: unless it still runs
            with file_lock(path, "sync") as free:
                if free:
                    ensure_event_indexes(db)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            raise CacheUnreadable(f"{path} is busy: another process has held it for over {BUSY_TIMEOUT_SECONDS} s "
                                  f"({exc}); try again when it has finished") from None
        raise CacheUnreadable(f"{path} is not a TrailStream cache ({exc}); move it away or pick another --db") from None
    return db


def event_indexes(conn: sqlite3.Connection) -> dict[str, str]:
    """The secondary indexes of `events` a cache has: name -> its CREATE INDEX statement."""
    return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
                             "AND sql IS NOT NULL ORDER BY name"))


@functools.cache
def expected_event_indexes() -> dict[str, str]:
    """The secondary indexes of `events` exactly as the migrations create them (a new cache in memory: ~15 ms)."""
    db = sqlite_utils.Database(memory=True)
    migrations.apply(db)
    return event_indexes(db.conn)


def missing_event_indexes(conn: sqlite3.Connection) -> dict[str, str]:
    """Expected indexes of `events` the cache lacks: a first import builds them at its end, or was killed first.
    By name: one of another definition is never rebuilt behind the user's back (on 10M events that takes minutes)."""
    present = event_indexes(conn)
    return {name: sql for name, sql in expected_event_indexes().items() if name not in present}


def differing_event_indexes(conn: sqlite3.Connection) -> list[str]:
    """Indexes of `events` whose definition is not the one the migrations create (`check` names them)."""
    present = event_indexes(conn)
    return [name for name, sql in expected_event_indexes().items() if present.get(name, sql) != sql]


def ensure_event_indexes(db: sqlite_utils.Database) -> int:
    """Build the missing indexes of `events` in one transaction (idempotent; a kill leaves them to the next open)."""
    if not missing_event_indexes(db.conn):  # the usual case: no write lock taken
        return 0
    with write_transaction(db):  # another opener may build them first: read what is missing under the lock
        missing = missing_event_indexes(db.conn)
        for name, sql in missing.items():
            db.execute(sql)
    return len(missing)


def defer_event_indexes(db: sqlite_utils.Database) -> bool:
    """Drop the secondary indexes of an empty `events` before a first bulk load: building them once at its end
    (sorted) costs less than inserting every row into them. False, and nothing dropped, once it holds events."""
    with write_transaction(db):
        if db.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]:
            return False
        for name in expected_event_indexes():
            db.execute(f'DROP INDEX IF EXISTS "{name}"')
    return True


def open_cache_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection for pages and queries; fails if the cache does not exist."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def file_lock(path: str | os.PathLike, purpose: str):
    """A lock file beside the cache (`<cache>.<purpose>-lock`); yields whether it was free. The OS drops it if the
    process dies, so a killed run never leaves it held."""
    handle = open(f"{os.fspath(path)}.{purpose}-lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        handle.close()


@contextmanager
def sync_lock(path: str | os.PathLike):
    """One sync at a time per cache."""
    with file_lock(path, "sync") as acquired:
        if not acquired:
            raise SyncAlreadyRunning(f"a sync is already running on {os.fspath(path)}; wait for it to finish")
        yield


def current_compressor(db: sqlite_utils.Database) -> codec.RecordCompressor:
    """The compressor new records use: the newest dictionary in the cache, else plain zstd."""
    row = db.execute("SELECT id, dictionary FROM codecs ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return codec.default_compressor()
    return codec.RecordCompressor(row[0], row[1])


def dictionary_from(sample_records: Callable[[], Iterable[dict]]) -> bytes:
    """A zstd dictionary for record blobs, trained on `sample_records()` split as the cache stores them."""
    return codec.train_dictionary([split_record(record)[0] for record in sample_records()])


def ensure_compressor(db: sqlite_utils.Database, sample_records: Callable[[], Iterable[dict]],
                      train: Callable[[Callable[[], Iterable[dict]]], bytes] = dictionary_from) -> codec.RecordCompressor:
    """The current compressor; a new cache first gets a dictionary that `train` makes from `sample_records`."""
    compressor = current_compressor(db)
    if compressor.codec_id != codec.NO_DICTIONARY:
        return compressor
    return save_dictionary(db, train(sample_records))


def save_dictionary(db: sqlite_utils.Database, dictionary: bytes) -> codec.RecordCompressor:
    with db.atomic():
        cursor = db.execute("INSERT INTO codecs (dictionary, created_at) VALUES (?, ?)", [dictionary, utc_now()])
    return codec.RecordCompressor(cursor.lastrowid, dictionary)



_INSERT_EVENTS = "INSERT OR IGNORE INTO events ({}, file_id) VALUES ({}, ?)".format(
    ", ".join(STORED_COLUMNS), ", ".join("?" for _ in STORED_COLUMNS)
)
_HASH_INDEX = EVENT_COLUMNS.index("record_hash")
_RAW_INDEX, _CODEC_INDEX = EVENT_COLUMNS.index("raw"), EVENT_COLUMNS.index("raw_codec")



STORE_CHUNK = 5_000  # rows inserted per executemany: a streamed file's rows are never all in memory
CONFLICT_REASON = "eventID already stored with different content; the first copy is kept"


def save_parsed_file(
    db: sqlite_utils.Database, ref: FileRef, parsed: ParsedLog, sync_run_id: int | None, refresh_derived: bool = True,
    early: early_events.EarlyMessage | None = None, savepoint: bool = True,
) -> FileOutcome:
    """Store a parsed log file and its `files` row in one transaction; replaying it adds nothing. A caller that
    groups many files per transaction passes refresh_derived=False and calls `commit_batch` at the end; with
    savepoint=False it rolls back its whole transaction if this raises, instead of this file alone (the savepoint
    made SQLite copy every page the file touched aside first: a third of the writer's inserting). The rows may be
    an iterator (a streamed file): they are consumed a chunk at a time. With `early`, the rows are an EventBridge
    message's early events: an eventID already stored is a duplicate, never a conflict; without it, a log file's
    record replaces the early event of its eventID."""
    conn = db.conn
    with write_transaction(db, savepoint):  # it reads the file's id before writing
        file_id = file_id_for(conn, ref)
        new_events, not_inserted, confirmed, conflicts = _insert_rows(conn, parsed, file_id, early)
        rejects = list(parsed.rejects) + [(position, event_id, CONFLICT_REASON) for position, event_id in conflicts]
        outcome = FileOutcome(
            ref,
            "ok",
            records=parsed.records,
            new_events=new_events,
            duplicates=not_inserted - len(conflicts),
            conflicts=len(conflicts),
            rejected=len(rejects),
            confirmed=confirmed,
        )
        save_file_row(db, ref, "ok", sync_run_id, id=file_id, records=parsed.records, new_events=new_events,
                      duplicates=outcome.duplicates, rejected=outcome.rejected,
                      oldest_event_time=parsed.oldest_event_time, newest_event_time=parsed.newest_event_time,
                      error=f"{outcome.rejected} record(s) refused" if rejects else None, sha256=parsed.sha256,
                      trailing_data=int(parsed.trailing_data))
        if rejects:  # after their file's row, which they reference
            conn.executemany(
                "INSERT INTO rejected_records (file_id, position, event_id, reason) VALUES (?, ?, ?, ?)",
                [(file_id, position, event_id, reason) for position, event_id, reason in rejects],
            )
        if refresh_derived and (new_events or confirmed):
            derived.refresh(conn)
    return outcome


def _insert_rows(conn: sqlite3.Connection, parsed: ParsedLog, file_id: int, early: early_events.EarlyMessage | None
                 ) -> tuple[int, int, int, list[tuple[int, str]]]:
    """Insert a file's rows a chunk at a time: (inserted, not inserted, early events confirmed, conflicts)."""
    new_events = not_inserted = confirmed = 0
    conflicts: list[tuple[int, str]] = []
    rows = iter(parsed.rows)
    while chunk := list(islice(rows, STORE_CHUNK)):
        first = new_events + not_inserted + confirmed
        positions = parsed.positions[first:first + len(chunk)]
        if early is None:
            chunk, positions, replaced = early_events.confirm_early(conn, chunk, positions, file_id)
            confirmed += replaced
        before = conn.total_changes
        conn.executemany(_INSERT_EVENTS, [row + (file_id,) for row in chunk])
        inserted = conn.total_changes - before
        if early is not None:
            early_events.save_early_rows(conn, chunk, file_id, early)
        elif inserted < len(chunk):
            conflicts += _conflicting_rows(conn, chunk, positions)
        new_events, not_inserted = new_events + inserted, not_inserted + len(chunk) - inserted
    return new_events, not_inserted, confirmed, conflicts


def commit_batch(db: sqlite_utils.Database) -> None:
    """Commit files stored with refresh_derived=False, folding their events into the derived data first."""
    if db.conn.in_transaction:
        derived.refresh(db.conn)
        db.execute("COMMIT")


def _conflicting_rows(conn: sqlite3.Connection, rows: list[tuple], positions: list[int]) -> list[tuple[int, str]]:
    """(position, eventID) of rows not inserted because their eventID is stored with other content (in an earlier
    file or earlier in this one), not as a mere duplicate delivery."""
    stored = {}
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        placeholders = ", ".join("?" for _ in chunk)
        stored.update(
            conn.execute(f"SELECT event_id, record_hash FROM events WHERE event_id IN ({placeholders})", chunk)
        )
    return [
        (position, row[0])
        for position, row in zip(positions, rows)
        if stored.get(row[0]) != row[_HASH_INDEX] and not _same_record(conn, row)
    ]


def _same_record(conn: sqlite3.Connection, row: tuple) -> bool:
    """Whether a row holds the stored record of its eventID after all (a hash from an older cache version differs)."""
    stored = load_record(conn, row[0])
    dictionary = conn.execute("SELECT dictionary FROM codecs WHERE id = ?", [row[_CODEC_INDEX]]).fetchone()
    blob = codec.decompress(row[_RAW_INDEX], dictionary[0] if dictionary else None)
    return stored == restore_record(blob, dict(zip(EVENT_COLUMNS, row)))


def load_record(conn: sqlite3.Connection, event_id: str) -> dict | None:
    """The original CloudTrail record of one stored event, rebuilt losslessly."""
    columns = ", ".join(f"e.{column}" for column in RESTORE_COLUMNS)
    row = conn.execute(
        f"SELECT e.raw, c.dictionary, {columns} FROM events e LEFT JOIN codecs c ON c.id = e.raw_codec "
        "WHERE e.event_id = ?",
        [event_id],
    ).fetchone()
    if row is None:
        return None
    raw_record = codec.decompress(row[0], row[1])
    return restore_record(raw_record, dict(zip(RESTORE_COLUMNS, row[2:])))


def discard_demo_data(db: sqlite_utils.Database) -> int:
    """Empty a cache that holds only demo events, with everything derived from them (files, runs, fired alerts),
    keeping what the user made (alert rules, saved searches, the audit log); returns the events removed."""
    with db.atomic():
        removed = db.execute("DELETE FROM events").rowcount
        for table in ("rejected_records", "files", "sync_runs", "fired_alert_events", "fired_alerts"):
            db.execute(f"DELETE FROM {table}")
        # Emptied, `events` hands out rowids from 1 again: rule and derived-data watermarks must start over with it.
        db.execute("UPDATE alert_watermarks SET last_rowid = 0")
        sigma_state.reset_counts(db)
        derived.clear(db.conn)
        bump_generation(db)
    return removed
