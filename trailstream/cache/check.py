"""Is the cache sound? SQLite's own integrity check, then the derived data (rollups, word index) against `events`,
each problem said as a sentence; and the list of stored files a rebuild re-reads from their sources.

Read functions take `conn` (read-only is enough); `save_files_to_reread` takes the new cache's `db`.
"""

from __future__ import annotations

import os
import sqlite3

import sqlite_utils

from trailstream.cache import bookkeeping, derived, rollups, store, wordindex
from trailstream.cache.bookkeeping import FileRef
from trailstream.cache.transaction import write_transaction

MAX_LISTED = 10  # problems of one kind listed one by one; the rest are counted
REBUILD_HINT = "`python -m trailstream rebuild --to NEW.db` re-reads every stored file into a fresh cache"
GRAIN_WORDS = {"hour": "hourly", "day": "daily"}
# Files a rebuild cannot fetch again, and why (their events came from no file).
# What people made in the app: a rebuild carries these over (files give back only the events).
USER_TABLES = ("saved_searches", "alert_rules", "sigma_rule_state", "sigma_exceptions", "audit_log")
NOT_REREADABLE = {
    "demo": "generated demo data, not read from a file: run `python -m trailstream demo` again",
    "lookup": "read from Event history (LookupEvents), not a file: run `python -m trailstream lookup` again",
    "refused": "refused when first offered (outside the allowed buckets), so never stored",
}


def describe_unreadable(path: str | os.PathLike, exc: Exception) -> str:
    """Why a cache cannot be opened, and what to do, for a path that made SQLite fail."""
    if "database is locked" in str(exc) or " is busy: " in str(exc):  # a writer held it too long: nothing is wrong
        return f"the cache {path} is busy: another process has been writing to it too long; try again when it is done"
    if os.path.isdir(path):
        what = "is a folder, not a cache file"
    elif "not a database" in str(exc):
        what = "is not a SQLite database (damaged, or another kind of file)"
    elif "malformed" in str(exc) or "no such table" in str(exc):
        what = f"is damaged or not a TrailStream cache ({exc})"
    else:
        what = f"cannot be read ({exc})"
    return (f"the cache {path} {what}. Move it away (or pass another --db) and sync again to build a new one; "
            f"if `python -m trailstream check` can still read it, {REBUILD_HINT}.")


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """SQLite's PRAGMA integrity_check, as sentences (none when the file is sound)."""
    lines = [line for row in conn.execute("PRAGMA integrity_check").fetchall() for line in row[0].splitlines()]
    found = [line for line in lines if line != "ok" and not line.startswith("***")]
    if not found:
        return []
    more = len(found) - MAX_LISTED
    listed = "; ".join(found[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
    return [f"SQLite's integrity check found {len(found)} problem(s) in the file: {listed}. The file is damaged: "
            f"{REBUILD_HINT}."]


def reference_problems(conn: sqlite3.Connection) -> list[str]:
    """Rows pointing at rows that are gone: foreign keys SQLite declares, and events whose file row is missing (a
    rebuild re-reads files, so those events would not come back)."""
    problems = [
        f"{count} row(s) of {table} point at {parent} rows that do not exist (PRAGMA foreign_key_check)."
        for table, parent, count in conn.execute(
            "SELECT \"table\", parent, count(*) FROM pragma_foreign_key_check GROUP BY 1, 2 ORDER BY 1, 2")
    ]
    orphans = conn.execute("SELECT count(*) FROM events WHERE file_id IS NOT NULL AND file_id NOT IN "
                           "(SELECT id FROM files)").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} event(s) came from files the cache no longer lists: they are kept, but a rebuild "
                        "cannot re-read them, so keep this cache until they are in a new one.")
    return problems


