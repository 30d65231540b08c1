"""A selected lake event's raw record, read back from the log file the lake's lineage names (a local file or an S3
object on moto's server), trusted only while the file keeps the SHA-256 the compactor saw; shown as inert JSON."""

from __future__ import annotations

import gzip
import json
import shutil
from contextlib import closing
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tests.conftest import open_page, point_app_at_lake, write_demo_logs
from trailstream.analytics import backend
from trailstream.cache import store
from trailstream.filters import EventFilter
from trailstream.ingest import lake, lineage, sync

END = datetime(2026, 3, 2, tzinfo=timezone.utc)
HOSTILE = "[click](https://evil.example) <img src=x onerror=alert(1)> =HYPERLINK(\"x\")"
HOSTILE_TIME = "2026-03-01T12:00:00Z"
SNAPSHOTS = Path(__file__).parent / "data" / "athena_lookup_queries.json"


def _hostile_record(event_id: str = "hostile-1", agent: str = HOSTILE) -> dict:
    return {"eventID": event_id, "eventTime": HOSTILE_TIME, "eventName": "PutObject",
            "eventSource": "s3.amazonaws.com", "awsRegion": "eu-west-1", "recipientAccountId": "444455556666",
            "userIdentity": {"type": "IAMUser", "userName": HOSTILE}, "userAgent": agent, "errorCode": HOSTILE,
            "sourceIPAddress": "203.0.113.9"}


def _write_log(path: Path, *records: dict) -> None:
    path.write_bytes(gzip.compress(json.dumps({"Records": list(records)}).encode()))


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A cache and a lake from the same demo files plus one hostile file; the hostile file's folder."""
    logs, hostile, folder = (tmp_path_factory.mktemp(name) for name in ("logs", "hostile", "stores"))
    write_demo_logs(logs, 1500, 6, END)
    _write_log(hostile / "hostile.json.gz", _hostile_record())
    sync.import_paths(folder / "cache.db", [logs, hostile], workers=1)
    lake.compact_paths(folder / "lake", [logs, hostile], workers=1)
    return folder / "cache.db", folder / "lake", hostile


def _source(duck: backend.LakeBackend, event_id: str, event_time: str) -> tuple[str, str | None]:
    return duck.query("record_source", EventFilter(), event_id=event_id, event_time=event_time).row(0)


def test_every_lake_events_source_is_the_file_the_cache_stored_it_from_and_its_record_is_the_caches(stores):
    duck = backend.duckdb_backend(str(stores[1]))
    cache = stores[0]
    with closing(store.open_cache_readonly(cache)) as conn:
        sample = conn.execute("SELECT event_id, event_time FROM events ORDER BY event_id LIMIT 25").fetchall()
        for event_id, event_time in sample:
            key, sha256 = _source(duck, event_id, event_time)
            on_cache = backend.CacheBackend(conn).query("record_source", EventFilter(), event_id=event_id,
                                                        event_time=event_time)
            assert on_cache.item(0, "source_key") == key and len(sha256) == 64
            found = lineage.fetch_source_record(key, sha256, event_id)
            assert found.verified and found.record == store.load_record(conn, event_id)


def test_a_file_changed_since_compaction_is_refused(stores, tmp_path):
    hostile = stores[2]
    copy = tmp_path / "logs"
    shutil.copytree(hostile, copy)
    changed_lake = tmp_path / "lake"
    lake.compact_paths(changed_lake, [copy], workers=1)
    key, sha256 = _source(backend.duckdb_backend(str(changed_lake)), "hostile-1", HOSTILE_TIME)
    assert lineage.fetch_source_record(key, sha256, "hostile-1").verified
    _write_log(Path(key), _hostile_record(agent="rewritten after compaction"))
    with pytest.raises(lineage.LineageError, match="has changed since it was compacted"):
        lineage.fetch_source_record(key, sha256, "hostile-1")


def test_a_missing_file_an_unknown_event_and_an_unreadable_key_are_sentences(stores, tmp_path):
    with pytest.raises(lineage.LineageError, match="is not on this machine"):
        lineage.fetch_source_record(str(tmp_path / "gone.json.gz"), "0" * 64, "hostile-1")
    key, sha256 = _source(backend.duckdb_backend(str(stores[1])), "hostile-1", HOSTILE_TIME)
    with pytest.raises(lineage.LineageError, match="holds no record with its event ID"):
        lineage.fetch_source_record(key, sha256, "another-event")
    with pytest.raises(lineage.LineageError, match="names no file this machine can read"):
        lineage.fetch_source_record("https://evil.example/x.json", None, "hostile-1")


