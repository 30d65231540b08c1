"""Derived data: period cutting tiles a period exactly; every rollup equals a fresh GROUP BY over `events`, and the
word index finds every event, after incremental syncs, duplicates, a rolled-back batch, leaving the demo, and an
upgrade from a cache without them."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from trailstream import timefmt
from trailstream.ingest import demo, records, sync
from trailstream.cache import derived, rollups, store, wordindex
from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc
from trailstream.cache import bookkeeping

END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def role_grain(principal: str | None, user_type: str | None) -> str | None:
    """Principals as people think of them, spelled apart from the SQL under test: a role's sessions are the role."""
    if user_type == "AssumedRole" and principal and "/" in principal:
        return principal.split("/", 1)[0]
    return principal


def with_role_grain(conn: sqlite3.Connection) -> sqlite3.Connection:
    """The connection with SQL function role_grain(principal, user_type)."""
    conn.create_function("role_grain", 2, role_grain, deterministic=True)
    return conn


EXPECTED_DIMENSIONS = {"read_only": "coalesce(read_only, 0)", "actor": "role_grain(principal, user_type)"}


def recomputed(conn: sqlite3.Connection, rollup: rollups.Rollup, grain: str) -> list[tuple]:
    """What the rollup table must hold, counted straight from `events`."""
    length, suffix, _ = rollups.GRAINS[grain]
    with_role_grain(conn)
    dimensions = ", ".join(EXPECTED_DIMENSIONS.get(d, d) for d in rollup.dimensions)
    seen = ", min(event_time), max(event_time)" if rollup.with_seen else ""
    sql = (
        f"SELECT substr(event_time, 1, {length}) || '{suffix}', {dimensions}, count(*), "
        f"count(nullif(error_code, '')){seen} FROM events GROUP BY 1, {dimensions}"
    )
    return sorted(map(tuple, conn.execute(sql).fetchall()), key=repr)


def stored(conn: sqlite3.Connection, rollup: rollups.Rollup, grain: str) -> list[tuple]:
    return sorted(map(tuple, conn.execute(f"SELECT * FROM {rollup.table(grain)}").fetchall()), key=repr)


def assert_derived_data_matches_events(db_path: Path) -> None:
    conn = store.open_cache_readonly(db_path)
    try:
        assert derived.is_current(conn)
        for rollup in rollups.ROLLUPS:
            for grain in rollups.GRAINS:
                assert stored(conn, rollup, grain) == recomputed(conn, rollup, grain), rollup.table(grain)
        stored_rowids = {row[0] for row in conn.execute("SELECT rowid FROM events")}
        for (name,) in conn.execute("SELECT DISTINCT event_name FROM events"):
            named = {row[0] for row in conn.execute("SELECT rowid FROM events WHERE event_name = ?", [name])}
            indexed = {row[0] for row in conn.execute(
                f"SELECT rowid FROM {wordindex.TABLE} WHERE {wordindex.TABLE} MATCH ?", [wordindex.match_query(name)]
            )}
            assert named <= indexed <= stored_rowids, name
    finally:
        conn.close()


def save_file(db, name: str, made: list[dict], refresh_derived: bool = True) -> bookkeeping.FileOutcome:
    parsed = records.parse_log_file(json.dumps({"Records": made}).encode())
    return store.save_parsed_file(db, bookkeeping.FileRef("local", "", name), parsed, None, refresh_derived)


def test_period_segments_tile_the_period_with_aligned_rollup_pieces():
    chooser = random.Random(7)
    base = datetime(2026, 10, 1, tzinfo=timezone.utc)
    cases = [(None, None), ("2026-10-03T00:00:00Z", "2026-10-05T00:00:00Z")]
    for _ in range(300):
        start = base + timedelta(seconds=chooser.randrange(0, 40 * 86400))
        end = start + timedelta(seconds=chooser.choice([0, 59, 3600, 7199, 86400, 200_000, 2_000_000]))
        cases.append((iso_utc(start), iso_utc(end)))
        cases.append((None, iso_utc(end)))
        cases.append((iso_utc(start), None))
    for start, end in cases:
        for finest in rollups.FINENESS:
            segments = rollups.period_segments(start, end, finest)
            assert segments[0][1] == start and segments[-1][2] == end
            for (_, _, previous_end), (_, next_start, _) in zip(segments, segments[1:]):
                assert previous_end == next_start is not None
            allowed = rollups.FINENESS[: rollups.FINENESS.index(finest) + 1]
            for source, piece_start, piece_end in segments:
                assert source in allowed
                if piece_start and piece_end:
                    assert piece_start < piece_end or (start == end and source == "event")
                if source != "event":
                    length, suffix, _ = rollups.GRAINS[source]
                    for bound in filter(None, (piece_start, piece_end)):
                        assert bound == bound[:length] + suffix


