"""Importing local files into the cache: the real corpus stored exactly, replay-safety, crashes, one sync at a time."""

import gc
import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from trailstream import cli
from trailstream.ingest import collector, demo, records, sync
from trailstream.cache import store
from trailstream.cache.bookkeeping import FileRef

END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def event_name_counts(db_path) -> dict:
    conn = store.open_cache_readonly(db_path)
    return dict(conn.execute("SELECT event_name, count(*) FROM events GROUP BY event_name").fetchall())


def event_count(db_path) -> int:
    return store.open_cache_readonly(db_path).execute("SELECT count(*) FROM events").fetchone()[0]


@pytest.fixture
def demo_folder(tmp_path) -> Path:
    """About 4,000 demo events written as CloudTrail-named gzip files."""
    folder = tmp_path / "logs"
    demo.write_log_files(folder, demo.generate_records(events=4000, seed=3, end=END), records_per_file=100)
    return folder


@pytest.mark.parametrize("folder", ["events", "events-gz"])
def test_the_corpus_is_stored_exactly(corpus, db_path, folder):
    expected = json.loads((corpus / "expected.json").read_text())["events_total"]
    result = sync.import_paths(db_path, [corpus / folder])
    assert result.failed == 0 and result.rejected == 0
    assert event_count(db_path) == expected["distinct_events"]
    assert event_name_counts(db_path) == expected["eventName_counts"]


def test_every_corpus_record_is_recoverable_from_the_cache(corpus, db_path):
    sync.import_paths(db_path, [corpus / "events"])
    conn = store.open_cache_readonly(db_path)
    for path in sorted((corpus / "events").glob("*.json")):
        for record in json.loads(path.read_text())["Records"]:
            assert store.load_record(conn, record["eventID"]) == record


def well_formed_ids(path: Path) -> set[str]:
    """eventIDs of records a correct ingester must keep, computed without the parser under test."""
    ids = set()
    for record in json.loads(path.read_text())["Records"]:
        if not isinstance(record, dict) or not record.get("eventID") or not record.get("eventName"):
            continue
        try:
            records.normalize_event_time(record.get("eventTime"))
        except records.RecordRejected:
            continue
        ids.add(record["eventID"])
    return ids


def test_irregular_files_keep_every_well_formed_record_and_explain_the_rest(corpus, db_path):
    result = sync.import_paths(db_path, [corpus / "irregular"])
    assert result.failed == 0
    expected_ids = set().union(*(well_formed_ids(p) for p in (corpus / "irregular").glob("*.json")))
    conn = store.open_cache_readonly(db_path)
    stored_ids = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    assert stored_ids == expected_ids
    reasons = [row[0] for row in conn.execute("SELECT reason FROM rejected_records")]
    assert result.rejected == len(reasons) > 0
    assert any("no eventID" in reason for reason in reasons)
    assert any("different content" in reason for reason in reasons)


def test_reimporting_adds_nothing_and_unchanged_files_are_not_reread(db_path, demo_folder):
    first = sync.import_paths(db_path, [demo_folder])
    stored = event_count(db_path)
    assert first.new_events == stored > 3000
    again = sync.import_paths(db_path, [demo_folder])
    assert again.new_events == 0 and again.unchanged == first.files
    for path in demo_folder.rglob("*.json.gz"):
        path.touch()
    replay = sync.import_paths(db_path, [demo_folder])
    assert replay.new_events == 0 and replay.duplicates == stored
    assert event_count(db_path) == stored


def test_one_bad_file_does_not_block_the_others(db_path, demo_folder):
    (demo_folder / "broken.json.gz").write_bytes(gzip.compress(b'{"Records": [')[:-4])
    (demo_folder / "digest.json").write_text('{"digestPublicKeyFingerprint": "ab", "logFiles": []}')
    result = sync.import_paths(db_path, [demo_folder, demo_folder / "missing.json"])
    assert result.failed == 2 and result.skipped == 1
    failed = dict(result.failures)
    assert "corrupt gzip" in failed[str((demo_folder / "broken.json.gz").resolve())]
    assert failed[str(demo_folder / "missing.json")] == "no such file or folder"
    assert event_count(db_path) == result.new_events > 3000
    statuses = dict(store.open_cache_readonly(db_path).execute("SELECT status, count(*) FROM files GROUP BY status").fetchall())
    assert statuses["failed"] == 1 and statuses["skipped"] == 1


