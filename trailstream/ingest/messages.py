"""Parsing SQS message bodies into the S3 objects they announce. Pure: no boto3, no I/O.

A queue fed by a trail receives CloudTrail notifications (SNS-wrapped or raw), S3 event notifications
(direct or SNS-wrapped), EventBridge events (S3 Object Created, or a CloudTrail event itself, raw, SNS-wrapped or
wrapped by an input transformer), and a few housekeeping bodies that only need acknowledging.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

import orjson

VALIDATION_MESSAGE = "CloudTrail validation message."
# The detail-types of CloudTrail events EventBridge delivers; `detail` is then the CloudTrail record itself.
CLOUDTRAIL_DETAIL_TYPES = (
    "AWS API Call via CloudTrail",
    "AWS Console Signin via CloudTrail",
    "AWS Console Action via CloudTrail",
    "AWS Service Event via CloudTrail",
    "AWS Insight via CloudTrail",
)
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

    kind: str  # cloudtrail, s3_event, eventbridge, cloudtrail_event, test, validation, subscription_confirmation, ignored
    objects: list[S3Object] = field(default_factory=list)
    note: str = ""
    record: dict | None = None  # kind cloudtrail_event: the CloudTrail record EventBridge delivered early


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
    if (wrapped := _wrapped_eventbridge(document)) is not None:
        return _parse_eventbridge(wrapped)
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


def _wrapped_eventbridge(document: dict) -> dict | None:
    """The EventBridge event an input transformer wrapped as the one value of an object (`{"event": <event>}`)."""
    if len(document) != 1:
        return None
    inner = next(iter(document.values()))
    return inner if isinstance(inner, dict) and "detail-type" in inner else None


def _parse_eventbridge(document: dict) -> Notification:
    detail_type, source = document.get("detail-type"), document.get("source")
    if detail_type in CLOUDTRAIL_DETAIL_TYPES:
        return _parse_cloudtrail_event(document, detail_type, source)
    if source == "aws.s3" and isinstance(detail_type, str) and detail_type.startswith("Object "):
        if detail_type != "Object Created":
            return Notification("ignored", note=f"EventBridge event {detail_type!r} from {source!r}: no object created")
    else:
        raise MessageError(f"EventBridge event {detail_type!r} from {source!r} is neither a CloudTrail event nor an "
                           "S3 Object Created notification; point the rule at CloudTrail detail-types only")
    detail = document.get("detail")
    try:
        bucket, item = detail["bucket"]["name"], detail["object"]
        key = item["key"]
    except (KeyError, TypeError):
        raise MessageError("EventBridge Object Created event without detail.bucket.name and detail.object.key") from None
    size = item.get("size")
    return Notification("eventbridge", [S3Object(bucket, key, size if isinstance(size, int) else None)])


def _parse_cloudtrail_event(document: dict, detail_type: str, source) -> Notification:
    """A CloudTrail record delivered by EventBridge seconds after the call: stored early, until its log file comes."""
    if not isinstance(source, str) or not source.startswith("aws.") or len(source) <= 4:
        raise MessageError(f"EventBridge {detail_type!r} event from source {source!r}, not an AWS service "
                           "(aws.<service>): refused as a forged CloudTrail event")
    detail = document.get("detail")
    if not isinstance(detail, dict):
        raise MessageError(f"EventBridge {detail_type!r} event without a detail object (the CloudTrail record)")
    event_id = detail.get("eventID")
    if not isinstance(event_id, str) or not event_id.strip():
        raise MessageError(f"EventBridge {detail_type!r} event whose detail has no eventID")
    return Notification("cloudtrail_event", note=f"{detail_type} {event_id}", record=detail)


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


def trail_buckets(buckets) -> list[str]:
    """The trail buckets a queue serves, from settings (one name or a list); none at all is refused, since a queue
    anyone can send to would otherwise inject any bucket's files into the audit trail."""
    names = [buckets] if isinstance(buckets, str) else list(buckets or [])
    names = [name.strip() for name in names if isinstance(name, str) and name.strip()]
    if not names:
        raise ValueError("name the trail bucket(s) this queue serves: notifications for other buckets are refused")
    return names


def explain_other_bucket(bucket: str, trail_bucket_names: list[str]) -> str | None:
    """Why a notified object is refused when its bucket is not one of the queue's trail buckets (None when it is)."""
    if bucket in trail_bucket_names:
        return None
    return (f'bucket "{bucket}" is not one of the trail buckets configured for this queue '
            f'({", ".join(trail_bucket_names)}); nothing was stored from this notification')