def test_a_long_period_reads_days_in_the_middle_and_events_only_at_the_edges():
    segments = rollups.period_segments("2026-10-02T10:15:00Z", "2026-10-09T06:30:00Z", "day")
    assert segments == [
        ("event", "2026-10-02T10:15:00Z", "2026-10-02T11:00:00Z"),
        ("hour", "2026-10-02T11:00:00Z", "2026-10-03T00:00:00Z"),
        ("day", "2026-10-03T00:00:00Z", "2026-10-09T00:00:00Z"),
        ("hour", "2026-10-09T00:00:00Z", "2026-10-09T06:00:00Z"),
        ("event", "2026-10-09T06:00:00Z", "2026-10-09T06:30:00Z"),
    ]
    assert rollups.period_segments("2026-10-02T10:15:00Z", "2026-10-02T10:45:00Z", "day") == [
        ("event", "2026-10-02T10:15:00Z", "2026-10-02T10:45:00Z")
    ]


def test_rollups_equal_a_fresh_count_after_incremental_syncs_and_duplicates(db_path):
    made = demo.generate_records(events=3000, seed=11, end=END, days=3)
    for record in made[::17]:
        record.pop("readOnly", None)  # a missing flag counts as 0, as the global filter does
    for record in made[::23]:
        record["userIdentity"] = {}  # no principal, no user type: NULL dimensions
    db = store.open_cache(db_path)
    for start in range(0, len(made), 250):  # each file commits on its own, as an SQS sync does
        save_file(db, f"part-{start}.json", made[start : start + 250])
    save_file(db, "replayed.json", made[:400])  # a duplicate delivery adds nothing
    db.close()
    assert_derived_data_matches_events(db_path)
    conn = store.open_cache_readonly(db_path)
    assert conn.execute("SELECT sum(events) FROM rollup_names_day").fetchone()[0] == len(made)
    conn.close()


def test_a_batch_import_keeps_the_rollups_and_a_rolled_back_batch_leaves_them_matching(db_path, tmp_path):
    demo.write_log_files(tmp_path / "logs", demo.generate_records(events=2000, seed=3, end=END), records_per_file=100)
    sync.import_paths(db_path, [tmp_path / "logs"], workers=1)
    assert_derived_data_matches_events(db_path)

    db = store.open_cache(db_path)
    db.execute("BEGIN")
    save_file(db, "lost.json", demo.generate_records(events=500, seed=4, end=END, planted=False), refresh_derived=False)
    store.commit_batch(db)  # folds in and commits
    db.execute("BEGIN")
    extra = demo.generate_records(events=500, seed=5, end=END, planted=False)
    save_file(db, "crashed.json", extra, refresh_derived=False)
    derived.refresh(db.conn)
    db.execute("ROLLBACK")  # as if the process died before COMMIT
    db.close()
    assert_derived_data_matches_events(db_path)


def test_leaving_the_demo_empties_the_derived_data_and_new_events_count_from_zero(db_path):
    db = store.open_cache(db_path)
    save_file(db, "demo.json", demo.generate_records(events=600, seed=8, end=END))
    store.discard_demo_data(db)
    assert all(db.execute(f"SELECT count(*) FROM {r.table(g)}").fetchone()[0] == 0
               for r in rollups.ROLLUPS for g in rollups.GRAINS)
    assert db.execute(f"SELECT count(*) FROM {wordindex.TABLE} WHERE {wordindex.TABLE} MATCH 'amazonaws'").fetchone() == (0,)
    save_file(db, "real.json", demo.generate_records(events=300, seed=9, end=END, planted=False))
    db.close()
    assert_derived_data_matches_events(db_path)


