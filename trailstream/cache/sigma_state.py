"""Sigma rule state in the cache: the loaded catalog (what each rule is and the SQL it runs), what the user decided
(enabled, exceptions) and what evaluation counted (watermark, matches). Read functions take `conn`, writes `db`."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from trailstream.cache.transaction import write_transaction
from trailstream.timefmt import utc_now

EXCEPTION_FIELDS = {"principal": "Principal (name or ARN)", "account_id": "Account ID", "event_id": "Event ID"}
CATALOG_COLUMNS = ("rule_id", "title", "path", "status", "reason", "level", "author", "link", "description", "kind",
                   "query", "alert")

SCHEMA = (
    """CREATE TABLE sigma_rules (
        rule_id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('converted', 'unsupported', 'failed')),
        reason TEXT NOT NULL DEFAULT '',
        level TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT '',
        link TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'rule' CHECK (kind IN ('rule', 'correlation')),
        query TEXT,
        alert INTEGER NOT NULL DEFAULT 0,
        loaded_at TEXT NOT NULL
    )""",
    """CREATE TABLE sigma_rule_state (
        rule_id TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL DEFAULT 1,
        last_rowid INTEGER NOT NULL DEFAULT 0,
        matches INTEGER NOT NULL DEFAULT 0,
        last_match_at TEXT,
        evaluated_at TEXT,
        updated_at TEXT
    )""",
    """CREATE TABLE sigma_exceptions (
        id INTEGER PRIMARY KEY,
        rule_id TEXT NOT NULL,
        field TEXT NOT NULL CHECK (field IN ('principal', 'account_id', 'event_id')),
        value TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (rule_id, field, value)
    )""",
    # Every event each rule matched (before exceptions), so findings over any period read matches, not records.
    """CREATE TABLE sigma_matches (
        rule_id TEXT NOT NULL,
        event_rowid INTEGER NOT NULL,
        PRIMARY KEY (rule_id, event_rowid)
    ) WITHOUT ROWID""",
    # Sigma compares case-insensitively: these let `event_name COLLATE NOCASE = ...` seek instead of scan.
    "CREATE INDEX events_name_nocase ON events (event_name COLLATE NOCASE)",
)


def has_tables(conn: sqlite3.Connection) -> bool:
    """False for a cache made before the Sigma migration (a read-only page may meet one)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sigma_rules'").fetchone()
    return found is not None


def save_catalog(db: sqlite_utils.Database, rows: list[dict]) -> None:
    """Replace the loaded catalog with `rows` (CATALOG_COLUMNS each); state and exceptions are kept by rule ID, but a
    rule whose query changed (an edited file) starts over: its matches and watermark belonged to the old text."""
    now = utc_now()
    with write_transaction(db):
        before = dict(db.execute("SELECT rule_id, query FROM sigma_rules").fetchall())
        changed = [(row["rule_id"],) for row in rows
                   if row["rule_id"] in before and before[row["rule_id"]] != row["query"]]
        db.conn.executemany("DELETE FROM sigma_matches WHERE rule_id = ?", changed)
        db.conn.executemany("UPDATE sigma_rule_state SET last_rowid = 0, matches = 0, last_match_at = NULL "
                            "WHERE rule_id = ?", changed)
        db.execute("DELETE FROM sigma_rules")
        db.conn.executemany(
            f"INSERT INTO sigma_rules ({', '.join(CATALOG_COLUMNS)}, loaded_at) "
            f"VALUES ({', '.join('?' for _ in CATALOG_COLUMNS)}, ?)",
            [[row.get(name) for name in CATALOG_COLUMNS] + [now] for row in rows],
        )
        db.conn.executemany("INSERT OR IGNORE INTO sigma_rule_state (rule_id, updated_at) VALUES (?, ?)",
                            [(row["rule_id"], now) for row in rows])