def test_a_second_sync_on_the_same_cache_is_refused(db_path, demo_folder):
    with store.sync_lock(db_path):
        with pytest.raises(store.SyncAlreadyRunning, match="already running"):
            sync.import_paths(db_path, [demo_folder])
    assert sync.import_paths(db_path, [demo_folder]).new_events > 0


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from trailstream.ingest import sync

    sync.BATCH_ROWS = 50  # commit often, so the kill lands between commits

    def progress(p):
        if p.files_done == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

    if __name__ == "__main__":
        sync.import_paths(sys.argv[1], [sys.argv[2]], progress)
    """
)


def import_killed_after(db_path, folder, tmp_path, files: int) -> sqlite3.Connection:
    """Import in a process SIGKILLed once `files` files are stored; a connection to the sound cache it left."""
    script = tmp_path / "kill_import.py"
    script.write_text(KILL_SCRIPT)
    killed = subprocess.run([sys.executable, str(script), str(db_path), str(folder), str(files)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return conn


def test_a_kill_mid_import_leaves_a_consistent_cache_that_the_next_import_completes(db_path, demo_folder, tmp_path):
    conn = import_killed_after(db_path, demo_folder, tmp_path, 60)
    committed_files, committed_events = conn.execute("SELECT count(*), coalesce(sum(new_events), 0) FROM files").fetchone()
    assert 0 < committed_files < 60
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == committed_events
    assert conn.execute("SELECT status FROM sync_runs").fetchone()[0] == "running"
    conn.close()

    resumed = sync.import_paths(db_path, [demo_folder])
    assert resumed.unchanged == committed_files
    assert resumed.new_events + committed_events == event_count(db_path)
    reference = tmp_path / "reference.db"
    sync.import_paths(reference, [demo_folder])
    assert event_name_counts(db_path) == event_name_counts(reference)
    statuses = [row[0] for row in store.open_cache_readonly(db_path).execute("SELECT status FROM sync_runs ORDER BY id")]
    assert statuses == ["interrupted", "ok"]


def test_a_file_failing_part_way_takes_the_uncommitted_files_with_it_and_keeps_the_committed(
        db_path, demo_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(sync, "BATCH_ROWS", 200)  # a commit every hundred files or so
    files = sorted(demo_folder.rglob("*.json.gz"))
    ids_of = {path: [r["eventID"] for r in json.loads(gzip.decompress(path.read_bytes()))["Records"]] for path in files}
    failing = max(files[len(files) // 2:], key=lambda path: len(ids_of[path]))
    failing_ids = ids_of[failing]
    assert len(failing_ids) >= 4
    conn = sqlite3.connect(store.open_cache(db_path).close() or db_path)
    conn.execute(f"CREATE TRIGGER planted BEFORE INSERT ON events WHEN NEW.event_id = '{failing_ids[-2]}' "
                 "BEGIN SELECT RAISE(ABORT, 'planted failure'); END")  # after most of the file's rows
    conn.commit()

    with pytest.raises(sqlite3.IntegrityError, match="planted failure"):
        sync.import_paths(db_path, [demo_folder])
    stored_files, stored_events = conn.execute("SELECT count(*), sum(new_events) FROM files").fetchone()
    assert 0 < stored_files < files.index(failing)  # earlier commits kept
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == stored_events
    placeholders = ", ".join("?" for _ in failing_ids)
    failing_stored = conn.execute(f"SELECT count(*) FROM events WHERE event_id IN ({placeholders})", failing_ids)
    assert failing_stored.fetchone() == (0,)
    assert conn.execute("SELECT status FROM sync_runs").fetchone()[0] == "interrupted"
    conn.execute("DROP TRIGGER planted")
    conn.commit()

    resumed = sync.import_paths(db_path, [demo_folder])
    assert resumed.unchanged == stored_files and resumed.failed == 0
    reference = tmp_path / "reference.db"
    sync.import_paths(reference, [demo_folder])
    assert event_name_counts(db_path) == event_name_counts(reference)


def test_a_parse_task_pauses_the_cycle_collector_only_while_it_runs():
    task = collector.without_cycle_collection(lambda fail: (gc.isenabled(), 1 / 0 if fail else None)[0])
    assert task(False) is False and gc.isenabled()  # paused inside, resumed after
    with pytest.raises(ZeroDivisionError):
        task(True)
    assert gc.isenabled()
    with collector.paused():  # nested: the outer pause is kept
        assert task(False) is False and not gc.isenabled()
    assert gc.isenabled()
    for worker_task in (sync._parse_paths, sync._parse_path, sync._parse_bytes):  # what the pool runs
        assert worker_task.__wrapped__


def test_an_import_never_pauses_the_cycle_collector_of_the_process_it_runs_in(db_path, demo_folder):
    """The app's server syncs in its own process: a pause there would hold every page's garbage for the whole sync."""
    collecting = []
    sync.import_paths(db_path, [demo_folder], progress=lambda progress: collecting.append(gc.isenabled()))
    assert collecting and all(collecting)


UNGUARDED_SCRIPT = textwrap.dedent(
    """
    import sys
    from trailstream.ingest import sync

    # No `if __name__ == "__main__"` guard, like app.py under Streamlit: workers must not re-run this file.
    result = sync.import_paths(sys.argv[1], [sys.argv[2]], workers=2)
    print(result.new_events)
    """
)


def test_worker_processes_work_under_a_main_script_without_a_guard(db_path, tmp_path):
    folder = tmp_path / "big"
    demo.write_log_files(folder, demo.generate_records(events=3000, seed=8, end=END, days=1), records_per_file=500)
    assert any(path.stat().st_size >= sync.INLINE_PARSE_BYTES for path in folder.rglob("*.json.gz"))
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(db_path), str(folder)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == event_count(db_path) == 3000


def test_cli_import_prints_a_summary_and_fails_when_a_file_fails(db_path, demo_folder, capsys):
    assert cli.main(["--db", str(db_path), "import", str(demo_folder)]) == 0
    assert "new event(s)" in capsys.readouterr().out
    (demo_folder / "bad.json").write_text("{not json")
    assert cli.main(["--db", str(db_path), "import", str(demo_folder)]) == 1
    captured = capsys.readouterr()
    assert "not valid JSON" in captured.err and "1 failure(s)" in captured.out


def test_cli_demo_is_deterministic_and_refuses_to_mix_with_real_data(tmp_path, demo_folder, capsys):
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    for path in (first, second):
        assert cli.main(["--db", str(path), "demo", "--events", "2000", "--seed", "5", "--end", "2026-11-01T00:00:00Z"]) == 0
    assert event_name_counts(first) == event_name_counts(second)
    assert sum(event_name_counts(first).values()) > 1500
    real = tmp_path / "real.db"
    sync.import_paths(real, [demo_folder])
    capsys.readouterr()
    assert cli.main(["--db", str(real), "demo", "--events", "100"]) == 1
    assert "would mix" in capsys.readouterr().err


def test_cli_reports_an_unreadable_cache_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "not-a-cache.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    assert cli.main(["--db", str(bad), "import", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is not a SQLite database" in err and "rebuild" in err and "Traceback" not in err


def test_duplicate_delivery_across_files_is_stored_once(db_path, tmp_path):
    generated = demo.generate_records(events=300, seed=1, end=END)
    folder = tmp_path / "dupes"
    folder.mkdir()
    (folder / "a.json").write_bytes(json.dumps({"Records": generated}).encode())
    (folder / "b.json.gz").write_bytes(gzip.compress(json.dumps({"Records": generated[:100]}).encode()))
    result = sync.import_paths(db_path, [folder])
    assert result.new_events == len({r["eventID"] for r in generated}) == event_count(db_path)
    assert result.duplicates == 100
    assert Counter(r["eventName"] for r in generated) == Counter(event_name_counts(db_path))


def test_same_event_id_with_different_content_in_one_file_is_refused_and_listed(db_path, tmp_path):
    first, exact_copy = demo.generate_records(events=300, seed=2, end=END)[:2]
    altered = {**first, "errorCode": "AccessDenied"}  # same eventID, different content
    elsewhere = {**first, "sourceIPAddress": "203.0.113.250"}  # only a value a column holds differs
    folder = tmp_path / "conflict"
    folder.mkdir()
    (folder / "one.json").write_bytes(json.dumps({"Records": [first, exact_copy, altered, first, elsewhere]}).encode())
    result = sync.import_paths(db_path, [folder])
    assert (result.new_events, result.duplicates, result.conflicts) == (2, 1, 2)
    conn = store.open_cache_readonly(db_path)
    assert [tuple(row) for row in conn.execute("SELECT position, event_id, reason FROM rejected_records")] == [
        (2, first["eventID"], store.CONFLICT_REASON), (4, first["eventID"], store.CONFLICT_REASON)
    ]
    assert store.load_record(conn, first["eventID"]) == first


BOMB_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
    from trailstream.ingest import sync

    result = sync.import_paths(sys.argv[1], [sys.argv[2]])
    print(result.new_events, result.failures)
    """
)


