"""Parsing SQS message bodies into the S3 objects they announce. Pure: no boto3, no I/O.

A queue fed by a trail receives CloudTrail notifications (SNS-wrapped or raw), S3 event notifications
(direct or SNS-wrapped), EventBridge events, and a few housekeeping bodies that only need acknowledging.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

import orjson

VALIDATION_MESSAGE = "CloudTrail validation message."
SNS_HOUSEKEEPING_TYPES = ("SubscriptionConfirmation", "UnsubscribeConfirmation")

# ACCOUNT_CloudTrail[-Insight]_REGION_YYYYMMDDTHHMMZ_ID.json[.gz] inside a .../CloudTrail[-Insight]/... folder.
_LOG_FILE_KEY = re.compile(
    r"(?:^|/)CloudTrail(?P<kind>-Insight)?/(?:[^/]+/)*"
    r"\d{12}_CloudTrail(?(kind)-Insight)_[a-z0-9-]+_\d{8}T\d{4}Z_[A-Za-z0-9]+\.json(?:\.gz)?$"
)


class MessageError(ValueError):
    """A message body that is none of the notification shapes we know; the text says what it was."""


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    size: int | None = None


@dataclass
class Notification:
    """What a message announces: its kind, the objects to fetch, and why nothing is fetched when so."""

    kind: str  # cloudtrail, s3_event, eventbridge, test, validation, subscription_confirmation, ignored
    objects: list[S3Object] = field(default_factory=list)
    note: str = ""


def parse_message_body(body: str) -> Notification:
    """Resolve any supported SQS body (SNS envelope, raw, S3 event, EventBridge) to the objects it names."""
    if body.strip() == VALIDATION_MESSAGE:
        return Notification("validation", note="CloudTrail validation message")
    document = _load_json(body, "message body")
    if isinstance(document, dict) and "Type" in document and "Message" in document:
        return _parse_sns_envelope(document)
    return _parse_payload(document)


def _load_json(text, what: str):
    if not isinstance(text, str) or not text.strip():
        raise MessageError(f"{what} is empty")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise MessageError(f"{what} is neither JSON nor a known notification: {_excerpt(text)}") from None


def _excerpt(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_sns_envelope(envelope: dict) -> Notification:
    kind = envelope.get("Type")
    if kind in SNS_HOUSEKEEPING_TYPES:
        topic = envelope.get("TopicArn", "a topic")
        return Notification("subscription_confirmation",
                            note=f"SNS {kind} for {topic}; if the topic is in another account, confirm the "
                                 "subscription in the SNS console")
    if kind != "Notification":
        raise MessageError(f"SNS message of unknown type {kind!r}")
    inner = envelope.get("Message")
    if isinstance(inner, str) and inner.strip() == VALIDATION_MESSAGE:
        return Notification("validation", note="CloudTrail validation message (via SNS)")
    return _parse_payload(_load_json(inner, "SNS Message"))


def _parse_payload(document) -> Notification:
    if not isinstance(document, dict):
        raise MessageError("message is JSON but not an object, so not a notification")
    if "s3Bucket" in document or "s3ObjectKey" in document:
        return _parse_cloudtrail(document)
    if document.get("Event") == "s3:TestEvent":
        return Notification("test", note=f"S3 test event for bucket {document.get('Bucket')!r}")
    if "Records" in document:
        return _parse_s3_event(document["Records"])
    if "detail-type" in document:
        return _parse_eventbridge(document)
    if "digestPublicKeyFingerprint" in document or "logFiles" in document:
        raise MessageError("message is a CloudTrail digest file, not a notification")
    raise MessageError(f"message is not a known notification (keys: {', '.join(sorted(document)[:8])})")


def _parse_cloudtrail(document: dict) -> Notification:
    bucket, keys = document.get("s3Bucket"), document.get("s3ObjectKey")
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(bucket, str) or not bucket:
        raise MessageError("CloudTrail notification without an s3Bucket")
    if not isinstance(keys, list) or not all(isinstance(key, str) and key for key in keys):
        raise MessageError("CloudTrail notification whose s3ObjectKey is not a list of keys")
    return Notification("cloudtrail", [S3Object(bucket, key) for key in keys])


def _parse_s3_event(records) -> Notification:
    if not isinstance(records, list) or not records:
        raise MessageError('message has "Records" but they are not a list of S3 events')
    objects, other_events = [], []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            raise MessageError('message has "Records" that are not S3 event notifications '
                               "(a log file sent as a message?)")
        name = str(record.get("eventName", ""))
        if not name.startswith("ObjectCreated:"):
            other_events.append(name or "unnamed event")
            continue
        try:
            bucket = record["s3"]["bucket"]["name"]
            item = record["s3"]["object"]
            key = unquote_plus(item["key"])
        except (KeyError, TypeError):
            raise MessageError(f"S3 {name} event without a bucket name and object key") from None
        size = item.get("size")
        objects.append(S3Object(bucket, key, size if isinstance(size, int) else None))
    if not objects:
        return Notification("ignored", note=f"S3 event(s) {', '.join(other_events)}: no object created")
    return Notification("s3_event", objects)


def _parse_eventbridge(document: dict) -> Notification:
    detail_type, source = document.get("detail-type"), document.get("source")
    if detail_type != "Object Created" or source != "aws.s3":
        return Notification("ignored", note=f"EventBridge event {detail_type!r} from {source!r}: no object created")
    detail = document.get("detail")
    try:
        bucket, item = detail["bucket"]["name"], detail["object"]
        key = item["key"]
    except (KeyError, TypeError):
        raise MessageError("EventBridge Object Created event without detail.bucket.name and detail.object.key") from None
    size = item.get("size")
    return Notification("eventbridge", [S3Object(bucket, key, size if isinstance(size, int) else None)])


def explain_not_log_file(key: str, size: int | None = None) -> str | None:
    """Why an object is not a CloudTrail log file to ingest (the reason kept on its skipped row); None if it is one."""
    if key.endswith("/"):
        return "folder placeholder object, not a log file"
    if "/CloudTrail-Digest/" in key or "_CloudTrail-Digest_" in key:
        return "CloudTrail digest file (log file integrity validation), not a log file"
    if key.rsplit("/", 1)[-1] == "ConfigWritabilityCheckFile":
        return "AWS Config writability check object, not a log file"
    if size == 0:
        return "empty object, not a log file"
    if not _LOG_FILE_KEY.search(key):
        return ("not named like a CloudTrail log file "
                "(.../CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_ID.json.gz)")
    return None


def is_log_file_key(key: str) -> bool:
    """True for CloudTrail (and CloudTrail Insights) log files, the only objects a sync ingests."""
    return explain_not_log_file(key) is None
