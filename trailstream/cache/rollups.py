"""Hourly and daily counts of `events`, so a page that counts over weeks reads thousands of rollup rows instead of a
million events (kept in step by `derived.refresh`).

A rollup row counts the events of one hour (or day) that share its dimensions. A period that does not start or end
on a whole hour takes those edge minutes from `events` itself (`period_segments`), so every answer is exact.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import timedelta

from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc, parse_iso_utc



@dataclass(frozen=True)
class Rollup:
    """One pre-aggregated shape: its dimensions, and whether it keeps first and last event times."""

    name: str
    dimensions: tuple[str, ...]
    with_seen: bool = False

    def table(self, grain: str) -> str:
        return f"{self.name}_{grain}"

    @property
    def measures(self) -> tuple[str, ...]:
        return ("events", "failed") + (("first_time", "last_time") if self.with_seen else ())


# Principals as people think of them: an assumed role's sessions (`Role/session`, one per Lambda call or CI job)
# count as the role (its session issuer); every other principal as itself. Bounded where `principal` is not.
ACTOR_SQL = (
    "CASE WHEN {a}user_type = 'AssumedRole' AND instr({a}principal, '/') > 0 "
    "THEN substr({a}principal, 1, instr({a}principal, '/') - 1) ELSE {a}principal END"
)


def actor_sql(alias: str = "") -> str:
    """The `actor` of an events row (see ACTOR_SQL), for a table alias such as 'e' or none."""
    return ACTOR_SQL.format(a=f"{alias}." if alias else "")


def actor_where(alias: str, actor: str) -> tuple[str, list]:
    """A clause keeping one actor's events that an index on (principal, ...) can seek: the principal itself, or the
    range of its role's sessions `actor/...`."""
    a = f"{alias}."
    if "/" in actor:  # not a role: an assumed-role principal with this exact text counts as its role, not as this
        return f"({a}principal = ? AND NOT ({a}user_type = 'AssumedRole' AND instr({a}principal, '/') > 0))", [actor]
    return (f"({a}principal = ? OR ({a}principal > ? AND {a}principal < ? AND {a}user_type = 'AssumedRole'))",
            [actor, actor + "/", actor + "0"])  # '0' follows '/' in every collation SQLite's BINARY uses


# read_only is stored as 0 when CloudTrail left it out: the global filter treats a missing flag as 0 too.
EVENT_NAMES = Rollup(
    "rollup_names", ("account_id", "aws_region", "read_only", "event_source", "event_category", "event_name")
)
# No source IP, user agent, session or key in any key: those are unbounded on a real organisation's trail
# (roaming people, a session per call) and would make a rollup as large as `events` itself.
PRINCIPALS = Rollup("rollup_actors", ("account_id", "aws_region", "read_only", "actor", "user_type"), with_seen=True)
ROLLUPS = (EVENT_NAMES, PRINCIPALS)
RETIRED_TABLES = ("rollup_principals_hour", "rollup_principals_day")  # keyed by session, address and user agent

# Grain -> (the leading part of event_time naming the bucket, what completes it as a time, its length).
GRAINS: dict[str, tuple[int, str, timedelta]] = {
    "hour": (13, ":00:00Z", timedelta(hours=1)),
    "day": (10, "T00:00:00Z", timedelta(days=1)),
}
# How finely a query needs its rows in time: 'event' (only `events`), 'hour', or 'day' (the coarsest useful).
FINENESS = ("event", "hour", "day")


def _bucket_sql(column: str, grain: str) -> str:
    length, suffix, _ = GRAINS[grain]
    return f"substr({column}, 1, {length}) || '{suffix}'"


def _dimension_sql(column: str, alias: str = "") -> str:
    """How a rollup dimension is computed from an events row."""
    if column == "actor":
        return actor_sql(alias)
    prefix = f"{alias}." if alias else ""
    return f"coalesce({prefix}read_only, 0)" if column == "read_only" else prefix + column


def schema_sql() -> list[str]:
    """CREATE statements for every rollup table and the index that finds a row by its time and dimensions."""
    statements = []
    for rollup in ROLLUPS:
        for grain in GRAINS:
            table = rollup.table(grain)
            columns = ["event_time TEXT NOT NULL"]
            columns += [f"{d} INTEGER NOT NULL" if d == "read_only" else f"{d} TEXT" for d in rollup.dimensions]
            columns += ["events INTEGER NOT NULL", "failed INTEGER NOT NULL"]
            columns += ["first_time TEXT", "last_time TEXT"] if rollup.with_seen else []
            statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)})")
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {table}_key ON {table} (event_time, {', '.join(rollup.dimensions)})"
            )
    return statements


