"""Notification parsing, exactly: each shape's objects, notes and refusals. Written to kill mutmut's mutants (README)."""

import json

import pytest

from trailstream.ingest.messages import MessageError, Notification, S3Object, explain_not_log_file, parse_message_body

LOG_KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/111122223333_CloudTrail_us-east-1_20261127T1005Z_A1.json.gz"
TOPIC = "arn:aws:sns:us-east-1:111122223333:ct"


def sns(message, kind="Notification", **extra) -> str:
    return json.dumps({"Type": kind, "Message": message, **extra})


def s3_record(key=LOG_KEY, bucket="trail-bucket", event="ObjectCreated:Put", size=123) -> dict:
    return {"eventSource": "aws:s3", "eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}}


def bridged(detail, detail_type="AWS API Call via CloudTrail", source="aws.cloudtrail") -> dict:
    return {"version": "0", "detail-type": detail_type, "source": source, "detail": detail}


S3_CREATED = {"bucket": {"name": "trail-bucket"}, "object": {"key": LOG_KEY, "size": 77}}
RECORD = {"eventID": "e-1", "eventName": "StopLogging"}


@pytest.mark.parametrize(("body", "expected"), [
    (sns("CloudTrail validation message."), Notification("validation", note="CloudTrail validation message (via SNS)")),
    ("CloudTrail validation message.", Notification("validation", note="CloudTrail validation message")),
    (sns("x", kind="SubscriptionConfirmation", TopicArn=TOPIC), Notification(
        "subscription_confirmation", note=f"SNS SubscriptionConfirmation for {TOPIC}; if the topic is in another "
                                          "account, confirm the subscription in the SNS console")),
    (sns("x", kind="UnsubscribeConfirmation"), Notification(
        "subscription_confirmation", note="SNS UnsubscribeConfirmation for a topic; if the topic is in another "
                                          "account, confirm the subscription in the SNS console")),
    (json.dumps({"Event": "s3:TestEvent", "Bucket": "b"}), Notification("test", note="S3 test event for bucket 'b'")),
    (json.dumps({"s3Bucket": "trail-bucket", "s3ObjectKey": LOG_KEY}),
     Notification("cloudtrail", [S3Object("trail-bucket", LOG_KEY)])),
    (json.dumps({"Records": [s3_record(event="ObjectRemoved:Delete"), {"eventSource": "aws:s3"}]}),
     Notification("ignored", note="S3 event(s) ObjectRemoved:Delete, unnamed event: no object created")),
    (json.dumps({"Records": [s3_record(size="big")]}), Notification("s3_event", [S3Object("trail-bucket", LOG_KEY)])),
    (json.dumps(bridged(S3_CREATED, "Object Created", "aws.s3")),
     Notification("eventbridge", [S3Object("trail-bucket", LOG_KEY, 77)])),
    (json.dumps(bridged({**S3_CREATED, "object": {"key": LOG_KEY, "size": "77"}}, "Object Created", "aws.s3")),
     Notification("eventbridge", [S3Object("trail-bucket", LOG_KEY)])),
    (json.dumps(bridged({}, "Object Deleted", "aws.s3")),
     Notification("ignored", note="EventBridge event 'Object Deleted' from 'aws.s3': no object created")),
    (json.dumps({"event": bridged(RECORD)}),
     Notification("cloudtrail_event", note="AWS API Call via CloudTrail e-1", record=RECORD)),
    (json.dumps(bridged(RECORD, "AWS Console Signin via CloudTrail", "aws.signin")),
     Notification("cloudtrail_event", note="AWS Console Signin via CloudTrail e-1", record=RECORD)),
    (json.dumps(bridged(RECORD, "AWS Insight via CloudTrail", "aws.a")),
     Notification("cloudtrail_event", note="AWS Insight via CloudTrail e-1", record=RECORD)),
])
def test_each_notification_shape_resolves_to_exactly_its_objects_and_note(body, expected):
    assert parse_message_body(body) == expected


LONG = "x" * 100


@pytest.mark.parametrize(("body", "message"), [
    ("   ", "message body is empty"),
    (sns(""), "SNS Message is empty"),
    (sns(7), "SNS Message is empty"),
    (LONG, f"message body is neither JSON nor a known notification: '{'x' * 80}...'"),
    ("x" * 80, f"message body is neither JSON nor a known notification: '{'x' * 80}'"),
    ("not  \n json", "message body is neither JSON nor a known notification: 'not json'"),
    (json.dumps({"Type": "Weird", "Message": "x"}), "SNS message of unknown type 'Weird'"),
    ('"text"', "message is JSON but not an object, so not a notification"),
    (json.dumps({k: 1 for k in "jihgfedcba"}), "message is not a known notification (keys: a, b, c, d, e, f, g, h)"),
    (json.dumps({"logFiles": []}), "message is a CloudTrail digest file, not a notification"),
    (json.dumps({"digestPublicKeyFingerprint": "f"}), "message is a CloudTrail digest file, not a notification"),
    (json.dumps({"s3Bucket": "", "s3ObjectKey": [LOG_KEY]}), "CloudTrail notification without an s3Bucket"),
    (json.dumps({"s3Bucket": 5, "s3ObjectKey": [LOG_KEY]}), "CloudTrail notification without an s3Bucket"),
    (json.dumps({"s3Bucket": "b"}), "CloudTrail notification whose s3ObjectKey is not a list of keys"),
    (json.dumps({"s3Bucket": "b", "s3ObjectKey": [LOG_KEY, ""]}),
     "CloudTrail notification whose s3ObjectKey is not a list of keys"),
    (json.dumps({"s3Bucket": "b", "s3ObjectKey": [LOG_KEY, 5]}),
     "CloudTrail notification whose s3ObjectKey is not a list of keys"),
    (json.dumps({"Records": []}), 'message has "Records" but they are not a list of S3 events'),
    (json.dumps({"Records": {"eventSource": "aws:s3"}}), 'message has "Records" but they are not a list of S3 events'),
    (json.dumps({"Records": ["aws:s3"]}),
     'message has "Records" that are not S3 event notifications (a log file sent as a message?)'),
    (json.dumps({"Records": [{**s3_record(), "s3": {"bucket": {"name": "b"}}}]}),
     "S3 ObjectCreated:Put event without a bucket name and object key"),
    (json.dumps({"Records": [{**s3_record(), "s3": None}]}),
     "S3 ObjectCreated:Put event without a bucket name and object key"),
    (json.dumps(bridged({"bucket": {"name": "b"}}, "Object Created", "aws.s3")),
     "EventBridge Object Created event without detail.bucket.name and detail.object.key"),
    (json.dumps(bridged(None, "Object Created", "aws.s3")),
     "EventBridge Object Created event without detail.bucket.name and detail.object.key"),
    (json.dumps(bridged({}, "Object Created", "aws.ec2")),
     "EventBridge event 'Object Created' from 'aws.ec2' is neither a CloudTrail event nor an S3 Object Created "
     "notification; point the rule at CloudTrail detail-types only"),
    (json.dumps(bridged({}, 7, "aws.s3")),
     "EventBridge event 7 from 'aws.s3' is neither a CloudTrail event nor an S3 Object Created notification; point "
     "the rule at CloudTrail detail-types only"),
    (json.dumps(bridged(RECORD, source="aws.")),
     "EventBridge 'AWS API Call via CloudTrail' event from source 'aws.', not an AWS service (aws.<service>): refused "
     "as a forged CloudTrail event"),
    (json.dumps(bridged(RECORD, source="awsx.cloudtrail")),
     "EventBridge 'AWS API Call via CloudTrail' event from source 'awsx.cloudtrail', not an AWS service "
     "(aws.<service>): refused as a forged CloudTrail event"),
    (json.dumps(bridged(RECORD, source=None)),
     "EventBridge 'AWS API Call via CloudTrail' event from source None, not an AWS service (aws.<service>): refused "
     "as a forged CloudTrail event"),
    (json.dumps(bridged([RECORD])),
     "EventBridge 'AWS API Call via CloudTrail' event without a detail object (the CloudTrail record)"),
    (json.dumps(bridged({"eventID": "  "})), "EventBridge 'AWS API Call via CloudTrail' event whose detail has no eventID"),
    (json.dumps(bridged({"eventID": 5})), "EventBridge 'AWS API Call via CloudTrail' event whose detail has no eventID"),
    (json.dumps({"event": bridged(RECORD), "other": 1}), "message is not a known notification (keys: event, other)"),
    (json.dumps({"event": {"detail": RECORD}}), "message is not a known notification (keys: event)"),
])
def test_each_refused_body_says_exactly_why(body, message):
    with pytest.raises(MessageError) as refused:
        parse_message_body(body)
    assert str(refused.value) == message


def test_a_body_with_a_message_but_no_type_is_not_taken_for_sns():
    with pytest.raises(MessageError) as refused:
        parse_message_body(json.dumps({"Message": "x"}))
    assert str(refused.value) == "message is not a known notification (keys: Message)"


@pytest.mark.parametrize(("key", "size", "reason"), [
    ("AWSLogs/1/CloudTrail/", None, "folder placeholder object, not a log file"),
    ("AWSLogs/1/CloudTrail-Digest/us-east-1/x.json.gz", None,
     "CloudTrail digest file (log file integrity validation), not a log file"),
    ("logs/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20261127T100000Z.json.gz", None,
     "CloudTrail digest file (log file integrity validation), not a log file"),
    ("ConfigWritabilityCheckFile", None, "AWS Config writability check object, not a log file"),
    ("AWSLogs/1/Config/ConfigWritabilityCheckFile", None, "AWS Config writability check object, not a log file"),
    (LOG_KEY, 0, "empty object, not a log file"),
    ("notes.txt", 5, "not named like a CloudTrail log file "
                     "(.../CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_ID.json.gz)"),
    (LOG_KEY, None, None),
])
def test_the_reason_a_key_is_skipped_is_exactly_this_sentence(key, size, reason):
    assert explain_not_log_file(key, size) == reason
