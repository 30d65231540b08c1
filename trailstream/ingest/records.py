"""Parsing: CloudTrail log-file bytes become `events` rows. Pure: no I/O, no SQLite."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import ijson
import orjson

from trailstream.cache import codec
from trailstream.ingest import digests
from trailstream.cache.rows import ParsedLog, lookup_values, split_record
from trailstream.timefmt import iso_utc


GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_DECOMPRESSED_BYTES = 1 << 30  # CloudTrail files are rarely above 100 MB; a gzip bomb is refused
BUFFER_LIMIT = 64 << 20  # a file whose text is larger is parsed record by record (parse_large_log_file)
READ_CHUNK = 1 << 20  # decompressed a chunk at a time: nothing reserves the whole cap up front
DEFLATE_MAX_RATIO = 1032  # deflate never expands more: a gzip trailer claiming more is not a trailer
_ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class LogFileError(ValueError):
    """The file cannot be read as a CloudTrail log file; the message says why, for a person."""


class FileTooLargeToBuffer(Exception):
    """The file's text is over the buffer limit: parse it with `parse_large_log_file`, which streams."""


@dataclass
class LogText:
    """What reading one file's text found: its SHA-256 (of exactly the bytes parsed), and whether gzip data follows
    the first member (which a digest's hash never covers)."""

    sha256: "hashlib._Hash | None" = field(default_factory=hashlib.sha256)  # None: not needed
    size: int = 0
    trailing_data: bool = False


def _too_large(max_bytes: int, gzipped: bool) -> LogFileError:
    if gzipped:
        return LogFileError(f"decompresses to more than the {max_bytes:,}-byte limit (possible gzip bomb)")
    return LogFileError(f"file is larger than the {max_bytes:,}-byte limit")


def _gunzip_member(data: bytes, max_bytes: int, text: LogText) -> Iterator[bytes]:
    """Decompress the gzip member at the start of `data` a chunk at a time, counting and hashing it in `text`;
    returns (as StopIteration.value) what follows the member."""
    stream, pending = zlib.decompressobj(wbits=31), data
    while not stream.eof:
        # With all input in, flush() hands over what zlib still holds (a few bytes); a truncated member stays short.
        part = stream.decompress(pending, READ_CHUNK) if pending else stream.flush()
        text.size += len(part)
        if text.size > max_bytes:
            raise _too_large(max_bytes, True)
        if part:
            if text.sha256 is not None:
                text.sha256.update(part)
            yield part
        if not pending:
            break
        pending = stream.unconsumed_tail
    if not stream.eof:
        raise LogFileError("corrupt gzip data: the file ends before its compressed data does")
    return stream.unused_data


def iter_log_text(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
                  text: LogText | None = None) -> Iterator[bytes]:
    """The JSON text of a plain or gzipped (also multi-member) file, a chunk at a time, refusing more than max_bytes:
    at once when the gzip trailer says so, else as soon as it is read. `text` collects its hash and trailing data."""
    text = text if text is not None else LogText()
    if not data.startswith(GZIP_MAGIC):
        if len(data) > max_bytes:
            raise _too_large(max_bytes, False)
        text.size = len(data)
        if text.sha256 is not None:
            text.sha256.update(data)
        yield data
        return
    claimed = int.from_bytes(data[-4:], "little")
    if max_bytes < claimed <= len(data) * DEFLATE_MAX_RATIO:
        raise _too_large(max_bytes, True)
    members, rest = 0, data
    while rest and (members == 0 or rest.lstrip(b"\0")):
        try:
            rest = yield from _gunzip_member(rest, max_bytes, text)
        except zlib.error as exc:
            if members:  # not gzip after a whole member: appended bytes, kept out of the parse
                text.trailing_data = True
                return
            raise LogFileError(f"corrupt gzip data: {exc}") from None
        members += 1
    text.trailing_data = text.trailing_data or members > 1


