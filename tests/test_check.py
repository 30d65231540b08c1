"""A damaged cache: `check` says what is wrong in sentences, a cache that cannot be opened gets a sentence (CLI and
app, never a traceback), and `rebuild` re-reads every stored file from its source into a fresh cache."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from tests.conftest import open_page, page_specs, point_app_at
from trailstream import cli
from trailstream.cache import check, store, wordindex
from trailstream.ingest import demo, sync

END = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
COMPARED = ("event_id", "event_time", "event_source", "event_name", "aws_region", "account_id", "principal",
            "principal_arn", "user_type", "access_key_id", "source_ip", "user_agent", "error_code", "error_message",
            "read_only", "event_type", "event_category", "resources", "request_parameters", "response_elements",
            "additional_event_data", "record_hash")


@pytest.fixture(scope="module")
def local_logs(tmp_path_factory) -> Path:
    """Demo activity written as CloudTrail log files in a folder."""
    folder = tmp_path_factory.mktemp("local-logs")
    demo.write_log_files(folder, demo.generate_records(events=2000, seed=5, end=END), records_per_file=200)
    return folder


@pytest.fixture(scope="module")
def local_cache(local_logs, tmp_path_factory) -> Path:
    """A cache built by importing the local log files (each stored with its absolute path)."""
    path = tmp_path_factory.mktemp("local-cache") / "local.db"
    assert sync.import_paths(path, [local_logs], workers=1).failed == 0
    store.open_cache(path).close()
    return path


@pytest.fixture
def cache_copy(local_cache, tmp_path) -> Path:
    """A private copy of the local cache, free to damage."""
    path = tmp_path / "copy.db"
    shutil.copy(local_cache, path)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "unexpected" not in captured.err, captured.err
    return code, captured.out, captured.err


def events_of(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT {', '.join(COMPARED)} FROM events ORDER BY event_id").fetchall()


def tamper(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            assert conn.execute(statement).rowcount != 0, statement


def test_a_sound_cache_passes_the_check(local_cache, capsys):
    code, out, err = run_cli(capsys, "--db", str(local_cache), "check")
    assert code == 0 and err == ""
    assert "is sound" in out and "2,000 events" in out


def test_tampered_rollups_are_named_with_what_is_wrong(cache_copy, capsys):
    tamper(cache_copy, "UPDATE rollup_names_hour SET events = events + 1 WHERE rowid IN (SELECT rowid FROM "
                       "rollup_names_hour LIMIT 2)",
           "DELETE FROM rollup_actors_day WHERE rowid = (SELECT min(rowid) FROM rollup_actors_day)")
    code, out, err = run_cli(capsys, "--db", str(cache_copy), "check")
    assert code == 1 and "2 problem(s)" in out
    problems = err.splitlines()
    (hourly,) = [p for p in problems if "rollup_names_hour" in p]
    assert "disagrees with `events`: 2 of its" in hourly and "rebuild --to NEW.db" in hourly
    (daily,) = [p for p in problems if "rollup_actors_day" in p]
    assert "disagrees with `events`: 0 of its" in daily and "1 of the" in daily


def test_an_emptied_word_index_is_found_missing(cache_copy, capsys):
    tamper(cache_copy, f"INSERT INTO {wordindex.TABLE} ({wordindex.TABLE}) VALUES ('delete-all')")
    with sqlite3.connect(cache_copy) as conn:
        problems = check.derived_problems(conn)
    assert len(problems) == 1 and "2000 event(s) are not found by their own event name" in problems[0]


def test_events_removed_behind_the_derived_data_are_found(cache_copy):
    tamper(cache_copy, "DELETE FROM events WHERE rowid > (SELECT max(rowid) - 5 FROM events)")
    with sqlite3.connect(cache_copy) as conn:
        problems = check.derived_problems(conn)
    assert any("events were removed behind its back" in p for p in problems)
    assert any("rollup_names_day" in p for p in problems)


def test_events_whose_file_row_is_gone_are_named_because_rebuild_cannot_bring_them_back(cache_copy, capsys):
    tamper(cache_copy, "DELETE FROM files WHERE id = (SELECT file_id FROM events ORDER BY rowid LIMIT 1)")
    code, out, err = run_cli(capsys, "--db", str(cache_copy), "check")
    assert code == 1 and "came from files the cache no longer lists" in err and "a rebuild cannot re-read" in err


def test_a_corrupted_page_is_reported_as_damage(cache_copy, capsys):
    with sqlite3.connect(cache_copy) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = cache_copy.stat().st_size // page_size
    with open(cache_copy, "r+b") as file:
        for page in (pages // 3, pages // 2):  # b-tree pages of events and their indexes, overwritten
            file.seek(page * page_size + 8)
            file.write(bytes(range(256)) * 4)
    code, out, err = run_cli(capsys, "--db", str(cache_copy), "check")
    assert code == 1 and "damaged" in err
    assert "integrity check" in err or str(cache_copy) in err


def test_a_damaged_index_is_reported_and_rebuild_is_the_way_back(local_cache, cache_copy, tmp_path, capsys):
    with sqlite3.connect(cache_copy) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        leaves = [row[0] for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'events_time' AND pagetype = 'leaf' ORDER BY pageno")]
    with open(cache_copy, "r+b") as file:  # an index page of `events` overwritten: the files table is intact
        file.seek((leaves[len(leaves) // 2] - 1) * page_size + page_size // 2)
        file.write(b"\xff" * 200)
    code, out, err = run_cli(capsys, "--db", str(cache_copy), "check")
    assert code == 1 and "The file is damaged" in err and "rebuild --to NEW.db" in err
    target = tmp_path / "rebuilt.db"
    code, out, err = run_cli(capsys, "--db", str(cache_copy), "rebuild", "--to", str(target))
    assert code == 0 and events_of(target) == events_of(local_cache)
    assert run_cli(capsys, "--db", str(target), "check")[0] == 0


@pytest.fixture(params=["garbage", "truncated", "folder"])
def unopenable(request, local_cache, tmp_path) -> Path:
    """A cache path SQLite cannot use: random bytes, a cache cut short inside its first page, or a folder."""
    path = tmp_path / "broken.db"
    if request.param == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    elif request.param == "truncated":
        path.write_bytes(local_cache.read_bytes()[:3000])
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("command", [["check"], ["status"], ["findings"], ["import", "."], ["rebuild", "--to", "x"]])
def test_a_cache_that_cannot_be_opened_gets_a_sentence_in_the_cli(unopenable, command, capsys, tmp_path):
    argv = ["--db", str(unopenable), *command]
    if command[0] == "rebuild":
        argv[-1] = str(tmp_path / "new.db")
    code, out, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.startswith(f"error: the cache {unopenable} ") and "sync again" in err
    assert "folder" in err if unopenable.is_dir() else "not a SQLite database" in err or "damaged" in err


def test_a_cache_that_cannot_be_opened_gets_a_sentence_in_the_app(unopenable, tmp_path, monkeypatch):
    point_app_at(monkeypatch, unopenable, tmp_path / "trailstream.toml")
    at = open_page("pages/overview.py")
    assert any("cannot be read" in error.value for error in at.error)


def test_rebuild_from_local_files_gives_the_same_events_and_keeps_what_people_made(cache_copy, tmp_path, capsys):
    from trailstream.notify import saved

    tamper(cache_copy, "UPDATE rollup_names_day SET events = 0")
    saved.save_search(cache_copy, saved.SavedSearch("errors", "sql", sql="SELECT count(*) FROM events", period="7d"))
    tamper(cache_copy, "INSERT INTO audit_log (at, actor, action, detail) VALUES ('2026-03-01T00:00:00Z', 'ana', 'sync', '')")
    target = tmp_path / "rebuilt.db"
    code, out, err = run_cli(capsys, "--db", str(cache_copy), "rebuild", "--to", str(target))
    assert code == 0 and "could not be re-read" in out and out.rstrip().endswith("0 could not be re-read")
    assert events_of(target) == events_of(cache_copy) and len(events_of(target)) == 2000
    for table in ("saved_searches", "audit_log"):
        with sqlite3.connect(cache_copy) as old, sqlite3.connect(target) as new:
            assert new.execute(f"SELECT * FROM {table}").fetchall() == old.execute(f"SELECT * FROM {table}").fetchall()
    code, out, _ = run_cli(capsys, "--db", str(target), "check")
    assert code == 0 and "is sound" in out


def test_rebuild_lists_files_that_are_gone_and_data_no_file_holds(local_logs, tmp_path, capsys):
    folder = tmp_path / "logs"
    shutil.copytree(local_logs, folder)
    source = tmp_path / "source.db"
    sync.import_paths(source, [folder], workers=1)
    sync.import_demo(tmp_path / "demo.db", 500, seed=2, end=END, workers=1)
    gone = sorted(folder.rglob("*.json.gz"))[0]
    gone.unlink()
    target = tmp_path / "rebuilt.db"
    code, out, err = run_cli(capsys, "--db", str(source), "rebuild", "--to", str(target))
    assert code == 1 and out.rstrip().endswith("1 could not be re-read")
    assert f"not re-read: {gone}: the file no longer exists" in err
    code, out, err = run_cli(capsys, "--db", str(tmp_path / "demo.db"), "rebuild", "--to", str(tmp_path / "d2.db"))
    assert code == 1 and "generated demo data, not read from a file" in err


def test_rebuild_never_overwrites_a_file(local_cache, tmp_path, capsys):
    target = tmp_path / "exists.db"
    target.write_bytes(b"keep me")
    code = cli.main(["--db", str(local_cache), "rebuild", "--to", str(target)])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"


def test_every_page_on_a_garbage_cache_shows_no_traceback(tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(bytes(range(256)) * 64)
    point_app_at(monkeypatch, garbage, tmp_path / "trailstream.toml")
    told = set()
    pages = [page for _, page, _ in page_specs()]
    for page in pages:
        at = open_page(page)  # fails on any exception a page raises
        if any("cannot be read" in error.value for error in at.error):
            told.add(page)
    assert "pages/overview.py" in told and len(told) >= len(pages) // 2, told


def test_rebuild_fetches_s3_keys_again_and_names_the_one_that_is_gone(aws, tmp_path, capsys):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="trail-bucket")
    files = list(demo.iter_log_files(demo.generate_records(events=600, seed=9, end=END), records_per_file=100))
    for key, body in files:
        s3.put_object(Bucket="trail-bucket", Key=key, Body=body)
    source, target, settings = tmp_path / "s3.db", tmp_path / "rebuilt.db", str(tmp_path / "none.toml")
    code, _, _ = run_cli(capsys, "--db", str(source), "--config", settings, "--no-alerts", "backfill",
                         "s3://trail-bucket", "--since", "2026-01-01")
    assert code == 0
    gone_key = files[0][0]
    s3.delete_object(Bucket="trail-bucket", Key=gone_key)
    code, out, err = run_cli(capsys, "--db", str(source), "--config", settings, "rebuild", "--to", str(target))
    assert code == 1 and out.rstrip().endswith("1 could not be re-read")
    assert f"not re-read: s3://trail-bucket/{gone_key}" in err
    gone_ids = {r["eventID"] for r in orjson.loads(gzip.decompress(files[0][1]))["Records"]}
    kept = [row for row in events_of(source) if row[0] not in gone_ids]
    assert events_of(target) == kept and len(kept) == len(events_of(source)) - len(gone_ids) > 0


def test_a_cache_held_by_another_writer_is_called_busy_not_damaged(tmp_path, monkeypatch, capsys):
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # a rollback-journal file mid-write: switching it to WAL must wait for it
    monkeypatch.setattr(store, "BUSY_TIMEOUT_SECONDS", 0.1)
    try:
        with pytest.raises(store.CacheUnreadable, match="is busy: another process has held it"):
            store.open_cache(path)
        code, out, err = run_cli(capsys, "--db", str(path), "status")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1 and "is busy" in err
    assert "Move it away" not in err and "damaged" not in err  # the advice for a broken file would lose a sound one
