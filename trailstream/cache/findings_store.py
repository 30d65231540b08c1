"""Stored findings: what every detector found over the whole cache at the post-sync step, the travel routes per day,
and what they were computed from (events up to a rowid, a generation, a settings fingerprint), so pages and `findings`
read them instead of running the detectors on every render. Read functions take `conn`, writes `db`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import orjson
import sqlite_utils

from trailstream import catalog
from trailstream.cache.frames import placeholders
from trailstream.timefmt import utc_now

FINDING_COLUMNS = ("type", "severity", "time", "first_time", "principal", "account_id", "summary", "event_ids",
                   "details")
PLACE_COLUMNS = ("source_ip", "country_code", "country_name", "asn", "city", "place", "latitude", "longitude",
                 "precision")
ROUTE_COLUMNS = ("day", "from_place", "to_place", "from_latitude", "from_longitude", "to_latitude", "to_longitude",
                 "hops", "principals", "fastest_kmh", "last_time")
PRINCIPAL_ROUTE_COLUMNS = ("day", "account_id", "principal", "from_place", "to_place", "from_latitude",
                           "from_longitude", "to_latitude", "to_longitude", "hops", "fastest_kmh", "last_time")
PRINCIPAL_ROUTE_KEY = ("day", "from_place", "to_place", "account_id", "principal")  # stored_principal_routes' key

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
    # Where each sign-in address is (NULLs for one that is no place), with the city database used: the Sign-ins page
    # reads these instead of loading geolocation data on every render.
    """CREATE TABLE stored_places (
        source_ip TEXT NOT NULL,
        city_database TEXT NOT NULL,
        country_code TEXT,
        country_name TEXT,
        asn TEXT,
        city TEXT,
        place TEXT,
        latitude REAL,
        longitude REAL,
        precision TEXT,
        PRIMARY KEY (source_ip, city_database)
    ) WITHOUT ROWID""",
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


# m016: each principal's hops per route and day beside the day's totals (what pages read), so a sync adds one
# principal's new hops (or replaces its rows) alone and adds up only the days it touched; the stored sets are emptied,
# so the next post-sync step computes them again. Recreating the day table also undoes an earlier draft of m016.
PRINCIPAL_ROUTES = (
    "DELETE FROM stored_findings",
    "DELETE FROM findings_state",
    "DROP TABLE stored_travel_routes",
    *(statement for statement in SCHEMA if "stored_travel_routes" in statement),
    """CREATE TABLE stored_principal_routes (
        day TEXT NOT NULL,
        account_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        from_place TEXT NOT NULL,
        to_place TEXT NOT NULL,
        from_latitude REAL,
        from_longitude REAL,
        to_latitude REAL,
        to_longitude REAL,
        hops INTEGER NOT NULL,
        fastest_kmh REAL,
        last_time TEXT,
        PRIMARY KEY (day, from_place, to_place, account_id, principal)
    ) WITHOUT ROWID""",
)
_ROUTE_UPSERT = (
    f"INSERT INTO stored_principal_routes ({', '.join(PRINCIPAL_ROUTE_COLUMNS)}) "
    f"VALUES ({placeholders(PRINCIPAL_ROUTE_COLUMNS)}) "
    "ON CONFLICT (day, from_place, to_place, account_id, principal) DO UPDATE SET hops = hops + excluded.hops, "
    "fastest_kmh = CASE WHEN fastest_kmh IS NULL OR excluded.fastest_kmh > fastest_kmh THEN excluded.fastest_kmh "
    "ELSE fastest_kmh END, last_time = max(last_time, excluded.last_time)"
)
_DAY_TOTALS = (
    f"INSERT INTO stored_travel_routes ({', '.join(ROUTE_COLUMNS)}) SELECT day, from_place, to_place, "
    "max(from_latitude), max(from_longitude), max(to_latitude), max(to_longitude), sum(hops), count(*), "
    "max(fastest_kmh), max(last_time) FROM stored_principal_routes WHERE day >= ? GROUP BY day, from_place, to_place"
)


def _add_up_days(db: sqlite_utils.Database, first_day: str) -> None:
    """The day totals pages read, from the principals' rows, for the days from first_day on."""
    db.execute("DELETE FROM stored_travel_routes WHERE day >= ?", [first_day])
    db.execute(_DAY_TOTALS, [first_day])


DETECTION_PAGE_CACHE_KIB = 8192  # the detectors read each index once, in order: the OS's file cache serves them


@contextmanager
def small_page_cache(db: sqlite_utils.Database) -> Iterator[None]:
    """A small page cache while the detectors read each index once (64 MiB of such pages were a tenth of the step's
    peak memory on 1M events), the writer's own back for the store's writes."""
    before = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size=-{DETECTION_PAGE_CACHE_KIB}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size={int(before)}")


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