def _count_expected(conn: sqlite3.Connection, rollup: rollups.Rollup, upto: int) -> None:
    """What the rollup's hourly and daily tables must hold, counted afresh from the events they include (rowid <=
    upto) into temp.check_hour and temp.check_day: one pass over `events` per rollup."""
    length, suffix, _ = rollups.GRAINS["hour"]
    dimensions = ", ".join(
        rollups.actor_sql() if d == "actor" else "coalesce(read_only, 0)" if d == "read_only" else d
        for d in rollup.dimensions
    )
    positions = ", ".join(str(n) for n in range(1, len(rollup.dimensions) + 2))
    seen = ", min(event_time), max(event_time)" if rollup.with_seen else ""
    conn.execute("DROP TABLE IF EXISTS temp.check_hour")
    conn.execute(f"CREATE TEMP TABLE check_hour AS SELECT substr(event_time, 1, {length}) || '{suffix}', {dimensions}, "
                 f"count(*), count(nullif(error_code, '')){seen} FROM events WHERE rowid <= ? GROUP BY {positions}",
                 [upto])
    length, suffix, _ = rollups.GRAINS["day"]
    names = [row[1] for row in conn.execute("PRAGMA temp.table_info(check_hour)")]
    keys = ", ".join(f'"{name}"' for name in names[1:len(rollup.dimensions) + 1])
    sums = ", ".join(f'{agg}("{name}")' for agg, name in
                     zip(("sum", "sum", "min", "max"), names[len(rollup.dimensions) + 1:]))
    conn.execute("DROP TABLE IF EXISTS temp.check_day")
    conn.execute(f'CREATE TEMP TABLE check_day AS SELECT substr("{names[0]}", 1, {length}) || \'{suffix}\', {keys}, '
                 f"{sums} FROM temp.check_hour GROUP BY {positions}")


def _rollup_problem(conn: sqlite3.Connection, rollup: rollups.Rollup, grain: str) -> str | None:
    """The stored table against temp.check_<grain>, row for row."""
    table, expected = rollup.table(grain), f"temp.check_{grain}"
    extra, missing, stored, wanted = conn.execute(
        f"SELECT (SELECT count(*) FROM (SELECT * FROM {table} EXCEPT SELECT * FROM {expected})), "
        f"(SELECT count(*) FROM (SELECT * FROM {expected} EXCEPT SELECT * FROM {table})), "
        f"(SELECT count(*) FROM {table}), (SELECT count(*) FROM {expected})").fetchone()
    if not extra and not missing and stored == wanted:
        return None
    what = f"{GRAIN_WORDS[grain]} counts by {', '.join(rollup.dimensions)}"
    return (f"The rollup {table} ({what}) disagrees with `events`: {extra} of its {stored} rows differ from a fresh "
            f"count over the events, and {missing} of the {wanted} counted rows are not in it. Counts on the pages "
            f"are wrong until it is rebuilt: {REBUILD_HINT}.")


def _rollup_problems(conn: sqlite3.Connection, upto: int) -> list[str | None]:
    problems = []
    for rollup in rollups.ROLLUPS:
        _count_expected(conn, rollup, upto)
        problems += [_rollup_problem(conn, rollup, grain) for grain in rollups.GRAINS]
    conn.execute("DROP TABLE IF EXISTS temp.check_hour")
    conn.execute("DROP TABLE IF EXISTS temp.check_day")
    return problems


def _word_index_problem(conn: sqlite3.Connection, upto: int) -> str | None:
    """Every event must be found by its event name, and the index must find no event that is not stored."""
    unfound, phantom = 0, 0
    names = [row[0] for row in conn.execute("SELECT DISTINCT event_name FROM events WHERE rowid <= ?", [upto])]
    for name in names:
        query = wordindex.match_query(name or "")
        if query is None:
            continue
        unfound += conn.execute(
            f"SELECT count(*) FROM events WHERE rowid <= ? AND event_name = ? AND rowid NOT IN "
            f"(SELECT rowid FROM {wordindex.TABLE} WHERE {wordindex.TABLE} MATCH ?)", [upto, name, query]).fetchone()[0]
        phantom += conn.execute(
            f"SELECT count(*) FROM {wordindex.TABLE} AS w WHERE {wordindex.TABLE} MATCH ? AND NOT EXISTS "
            f"(SELECT 1 FROM events AS e WHERE e.rowid = w.rowid)", [query]).fetchone()[0]
    if not unfound and not phantom:
        return None
    return (f"The word index ({wordindex.TABLE}) disagrees with `events`: {unfound} event(s) are not found by their "
            f"own event name and it points at {phantom} event(s) that are not stored. Free-text search misses or "
            f"invents results until it is rebuilt: {REBUILD_HINT}.")