def _merge(conn: sqlite3.Connection, rollup: Rollup, grain: str, delta: str) -> None:
    """Add the delta table's counts to the rollup: matching rows grow, new (time, dimensions) rows are inserted."""
    table = rollup.table(grain)
    same = " AND ".join(["r.event_time = d.event_time"] + [f"r.{d} IS d.{d}" for d in rollup.dimensions])
    sums = ["events = r.events + d.events", "failed = r.failed + d.failed"]
    if rollup.with_seen:
        sums += ["first_time = min(r.first_time, d.first_time)", "last_time = max(r.last_time, d.last_time)"]
    conn.execute(f"UPDATE {table} AS r SET {', '.join(sums)} FROM temp.{delta} AS d WHERE {same}")
    conn.execute(
        f"INSERT INTO {table} SELECT * FROM temp.{delta} AS d "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS r WHERE {same})"
    )


def fold(conn: sqlite3.Connection, after_rowid: int, upto_rowid: int, only: tuple[Rollup, ...] = ROLLUPS) -> None:
    """Add the events with rowids in (after_rowid, upto_rowid] to every rollup (or those in `only`)."""
    for rollup in only:
        dimensions = ", ".join(rollup.dimensions)
        positions = ", ".join(str(n) for n in range(1, len(rollup.dimensions) + 2))  # names would mean the raw columns
        picked = ", ".join(f"{_dimension_sql(d)} AS {d}" for d in rollup.dimensions)
        seen = ", min(event_time) AS first_time, max(event_time) AS last_time" if rollup.with_seen else ""
        conn.execute("DROP TABLE IF EXISTS temp.rollup_delta_hour")
        conn.execute(
            f"CREATE TEMP TABLE rollup_delta_hour AS SELECT {_bucket_sql('event_time', 'hour')} AS event_time, "
            f"{picked}, count(*) AS events, count(nullif(error_code, '')) AS failed{seen} "
            f"FROM events WHERE rowid > ? AND rowid <= ? GROUP BY {positions}",
            [after_rowid, upto_rowid],
        )
        _merge(conn, rollup, "hour", "rollup_delta_hour")
        seen = ", min(first_time) AS first_time, max(last_time) AS last_time" if rollup.with_seen else ""
        conn.execute("DROP TABLE IF EXISTS temp.rollup_delta_day")
        conn.execute(
            f"CREATE TEMP TABLE rollup_delta_day AS SELECT {_bucket_sql('event_time', 'day')} AS event_time, "
            f"{dimensions}, sum(events) AS events, sum(failed) AS failed{seen} "
            f"FROM temp.rollup_delta_hour GROUP BY {positions}"
        )
        _merge(conn, rollup, "day", "rollup_delta_day")
    conn.execute("DROP TABLE IF EXISTS temp.rollup_delta_hour")
    conn.execute("DROP TABLE IF EXISTS temp.rollup_delta_day")


def row_keys(conn: sqlite3.Connection, rowid: int) -> dict[Rollup, tuple]:
    """Per rollup, what one event adds to: (event time, hour, dimensions..., failed)."""
    keys = {}
    for rollup in ROLLUPS:
        picked = ", ".join(_dimension_sql(d) for d in rollup.dimensions)
        keys[rollup] = tuple(conn.execute(
            f"SELECT event_time, {_bucket_sql('event_time', 'hour')}, {picked}, "
            "(error_code IS NOT NULL AND error_code != '') FROM events WHERE rowid = ?", [rowid]
        ).fetchone())
    return keys


def unfold_row(conn: sqlite3.Connection, rowid: int, upto_rowid: int, keys: dict[Rollup, tuple]) -> None:
    """Take one event (as `row_keys` saw it) out of these rollups; first and last times of what remains of its rows
    are counted again from the other folded events (rowid <= upto_rowid) of that hour, then from the hours."""
    for rollup, (_, hour, *dimensions, failed) in keys.items():
        same = " AND ".join(["event_time = ?"] + [f"{d} IS ?" for d in rollup.dimensions])
        for grain, bucket in (("hour", hour), ("day", _floor(hour, "day"))):
            table = rollup.table(grain)
            conn.execute(f"UPDATE {table} SET events = events - 1, failed = failed - ? WHERE {same}",
                         [failed, bucket, *dimensions])
            conn.execute(f"DELETE FROM {table} WHERE events <= 0 AND {same}", [bucket, *dimensions])
        if not rollup.with_seen:
            continue
        matching = " AND ".join(f"{_dimension_sql(d)} IS ?" for d in rollup.dimensions)
        hour_end = iso_utc(parse_iso_utc(hour) + GRAINS["hour"][2])
        conn.execute(
            f"UPDATE {rollup.table('hour')} SET (first_time, last_time) = (SELECT min(event_time), max(event_time) "
            f"FROM events WHERE event_time >= ? AND event_time < ? AND rowid != ? AND rowid <= ? AND {matching}) "
            f"WHERE {same}",
            [hour, hour_end, rowid, upto_rowid, *dimensions, hour, *dimensions],
        )
        day = _floor(hour, "day")
        in_day = " AND ".join(["h.event_time >= ?", "h.event_time < ?"] + [f"h.{d} IS ?" for d in rollup.dimensions])
        conn.execute(
            f"UPDATE {rollup.table('day')} SET (first_time, last_time) = (SELECT min(h.first_time), "
            f"max(h.last_time) FROM {rollup.table('hour')} h WHERE {in_day}) WHERE {same}",
            [day, iso_utc(parse_iso_utc(day) + GRAINS["day"][2]), *dimensions, day, *dimensions],
        )