def _has_places(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stored_places'").fetchone()
    return found is not None


def query_places(conn: sqlite3.Connection, source_ips: list[str], city_database: str) -> list[tuple]:
    """Stored places (PLACE_COLUMNS) of these addresses, looked up with this city database ('' for none)."""
    if not source_ips or not _has_places(conn):
        return []
    sql = (f"SELECT {', '.join(PLACE_COLUMNS)} FROM stored_places WHERE city_database = ? "
           "AND source_ip IN (SELECT value FROM json_each(?))")
    return conn.execute(sql, [city_database, orjson.dumps(source_ips).decode()]).fetchall()


def query_unplaced_sign_in_addresses(conn: sqlite3.Connection, city_database: str) -> list[str]:
    """Addresses console sign-ins came from that have no stored place for this city database yet."""
    if not _has_places(conn):
        return []
    sql = ("SELECT DISTINCT e.source_ip FROM events e WHERE e.event_name = ? AND e.source_ip IS NOT NULL "
           "AND NOT EXISTS (SELECT 1 FROM stored_places p WHERE p.source_ip = e.source_ip AND p.city_database = ?)")
    return [row[0] for row in conn.execute(sql, [catalog.CONSOLE_LOGIN_EVENT, city_database])]


def save_places(db: sqlite_utils.Database, rows: list[dict], city_database: str) -> None:
    """Store the places of sign-in addresses (PLACE_COLUMNS each) for this city database."""
    if not _has_places(db.conn):
        return
    with db.atomic():
        db.conn.executemany(
            f"INSERT OR REPLACE INTO stored_places ({', '.join(PLACE_COLUMNS)}, city_database) "
            f"VALUES ({placeholders(PLACE_COLUMNS)}, ?)",
            [[row[name] for name in PLACE_COLUMNS] + [city_database] for row in rows])


def query_findings(conn: sqlite3.Connection, start: str | None, end: str | None,
                   accounts: tuple[str, ...] = ()) -> list[dict]:
    """Stored findings overlapping [start, end) (their last event at or after start, their first before end), in
    stored order (newest first); only the given accounts' when some are given."""
    clauses, params = [], []
    if start:
        clauses.append("time >= ?")
        params.append(start)
    if end:
        clauses.append("first_time < ?")
        params.append(end)
    if accounts:
        clauses.append(f"account_id IN ({placeholders(accounts)})")
        params.extend(accounts)
    cursor = conn.execute(f"SELECT {', '.join(FINDING_COLUMNS)} FROM stored_findings "
                          f"WHERE {' AND '.join(clauses) or '1'} ORDER BY time DESC, position", params)
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


def query_earliest_new_event(conn: sqlite3.Connection, after_rowid: int) -> str | None:
    """The earliest event time among the events stored after `after_rowid`."""
    return conn.execute("SELECT min(event_time) FROM events WHERE rowid > ?", [after_rowid]).fetchone()[0]


def query_first_time_since(conn: sqlite3.Connection, since: str, excluded: tuple[str, ...] = ()) -> str | None:
    """The earliest first event of the stored findings (not of the excluded types) whose last event is at or after
    `since`."""
    sql = f"SELECT min(first_time) FROM stored_findings WHERE time >= ? AND type NOT IN ({placeholders(excluded)})"
    return conn.execute(sql, [since, *excluded]).fetchone()[0]


def query_finding_spans(conn: sqlite3.Connection, finding_type: str, principals: list[str]) -> dict[str, list]:
    """principal -> (first_time, time) of each stored finding of this type (any account)."""
    sql = ("SELECT principal, first_time, time FROM stored_findings WHERE type = ? "
           "AND principal IN (SELECT value FROM json_each(?))")
    spans = {}
    for principal, first, last in conn.execute(sql, [finding_type, orjson.dumps(principals).decode()]):
        spans.setdefault(principal, []).append((first, last))
    return spans


def query_latest_findings(conn: sqlite3.Connection, finding_type: str, keys: list[tuple]) -> dict[tuple, dict]:
    """(account_id, principal) -> the newest stored finding of this type for it (time, event_ids, details), for the
    keys that have one."""
    wanted = set(keys)
    sql = ("SELECT account_id, principal, time, event_ids, details FROM stored_findings WHERE type = ? "
           "AND principal IN (SELECT value FROM json_each(?)) ORDER BY time, position")
    rows = conn.execute(sql, [finding_type, orjson.dumps(sorted({key[1] for key in keys})).decode()])
    return {(account, principal): {"time": time, "event_ids": event_ids, "details": details}
            for account, principal, time, event_ids, details in rows if (account, principal) in wanted}


def query_orphaned_findings(conn: sqlite3.Connection, before: str) -> int:
    """Stored findings ending before `before` whose first event is no longer in `events` (a discarded demo)."""
    sql = ("SELECT count(*) FROM stored_findings f WHERE f.time < ? AND NOT EXISTS "
           "(SELECT 1 FROM events e WHERE e.event_id = json_extract(f.event_ids, '$[0]'))")
    return conn.execute(sql, [before]).fetchone()[0]


def mark_generation(db: sqlite_utils.Database, generation: int) -> None:
    """The stored findings hold for this generation too (a sync that stored no event)."""
    with db.atomic():
        db.execute("UPDATE findings_state SET generation = ? WHERE id = 1", [generation])


def save_findings_update(db: sqlite_utils.Database, findings: list[dict], routes: Iterable[tuple], state: dict,
                         since: str, per_principal: tuple[str, ...], recomputed_types: tuple[str, ...],
                         recomputed: list[tuple], replaced: list[tuple], first_day: str | None) -> None:
    """A sync's change in one transaction: the findings of the windowed types ending at or after `since`, every
    finding of `recomputed_types`, the per-principal findings (and routes) of the `recomputed` (principal, since)
    from then on and the `replaced` (account_id, principal, time, type) findings give way to these; routes of the same
    key add up (route rows in PRINCIPAL_ROUTE_COLUMNS order), and the days' totals from first_day (the first
    touched) on are added up again."""
    with db.atomic():
        db.execute(f"DELETE FROM stored_findings WHERE time >= ? AND type NOT IN ({placeholders(per_principal)})",
                   [since, *per_principal])
        db.execute(f"DELETE FROM stored_findings WHERE type IN ({placeholders(recomputed_types)})",
                   list(recomputed_types))
        db.conn.executemany(f"DELETE FROM stored_findings WHERE type IN ({placeholders(per_principal)}) "
                            "AND principal = ? AND time >= ?", [[*per_principal, *pair] for pair in recomputed])
        first_days = {}  # one pass over the routes per first day, not one per principal (each reads the days on)
        for principal, since in recomputed:
            first_days.setdefault(since[:10], []).append(principal)
        db.conn.executemany("DELETE FROM stored_principal_routes WHERE day >= ? "
                            "AND principal IN (SELECT value FROM json_each(?))",
                            [[day, orjson.dumps(principals).decode()] for day, principals in first_days.items()])
        db.conn.executemany("DELETE FROM stored_findings WHERE COALESCE(account_id, '') = ? AND principal = ? "
                            "AND time = ? AND type = ?", replaced)
        db.conn.executemany(_ROUTE_UPSERT, routes)
        if first_day is not None:
            _add_up_days(db, first_day)
        _insert_findings(db, findings)
        _save_state(db, state)


def _insert_findings(db: sqlite_utils.Database, findings: list[dict]) -> None:
    db.conn.executemany(
        f"INSERT INTO stored_findings ({', '.join(FINDING_COLUMNS)}) VALUES ({placeholders(FINDING_COLUMNS)})",
        [[row[name] for name in FINDING_COLUMNS] for row in findings])


def _save_state(db: sqlite_utils.Database, state: dict) -> None:
    db.execute(
        "INSERT OR REPLACE INTO findings_state (id, fingerprint, last_rowid, generation, computed_at, seconds, "
        "findings) VALUES (1, ?, ?, ?, ?, ?, ?)",
        [state["fingerprint"], state["last_rowid"], state["generation"], utc_now(), state["seconds"],
         db.execute("SELECT count(*) FROM stored_findings").fetchone()[0]])


def save_findings(db: sqlite_utils.Database, findings: list[dict], routes: Iterable[tuple], state: dict,
                  since: str | None = None) -> None:
    """Replace the stored findings ending at or after `since` (all without it) and the routes of its day on with
    these (route rows in PRINCIPAL_ROUTE_COLUMNS order), and record what they were computed from, in one transaction: a reader sees the old set or the new one."""
    with db.atomic():
        db.execute("DELETE FROM stored_findings WHERE time >= ?", [since or ""])
        db.execute("DELETE FROM stored_principal_routes WHERE day >= ?", [since[:10] if since else ""])
        _insert_findings(db, findings)
        db.conn.executemany(
            f"INSERT INTO stored_principal_routes ({', '.join(PRINCIPAL_ROUTE_COLUMNS)}) "
            f"VALUES ({placeholders(PRINCIPAL_ROUTE_COLUMNS)})", routes)
        _add_up_days(db, since[:10] if since else "")
        _save_state(db, state)