def test_a_lake_compacted_from_s3_reads_the_record_back_from_the_object(aws, tmp_path):
    import boto3

    key = "AWSLogs/444455556666/CloudTrail/eu-west-1/2026/03/01/444455556666_CloudTrail_eu-west-1_20260301T1205Z_x.json.gz"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="trail")
    s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(json.dumps({"Records": [_hostile_record()]}).encode()))
    assert not lake.compact_s3(str(tmp_path / "lake"), "s3://trail", date(2026, 3, 1)).failures
    source_key, sha256 = _source(backend.duckdb_backend(str(tmp_path / "lake")), "hostile-1", HOSTILE_TIME)
    assert source_key == f"s3://trail/{key}"
    assert lineage.fetch_source_record(source_key, sha256, "hostile-1").record == _hostile_record()
    s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(json.dumps({"Records": [_hostile_record(
        agent="replaced")]}).encode()))
    with pytest.raises(lineage.LineageError, match="has changed since it was compacted"):
        lineage.fetch_source_record(source_key, sha256, "hostile-1")
    s3.delete_object(Bucket="trail", Key=key)
    with pytest.raises(lineage.LineageError, match="object not found"):
        lineage.fetch_source_record(source_key, sha256, "hostile-1")


def test_the_lookups_athena_renderings_parse_back_as_trino_and_match_their_snapshot():
    athena = backend.LakeBackend(exp.to_table('"trailstream"."events"', dialect="trino"), "athena", lambda sql: None)
    rendered = {
        "newest_event open": athena.render("newest_event", EventFilter(accounts=("111122223333",))),
        "newest_event writes": athena.render("newest_event", EventFilter(end="2026-03-02T00:05:00Z",
                                                                         include_read_only=False)),
        "record_source": athena.render("record_source", EventFilter(), event_id="x') OR 1=1 --",
                                       event_time=HOSTILE_TIME),
    }
    for sql in rendered.values():
        assert isinstance(sqlglot.parse_one(sql, read="trino"), exp.Select)
    assert "'x'') OR 1=1 --'" in rendered["record_source"] and "date >= '2026-03-01'" in rendered["record_source"]
    assert rendered == json.loads(SNAPSHOTS.read_text())


# --- The Search page on a lake whose events the cache beside it does not hold -----------------------


@pytest.fixture
def lake_only_event(stores, tmp_path, monkeypatch) -> Path:
    """The app on an empty cache, reading a lake of the hostile file alone; returns that file."""
    hostile = tmp_path / "hostile"
    shutil.copytree(stores[2], hostile)
    lake.compact_paths(tmp_path / "lake", [hostile], workers=1)
    empty = tmp_path / "empty.db"
    store.open_cache(empty).close()
    point_app_at_lake(monkeypatch, tmp_path, empty, tmp_path / "lake")
    return hostile / "hostile.json.gz"


def _selected_raw_event(at):
    at.session_state["recent-events"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    return at.run()


def _shown_markup(at) -> list[str]:
    return [str(element.value) for element in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error,
                                                  *at.subheader)]


def test_a_selected_lake_event_shows_its_source_record_as_inert_json(lake_only_event):
    at = _selected_raw_event(open_page("pages/search.py", range="all"))
    assert not at.exception, [exception.value for exception in at.exception]
    assert "Raw event" in [subheader.value for subheader in at.subheader]
    [record] = at.json
    assert json.loads(record.value)["userAgent"] == HOSTILE
    assert any("SHA-256 still matches" in caption.value for caption in at.caption)
    assert str(lake_only_event.resolve()) in [text.value for text in at.text]
    assert not any("evil.example" in value for value in _shown_markup(at))


def test_a_selected_lake_event_whose_file_changed_or_went_says_so_in_a_sentence(lake_only_event):
    _write_log(lake_only_event, _hostile_record(agent="rewritten after compaction"))
    at = _selected_raw_event(open_page("pages/search.py", range="all"))
    assert not at.exception and not at.json
    assert any("has changed since it was compacted" in text.value for text in at.text)
    lake_only_event.unlink()
    import streamlit

    streamlit.cache_data.clear()
    at = _selected_raw_event(open_page("pages/search.py", range="all"))
    assert not at.exception and not at.json
    assert any("is not on this machine" in text.value for text in at.text)


def test_a_lake_event_the_cache_holds_shows_the_caches_record_without_reading_its_file(tmp_path, monkeypatch):
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    _write_log(hostile / "hostile.json.gz", _hostile_record())
    sync.import_paths(tmp_path / "cache.db", [hostile], workers=1)
    lake.compact_paths(tmp_path / "lake", [hostile], workers=1)
    (hostile / "hostile.json.gz").unlink()  # reading the source file now would fail
    point_app_at_lake(monkeypatch, tmp_path, tmp_path / "cache.db", tmp_path / "lake")
    at = _selected_raw_event(open_page("pages/search.py", range="all"))
    assert not at.exception and not at.warning
    [record] = at.json
    assert json.loads(record.value)["userAgent"] == HOSTILE
    assert not any("source file" in caption.value for caption in at.caption)


def test_the_source_that_reads_a_bucket_lends_its_credentials_else_the_backends():
    from trailstream.config import AwsAccess, S3Source, SqsSource

    sources = [SqsSource(name="queue", queue="q", buckets=["org-trail"], profile="sqs-reader"),
               S3Source(name="backfill", bucket="old-trail", role_arn="arn:aws:iam::111122223333:role/Reader")]
    fallback = AwsAccess(profile="lake-reader")
    assert lineage.source_access("org-trail", sources, fallback).profile == "sqs-reader"
    assert lineage.source_access("old-trail", sources, fallback).role_arn.endswith(":role/Reader")
    assert lineage.source_access("elsewhere", sources, fallback) == fallback
