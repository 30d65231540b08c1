"""SQS message bodies resolve to the S3 objects they announce; only CloudTrail log files are ingested."""

import json
from urllib.parse import unquote_plus

import pytest

from trailstream.ingest import records
from trailstream.ingest.messages import (
    MessageError,
    S3Object,
    explain_not_log_file,
    is_log_file_key,
    parse_message_body,
)

LOG_KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/111122223333_CloudTrail_us-east-1_20261127T1005Z_AbCdEf0123456789.json.gz"


def sns(message: str, kind: str = "Notification") -> str:
    return json.dumps({"Type": kind, "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:111122223333:ct",
                       "Message": message})


def s3_event(*keys: str, bucket="trail-bucket", event="ObjectCreated:Put") -> str:
    return json.dumps({"Records": [
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event,
         "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 123}}}
        for key in keys
    ]})


def corpus_messages(corpus):
    expected = json.loads((corpus / "expected.json").read_text())["messages"]
    return [(corpus / "messages" / name, facts) for name, facts in sorted(expected.items())]


def test_every_corpus_message_resolves_to_the_objects_expected_json_gives(corpus):
    for path, facts in corpus_messages(corpus):
        body = path.read_text()
        kind = facts["kind"]
        if kind == "cloudtrail_digest":  # an S3 object, not a notification: refused as a message, skipped as a file
            with pytest.raises(MessageError, match="digest"):
                parse_message_body(body)
            assert records.parse_log_file(path.read_bytes()).kind == "digest"
            digest = json.loads(body)
            assert not is_log_file_key(digest["digestS3Object"])
            assert all(is_log_file_key(item["s3Object"]) for item in digest["logFiles"])
            continue
        notification = parse_message_body(body)
        if kind in ("sns_notification", "cloudtrail_notification_raw"):
            assert notification.kind == "cloudtrail", path.name
            assert {o.bucket for o in notification.objects} == {facts["s3Bucket"]}
            assert len(notification.objects) == facts["s3ObjectKey_count"]
            assert all(is_log_file_key(o.key) for o in notification.objects)
        elif kind == "s3_event_notification":
            assert notification.kind == "s3_event"
            assert notification.objects == [S3Object(o["bucket"], unquote_plus(o["key"]), 1024) for o in facts["objects"]]
        elif kind == "s3_test_event":
            assert notification.kind == "test" and notification.objects == []
        elif kind == "eventbridge" and facts["detail-type"] == "Object Created":
            assert notification.kind == "eventbridge"
            assert [(o.bucket, o.key) for o in notification.objects] == [(facts["bucket"], facts["key"])]
        elif kind == "eventbridge" and facts["detail-type"].endswith("via CloudTrail"):
            assert notification.kind == "cloudtrail_event" and notification.objects == []
            assert notification.record == json.loads(body)["detail"]
        elif kind == "eventbridge":
            assert notification.kind == "ignored" and notification.objects == []
            assert facts["detail-type"] in notification.note
        else:
            pytest.fail(f"{path.name}: kind {kind} has no expectation in this test")


def test_url_encoded_s3_event_keys_are_decoded():
    notification = parse_message_body(s3_event("Happy%20Face.jpg", "a+b%2Bc.json.gz"))
    assert [o.key for o in notification.objects] == ["Happy Face.jpg", "a b+c.json.gz"]


def test_cloudtrail_keys_are_taken_as_written_even_with_percent_signs():
    body = json.dumps({"s3Bucket": "trail-bucket", "s3ObjectKey": ["logs%20x/" + LOG_KEY, LOG_KEY]})
    assert [o.key for o in parse_message_body(body).objects] == ["logs%20x/" + LOG_KEY, LOG_KEY]


def test_every_key_of_a_multi_key_notification_is_returned_in_order():
    keys = [LOG_KEY.replace("1005Z", f"10{m:02d}Z") for m in (5, 10, 15)]
    notification = parse_message_body(sns(json.dumps({"s3Bucket": "trail-bucket", "s3ObjectKey": keys})))
    assert notification.objects == [S3Object("trail-bucket", key) for key in keys]


