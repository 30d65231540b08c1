"""Parsing: CloudTrail log-file bytes become `events` rows. Pure: no I/O, no SQLite."""

from __future__ import annotations

import hashlib
import re
import zlib
from datetime import datetime, timezone

import orjson

from trailstream.cache import codec
from trailstream.ingest import digests
from trailstream.cache.rows import ParsedLog, split_record
from trailstream.timefmt import iso_utc


# Record fields kept as JSON-text columns and left out of the compressed raw blob (see codec).

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_DECOMPRESSED_BYTES = 1 << 30  # CloudTrail files are rarely above 100 MB; a gzip bomb is refused
_ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class LogFileError(ValueError):
    """The file cannot be read as a CloudTrail log file; the message says why, for a person."""



def read_log_bytes(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> bytes:
    """Return the JSON text of a plain or gzipped (also multi-member) file, refusing more than max_bytes."""
    return read_log_text(data, max_bytes)[0]


def read_log_text(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> tuple[bytes, bool]:
    """The uncompressed text, and whether gzip data follows the first member (which a digest's hash never covers)."""
    if not data.startswith(GZIP_MAGIC):
        if len(data) > max_bytes:
            raise LogFileError(f"file is larger than the {max_bytes:,}-byte limit")
        return data, False
    parts, total, members, rest = [], 0, 0, data
    while rest and (members == 0 or rest.lstrip(b"\0")):
        stream = zlib.decompressobj(wbits=31)
        try:
            part = stream.decompress(rest, max_bytes + 1 - total)
        except zlib.error as exc:
            if members:  # not gzip after a whole member: appended bytes, kept out of the parse
                return b"".join(parts), True
            raise LogFileError(f"corrupt gzip data: {exc}") from None
        total += len(part)
        if total > max_bytes:
            raise LogFileError(f"decompresses to more than the {max_bytes:,}-byte limit (possible gzip bomb)")
        if not stream.eof:
            raise LogFileError("corrupt gzip data: the file ends before its compressed data does")
        parts.append(part)
        members, rest = members + 1, stream.unused_data
    return b"".join(parts), members > 1


def parse_log_file(data: bytes, compressor=None, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> ParsedLog:
    """Parse a whole log file; bad records are refused one by one, never failing the file."""
    text, trailing_data = read_log_text(data, max_bytes)
    sha256 = hashlib.sha256(text).hexdigest()
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise LogFileError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise LogFileError("not a CloudTrail log file: the JSON is not an object")
    records = document.get("Records")
    if records is None:
        if "digestPublicKeyFingerprint" in document or "logFiles" in document:
            return ParsedLog(kind="digest", sha256=sha256, digest=digests.parse_digest_document(document, sha256))
        return ParsedLog(kind="other")
    if not isinstance(records, list):
        raise LogFileError('not a CloudTrail log file: "Records" is not a list')
    compressor = compressor or codec.default_compressor()
    parsed = ParsedLog(kind="records", records=len(records), sha256=sha256, trailing_data=trailing_data)
    for position, record in enumerate(records):
        try:
            row = parse_record(record, compressor)
        except RecordRejected as exc:
            event_id = record.get("eventID") if isinstance(record, dict) else None
            parsed.rejects.append((position, event_id if isinstance(event_id, str) else None, str(exc)))
            continue
        parsed.rows.append(row)
    if parsed.rows:
        times = [row[1] for row in parsed.rows]
        parsed.oldest_event_time, parsed.newest_event_time = min(times), max(times)
    return parsed


class RecordRejected(ValueError):
    """A record that cannot be stored; the message is the reason kept in the cache."""


def normalize_event_time(value) -> str:
    """Return eventTime as UTC 'YYYY-MM-DDTHH:MM:SSZ', accepting other ISO-8601 spellings."""
    if not isinstance(value, str) or not value:
        raise RecordRejected("record has no eventTime")
    if _ISO_SECONDS.match(value):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"eventTime {value[:40]!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso_utc(moment)


def principal_name(identity: dict) -> str | None:
    """A readable name for who acted: user name, role/session, root, or the calling service."""
    kind = identity.get("type")
    arn = identity.get("arn") or ""
    if kind == "Root":
        return "root"
    if kind == "AssumedRole" and ":assumed-role/" in arn:
        return arn.split(":assumed-role/", 1)[1]
    if kind == "FederatedUser" and ":federated-user/" in arn:
        return arn.split(":federated-user/", 1)[1]
    if kind == "AWSService":
        return identity.get("invokedBy") or "AWS service"
    if kind == "IdentityCenterUser":
        on_behalf = identity.get("onBehalfOf") or {}
        return identity.get("userName") or on_behalf.get("userId") or identity.get("principalId")
    if identity.get("userName"):
        return identity["userName"]
    if kind == "IAMUser" and ":user/" in arn:
        return arn.rsplit("/", 1)[1]
    if kind == "AWSAccount":
        return f"account/{identity.get('accountId') or identity.get('principalId')}"
    if arn:
        return arn.rsplit("/", 1)[-1]
    return identity.get("principalId") or identity.get("invokedBy")


def _read_only_flag(value) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return int(value.lower() == "true")
    return None


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)



def parse_record(record, compressor) -> tuple:
    """Turn one CloudTrail record into an `events` row (see EVENT_COLUMNS)."""
    if not isinstance(record, dict):
        raise RecordRejected("record is not a JSON object")
    event_id = record.get("eventID")
    if not isinstance(event_id, str) or not event_id.strip():
        raise RecordRejected("record has no eventID")
    event_name = record.get("eventName")
    if not isinstance(event_name, str) or not event_name:
        raise RecordRejected("record has no eventName")
    event_time = normalize_event_time(record.get("eventTime"))
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        identity = {}
    raw_json, json_columns = split_record(record)
    record_hash = hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()
    category = record.get("eventCategory")
    if category is None:
        category = "Insight" if record.get("eventType") == "AwsCloudTrailInsight" else "Management"
    return (
        event_id,
        event_time,
        _text(record.get("eventSource")),
        event_name,
        _text(record.get("awsRegion")),
        _text(record.get("recipientAccountId") or identity.get("accountId")),
        _text(principal_name(identity)),
        _text(identity.get("arn")),
        _text(identity.get("type")),
        _text(identity.get("accessKeyId")),
        _text(record.get("sourceIPAddress")),
        _text(record.get("userAgent")),
        _text(record.get("errorCode")),
        _text(record.get("errorMessage")),
        _read_only_flag(record.get("readOnly")),
        _text(record.get("eventType")),
        _text(category),
        json_columns["resources"],
        json_columns["request_parameters"],
        json_columns["response_elements"],
        json_columns["additional_event_data"],
        compressor.compress(raw_json),
        compressor.codec_id,
        record_hash,
    )


