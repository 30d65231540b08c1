"""CloudTrail events from EventBridge (issue 19): stored early and alerted at once, replaced by their log file without
a duplicate or a refusal, listed when never confirmed, and foreign or broken EventBridge messages refused with a
reason. AWS is moto's server on loopback; mail is aiosmtpd on loopback."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from tests.test_aws_sync import BUCKET, log_key, queue_depth, s3_event, send, sns, sync
from tests.test_derived import assert_derived_data_matches_events
from trailstream import config, jobs
from trailstream.cache import bookkeeping, early, store
from trailstream.ingest.messages import MessageError, parse_message_body

ACCOUNT = "111122223333"
STOP_ID = "4d1b6b4a-0f1e-4a39-9d2b-5e7f0c8a9b10"


def stop_logging(event_id: str = STOP_ID) -> dict:
    """The StopLogging record as EventBridge delivers it in `detail`."""
    return {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::{ACCOUNT}:user/mallory",
                         "accountId": ACCOUNT, "accessKeyId": "AKIAEXAMPLE", "userName": "mallory"},
        "eventTime": "2026-11-27T10:00:00Z",
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.66",
        "userAgent": "aws-cli/2.15",
        "requestParameters": {"name": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail"},
        "responseElements": None,
        "requestID": "9f8e7d6c-0000-4000-8000-000000000001",
        "eventID": event_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }


def bridged(detail, detail_type: str = "AWS API Call via CloudTrail", source: str = "aws.cloudtrail",
            **extra) -> dict:
    event = {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type,
             "source": source, "account": ACCOUNT, "time": "2026-11-27T10:00:01Z", "region": "us-east-1",
             "resources": [], **extra}
    if detail is not None:
        event["detail"] = detail
    return event


def as_logged(record: dict) -> dict:
    """The same record as its log file brings it: keys in another order and a field CloudTrail adds at delivery."""
    logged = {key: record[key] for key in reversed(record)}
    logged["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                            "clientProvidedHostHeader": "cloudtrail.us-east-1.amazonaws.com"}
    return logged


@pytest.fixture
def s3(aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def trail_queue(sqs):
    return sqs.create_queue(QueueName="trail-queue", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]


@pytest.fixture
def settings(tmp_path, mail_server, trail_queue):
    path = tmp_path / "trailstream.toml"
    path.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {mail_server.port}\nsecurity = "none"\ntimeout = 10\n'
        'sender = "TrailStream <trailstream@example.com>"\nrecipients = ["secops@example.com"]\n\n'
        '[alerts]\nbase_url = "https://trailstream.example.com"\nmax_age = "36500d"\n\n'
        f'[[sources]]\nname = "trail queue"\nkind = "sqs"\nqueue = "{trail_queue}"\nbuckets = ["{BUCKET}"]\n'
    )
    return config.load_settings(path)


def mails_naming(mail_server, text: str) -> list:
    return [message for message in mail_server.inbox.messages if text in message.get_body(("plain",)).get_content()]


def early_rows(db_path) -> list[tuple]:
    with store.open_cache_readonly(db_path) as conn:
        return [tuple(row) for row in conn.execute("SELECT event_id, queue, confirmed_at IS NOT NULL FROM early_events")]


@pytest.mark.parametrize("wrap", ["raw", "sns", "input transformer"])
def test_cloudtrail_events_from_eventbridge_are_read_raw_or_wrapped(wrap):
    event = bridged(stop_logging())
    body = {"raw": json.dumps(event), "sns": sns(json.dumps(event)),
            "input transformer": json.dumps({"event": event})}[wrap]
    notification = parse_message_body(body)
    assert notification.kind == "cloudtrail_event" and notification.objects == []
    assert notification.record == stop_logging()


@pytest.mark.parametrize("event, reason", [
    (bridged({"instance-id": "i-0abc", "state": "stopped"}, "EC2 Instance State-change Notification", "aws.ec2"),
     "neither a CloudTrail event"),
    (bridged(None), "without a detail"),
    (bridged(stop_logging(), source="my.forged.app"), "not an AWS service"),
    (bridged({**stop_logging(), "eventID": ""}), "no eventID"),
])
def test_foreign_or_broken_eventbridge_messages_are_acknowledged_and_recorded_never_stored(
        db_path, sqs, s3, trail_queue, event, reason):
    with pytest.raises(MessageError, match=reason):
        parse_message_body(json.dumps(event))
    send(sqs, trail_queue, json.dumps(event))

    result = sync(db_path, trail_queue)

    assert result.failed == 1 and reason in result.failures[0][1] and result.new_events == 0
    assert queue_depth(sqs, trail_queue) == (0, 0)  # acknowledged: it would never read better
    with store.open_cache_readonly(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        (status, error), = conn.execute("SELECT status, error FROM files").fetchall()
    assert status == "failed" and reason in error


def test_a_stoplogging_event_alerts_early_and_its_log_file_replaces_it_without_duplicate_or_refusal(
        db_path, sqs, s3, trail_queue, settings, mail_server):
    record = stop_logging()
    send(sqs, trail_queue, json.dumps(bridged(record)))
    lines = []

    jobs.listen_to_queues(db_path, settings, settings.sources, 2, lines.append)

    assert early_rows(db_path) == [(STOP_ID, "trail-queue", 0)]
    assert queue_depth(sqs, trail_queue) == (0, 0)
    alerted = mails_naming(mail_server, "StopLogging")
    assert len(alerted) >= 1 and any(line.startswith("alerts: ") for line in lines)
    queue_line = next(index for index, line in enumerate(lines) if line.startswith("trail queue:"))
    assert any(line.startswith("alerts: ") for line in lines[:queue_line])  # sent before the listening ended
    assert "1 early (EventBridge)" in lines[queue_line]

    logged = as_logged(record)
    key = log_key("confirm")
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": [logged]}).encode()))
    send(sqs, trail_queue, s3_event(key))
    result = sync(db_path, trail_queue)

    assert (result.confirmed, result.new_events, result.duplicates, result.conflicts, result.rejected) == (1, 0, 0, 0, 0)
    with store.open_cache_readonly(db_path) as conn:
        assert store.load_record(conn, STOP_ID) == logged  # exactly what the log file says
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM rejected_records").fetchone()[0] == 0
    assert early_rows(db_path) == [(STOP_ID, "trail-queue", 1)]
    assert_derived_data_matches_events(db_path)

    outcome = jobs.after_sync(db_path, settings)
    assert outcome.alerts.fired == 0 and len(mails_naming(mail_server, "StopLogging")) == len(alerted)


def test_an_early_event_arriving_after_its_log_file_is_a_duplicate_not_a_conflict(db_path, sqs, s3, trail_queue):
    record = stop_logging()
    key = log_key("first")
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": [as_logged(record)]}).encode()))
    send(sqs, trail_queue, s3_event(key))
    sync(db_path, trail_queue)
    send(sqs, trail_queue, json.dumps(bridged(record)))

    result = sync(db_path, trail_queue)

    assert (result.duplicates, result.conflicts, result.new_events, result.early) == (1, 0, 0, 0)
    assert early_rows(db_path) == []
    with store.open_cache_readonly(db_path) as conn:
        assert store.load_record(conn, STOP_ID) == as_logged(record)


def test_an_early_event_never_confirmed_is_listed_after_the_grace_period(db_path, sqs, s3, trail_queue):
    send(sqs, trail_queue, json.dumps(bridged(stop_logging())),
         sns(json.dumps(bridged(stop_logging("5e2c7c5b-1f2f-4b4a-8e3c-6f80d19bac21")))))
    assert sync(db_path, trail_queue).early == 2
    key = log_key("partial")
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": [stop_logging()]}).encode()))
    send(sqs, trail_queue, s3_event(key))
    sync(db_path, trail_queue)
    now = datetime.now(timezone.utc)

    with store.open_cache_readonly(db_path) as conn:
        within, within_total = early.query_unconfirmed(conn, now, timedelta(hours=2))
        after, after_total = early.query_unconfirmed(conn, now + timedelta(hours=2, minutes=1), timedelta(hours=2))
        delivered = bookkeeping.query_delivery_health(conn)  # ingestion health counts log files, not messages

    assert within_total == within.height == 0
    assert after_total == 1 and after["event_id"].to_list() == ["5e2c7c5b-1f2f-4b4a-8e3c-6f80d19bac21"]
    assert after["event_name"].to_list() == ["StopLogging"] and after["queue"].to_list() == ["trail-queue"]
    assert delivered["files"].to_list() == [1]


def test_the_grace_period_is_read_from_the_settings_and_a_bad_one_says_so():
    from trailstream.notify.alerts.settings import early_grace

    assert early_grace({"eventbridge": {"grace": "30m"}}) == (timedelta(minutes=30), None)
    assert early_grace({}) == (timedelta(hours=2), None)
    grace, problem = early_grace({"eventbridge": {"grace": "soon"}})
    assert grace == timedelta(hours=2) and "[eventbridge] grace" in problem


HOSTILE = "[click me](https://evil.example/x) <b>x</b>"


def test_sync_history_lists_an_unconfirmed_early_event_as_data_and_overview_shows_each_paths_freshness(
        tmp_path, monkeypatch):
    import sqlite3

    from tests.conftest import open_page, point_app_at
    from trailstream.ingest import records

    db_path = tmp_path / "early.db"
    hostile = stop_logging()
    hostile["userIdentity"] = {**hostile["userIdentity"], "userName": HOSTILE, "arn": HOSTILE}
    db = store.open_cache(db_path)
    parsed = records.parse_log_file(json.dumps({"Records": [hostile]}).encode())
    store.save_parsed_file(db, bookkeeping.FileRef("eventbridge", "", "sqs://trail-queue/m1"), parsed, None,
                           early=early.EarlyMessage("trail-queue", "m1"))
    db.close()
    with sqlite3.connect(db_path) as conn:  # received long before any grace period
        conn.execute("UPDATE early_events SET received_at = '2026-01-01T00:00:00Z'")
    (tmp_path / "trailstream.toml").write_text('[eventbridge]\ngrace = "2h"\n')
    point_app_at(monkeypatch, db_path, tmp_path / "trailstream.toml")

    history = open_page("pages/sync_history.py")
    listed = [frame.value for frame in history.dataframe if "event_id" in frame.value.columns]
    assert any(STOP_ID in frame["event_id"].to_list() and HOSTILE in frame["principal"].to_list() for frame in listed)
    assert not any(HOSTILE in text.value for text in [*history.markdown, *history.caption, *history.warning])
    assert any("no log file" in warning.value for warning in history.warning)

    coverage = open_page("pages/integrity.py", range="all")  # the integrity view counts them too
    listed = [frame.value for frame in coverage.dataframe if "event_id" in frame.value.columns]
    assert any(STOP_ID in frame["event_id"].to_list() for frame in listed)
    assert any("1 event(s) EventBridge delivered live are in no log file" in w.value for w in coverage.warning)

    overview = open_page("pages/overview.py", range="all")
    assert any("from EventBridge (early): 2026-11-27T10:00:00Z" in caption.value for caption in overview.caption)


def test_setup_routes_cloudtrail_eventbridge_events_to_the_queue_merging_its_policy(aws, db_path, capsys):
    from trailstream import cli
    from trailstream.config import AwsAccess
    from trailstream.ingest import aws_sync

    boto3.client("s3").create_bucket(Bucket="ct-logs")
    boto3.client("cloudtrail").create_trail(Name="main", S3BucketName="ct-logs")
    command = ["setup", "--trail", "main", "--region", "us-east-1", "--eventbridge"]
    assert cli.main(command) == 0, capsys.readouterr().err
    assert cli.main([*command, "--read-only-events"]) == 0
    out = capsys.readouterr().out
    assert "updated EventBridge rule trailstream-main-cloudtrail (ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS)" in out
    events, sqs = boto3.client("events"), boto3.client("sqs")
    rule = events.describe_rule(Name="trailstream-main-cloudtrail")
    assert sorted(json.loads(rule["EventPattern"])["detail-type"]) == sorted(
        ["AWS API Call via CloudTrail", "AWS Console Signin via CloudTrail", "AWS Console Action via CloudTrail",
         "AWS Service Event via CloudTrail", "AWS Insight via CloudTrail"])
    queue_url = sqs.get_queue_url(QueueName="trailstream-main")["QueueUrl"]
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    sids = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert {"TrailStreamTopicToQueue", "TrailStreamEventBridgeToQueue"} <= set(sids)  # merged, not replaced
    assert sids["TrailStreamEventBridgeToQueue"]["Condition"]["ArnEquals"]["aws:SourceArn"] == rule["Arn"]

    event = bridged(stop_logging())
    events.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"],
                                "Detail": json.dumps(event["detail"])}])
    result = aws_sync.sync_queue(db_path, queue_url, ["ct-logs"], AwsAccess(region="us-east-1"), wait_seconds=1)

    assert result.early == 1 and result.failed == 0, result.failures
    assert early_rows(db_path) == [(STOP_ID, "trailstream-main", 0)]


@pytest.mark.filterwarnings("ignore:Tried to parse")  # moto skips the policies and subscription
def test_the_cloudformation_template_can_make_the_same_eventbridge_rule(aws):
    from pathlib import Path

    template = Path(__file__).resolve().parents[1] / "deploy" / "trailstream-sqs.yaml"
    boto3.client("cloudformation").create_stack(
        StackName="trailstream", TemplateBody=template.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": "TrailName", "ParameterValue": "main"},
                    {"ParameterKey": "TrailBucket", "ParameterValue": "ct-logs"},
                    {"ParameterKey": "EventBridgeEvents", "ParameterValue": "all"}])
    events = boto3.client("events")
    rule = events.describe_rule(Name="trailstream-main-cloudtrail")
    assert rule["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    assert json.loads(rule["EventPattern"])["detail-type"][0] == "AWS API Call via CloudTrail"
    (target,) = events.list_targets_by_rule(Rule="trailstream-main-cloudtrail")["Targets"]
    assert target["Arn"].endswith(":trailstream-main")