def test_s3_events_wrapped_in_sns_are_unwrapped():
    notification = parse_message_body(sns(s3_event("my+key.json")))
    assert notification.kind == "s3_event"
    assert notification.objects == [S3Object("trail-bucket", "my key.json", 123)]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("CloudTrail validation message.", "validation"),
        ("  CloudTrail validation message.\n", "validation"),
        (sns("CloudTrail validation message."), "validation"),
        (json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}), "test"),
        (sns(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})), "test"),
        (sns("You have chosen to subscribe to the topic", kind="SubscriptionConfirmation"), "subscription_confirmation"),
        (s3_event(LOG_KEY, event="ObjectRemoved:Delete"), "ignored"),
        (json.dumps({"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}}), "ignored"),
    ],
)
def test_housekeeping_bodies_are_recognised_without_objects(body, kind):
    notification = parse_message_body(body)
    assert (notification.kind, notification.objects) == (kind, [])


def test_only_object_created_records_of_a_mixed_s3_event_are_kept():
    document = json.loads(s3_event("created.json", "removed.json"))
    document["Records"][1]["eventName"] = "ObjectRemoved:Delete"
    assert [o.key for o in parse_message_body(json.dumps(document)).objects] == ["created.json"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "empty"),
        ("hello world", "neither JSON nor a known notification"),
        ("[1, 2]", "not an object"),
        ('{"foo": 1}', "not a known notification"),
        ('{"s3Bucket": "b", "s3ObjectKey": 7}', "s3ObjectKey is not a list"),
        ('{"s3ObjectKey": ["k"]}', "without an s3Bucket"),
        (json.dumps({"Records": [{"eventID": "e", "eventName": "RunInstances"}]}), "not S3 event notifications"),
        (json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}), "without a bucket"),
        (json.dumps({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}), "detail.bucket.name"),
        (sns("not json {"), "SNS Message is neither JSON"),
        (json.dumps({"Type": "Weird", "Message": "x"}), "unknown type"),
    ],
)
def test_malformed_bodies_raise_a_readable_message_error(body, reason):
    with pytest.raises(MessageError, match=reason):
        parse_message_body(body)


@pytest.mark.parametrize(
    ("key", "is_log"),
    [
        (LOG_KEY, True),
        (LOG_KEY.removesuffix(".gz"), True),
        ("my prefix/" + LOG_KEY, True),
        ("AWSLogs/o-aa11bb22cc/111122223333/CloudTrail/eu-west-1/2026/11/27/"
         "111122223333_CloudTrail_eu-west-1_20261127T1005Z_AbCdEf0123456789.json.gz", True),
        ("AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2026/11/27/"
         "111122223333_CloudTrail-Insight_us-east-1_20261127T1005Z_AbCdEf0123456789.json.gz", True),
        ("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/27/"
         "111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20261127T100000Z.json.gz", False),
        ("AWSLogs/111122223333/Config/ConfigWritabilityCheckFile", False),
        ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/", False),
        ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/notes.txt", False),
        ("111122223333_CloudTrail_us-east-1_20261127T1005Z_AbCdEf0123456789.json.gz", False),
        ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/"
         "111122223333_CloudTrail_us-east-1_20261127T1005Z_AbCdEf0123456789.json.gz.tmp", False),
        ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/"
         "111122223333_CloudTrail-Insight_us-east-1_20261127T1005Z_AbCdEf0123456789.json.gz", False),
        ("HappyFace.jpg", False),
    ],
)
def test_is_log_file_key(key, is_log):
    assert is_log_file_key(key) is is_log


@pytest.mark.parametrize(
    ("key", "size", "reason"),
    [
        ("AWSLogs/1/CloudTrail-Digest/us-east-1/2026/11/27/x.json.gz", None, "digest"),
        ("AWSLogs/111122223333/Config/ConfigWritabilityCheckFile", None, "writability check"),
        ("AWSLogs/111122223333/CloudTrail/", None, "folder"),
        (LOG_KEY, 0, "empty object"),
        ("HappyFace.jpg", 10, "not named like a CloudTrail log file"),
        (LOG_KEY, 10, None),
    ],
)
def test_the_reason_a_key_is_not_a_log_file(key, size, reason):
    explanation = explain_not_log_file(key, size)
    assert explanation is None if reason is None else reason in explanation