def test_events_stored_without_a_refresh_make_readers_count_events_directly(db_path):
    db = store.open_cache(db_path)
    save_file(db, "a.json", demo.generate_records(events=300, seed=1, end=END, planted=False))
    assert derived.is_current(db.conn)
    db.execute("BEGIN")
    save_file(db, "b.json", demo.generate_records(events=300, seed=2, end=END, planted=False), refresh_derived=False)
    db.execute("COMMIT")  # a writer that forgot commit_batch
    assert not derived.is_current(db.conn)
    source, _ = rollups.facts_sql(derived.is_current(db.conn), EventFilter(), ("event_name",))
    assert "rollup_" not in source
    db.close()


def upgrade_from_before(db_path: Path, migration: str, make_older) -> None:
    """A cache of demo events made as the version before `migration` left it (`make_older` undoes what it made), then
    opened as the first start of this version does, after which its derived data must match its events."""
    db = store.open_cache(db_path)
    save_file(db, "old.json", demo.generate_records(events=800, seed=6, end=END))
    make_older(db)
    db.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [migration])
    db.close()
    store.open_cache(db_path).close()
    assert_derived_data_matches_events(db_path)


def test_upgrading_a_cache_without_rollups_fills_them_from_its_events(db_path):
    def without_derived_data(db):
        for rollup in rollups.ROLLUPS:
            for grain in rollups.GRAINS:
                db.execute(f"DROP TABLE {rollup.table(grain)}")
        db.execute(f"DROP TABLE {wordindex.TABLE}")
        db.execute("DELETE FROM meta WHERE key = ?", [derived.WATERMARK_KEY])

    upgrade_from_before(db_path, "m006_derived", without_derived_data)


@pytest.mark.parametrize("finest", rollups.FINENESS)
def test_facts_add_up_to_the_filtered_events_for_any_period(db_path, finest):
    made = demo.generate_records(events=2500, seed=12, end=END, days=4)
    db = store.open_cache(db_path)
    save_file(db, "all.json", made)
    db.close()
    conn = store.open_cache_readonly(db_path)
    chooser = random.Random(finest)
    first = datetime.strptime(conn.execute("SELECT min(event_time) FROM events").fetchone()[0], timefmt.TIME_FORMAT)
    for _ in range(40):
        start = first.replace(tzinfo=timezone.utc) + timedelta(seconds=chooser.randrange(0, 4 * 86400))
        end = start + timedelta(seconds=chooser.randrange(60, 3 * 86400))
        event_filter = EventFilter(start=iso_utc(start), end=iso_utc(end), include_read_only=chooser.random() < 0.5)
        source, params = rollups.facts_sql(True, event_filter, ("event_name",), finest)
        counted = dict(conn.execute(f"SELECT event_name, sum(events) FROM ({source}) GROUP BY 1", params).fetchall())
        where, filter_params = event_filter.sql()
        expected = dict(conn.execute(f"SELECT event_name, count(*) FROM events WHERE {where} GROUP BY 1",
                                     filter_params).fetchall())
        assert counted == expected
    conn.close()


def test_a_role_with_a_session_address_and_user_agent_per_call_keeps_the_principal_rollup_small(db_path):
    made = demo.generate_records(events=1500, seed=4, end=END, days=1)
    for n, record in enumerate(made):
        record["userIdentity"] = {"type": "AssumedRole", "arn": f"arn:aws:sts::111122223333:assumed-role/svc-etl/s{n}",
                                  "accountId": "111122223333", "accessKeyId": f"ASIA{n:016d}"}
        record["sourceIPAddress"], record["userAgent"] = f"203.0.{n // 250}.{n % 250}", f"Boto3/1.{n}"
    db = store.open_cache(db_path)
    save_file(db, "sessions.json", made)
    db.close()
    assert_derived_data_matches_events(db_path)
    conn = store.open_cache_readonly(db_path)
    keys = conn.execute("SELECT count(DISTINCT substr(event_time, 1, 13) || account_id || aws_region || "
                        "coalesce(read_only, 0)) FROM events").fetchone()[0]
    assert [tuple(row) for row in conn.execute("SELECT DISTINCT actor FROM rollup_actors_hour")] == [("svc-etl",)]
    assert conn.execute("SELECT count(*) FROM rollup_actors_hour").fetchone()[0] == keys < len(made) / 5
    conn.close()


def early_version(record: dict) -> dict:
    """The record as EventBridge would deliver it first: keys in another order, a field the log file adds missing."""
    early = {key: record[key] for key in reversed(record) if key != "sharedEventID"}
    early.pop("tlsDetails", None)
    return early