def query_catalog(conn: sqlite3.Connection, runnable_only: bool = False) -> list[dict]:
    """Every loaded rule with its state (enabled, matches, last match, watermark), in title order."""
    if not has_tables(conn):
        return []
    where = "WHERE r.status = 'converted' AND COALESCE(s.enabled, 1) = 1" if runnable_only else ""
    cursor = conn.execute(
        f"SELECT r.*, COALESCE(s.enabled, 1) AS enabled, COALESCE(s.last_rowid, 0) AS last_rowid, "
        f"COALESCE(s.matches, 0) AS matches, s.last_match_at, s.evaluated_at "
        f"FROM sigma_rules r LEFT JOIN sigma_rule_state s USING (rule_id) {where} ORDER BY r.title, r.rule_id"
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def query_exceptions(conn: sqlite3.Connection, rule_id: str | None = None) -> list[dict]:
    """Exceptions of one rule (or all), as {id, rule_id, field, value}."""
    if not has_tables(conn):
        return []
    sql = "SELECT id, rule_id, field, value FROM sigma_exceptions"
    rows = conn.execute(sql + (" WHERE rule_id = ? ORDER BY id" if rule_id else " ORDER BY id"),
                        [rule_id] if rule_id else []).fetchall()
    return [dict(zip(("id", "rule_id", "field", "value"), row)) for row in rows]


def mark_enabled(db: sqlite_utils.Database, rule_id: str, enabled: bool) -> None:
    """Turn a rule on or off; a rule turned back on catches up, from its watermark, at the next run."""
    with db.atomic():
        db.execute("INSERT OR IGNORE INTO sigma_rule_state (rule_id) VALUES (?)", [rule_id])
        db.execute("UPDATE sigma_rule_state SET enabled = ?, updated_at = ? WHERE rule_id = ?",
                   [int(enabled), utc_now(), rule_id])


def save_exception(db: sqlite_utils.Database, rule_id: str, field: str, value: str) -> None:
    """Never report this rule for this principal, account or event again."""
    if field not in EXCEPTION_FIELDS:
        raise ValueError(f"an exception is by {', '.join(EXCEPTION_FIELDS)}, not {field!r}")
    if not value.strip():
        raise ValueError("an exception needs a value")
    with db.atomic():
        db.execute("INSERT OR IGNORE INTO sigma_exceptions (rule_id, field, value, created_at) VALUES (?, ?, ?, ?)",
                   [rule_id, field, value.strip(), utc_now()])


def delete_exception(db: sqlite_utils.Database, exception_id: int) -> None:
    with db.atomic():
        db.execute("DELETE FROM sigma_exceptions WHERE id = ?", [exception_id])


def stage_matches(db: sqlite_utils.Database, select_sql: str, params: list) -> str:
    """Keep what a SELECT of (event_rowid, event_time, m0, m1, ...) finds (mI: rule I matched) in a new temporary
    table, which locks nothing; returns its name, for save_staged_matches."""
    existing = db.execute("SELECT count(*) FROM temp.sqlite_master WHERE name LIKE 'sigma_staged_%'").fetchone()[0]
    name = f"sigma_staged_{existing}"
    db.execute(f"CREATE TEMP TABLE {name} AS {select_sql}", params)
    return name


def save_staged_matches(db: sqlite_utils.Database, staged: dict[str, list[str]],
                        counts: dict[str, tuple[int, str | None]], top: int) -> dict[str, tuple[int, str | None]]:
    """Move staged matches (table -> the rule of each flag column) into sigma_matches in SQL, and every evaluated
    rule's counts (these and `counts`) and watermark, in one transaction; returns the staged rules' counts."""
    found = {}
    with write_transaction(db):
        for name, rule_ids in staged.items():
            flags = [f"m{index}" for index in range(len(rule_ids))]
            present = db.execute(f"SELECT {', '.join(f'max({flag})' for flag in flags)} FROM temp.{name}").fetchone()
            for flag, rule_id, any_match in zip(flags, rule_ids, present):
                found[rule_id] = (0, None)
                if any_match:
                    db.execute(f"INSERT OR IGNORE INTO sigma_matches (rule_id, event_rowid) "
                               f"SELECT ?, event_rowid FROM temp.{name} WHERE {flag}", [rule_id])
                    found[rule_id] = tuple(db.execute(f"SELECT count(*), max(event_time) FROM temp.{name} "
                                                      f"WHERE {flag}").fetchone())
        save_counts(db, counts | found, top)
    for name in staged:
        db.execute(f"DROP TABLE temp.{name}")
    return found


def save_counts(db: sqlite_utils.Database, counts: dict[str, tuple[int, str | None]], top: int) -> None:
    """Each evaluated rule's new match count and newest match time, watermark moved to `top`."""
    now = utc_now()
    with db.atomic():
        db.conn.executemany(
            "INSERT OR IGNORE INTO sigma_rule_state (rule_id) VALUES (?)", [(rule_id,) for rule_id in counts]
        )
        db.conn.executemany(
            "UPDATE sigma_rule_state SET matches = matches + ?, last_rowid = ?, evaluated_at = ?, "
            "last_match_at = CASE WHEN ? IS NULL THEN last_match_at "
            "ELSE max(COALESCE(last_match_at, ''), ?) END WHERE rule_id = ?",
            [(matches, top, now, newest, newest, rule_id) for rule_id, (matches, newest) in counts.items()],
        )


def reset_counts(db: sqlite_utils.Database) -> None:
    """Start every rule's count over (the events were emptied, so rowids start again at 1)."""
    with db.atomic():
        db.execute("DELETE FROM sigma_matches")
        db.execute("UPDATE sigma_rule_state SET matches = 0, last_rowid = 0, last_match_at = NULL")