def read_log_bytes(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> bytes:
    """Return the JSON text of a plain or gzipped (also multi-member) file, refusing more than max_bytes."""
    return read_log_text(data, max_bytes)[0]


def read_log_text(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> tuple[bytes, bool]:
    """The uncompressed text, and whether gzip data follows the first member (which a digest's hash never covers)."""
    text = LogText()
    return b"".join(iter_log_text(data, max_bytes, text)), text.trailing_data


def _buffered_text(data: bytes, max_bytes: int, limit: int, text: LogText) -> bytes:
    """The whole text, or FileTooLargeToBuffer as soon as it passes `limit` (before holding more)."""
    chunks, size = [], 0
    for chunk in iter_log_text(data, max_bytes, text):
        size += len(chunk)
        if size > limit:
            raise FileTooLargeToBuffer(f"more than {limit:,} bytes of JSON")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_log_file(data: bytes, compressor=None, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
                   buffer_limit: int | None = None) -> ParsedLog:
    """Parse a whole log file; bad records are refused one by one, never failing the file. A file whose text is over
    buffer_limit raises FileTooLargeToBuffer: `parse_large_log_file` streams it instead."""
    text = LogText()
    body = _buffered_text(data, max_bytes, buffer_limit or BUFFER_LIMIT, text)
    sha256 = text.sha256.hexdigest()
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise LogFileError(f"not valid JSON: {exc}") from None
    del body
    if not isinstance(document, dict):
        raise LogFileError("not a CloudTrail log file: the JSON is not an object")
    records = document.get("Records")
    if records is None:
        if "digestPublicKeyFingerprint" in document or "logFiles" in document:
            return ParsedLog(kind="digest", sha256=sha256, digest=digests.parse_digest_document(document, sha256))
        return ParsedLog(kind="other")
    if not isinstance(records, list):
        raise LogFileError('not a CloudTrail log file: "Records" is not a list')
    parsed = ParsedLog(kind="records", sha256=sha256, trailing_data=text.trailing_data)
    parsed.rows = list(_parse_records(parsed, records, compressor or codec.default_compressor()))
    return parsed


def parse_large_log_file(data: bytes, compressor=None, max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> ParsedLog:
    """Parse a log file too large to hold as records at once: `rows` reads one record at a time as it is consumed
    (and raises LogFileError if the file turns out broken); counts, times and the hash are complete after it. A file
    over max_bytes is refused here, by a decompress-only pass that keeps nothing, before any parsing."""
    for _ in iter_log_text(data, max_bytes, LogText(sha256=None)):
        pass
    parsed = ParsedLog(kind="records", streamed=True)
    parsed.rows = _parse_records(parsed, _stream_records(data, max_bytes, parsed), compressor or codec.default_compressor())
    return parsed


def _stream_records(data: bytes, max_bytes: int, parsed: ParsedLog) -> Iterator:
    """The elements of the file's Records array, decompressed and parsed a chunk at a time (ijson's push parser)."""
    text, found = LogText(), ijson.sendable_list()
    parser = ijson.items_coro(found, "Records.item", use_float=True)
    try:
        for chunk in iter_log_text(data, max_bytes, text):
            for start in range(0, len(chunk), READ_CHUNK):
                parser.send(chunk[start:start + READ_CHUNK])
                yield from found
                del found[:]
        parser.close()
    except ijson.JSONError as exc:
        raise LogFileError(f"not valid JSON: {exc}") from None
    yield from found
    parsed.sha256, parsed.trailing_data = text.sha256.hexdigest(), text.trailing_data


def _parse_records(parsed: ParsedLog, records, compressor) -> Iterator[tuple]:
    """Rows of the records, counting them in `parsed` with each row's position and each refusal's reason."""
    for position, record in enumerate(records):
        parsed.records = position + 1
        try:
            row = parse_record(record, compressor)
        except RecordRejected as exc:
            event_id = record.get("eventID") if isinstance(record, dict) else None
            parsed.rejects.append((position, event_id if isinstance(event_id, str) else None, str(exc)))
            continue
        parsed.positions.append(position)
        if parsed.oldest_event_time is None or row[1] < parsed.oldest_event_time:
            parsed.oldest_event_time = row[1]
        if parsed.newest_event_time is None or row[1] > parsed.newest_event_time:
            parsed.newest_event_time = row[1]
        yield row


class RecordRejected(ValueError):
    """A record that cannot be stored; the message is the reason kept in the cache."""


def normalize_event_time(value) -> str:
    """Return eventTime as UTC 'YYYY-MM-DDTHH:MM:SSZ', accepting other ISO-8601 spellings."""
    if not isinstance(value, str) or not value:
        raise RecordRejected("record has no eventTime")
    if _ISO_SECONDS.match(value):
        try:  # a real calendar time: month 13 or year 0 would be stored, then read as a NULL time on every page
            datetime.fromisoformat(value[:-1])
        except ValueError:
            raise RecordRejected(f"eventTime {value[:40]!r} is not a real time") from None
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"eventTime {value[:40]!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso_utc(moment)


def principal_name(identity: dict, additional: dict | None = None) -> str | None:
    """A readable name for who acted: user name, role/session, root, or the calling service (an Identity Center
    user by the name the record's additionalEventData gives, rather than an opaque ID)."""
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
        readable = (additional or {}).get("UserName") if isinstance(additional, dict) else None
        return (identity.get("userName") or (readable if isinstance(readable, str) else None)
                or on_behalf.get("userId") or identity.get("principalId"))
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


def _name(value) -> str | None:
    """An identity field as text; empty means unknown (NULL), not a name."""
    return _text(value) or None


def _category(record: dict) -> str:
    """eventCategory, or what the record implies without it: Insight, Data (managementEvent false), Management."""
    category = record.get("eventCategory")
    if category is not None:
        return _text(category)
    if record.get("eventType") == "AwsCloudTrailInsight":
        return "Insight"
    return "Data" if record.get("managementEvent") in (False, "false") else "Management"



def parse_record(record, compressor) -> tuple:
    """Turn one CloudTrail record into an `events` row (see STORED_COLUMNS)."""
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
    row = (
        event_id,
        event_time,
        _text(record.get("eventSource")),
        event_name,
        _text(record.get("awsRegion")),
        _name(record.get("recipientAccountId") or identity.get("accountId")),
        _name(principal_name(identity, record.get("additionalEventData"))),
        _name(identity.get("arn")),
        _name(identity.get("type")),
        _name(identity.get("accessKeyId")),
        _text(record.get("sourceIPAddress")),
        _text(record.get("userAgent")),
        _text(record.get("errorCode")),
        _text(record.get("errorMessage")),
        _read_only_flag(record.get("readOnly")),
        _text(record.get("eventType")),
        _category(record),
        json_columns["resources"],
        json_columns["request_parameters"],
        json_columns["response_elements"],
        json_columns["additional_event_data"],
    )
    stored = (compressor.compress(raw_json), compressor.codec_id, _record_hash(raw_json, row))
    return row + stored + lookup_values(record)


def _record_hash(raw_json: bytes, row: tuple) -> bytes:
    """What tells a re-delivery from a different record under the same eventID: a hash of the blob's text and every
    column (the blob leaves out what they hold), reusing the record's one serialisation instead of making another."""
    digest = hashlib.blake2b(raw_json, digest_size=8)
    digest.update("".join("\0" if value is None else f"\1{value}\2" for value in row).encode())  # one update, not 21
    return digest.digest()


