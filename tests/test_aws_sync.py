"""Syncing from a real (moto) SQS queue and S3 bucket over HTTP: every notification shape, every failure, kills."""

import gzip
import json
import textwrap
import sys
import subprocess
import sqlite3
import os
import threading
import time
from datetime import date
from pathlib import Path
from urllib.parse import quote_plus

import boto3
import botocore.exceptions
import pytest

from tests.conftest import free_port
from trailstream.ingest import aws as aws_access, aws_sync
from trailstream.cache import store
from trailstream.config import AwsAccess

BUCKET = "trail-bucket"
ACCOUNT = "111122223333"


# ---- tiny CloudTrail factory -------------------------------------------------------------------------------------

def record(event_id: str, when: str = "2026-11-27T10:00:00Z", name: str = "DescribeInstances") -> dict:
    return {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice", "accountId": ACCOUNT,
                         "userName": "alice"},
        "eventTime": when,
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2",
        "requestParameters": None,
        "responseElements": None,
        "eventID": event_id,
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }


def log_bytes(*event_ids: str, when: str = "2026-11-27T10:00:00Z") -> bytes:
    return gzip.compress(json.dumps({"Records": [record(e, when) for e in event_ids]}).encode())


def log_key(tag: str, day: str = "2026/11/27", account: str = ACCOUNT, region: str = "us-east-1",
            prefix: str = "", org: str = "", folder: str = "CloudTrail") -> str:
    """Where CloudTrail writes a log file; tag (letters and digits) makes the name unique."""
    stamp = day.replace("/", "") + "T1005Z"
    organization = f"{org}/" if org else ""
    return (f"{prefix}AWSLogs/{organization}{account}/{folder}/{region}/{day}/"
            f"{account}_{folder}_{region}_{stamp}_{tag:0<16}.json.gz")


def raw_notification(*keys: str, bucket: str = BUCKET) -> str:
    return json.dumps({"s3Bucket": bucket, "s3ObjectKey": list(keys)})


def sns(message: str) -> str:
    return json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                       "Message": message})


def s3_event(key: str, bucket: str = BUCKET, size: int = 100) -> str:
    return json.dumps({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": bucket},
                                           "object": {"key": quote_plus(key), "size": size}}}]})