def clear(conn: sqlite3.Connection, only: tuple[Rollup, ...] = ROLLUPS) -> None:
    for rollup in only:
        for grain in GRAINS:
            conn.execute(f"DELETE FROM {rollup.table(grain)}")


# --- Reading --------------------------------------------------------------------------------------------------------


def _floor(text: str, grain: str) -> str:
    length, suffix, _ = GRAINS[grain]
    return text[:length] + suffix


def _ceil(text: str, grain: str) -> str:
    floor = _floor(text, grain)
    return floor if floor == text else iso_utc(parse_iso_utc(floor) + GRAINS[grain][2])


def period_segments(start: str | None, end: str | None, finest: str) -> list[tuple[str, str | None, str | None]]:
    """Cut the period [start, end) into (source, start, end) pieces: whole days ('day'), whole hours ('hour') and
    the minutes at the edges ('event'), using nothing coarser than `finest` allows. None is an open end."""
    if finest == "event":
        return [("event", start, end)]
    hour_start = _ceil(start, "hour") if start else None
    hour_end = _floor(end, "hour") if end else None
    if hour_start and hour_end and hour_start >= hour_end:
        return [("event", start, end)]
    middle = [("hour", hour_start, hour_end)]
    if finest == "day":
        day_start = _ceil(hour_start, "day") if hour_start else None
        day_end = _floor(hour_end, "day") if hour_end else None
        if not (day_start and day_end and day_start >= day_end):
            middle = [("hour", hour_start, day_start)] if hour_start != day_start else []
            middle.append(("day", day_start, day_end))
            if hour_end != day_end:
                middle.append(("hour", day_end, hour_end))
    edges_before = [("event", start, hour_start)] if start and start != hour_start else []
    edges_after = [("event", hour_end, end)] if end and end != hour_end else []
    return edges_before + middle + edges_after


def pick_rollup(columns: tuple[str, ...], seen: bool = False) -> Rollup | None:
    """The first rollup that has every column (and first/last times if asked), or None: count `events` then."""
    for rollup in ROLLUPS:
        if set(columns) <= set(rollup.dimensions) and (rollup.with_seen or not seen):
            return rollup
    return None


def facts_sql(
    current: bool,
    event_filter: EventFilter,
    columns: tuple[str, ...],
    finest: str = "day",
    seen: bool = False,
    where: tuple[str, ...] = (),
    params: tuple = (),
    events_hint: str = "",
    events_where: tuple[str, ...] | None = None,
    events_params: tuple = (),
) -> tuple[str, list]:
    """A subquery yielding event_time, `columns`, events, failed (and first_time, last_time when `seen`) whose sums
    equal counting `events` under the filter, from the rollups when they are `current` (derived.is_current);
    `where` clauses (on alias f) may use only `columns`, or give `events_where` for the reads of `events` (where a
    computed column such as `actor` is not a column); `events_hint` (an INDEXED BY clause) steers those reads.
    Use it as `FROM (...) e`."""
    rollup = pick_rollup(columns, seen) if current else None
    segments = period_segments(event_filter.start, event_filter.end, finest if rollup else "event")
    parts, all_params = [], []
    for source, start, end in segments:
        filter_sql, filter_params = replace(event_filter, start=start, end=end).sql("f")
        if source == "event":
            picked = ", ".join(f"{_dimension_sql(c, 'f') if c == 'actor' else 'f.' + c} AS {c}"
                               for c in ("event_time", *columns))
            clauses, extra = (where, params) if events_where is None else (events_where, events_params)
            measures = "1 AS events, (f.error_code IS NOT NULL AND f.error_code != '') AS failed"
            measures += ", f.event_time AS first_time, f.event_time AS last_time" if seen else ""
            table = f"events f {events_hint}"
        else:
            picked = ", ".join(f"f.{c} AS {c}" for c in ("event_time", *columns))
            clauses, extra = where, params
            measures = "f.events, f.failed" + (", f.first_time, f.last_time" if seen else "")
            table = f"{rollup.table(source)} f"
        parts.append(f"SELECT {picked}, {measures} FROM {table} WHERE {' AND '.join((filter_sql, *clauses))}")
        all_params += filter_params + list(extra)
    return " UNION ALL ".join(parts), all_params