@pytest.mark.parametrize("change", ["same dimensions", "other dimensions"])
def test_early_events_replaced_by_their_log_file_keep_the_derived_data_equal_to_events(db_path, change):
    from trailstream.cache import early

    made = demo.generate_records(events=400, seed=11, end=END, planted=False)
    db = store.open_cache(db_path)
    save_file(db, "before.json", made[:300])
    chosen = made[300:340]
    for index, record in enumerate(chosen):
        parsed = records.parse_log_file(json.dumps({"Records": [early_version(record)]}).encode())
        if change == "other dimensions":  # fields that move the event to other rollup rows in its early version
            moved = {"errorCode": "Early", "readOnly": not record.get("readOnly")} if index % 2 else {
                "awsRegion": "xx-early-1"}
            parsed = records.parse_log_file(json.dumps({"Records": [{**early_version(record), **moved}]}).encode())
        ref = bookkeeping.FileRef("eventbridge", "", f"sqs://q/m{index}")
        outcome = store.save_parsed_file(db, ref, parsed, None, early=early.EarlyMessage("q", f"m{index}"))
        assert outcome.new_events == 1
    assert_derived_data_matches_events(db_path)
    final = save_file(db, "log.json", made[300:])
    assert (final.new_events, final.confirmed, final.duplicates, final.conflicts) == (60, 40, 0, 0)
    db.close()
    assert_derived_data_matches_events(db_path)
    conn = store.open_cache_readonly(db_path)
    try:
        assert all(store.load_record(conn, record["eventID"]) == record for record in chosen)
        assert conn.execute("SELECT count(*) FROM early_events WHERE confirmed_at IS NULL").fetchone()[0] == 0
        assert conn.execute(f"SELECT count(*) FROM {wordindex.TABLE} WHERE {wordindex.TABLE} MATCH 'Early'"
                            ).fetchone()[0] == 0
    finally:
        conn.close()


def test_upgrading_a_cache_with_session_keyed_principal_rollups_rebuilds_them_at_role_grain(db_path):
    def with_session_keyed_rollups(db):  # what the previous version kept: one row per principal, address and agent
        for grain in rollups.GRAINS:
            db.execute(f"DROP TABLE {rollups.PRINCIPALS.table(grain)}")
            db.execute(f"CREATE TABLE rollup_principals_{grain} (event_time TEXT, principal TEXT, source_ip TEXT)")

    upgrade_from_before(db_path, "m009_lean_rollups", with_session_keyed_rollups)
    conn = store.open_cache_readonly(db_path)
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'rollup_principals%'").fetchall()
    index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_principal_activity'").fetchone()[0]
    assert index.rstrip(")").endswith("user_type")
    conn.close()


def test_upgrading_a_cache_whose_word_index_concatenated_the_columns_makes_it_again_by_column(db_path):
    def with_a_concatenated_word_index(db):  # what m006 to m020 made: one body of all the text columns
        body = " || char(10) || ".join(f"ifnull({column}, '')" for column in wordindex.SEARCH_TEXT_COLUMNS)
        db.execute(f"DROP TABLE {wordindex.TABLE}")
        db.execute(f"CREATE VIRTUAL TABLE {wordindex.TABLE} USING fts5(body, content='', detail=none, columnsize=0)")
        db.execute(f"INSERT INTO {wordindex.TABLE} (rowid, body) SELECT rowid, {body} FROM events")

    upgrade_from_before(db_path, "m021_word_index_by_column", with_a_concatenated_word_index)
    conn = store.open_cache_readonly(db_path)
    try:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({wordindex.TABLE})")]
        assert columns == list(wordindex.SEARCH_TEXT_COLUMNS)
        setting = conn.execute(f"SELECT v FROM {wordindex.TABLE}_config WHERE k = 'automerge'").fetchone()[0]
        assert setting == wordindex.MERGE_SEGMENTS
        sample = conn.execute(f"SELECT rowid, {', '.join(wordindex.SEARCH_TEXT_COLUMNS)} FROM events "
                              "ORDER BY rowid LIMIT 40").fetchall()
        for rowid, *values in sample:  # a word of every text column finds its event
            for value in filter(None, values):
                query = wordindex.match_query(value[:16])
                if query:
                    found = {r for (r,) in conn.execute(
                        f"SELECT rowid FROM {wordindex.TABLE} WHERE {wordindex.TABLE} MATCH ?", [query])}
                    assert rowid in found, value
    finally:
        conn.close()
