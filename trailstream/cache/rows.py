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


def split_record(record: dict) -> tuple[bytes, dict[str, str | None]]:
    """The record's JSON with its large fields replaced by a placeholder, and those fields as JSON text."""
    stripped = dict(record)
    json_columns = {}
    for field_name, column in JSON_COLUMN_FIELDS.items():
        value = record.get(field_name)
        if value is None:
            json_columns[column] = None
        else:
            json_columns[column] = orjson.dumps(value).decode()
            stripped[field_name] = codec.PLACEHOLDER
    return orjson.dumps(stripped), json_columns


def restore_record(raw_record: bytes, json_columns: dict[str, str | None]) -> dict:
    """Rebuild the original record from its decompressed blob and its JSON-text columns, in key order."""
    record = orjson.loads(raw_record)
    for field_name, column in JSON_COLUMN_FIELDS.items():
        if record.get(field_name) == codec.PLACEHOLDER:
            record[field_name] = orjson.loads(json_columns[column])
    return record

