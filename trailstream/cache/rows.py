"""What one stored event row is: the `events` columns, and how a record splits into them and back, losslessly.

Shared by the parser (which builds rows) and the store (which writes them and restores records).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from trailstream.cache import codec

# The public `events` columns, in table order; `raw`, `raw_codec` and `record_hash` hold the lossless record.
EVENT_COLUMNS = (
    "event_id",
    "event_time",
    "event_source",
    "event_name",
    "aws_region",
    "account_id",
    "principal",
    "principal_arn",
    "user_type",
    "access_key_id",
    "source_ip",
    "user_agent",
    "error_code",
    "error_message",
    "read_only",
    "event_type",
    "event_category",
    "resources",
    "request_parameters",
    "response_elements",
    "additional_event_data",
    "raw",
    "raw_codec",
    "record_hash",
)


JSON_COLUMN_FIELDS = {
    "resources": "resources",
    "requestParameters": "request_parameters",
    "responseElements": "response_elements",
    "additionalEventData": "additional_event_data",
}
# Record fields (top level, and inside userIdentity) whose `events` column holds a non-empty text value unchanged
# (see records.parse_record): kept only there, with a placeholder in the blob, so unique values (IDs, addresses,
# keys, session ARNs) are not stored twice.
TEXT_COLUMN_FIELDS = {
    "eventID": "event_id",
    "eventName": "event_name",
    "eventSource": "event_source",
    "awsRegion": "aws_region",
    "sourceIPAddress": "source_ip",
    "userAgent": "user_agent",
    "errorCode": "error_code",
    "errorMessage": "error_message",
    "eventType": "event_type",
}
IDENTITY_COLUMN_FIELDS = {"arn": "principal_arn", "type": "user_type", "accessKeyId": "access_key_id"}
# Record fields copied (as text, like user_type) into a column of their own after the public ones, so that rules can
# filter on them without decompressing the record; the blob keeps them too, so restore_record never needs them.
LOOKUP_COLUMN_FIELDS = {"userIdentity.sessionContext.sessionIssuer.type": "session_issuer_type"}
_LOOKUP_KEYS = [[orjson.dumps(segment) for segment in path.split(".")] for path in LOOKUP_COLUMN_FIELDS]
# Every column a stored row fills, in the order parse_record builds it.
STORED_COLUMNS = (*EVENT_COLUMNS, *LOOKUP_COLUMN_FIELDS.values())
# Every column restore_record needs beside the blob.
RESTORE_COLUMNS = (*JSON_COLUMN_FIELDS.values(), *TEXT_COLUMN_FIELDS.values(), *IDENTITY_COLUMN_FIELDS.values())


@dataclass
class DigestRow:
    """One parsed CloudTrail digest: its `digests` columns (cache.integrity.DIGEST_FIELDS) and listed log files."""

    values: dict
    log_files: list[tuple] = field(default_factory=list)  # (s3_bucket, s3_object, hash_value, hash_algorithm)


@dataclass
class ParsedLog:
    """What one file yielded: rows to store, and records refused with the reason."""

    kind: str  # "records" (a log file), "digest", or "other" (readable JSON of another shape)
    rows: list[tuple] = field(default_factory=list)  # an iterator when `streamed`: consume it before the counts
    positions: list[int] = field(default_factory=list)  # each row's position among the file's records
    streamed: bool = False
    rejects: list[tuple[int, str | None, str]] = field(default_factory=list)  # (position, event_id, reason)
    records: int = 0
    oldest_event_time: str | None = None
    newest_event_time: str | None = None
    sha256: str | None = None  # of the uncompressed bytes parsed, which a CloudTrail digest lists
    trailing_data: bool = False  # gzip data after the first member, which no digest covers: tampering
    digest: DigestRow | None = None  # when kind == "digest"


def _strip_text(part: dict, fields: dict[str, str]) -> dict:
    """A copy of `part` with its non-empty text fields that have a column replaced by the placeholder."""
    stripped = dict(part)
    for field_name in fields:
        value = part.get(field_name)
        if isinstance(value, str) and value:
            stripped[field_name] = codec.PLACEHOLDER
    return stripped


def split_record(record: dict) -> tuple[bytes, dict[str, str | None]]:
    """The record's JSON with the fields that columns hold replaced by a placeholder (large JSON fields, and text
    kept as is in a column), and the large fields as JSON text."""
    stripped = _strip_text(record, TEXT_COLUMN_FIELDS)
    identity = record.get("userIdentity")
    if isinstance(identity, dict):
        stripped["userIdentity"] = _strip_text(identity, IDENTITY_COLUMN_FIELDS)
    json_columns = {}
    for field_name, column in JSON_COLUMN_FIELDS.items():
        value = record.get(field_name)
        if value is None:
            json_columns[column] = None
        else:
            json_columns[column] = orjson.dumps(value).decode()
            stripped[field_name] = codec.PLACEHOLDER
    return orjson.dumps(stripped), json_columns


def _lookup_text(value) -> str | None:
    """A value as Sigma compares it: text as is, booleans as true/false, other JSON as its text; null as NULL."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def lookup_values(record: dict) -> tuple[str | None, ...]:
    """The LOOKUP_COLUMN_FIELDS values of a record, in order (NULL where a path is absent)."""
    values = []
    for path in LOOKUP_COLUMN_FIELDS:
        node = record
        for segment in path.split("."):
            node = node.get(segment) if isinstance(node, dict) else None
        values.append(_lookup_text(node))
    return tuple(values)


def stored_lookup_values(raw_record: bytes) -> tuple[str | None, ...]:
    """lookup_values of a decompressed blob (which holds those fields unchanged), parsing it only when its text has
    every key of some field's path."""
    if not any(all(key in raw_record for key in keys) for keys in _LOOKUP_KEYS):
        return (None,) * len(LOOKUP_COLUMN_FIELDS)
    return lookup_values(orjson.loads(raw_record))


def _restore_text(part: dict, fields: dict[str, str], columns: dict[str, str | None]) -> None:
    for field_name, column in fields.items():
        if part.get(field_name) == codec.PLACEHOLDER:
            part[field_name] = columns[column]


def restore_record(raw_record: bytes, columns: dict[str, str | None]) -> dict:
    """Rebuild the original record, in key order, from its decompressed blob and its RESTORE_COLUMNS values."""
    record = orjson.loads(raw_record)
    for field_name, column in JSON_COLUMN_FIELDS.items():
        if record.get(field_name) == codec.PLACEHOLDER:
            record[field_name] = orjson.loads(columns[column])
    _restore_text(record, TEXT_COLUMN_FIELDS, columns)
    if isinstance(record.get("userIdentity"), dict):
        _restore_text(record["userIdentity"], IDENTITY_COLUMN_FIELDS, columns)
    return record