def test_a_gzip_bomb_over_the_default_cap_is_refused_through_the_sync_with_bounded_memory(db_path, tmp_path):
    folder = tmp_path / "bomb"
    demo.write_log_files(folder, demo.generate_records(events=300, seed=5, end=END), records_per_file=100)
    # 17 members of 64 MiB of blanks: a 1.1 MB file that decompresses to 1,088 MiB, and no trailer says so.
    member = gzip.compress(b" " * (64 << 20), compresslevel=9, mtime=0)
    (folder / "bomb.json.gz").write_bytes(gzip.compress(b'{"Records": [', mtime=0) + member * 17)
    script = tmp_path / "bomb_import.py"
    script.write_text(BOMB_SCRIPT)
    address_space = 900_000_000  # less than the 1 GiB cap: holding the decompressed file would fail
    done = subprocess.run([sys.executable, str(script), str(db_path), str(folder), str(address_space)],
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    new_events, failures = done.stdout.split(" ", 1)
    assert int(new_events) == event_count(db_path) > 250
    assert "bomb.json.gz" in failures and "1,073,741,824-byte limit (possible gzip bomb)" in failures


def test_a_file_too_large_to_hold_is_streamed_into_the_cache_exactly(db_path, tmp_path, monkeypatch):
    monkeypatch.setattr(records, "BUFFER_LIMIT", 50_000)  # workers fork after this: they see it too
    made = demo.generate_records(events=2000, seed=9, end=END, days=1)
    folder = tmp_path / "large"
    folder.mkdir()
    text = json.dumps({"Records": made}).encode()
    (folder / "large.json.gz").write_bytes(gzip.compress(text))
    result = sync.import_paths(db_path, [folder], workers=2)
    assert result.new_events == len(made) == event_count(db_path) and result.failed == 0
    conn = store.open_cache_readonly(db_path)
    assert tuple(conn.execute("SELECT records, sha256 FROM files").fetchone()) == (len(made), hashlib.sha256(text).hexdigest())
    assert all(store.load_record(conn, record["eventID"]) == record for record in made[::97])


def test_a_new_cache_learns_its_compression_dictionary_from_the_files_it_imports(db_path, tmp_path):
    made = demo.generate_records(events=3000, seed=4, end=END, days=1)
    agent = "TrailShapeProbe/9.9 (a user agent the demo never uses) md/probe#distinctive-marker"
    for record in made:
        record["tlsDetails"] = {"clientProvidedHostHeader": agent}  # kept in the blob: no column holds it
    folder = tmp_path / "own"
    demo.write_log_files(folder, made, records_per_file=500)
    sync.import_paths(db_path, [folder])
    dictionary = store.open_cache_readonly(db_path).execute("SELECT dictionary FROM codecs").fetchone()[0]
    assert b"distinctive-marker" in dictionary


def test_files_go_to_the_workers_in_groups_of_about_the_byte_budget_in_order():
    refs = [FileRef("local", "", f"f{n}", None, size) for n, size in enumerate([100, 100, 900, 2000, 50, 50, 50])]
    groups = [[ref.key for ref in group] for group in sync.groups_of(refs, max_bytes=1000, max_files=2)]
    assert groups == [["f0", "f1"], ["f2"], ["f3"], ["f4", "f5"], ["f6"]]


def built_the_normal_way(tmp_path) -> dict[str, str]:
    """The `events` indexes of a cache made by the migrations alone, as sqlite_master spells them."""
    store.open_cache(tmp_path / "normal.db").close()
    return store.event_indexes(sqlite3.connect(tmp_path / "normal.db"))


def test_a_kill_during_a_first_import_keeps_its_events_and_the_next_open_builds_the_indexes(db_path, demo_folder,
                                                                                            tmp_path):
    from trailstream.cache import check

    conn = import_killed_after(db_path, demo_folder, tmp_path, 60)
    committed = conn.execute("SELECT coalesce(sum(new_events), 0) FROM files").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == committed > 0
    assert store.event_indexes(conn) == {}  # the first load had set them aside
    problems = check.check_problems(conn)
    assert len(problems) == 1 and "index(es) of `events` are missing" in problems[0]

    store.open_cache(db_path).close()
    assert store.event_indexes(conn) == built_the_normal_way(tmp_path)
    assert check.check_problems(conn) == []
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == committed


def test_a_first_import_builds_the_indexes_the_migrations_define_and_pages_read_while_it_runs(db_path, demo_folder,
                                                                                               tmp_path, monkeypatch):
    from trailstream.analytics import queries
    from trailstream.filters import EventFilter

    seen = []

    def progress(p):
        if p.files_done == 30:
            reader = store.open_cache_readonly(db_path)
            seen.append((store.event_indexes(reader), len(queries.query_events(reader, EventFilter())),
                         len(queries.query_error_counts(reader, EventFilter()))))

    monkeypatch.setattr(sync, "BATCH_ROWS", 50)  # commit often, so a reader sees rows mid-import
    sync.import_paths(db_path, [demo_folder], progress)
    [(indexes_while_loading, rows_read, _)] = seen
    assert indexes_while_loading == {} and rows_read > 0
    assert store.event_indexes(sqlite3.connect(db_path)) == built_the_normal_way(tmp_path)


def test_an_import_into_a_cache_that_holds_events_keeps_its_indexes_throughout(db_path, demo_folder, tmp_path):
    first, rest = sorted(demo_folder.rglob("*.json.gz"))[:5], demo_folder
    sync.import_paths(db_path, first)
    seen = []
    sync.import_paths(db_path, [rest], lambda p: seen.append(store.event_indexes(store.open_cache_readonly(db_path))))
    normal = built_the_normal_way(tmp_path)
    assert seen and all(indexes == normal for indexes in seen)


def test_files_reached_through_links_are_known_by_their_real_path_so_a_reimport_skips_them(db_path, demo_folder,
                                                                                          tmp_path):
    files = sorted(demo_folder.rglob("*.json.gz"))
    linked_folder, linked_file = tmp_path / "via-link", tmp_path / "one-link.json.gz"
    linked_folder.symlink_to(files[0].parent, target_is_directory=True)
    linked_file.symlink_to(files[-1])
    result = sync.import_paths(db_path, [linked_folder, linked_file])
    keys = {row[0] for row in store.open_cache_readonly(db_path).execute("SELECT key FROM files")}
    assert keys == {str(path.resolve()) for path in [*linked_folder.glob("*.json.gz"), linked_file]}
    assert str(files[-1]) in keys and result.new_events > 0
    assert sync.import_paths(db_path, [demo_folder]).unchanged == len(keys)


def test_an_index_of_another_definition_is_named_by_check_and_never_rebuilt_on_open(db_path, demo_folder):
    from trailstream.cache import check

    sync.import_paths(db_path, [demo_folder])
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP INDEX events_time")
        conn.execute("CREATE INDEX events_time ON events (event_time DESC)")
    store.open_cache(db_path).close()
    conn = sqlite3.connect(db_path)
    assert "DESC" in store.event_indexes(conn)["events_time"]
    [problem] = check.check_problems(conn)
    assert "differ from what the schema defines (events_time)" in problem


def test_a_new_cache_gets_large_pages_and_one_made_with_small_pages_keeps_them_and_imports_the_same(db_path,
                                                                                                   demo_folder,
                                                                                                   tmp_path):
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as conn:  # a cache file made before the larger page size: SQLite's default
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
    sync.import_paths(db_path, [demo_folder])
    sync.import_paths(older, [demo_folder])

    def page_size(path):
        return store.open_cache_readonly(path).execute("PRAGMA page_size").fetchone()[0]

    assert (page_size(db_path), page_size(older)) == (store.PAGE_SIZE, 4096) and store.PAGE_SIZE != 4096
    assert event_name_counts(older) == event_name_counts(db_path) and event_count(db_path) == 4000
