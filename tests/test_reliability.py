"""Reliability under faults: a cache whose disk fills up mid-import or mid-SQS-sync stops with a sentence, deletes no
message whose events are not stored, and the next sync once space is freed finishes with nothing lost or doubled."""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
import time

import boto3
import pytest

from trailstream.cache import store
from trailstream.ingest import aws_sync, sync

BUCKET = "trail-bucket"
ACCOUNT = "111122223333"
FILES = 12
EVENTS_PER_FILE = 300
FULL = "the disk holding the cache is full: {} files stored, the rest left for the next sync"


def log_records(tag: str) -> dict:
    """A log file's worth of distinct events, each with its own eventID, so every file needs fresh pages."""
    return {"Records": [{
        "eventVersion": "1.09", "eventTime": f"2026-11-27T10:{n % 60:02d}:00Z", "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9",
        "userAgent": f"aws-cli/2 {tag}-{n}", "eventID": f"{tag}-{n:05d}", "eventType": "AwsApiCall",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/u{n}", "accountId": ACCOUNT},
        "requestParameters": {"instancesSet": {"items": [{"instanceId": f"i-{tag}{n:012d}"}]}},
        "readOnly": True, "recipientAccountId": ACCOUNT,
    } for n in range(EVENTS_PER_FILE)]}


def log_key(n: int) -> str:
    return (f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/27/"
            f"{ACCOUNT}_CloudTrail_us-east-1_20261127T1005Z_{n:016d}.json.gz")


def page_count_and_size(db_path) -> tuple[int, int]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("PRAGMA page_count").fetchone()[0], conn.execute("PRAGMA page_size").fetchone()[0]


def stored(db_path) -> tuple[int, int, int]:
    """(files stored whole, events, distinct eventIDs) as another connection sees them."""
    with store.open_cache_readonly(db_path) as conn:
        files = conn.execute("SELECT count(*) FROM files WHERE status = 'ok' AND records > 0").fetchone()[0]
        return (files, *conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone())


def fill_disk_after(db_path, monkeypatch, kib: int) -> None:
    """The writer gets only about `kib` KiB more (whole pages): SQLite then answers SQLITE_FULL, as on a full
    filesystem."""
    pages, page_size = page_count_and_size(db_path)
    monkeypatch.setenv(sync.MAX_PAGE_COUNT_ENV, str(pages + kib * 1024 // page_size))


def prepared_cache(db_path, tmp_path) -> None:
    """A cache with its dictionary and one small file, so the page cap measures only what the test imports."""
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"Records": log_records("seed")["Records"][:5]}))
    assert sync.import_paths(db_path, [first], workers=1).succeeded


@pytest.fixture
def log_folder(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    for n in range(FILES):
        (folder / f"file{n:02d}.json.gz").write_bytes(gzip.compress(json.dumps(log_records(f"f{n}")).encode()))
    return folder


def test_a_full_disk_stops_an_import_with_a_sentence_and_the_next_import_finishes(db_path, tmp_path, log_folder,
                                                                                    monkeypatch):
    prepared_cache(db_path, tmp_path)
    monkeypatch.setattr(sync, "BATCH_ROWS", 1)  # commit after every file, so some are durable before the disk fills
    fill_disk_after(db_path, monkeypatch, 480)

    result = sync.import_paths(db_path, [log_folder], workers=1)

    files, events, distinct = stored(db_path)
    assert 0 < files - 1 < FILES, "the cap should leave room for some files and not all"
    assert result.failures == [("cache", FULL.format(files - 1))]
    assert events == distinct == 5 + (files - 1) * EVENTS_PER_FILE  # only whole files, each once

    monkeypatch.delenv(sync.MAX_PAGE_COUNT_ENV)  # space freed
    again = sync.import_paths(db_path, [log_folder], workers=1)

    assert again.succeeded and (again.ok, again.unchanged) == (FILES - (files - 1), files - 1)
    assert stored(db_path) == (FILES + 1, 5 + FILES * EVENTS_PER_FILE, 5 + FILES * EVENTS_PER_FILE)


def test_the_cli_says_the_disk_is_full_in_a_sentence_without_a_traceback(db_path, tmp_path, log_folder, monkeypatch,
                                                                          capsys):
    from trailstream import cli

    prepared_cache(db_path, tmp_path)
    fill_disk_after(db_path, monkeypatch, 80)

    code = cli.main(["--db", str(db_path), "--no-alerts", "import", str(log_folder)])

    err = capsys.readouterr().err
    assert code != 0 and FULL.format(0) in err and "Traceback" not in err
    assert stored(db_path)[1] == 5


@pytest.fixture
def trail(aws):
    """A trail bucket with FILES log files and a queue holding one raw CloudTrail notification per file."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="trail-queue", Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    for n in range(FILES):
        s3.put_object(Bucket=BUCKET, Key=log_key(n), Body=gzip.compress(json.dumps(log_records(f"q{n}")).encode()))
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": [log_key(n)]}))
    return sqs, queue


def queue_depth(sqs, queue) -> int:
    """Messages still in the queue, visible or in flight."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def visible(sqs, queue) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_a_full_disk_mid_sqs_sync_deletes_no_message_whose_events_are_not_stored(db_path, tmp_path, trail,
                                                                                  monkeypatch):
    sqs, queue = trail
    prepared_cache(db_path, tmp_path)
    fill_disk_after(db_path, monkeypatch, 1400)

    for _ in range(FILES):  # short syncs, as `watch` runs them, until one meets the full disk
        result = aws_sync.sync_queue(db_path, queue, [BUCKET], wait_seconds=1, workers=1, max_messages=2)
        if result.failures:
            break

    files, events, distinct = stored(db_path)
    assert 0 < files - 1 < FILES, "the cap should leave room for some files and not all"
    assert len(result.failures) == 1 and result.failures[0][0] == "cache"
    assert re.fullmatch(FULL.format(r"\d+"), result.failures[0][1])
    assert events == distinct == 5 + (files - 1) * EVENTS_PER_FILE
    assert queue_depth(sqs, queue) >= FILES - (files - 1)  # every unstored file's message is still queued

    monkeypatch.delenv(sync.MAX_PAGE_COUNT_ENV)  # space freed; the kept messages come back after their timeout
    wait_until(lambda: visible(sqs, queue) == queue_depth(sqs, queue), "the kept messages to be visible again")
    again = aws_sync.sync_queue(db_path, queue, [BUCKET], wait_seconds=1, workers=1)

    assert again.succeeded, again.failures
    assert stored(db_path) == (FILES + 1, 5 + FILES * EVENTS_PER_FILE, 5 + FILES * EVENTS_PER_FILE)
    assert queue_depth(sqs, queue) == 0


def test_the_sync_button_says_the_disk_is_full_in_a_sentence(app_empty_cache, log_folder, monkeypatch):
    from tests.conftest import open_page, page_specs
    from trailstream import config

    settings = config.load_settings()
    settings.sources = [config.LocalSource(name="logs", path=str(log_folder))]
    config.save_settings(settings)
    fill_disk_after(app_empty_cache, monkeypatch, 8)  # not even room for the new cache's dictionary
    at = open_page(page_specs()[0][1], range="all")

    next(button for button in at.button if button.label == "Sync").click().run()

    assert not at.exception
    assert any(FULL.format(0) in text.value for text in at.text), [text.value for text in at.text]
    assert stored(app_empty_cache)[1] == 0