def eventbridge(key: str, bucket: str = BUCKET) -> str:
    return json.dumps({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
                       "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 100}}})


# ---- fixtures and helpers ----------------------------------------------------------------------------------------

@pytest.fixture
def s3(aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def trail_queue(sqs):
    """A queue whose messages come back 2 s after a consumer dies without deleting them."""
    return sqs.create_queue(QueueName="trail-queue", Attributes={"VisibilityTimeout": "2"})["QueueUrl"]


def send(sqs, queue_url: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)


def sync(db_path, queue_url, **options):
    options = {"buckets": [BUCKET], "wait_seconds": 1, "workers": 1, **options}
    return aws_sync.sync_queue(db_path, queue_url, **options)


def queue_depth(sqs, queue_url) -> tuple[int, int]:
    """(visible, in flight) messages."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def wait_until(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def event_ids(db_path) -> list[str]:
    with store.open_cache_readonly(db_path) as conn:
        return sorted(row[0] for row in conn.execute("SELECT event_id FROM events"))


def file_rows(db_path) -> dict[str, tuple[str, str | None]]:
    with store.open_cache_readonly(db_path) as conn:
        return {row["key"]: (row["status"], row["error"]) for row in conn.execute("SELECT key, status, error FROM files")}


# ---- SQS ---------------------------------------------------------------------------------------------------------

def test_every_notification_shape_is_ingested_and_acknowledged(db_path, s3, sqs, trail_queue):
    odd_key = log_key("odd", prefix="my logs+more/")
    keys = {name: log_key(name) for name in ("sns", "raw", "multia", "multib", "bridge", "snsevent")}
    for name, key in keys.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes(f"{name}-1", f"{name}-2"))
    s3.put_object(Bucket=BUCKET, Key=odd_key, Body=log_bytes("odd-1"))
    send(sqs, trail_queue,
         sns(raw_notification(keys["sns"])),
         raw_notification(keys["raw"]),
         raw_notification(keys["multia"], keys["multib"]),
         s3_event(odd_key),
         sns(s3_event(keys["snsevent"])),
         eventbridge(keys["bridge"]))

    result = sync(db_path, trail_queue, workers=2)

    assert event_ids(db_path) == sorted([f"{name}-{n}" for name in keys for n in (1, 2)] + ["odd-1"])
    assert (result.ok, result.failed, result.messages_deleted) == (7, 0, 6)
    assert file_rows(db_path)[odd_key] == ("ok", None)
    assert queue_depth(sqs, trail_queue) == (0, 0)


def test_test_validation_and_confirmation_messages_are_acknowledged_without_fetching(db_path, s3, sqs, trail_queue):
    send(sqs, trail_queue,
         "CloudTrail validation message.",
         json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}),
         json.dumps({"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe", "Token": "t"}),
         json.dumps({"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}}))

    result = sync(db_path, trail_queue)

    assert (result.files, result.failed, result.messages_deleted) == (0, 0, 4)
    assert file_rows(db_path) == {}
    assert queue_depth(sqs, trail_queue) == (0, 0)


FORGED_SHAPES = {
    "raw": lambda key: raw_notification(key, bucket="attacker-bucket"),
    "sns-wrapped raw": lambda key: sns(raw_notification(key, bucket="attacker-bucket")),
    "s3 event": lambda key: s3_event(key, bucket="attacker-bucket"),
    "sns-wrapped s3 event": lambda key: sns(s3_event(key, bucket="attacker-bucket")),
    "eventbridge": lambda key: eventbridge(key, bucket="attacker-bucket"),
}


@pytest.mark.parametrize("shape", FORGED_SHAPES)
def test_a_notification_for_a_bucket_not_configured_is_refused_and_nothing_stored(db_path, s3, sqs, trail_queue,
                                                                                  shape):
    s3.create_bucket(Bucket="attacker-bucket")
    forged = log_key("forged")
    s3.put_object(Bucket="attacker-bucket", Key=forged, Body=log_bytes("injected"))
    send(sqs, trail_queue, FORGED_SHAPES[shape](forged))

    result = sync(db_path, trail_queue)

    assert event_ids(db_path) == []
    status, error = file_rows(db_path)[forged]
    assert status == "failed"
    assert 'bucket "attacker-bucket" is not one of the trail buckets configured for this queue' in error
    assert (result.failed, result.messages_deleted) == (1, 1)
    assert queue_depth(sqs, trail_queue) == (0, 0)
    assert aws_sync.retry_failed(db_path, workers=1).files == 0  # a refused file is never fetched later either
    assert event_ids(db_path) == []


def test_digest_and_config_check_objects_are_skipped_and_acknowledged(db_path, s3, sqs, trail_queue):
    digest = (f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/27/"
              f"{ACCOUNT}_CloudTrail-Digest_us-east-1_trail_us-east-1_20261127T100000Z.json.gz")
    check = f"AWSLogs/{ACCOUNT}/Config/ConfigWritabilityCheckFile"
    folder = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/27/"
    empty = log_key("empty")
    for key in (digest, check, folder, empty):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"")
    send(sqs, trail_queue, raw_notification(digest), s3_event(check), s3_event(folder, size=0), eventbridge(empty))

    result = sync(db_path, trail_queue)

    rows = file_rows(db_path)
    assert {key: status for key, (status, _) in rows.items()} == dict.fromkeys((digest, check, folder, empty), "skipped")
    # an empty object even in the digest folder (real digests go to the integrity tables: test_integrity)
    assert "empty" in rows[digest][1] and "writability" in rows[check][1] and "empty" in rows[empty][1]
    assert (result.skipped, result.failed, result.messages_deleted) == (4, 0, 4)


def test_a_file_delivered_twice_is_stored_once(db_path, s3, sqs, trail_queue):
    key = log_key("dup")
    s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes("d-1", "d-2", "d-3"))
    send(sqs, trail_queue, raw_notification(key, key), sns(raw_notification(key)), s3_event(key))

    first = sync(db_path, trail_queue)
    send(sqs, trail_queue, eventbridge(key))
    again = sync(db_path, trail_queue)

    assert event_ids(db_path) == ["d-1", "d-2", "d-3"]
    assert first.new_events == 3 and first.messages_deleted == 3
    assert (again.new_events, again.unchanged, again.messages_deleted) == (0, 1, 1)


def test_permanent_failures_are_recorded_and_their_messages_deleted(db_path, s3, sqs, trail_queue):
    missing, corrupt, truncated, good = (log_key(tag) for tag in ("missing", "corrupt", "trunc", "good"))
    s3.put_object(Bucket=BUCKET, Key=corrupt, Body=log_bytes("c-1")[:-12])
    s3.put_object(Bucket=BUCKET, Key=truncated, Body=gzip.compress(b'{"Records": [{"eventID": "t-1", '))
    s3.put_object(Bucket=BUCKET, Key=good, Body=log_bytes("g-1"))
    send(sqs, trail_queue, raw_notification(missing, corrupt), raw_notification(truncated, good), "hello, not JSON")

    result = sync(db_path, trail_queue)

    rows = file_rows(db_path)
    assert rows[missing][0] == "failed" and "not found" in rows[missing][1]
    assert rows[corrupt][0] == "failed" and "corrupt gzip" in rows[corrupt][1]
    assert rows[truncated][0] == "failed" and "not valid JSON" in rows[truncated][1]
    [(message_key, (status, error))] = [(k, v) for k, v in rows.items() if k.startswith("sqs://trail-queue/")]
    assert status == "failed" and "unreadable message" in error and "hello, not JSON" in error
    assert event_ids(db_path) == ["g-1"]
    assert (result.failed, result.messages_deleted) == (4, 3)
    assert queue_depth(sqs, trail_queue) == (0, 0)


def test_access_denied_is_recorded_as_a_failure_and_the_message_deleted(db_path, s3, sqs, trail_queue):
    key = log_key("denied")
    s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes("x-1"))
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}))
    send(sqs, trail_queue, raw_notification(key))

    result = sync(db_path, trail_queue)

    status, error = file_rows(db_path)[key]
    assert status == "failed" and "access denied" in error and "s3:GetObject" in error
    assert (result.failed, result.messages_deleted) == (1, 1)
    assert queue_depth(sqs, trail_queue) == (0, 0)


def test_a_transient_error_leaves_the_message_for_redelivery_until_the_receive_limit(
        db_path, s3, sqs, trail_queue, monkeypatch):
    key = log_key("flaky")
    s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes("f-1"))
    send(sqs, trail_queue, raw_notification(key))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # S3 unreachable, SQS fine
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    first = sync(db_path, trail_queue, max_messages=1, receive_limit=3)

    assert (first.files, first.failed, first.messages_deleted) == (0, 0, 0)
    assert file_rows(db_path) == {}
    assert queue_depth(sqs, trail_queue)[1] == 1  # still in the queue, invisible until its timeout

    # the long poll outlasts the 2 s visibility timeout: deliveries 2 and 3 happen inside this sync
    second = sync(db_path, trail_queue, receive_limit=3, wait_seconds=3)

    status, error = file_rows(db_path)[key]
    assert status == "failed" and "gave up after 3 deliveries" in error and "cannot reach AWS" in error
    assert (second.failed, second.messages_deleted) == (1, 1)

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert aws_sync.retry_failed(db_path, workers=1).ok == 1
    assert event_ids(db_path) == ["f-1"] and file_rows(db_path)[key] == ("ok", None)


def test_a_message_is_deleted_only_after_all_its_files_are_committed(db_path, s3, sqs, trail_queue):
    keys = [log_key("first"), log_key("second")]
    for n, key in enumerate(keys):
        s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes(f"e-{n}"))
    send(sqs, trail_queue, raw_notification(*keys))
    seen = []

    def check(progress):  # runs as each file is stored, before the group commit that makes it durable
        committed = file_rows(db_path)  # what another connection sees: only committed files
        seen.append((progress.current, len(committed), queue_depth(sqs, trail_queue)))

    result = sync(db_path, trail_queue, progress=check)

    # While the files are stored but not yet committed, the message stays in flight, never deleted.
    assert [(files, depth) for _, files, depth in seen] == [(0, (0, 1)), (0, (0, 1))]
    assert len(file_rows(db_path)) == 2
    assert result.messages_deleted == 1 and queue_depth(sqs, trail_queue) == (0, 0)


def test_a_crash_between_commit_and_delete_loses_nothing_and_duplicates_nothing(db_path, s3, sqs, trail_queue):
    key = log_key("crash")
    s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes("k-1", "k-2"))
    send(sqs, trail_queue, raw_notification(key))

    def crash(progress):
        raise RuntimeError("killed right after the commit")

    with pytest.raises(RuntimeError, match="killed"):
        sync(db_path, trail_queue, progress=crash)
    assert event_ids(db_path) == ["k-1", "k-2"]
    assert queue_depth(sqs, trail_queue) == (0, 1)  # not acknowledged

    wait_until(lambda: queue_depth(sqs, trail_queue)[0] == 1, what="the message's visibility timeout to pass")
    result = sync(db_path, trail_queue)

    assert (result.unchanged, result.new_events, result.messages_deleted) == (1, 0, 1)
    assert event_ids(db_path) == ["k-1", "k-2"]
    assert queue_depth(sqs, trail_queue) == (0, 0)
    with store.open_cache_readonly(db_path) as conn:
        assert [row[0] for row in conn.execute("SELECT status FROM sync_runs ORDER BY id")] == ["interrupted", "ok"]


def test_a_second_concurrent_sync_is_refused_with_a_clear_message(db_path, s3, sqs, trail_queue):
    key = log_key("slow")
    s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes("s-1"))
    send(sqs, trail_queue, raw_notification(key))
    started, release = threading.Event(), threading.Event()

    def hold(progress):
        started.set()
        release.wait(30)

    first = threading.Thread(target=sync, args=(db_path, trail_queue), kwargs={"progress": hold})
    first.start()
    try:
        assert started.wait(30)
        with pytest.raises(store.SyncAlreadyRunning, match="already running"):
            sync(db_path, trail_queue)
    finally:
        release.set()
        first.join(30)
    assert event_ids(db_path) == ["s-1"]


def test_a_missing_queue_is_a_failure_that_names_the_queue_and_region(db_path, aws):
    result = aws_sync.sync_queue(db_path, "no-such-queue", [BUCKET], AwsAccess(region="eu-west-1"), workers=1)
    [(name, reason)] = result.failures
    assert 'queue "no-such-queue" not found in eu-west-1' in reason


def test_a_queue_sync_needs_its_trail_buckets(db_path):
    with pytest.raises(ValueError, match="trail bucket"):
        aws_sync.sync_queue(db_path, "q", [])


# ---- S3 backfill -------------------------------------------------------------------------------------------------

ORG = "o-abc123defg"
OTHER = "444455556666"


@pytest.fixture
def trail_bucket(s3):
    """An org trail and an account trail under a custom prefix, plus things a backfill must not ingest."""
    prefix = "custom/prefix/"
    files = {
        "org-in": log_key("orgin", "2026/11/25", prefix=prefix, org=ORG),
        "org-eu": log_key("orgeu", "2026/11/26", region="eu-west-1", prefix=prefix, org=ORG),
        "org-old": log_key("orgold", "2026/10/31", prefix=prefix, org=ORG),
        "acct": log_key("acct", "2026/11/26", account=OTHER, prefix=prefix),
        "acct-late": log_key("late", "2026/12/01", account=OTHER, prefix=prefix),
        "insight": log_key("insight", "2026/11/27", account=OTHER, prefix=prefix, folder="CloudTrail-Insight"),
        "outside": log_key("outside", "2026/11/26", prefix="elsewhere/"),
    }
    for name, key in files.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes(name))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}AWSLogs/{OTHER}/CloudTrail-Digest/us-east-1/2026/11/26/d.json.gz",
                  Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}AWSLogs/{OTHER}/CloudTrail/us-east-1/2026/11/26/", Body=b"")
    return files


def test_backfill_walks_org_and_account_partitions_of_a_date_range(db_path, trail_bucket):
    result = aws_sync.backfill(db_path, BUCKET, "custom/prefix", since=date(2026, 11, 1), until=date(2026, 11, 30),
                               workers=1)

    assert event_ids(db_path) == ["acct", "insight", "org-eu", "org-in"]
    assert (result.ok, result.failed) == (4, 0)
    assert file_rows(db_path)[trail_bucket["org-in"]] == ("ok", None)

    again = aws_sync.backfill(db_path, BUCKET, "custom/prefix/", since="2026-11-01", until="2026-11-30", workers=1)
    assert (again.files, again.new_events, again.failed) == (0, 0, 0)
    assert again.unchanged == 6  # the four log files, the folder placeholder and the digest-folder stray, skipped


@pytest.mark.parametrize(
    ("prefix", "accounts", "regions", "expected"),
    [
        ("custom/prefix", [OTHER], None, ["acct", "acct-late", "insight"]),
        ("custom/prefix", None, ["eu-west-1"], ["org-eu"]),
        (f"custom/prefix/AWSLogs/{ORG}/", None, None, ["org-eu", "org-in", "org-old"]),
        (f"custom/prefix/AWSLogs/{OTHER}", None, None, ["acct", "acct-late", "insight"]),
    ],
)
def test_backfill_filters_accounts_and_regions_and_accepts_deeper_prefixes(
        db_path, trail_bucket, prefix, accounts, regions, expected):
    result = aws_sync.backfill(db_path, BUCKET, prefix, since=None, accounts=accounts, regions=regions, workers=1)
    assert event_ids(db_path) == expected and result.failed == 0


def test_backfill_of_a_wrong_prefix_says_where_it_looked(db_path, trail_bucket):
    result = aws_sync.backfill(db_path, BUCKET, "nothing-here", since=date(2026, 11, 1), workers=1)
    [(name, reason)] = result.failures
    assert name == f"s3://{BUCKET}/nothing-here" and "no CloudTrail log folders found" in reason


def test_backfill_of_a_missing_bucket_is_a_readable_failure(db_path, aws):
    result = aws_sync.backfill(db_path, "no-such-bucket", since=date(2026, 11, 1), workers=1)
    assert 'bucket "no-such-bucket" does not exist' in result.failures[0][1]


# ---- retry and connection test -----------------------------------------------------------------------------------

def test_retry_failed_fetches_s3_and_local_files_again(db_path, s3, sqs, trail_queue, tmp_path):
    key = log_key("late")
    send(sqs, trail_queue, raw_notification(key))
    sync(db_path, trail_queue)
    local = tmp_path / f"{ACCOUNT}_CloudTrail_us-east-1_20261127T1005Z_local00000000000.json.gz"
    local.write_bytes(b"\x1f\x8b broken")
    from trailstream.ingest import sync as local_sync

    local_sync.import_paths(db_path, [local], workers=1)
    assert {status for status, _ in file_rows(db_path).values()} == {"failed"}

    s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes("r-1"))
    local.write_bytes(log_bytes("r-2"))
    result = aws_sync.retry_failed(db_path, workers=1)

    assert (result.ok, result.failed) == (2, 0)
    assert event_ids(db_path) == ["r-1", "r-2"]
    assert {status for status, _ in file_rows(db_path).values()} == {"ok"}


def test_connection_check_reports_ok_for_a_reachable_queue_and_bucket(s3, trail_queue):
    check = aws_access.check_connection(AwsAccess(region="us-east-1"), queue="trail-queue", buckets=[BUCKET])
    assert check.ok, check.message
    assert 'queue "trail-queue" reachable' in check.message and f'bucket "{BUCKET}" readable' in check.message


def test_connection_check_through_an_assumed_role(s3, trail_queue):
    access = AwsAccess(region="us-east-1", role_arn="arn:aws:iam::123456789012:role/trail-reader", external_id="x-1")
    check = aws_access.check_connection(access, queue=trail_queue, buckets=BUCKET)
    assert check.ok, check.message
    assert "assumed-role/trail-reader/trailstream" in check.details[0]


@pytest.mark.parametrize(
    ("queue", "bucket", "answer"),
    [
        ("missing-queue", None, 'queue "missing-queue" not found in us-east-1'),
        (None, "missing-bucket", 'bucket "missing-bucket" not found'),
    ],
)
def test_connection_check_explains_what_is_missing(s3, trail_queue, queue, bucket, answer):
    check = aws_access.check_connection(AwsAccess(region="us-east-1"), queue=queue, buckets=[bucket] if bucket else [])
    assert not check.ok and answer in check.message


def test_connection_check_explains_missing_credentials(aws, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    check = aws_access.check_connection(AwsAccess(region="us-east-1"), queue="q")
    assert not check.ok and "no AWS credentials found" in check.message


def test_connection_check_explains_an_unknown_profile(aws):
    check = aws_access.check_connection(AwsAccess(profile="nobody-has-this", region="us-east-1"))
    assert not check.ok and 'AWS profile "nobody-has-this" not found' in check.message


def client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("SlowDown", 503), True),
        (client_error("ThrottlingException", 400), True),
        (client_error("InternalError", 500), True),
        (client_error("TooManyRequests", 429), True),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3.example"), True),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="https://s3.example"), True),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="https://s3.example"), True),
        (client_error("NoSuchKey", 404), False),
        (client_error("AccessDenied", 403), False),
        (client_error("InvalidObjectState", 403), False),
        (botocore.exceptions.NoCredentialsError(), False),
    ],
)
def test_aws_errors_are_classified_transient_or_permanent(error, transient):
    described = aws_access.describe_error(error, "downloading the object")
    assert aws_access.is_transient(error) is transient and described.transient is transient
    assert "downloading the object" in str(described) or "credentials" in str(described)


SQS_KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sqlite3, sys, threading
    from trailstream.ingest import aws, aws_sync

    aws_sync.COMMIT_EVERY_FILES = 4  # small groups, so the first commit holds some files and not all
    real_receive, real_delete, named, budget = aws.receive_messages, aws.delete_messages, {}, [8]
    budget_lock = threading.Lock()

    def receive_and_note(sqs, queue_url, wait_for, wanted):
        with budget_lock:  # hand out at most eight of the twelve messages, so some are never received before the kill
            wanted, budget[0] = min(wanted, budget[0]), budget[0] - min(wanted, budget[0])
        if wanted == 0:
            threading.Event().wait()  # a long poll that never answers: the other four stay queued
        messages = real_receive(sqs, queue_url, wait_for, wanted)
        with budget_lock:
            budget[0] += wanted - len(messages)
        named.update({m["ReceiptHandle"]: json.loads(m["Body"])["s3ObjectKey"] for m in messages})
        return messages

    def check_then_kill(sqs, queue_url, receipts):
        with sqlite3.connect(sys.argv[1]) as conn:  # what another process sees: committed rows only
            committed = {row[0] for row in conn.execute("SELECT key FROM files")}
        if any(key not in committed for receipt in receipts for key in named[receipt]):
            print("a message was deleted before its file was committed", file=sys.stderr)
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)  # the first group is committed; its messages are not deleted

    aws.receive_messages, aws.delete_messages = receive_and_note, check_then_kill
    aws_sync.sync_queue(sys.argv[1], sys.argv[2], [sys.argv[3]], wait_seconds=1, workers=1)
    """
)


def test_a_kill_between_a_group_commit_and_its_deletes_loses_nothing(db_path, s3, sqs, trail_queue, tmp_path):
    keys = [log_key(f"kill{n:02d}x") for n in range(12)]
    for n, key in enumerate(keys):
        s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes(f"kill-{n}-a", f"kill-{n}-b"))
        send(sqs, trail_queue, raw_notification(key))
    script = tmp_path / "kill_sqs.py"
    script.write_text(SQS_KILL_SCRIPT)

    killed = subprocess.run([sys.executable, str(script), str(db_path), trail_queue, BUCKET], capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, timeout=120)

    assert killed.returncode == -9, killed.stderr.decode()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = {row[0] for row in conn.execute("SELECT key FROM files WHERE status = 'ok'")}
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2 * len(committed)
    assert 1 <= len(committed) <= 8  # killed after a commit, with at least four messages never received

    wait_until(lambda: queue_depth(sqs, trail_queue)[1] == 0, what="the killed consumer's messages to come back")
    resumed = sync(db_path, trail_queue)

    assert resumed.unchanged >= 1  # a committed group's messages were not deleted: replayed, and nothing stored twice
    assert resumed.new_events == 2 * (len(keys) - len(committed)) and resumed.duplicates == 0
    assert event_ids(db_path) == sorted(f"kill-{n}-{part}" for n in range(12) for part in "ab")
    assert queue_depth(sqs, trail_queue) == (0, 0)
