"""The bucket allow-list as pure functions (a queue anyone can send to must not inject another bucket's files): every
notification shape's bucket is checked, the refusal says which bucket and which are allowed, and settings that name
no bucket are refused. The end-to-end refusal through moto's server is in tests/test_aws_sync.py."""

import json

import pytest

from trailstream.ingest.messages import explain_other_bucket, parse_message_body, trail_buckets

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/111122223333_CloudTrail_us-east-1_20261127T1005Z_A1.json.gz"
S3_EVENT = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": "forged"}, "object": {"key": KEY, "size": 1}}}]}
SHAPES = {
    "raw CloudTrail": {"s3Bucket": "forged", "s3ObjectKey": [KEY]},
    "S3 event": S3_EVENT,
    "SNS-wrapped": {"Type": "Notification", "Message": json.dumps({"s3Bucket": "forged", "s3ObjectKey": [KEY]})},
    "EventBridge": {"version": "0", "detail-type": "Object Created", "source": "aws.s3",
                    "detail": {"bucket": {"name": "forged"}, "object": {"key": KEY, "size": 1}}},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_notification_shape_names_a_bucket_the_allow_list_refuses(shape):
    objects = parse_message_body(json.dumps(SHAPES[shape])).objects
    assert [item.bucket for item in objects] == ["forged"]
    assert explain_other_bucket(objects[0].bucket, ["trail-bucket"]) is not None


def test_a_trail_bucket_is_allowed_and_any_other_refused_saying_which_and_what_is_allowed():
    allowed = ["trail-a", "trail-b"]
    assert explain_other_bucket("trail-b", allowed) is None
    assert explain_other_bucket("trail-a", allowed) is None
    assert explain_other_bucket("trail-a2", allowed) == (
        'bucket "trail-a2" is not one of the trail buckets configured for this queue (trail-a, trail-b); nothing was '
        "stored from this notification")
    assert explain_other_bucket("", allowed) is not None
    assert explain_other_bucket("Trail-A", allowed) is not None  # S3 bucket names are exact


@pytest.mark.parametrize(("setting", "expected"), [
    ("trail-a", ["trail-a"]),
    (" trail-a ", ["trail-a"]),
    (["trail-a", " ", "", "trail-b"], ["trail-a", "trail-b"]),
    (("trail-a",), ["trail-a"]),
])
def test_the_trail_buckets_setting_is_read_as_names(setting, expected):
    assert trail_buckets(setting) == expected


@pytest.mark.parametrize("setting", [None, "", "  ", [], ["", " "], [None], [3]])
def test_a_queue_with_no_trail_bucket_named_is_refused_with_a_sentence(setting):
    with pytest.raises(ValueError, match=r"^name the trail bucket\(s\) this queue serves: notifications for other "
                                         r"buckets are refused$"):
        trail_buckets(setting)
