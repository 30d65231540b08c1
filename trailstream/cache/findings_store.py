"""Stored findings: what every detector found over the whole cache at the post-sync step, the travel routes per day,
and what they were computed from (events up to a rowid, a generation, a settings fingerprint), so pages and `findings`
read them instead of running the detectors on every render. Read functions take `conn`, writes `db`."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from trailstream.timefmt import utc_now

FINDING_COLUMNS = ("type", "severity", "time", "first_time", "principal", "account_id", "summary", "event_ids",
                   "details")
ROUTE_COLUMNS = ("day", "from_place", "to_place", "from_latitude", "from_longitude", "to_latitude", "to_longitude",
                 "hops", "principals", "fastest_kmh", "last_time")

SCHEMA = (
    # One row per finding in detect_findings' order (position): event_ids and details are JSON text.
    """CREATE TABLE stored_findings (
        position INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        time TEXT NOT NULL,
        first_time TEXT NOT NULL,
        principal TEXT,
        account_id TEXT,
        summary TEXT NOT NULL,
        event_ids TEXT NOT NULL,
        details TEXT NOT NULL
    )""",
    "CREATE INDEX stored_findings_time ON stored_findings (time)",
    # Impossible-travel hops counted by route and UTC day of arrival: what the Sign-ins map draws for a period.
    """CREATE TABLE stored_travel_routes (
        day TEXT NOT NULL,
        from_place TEXT,
        to_place TEXT,
        from_latitude REAL,
        from_longitude REAL,
        to_latitude REAL,
        to_longitude REAL,
        hops INTEGER NOT NULL,
        principals INTEGER NOT NULL,
        fastest_kmh REAL,
        last_time TEXT
    )""",
    "CREATE INDEX stored_travel_routes_day ON stored_travel_routes (day)",
    # What the stored rows were computed from: one row, absent until the first post-sync step stores findings.
    """CREATE TABLE findings_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        fingerprint TEXT NOT NULL,
        last_rowid INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        computed_at TEXT NOT NULL,
        seconds REAL NOT NULL,
        findings INTEGER NOT NULL
    )""",
)


def has_tables(conn: sqlite3.Connection) -> bool:
    """False for a cache made before findings were stored (a read-only page may meet one)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'findings_state'").fetchone()
    return found is not None


def query_data_version(conn: sqlite3.Connection) -> tuple[int, int]:
    """(newest event rowid, generation): the stored findings are current only while both are unchanged."""
    top = conn.execute("SELECT COALESCE(max(rowid), 0) FROM events").fetchone()[0]
    generation = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return top, int(generation[0]) if generation and generation[0] else 0


def query_state(conn: sqlite3.Connection) -> dict | None:
    """What the stored findings were computed from, or None when none were ever stored (or the table is absent)."""
    if not has_tables(conn):
        return None
    cursor = conn.execute("SELECT fingerprint, last_rowid, generation, computed_at, seconds, findings "
                          "FROM findings_state WHERE id = 1")
    row = cursor.fetchone()
    return dict(zip([column[0] for column in cursor.description], row)) if row else None


def query_findings(conn: sqlite3.Connection, start: str | None, end: str | None,
                   accounts: tuple[str, ...] = ()) -> list[dict]:
    """Stored findings overlapping [start, end) (their last event at or after start, their first before end), in
    stored order; only the given accounts' when some are given."""
    clauses, params = [], []
    if start:
        clauses.append("time >= ?")
        params.append(start)
    if end:
        clauses.append("first_time < ?")
        params.append(end)
    if accounts:
        clauses.append(f"account_id IN ({', '.join('?' for _ in accounts)})")
        params.extend(accounts)
    cursor = conn.execute(f"SELECT {', '.join(FINDING_COLUMNS)} FROM stored_findings "
                          f"WHERE {' AND '.join(clauses) or '1'} ORDER BY position", params)
    return [dict(zip(FINDING_COLUMNS, row)) for row in cursor]


def query_routes(conn: sqlite3.Connection, first_day: str | None, end: str | None) -> list[tuple]:
    """Stored routes of the days from first_day to the day of `end`, added up per route, busiest first."""
    clauses, params = [], []
    if first_day:
        clauses.append("day >= ?")
        params.append(first_day)
    if end:
        clauses.append("day <= ?")
        params.append(end[:10])
    sql = (
        "SELECT from_place, to_place, max(from_latitude), max(from_longitude), max(to_latitude), max(to_longitude), "
        "sum(hops), sum(principals), max(fastest_kmh), max(last_time) FROM stored_travel_routes "
        f"WHERE {' AND '.join(clauses) or '1'} GROUP BY from_place, to_place "
        "ORDER BY sum(hops) DESC, max(last_time) DESC, from_place, to_place"
    )
    return conn.execute(sql, params).fetchall()


def save_findings(db: sqlite_utils.Database, findings: list[dict], routes: list[dict], state: dict) -> None:
    """Replace the stored findings and routes with these, and record what they were computed from, in one
    transaction: a reader sees the old set or the new one, never half of each."""
    with db.atomic():
        db.execute("DELETE FROM stored_findings")
        db.execute("DELETE FROM stored_travel_routes")
        db.conn.executemany(
            f"INSERT INTO stored_findings ({', '.join(FINDING_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in FINDING_COLUMNS)})",
            [[row[name] for name in FINDING_COLUMNS] for row in findings])
        db.conn.executemany(
            f"INSERT INTO stored_travel_routes ({', '.join(ROUTE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in ROUTE_COLUMNS)})",
            [[row[name] for name in ROUTE_COLUMNS] for row in routes])
        db.execute(
            "INSERT OR REPLACE INTO findings_state (id, fingerprint, last_rowid, generation, computed_at, seconds, "
            "findings) VALUES (1, ?, ?, ?, ?, ?, ?)",
            [state["fingerprint"], state["last_rowid"], state["generation"], utc_now(), state["seconds"],
             len(findings)])