def derived_problems(conn: sqlite3.Connection) -> list[str]:
    """The rollups and the word index compared with a fresh count over the events they say they include."""
    upto = bookkeeping.read_meta(conn, derived.WATERMARK_KEY)
    if upto is None:
        return ["The derived data (rollups and word index) has no watermark: the cache predates it or was altered. "
                f"{REBUILD_HINT}."]
    upto = int(upto)
    problems = _rollup_problems(conn, upto)
    problems.append(_word_index_problem(conn, upto))
    newest = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
    if upto > newest:
        problems.append(f"The derived data says it includes events up to row {upto}, but the newest event is row "
                        f"{newest}: events were removed behind its back. {REBUILD_HINT}.")
    return [problem for problem in problems if problem]


def index_problems(conn: sqlite3.Connection) -> list[str]:
    """Indexes of `events` missing (a first import killed before building them) or unlike what the migrations create."""
    problems = []
    if missing := store.missing_event_indexes(conn):
        problems.append(f"{len(missing)} index(es) of `events` are missing ({', '.join(missing)}): a first import was "
                        "probably stopped before building them. Nothing stored is lost and pages still work, more "
                        "slowly; the next sync, import or command that opens the cache for writing builds them.")
    if differing := store.differing_event_indexes(conn):
        problems.append(f"{len(differing)} index(es) of `events` differ from what the schema defines "
                        f"({', '.join(differing)}): the file was altered. Pages may read slowly; {REBUILD_HINT}.")
    return problems


def check_problems(conn: sqlite3.Connection) -> list[str]:
    """Integrity first; the derived data only in a file SQLite finds sound (a damaged one may not answer). A file
    that is no database at all raises sqlite3.DatabaseError (see describe_unreadable)."""
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    try:
        problems = integrity_problems(conn)
    except sqlite3.DatabaseError as exc:
        problems = [f"SQLite stopped its integrity check: {exc}. The file is damaged: {REBUILD_HINT}."]
    if problems:
        return problems
    try:
        return reference_problems(conn) + index_problems(conn) + derived_problems(conn)
    except sqlite3.DatabaseError as exc:
        return [f"The cache could not be compared with its `events` ({exc}). {REBUILD_HINT}."]


def query_stored_files(conn: sqlite3.Connection) -> tuple[list[FileRef], list[tuple[str, str]]]:
    """Every file the cache recorded: those a rebuild can fetch again (a local path or an S3 key), and the others
    as (name, why not)."""
    rows = conn.execute("SELECT source, bucket, key FROM files ORDER BY id").fetchall()
    rereadable, others = [], []
    for source, bucket, key in rows:
        ref = FileRef(source, bucket or "", key)
        if source in NOT_REREADABLE:
            others.append((ref.name, NOT_REREADABLE[source]))
        elif bucket or source == "local":
            rereadable.append(ref)
        else:
            others.append((ref.name, f"its source ({source}) names no file to fetch again"))
    return rereadable, others


def save_files_to_reread(db: sqlite_utils.Database, refs: list[FileRef]) -> None:
    """Record the files in the new cache as not yet read, so the retry path fetches each from its source."""
    with db.atomic():
        for ref in refs:
            bookkeeping.mark_file(db, ref, "failed", "not yet re-read by rebuild", None)


def save_user_tables(db: sqlite_utils.Database, old: sqlite3.Connection) -> list[tuple[str, str]]:
    """Copy what people made (saved searches, alert rules, rule states, the audit log) from the old cache into the
    new one, table by table; returns (table, why) for each that could not be copied."""
    problems = []
    for table in USER_TABLES:
        if table not in db.table_names():
            continue
        try:
            columns = [c.name for c in db[table].columns]
            cursor = old.execute(f"SELECT * FROM {table}")
            kept = [i for i, d in enumerate(cursor.description) if d[0] in columns]
            names = [cursor.description[i][0] for i in kept]
            rows = [dict(zip(names, (row[i] for i in kept))) for row in cursor.fetchall()]
            with write_transaction(db):  # insert_all reads the table's columns before it writes
                db[table].insert_all(rows, replace=True)
        except sqlite3.Error as exc:
            problems.append((f"table {table}", f"could not be copied ({exc})"))
    return problems
