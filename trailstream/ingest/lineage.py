"""A lake event's original record, read back from the log file its lineage names (`source_key`: a local path or
s3://bucket/key) and trusted only if the file still has the SHA-256 the compactor saw (`source_sha256`).

The lake keeps the flat columns, not the record; this is how a page shows the record when the cache has no copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from trailstream.config import AwsAccess, S3Source, Source, SqsSource
from trailstream.ingest import aws, records, sync


DEFAULT_ACCESS = AwsAccess()  # the default credential chain


class LineageError(ValueError):
    """The record cannot be shown from its source file; the message says why and what to do, for a person."""


@dataclass(frozen=True)
class SourceRecord:
    """The original record and where it came from; verified: the file's SHA-256 matched the lake's (False: the lake
    kept none for it, as for rows `watch --compact-to` copied from the cache)."""

    record: dict
    source_key: str
    verified: bool


def source_access(bucket: str, sources: Sequence[Source], fallback: AwsAccess) -> AwsAccess:
    """The credentials of the configured source that reads `bucket`, else [backend]'s (as `compact` reads a trail)."""
    for source in sources:
        if (isinstance(source, S3Source) and source.bucket == bucket) or (
                isinstance(source, SqsSource) and bucket in source.buckets):
            return source.access
    return fallback


def fetch_source_bytes(source_key: str, sources: Sequence[Source] = (), fallback: AwsAccess = DEFAULT_ACCESS) -> bytes:
    """The delivered file's bytes: from S3 through ingest.aws, or from this machine's disk."""
    if source_key.startswith("s3://"):
        bucket, _, key = source_key.removeprefix("s3://").partition("/")
        try:
            s3 = aws.make_client(aws.make_session(source_access(bucket, sources, fallback)), "s3")
            return aws.fetch_object(s3, bucket, key)[0]
        except aws.SourceError as exc:
            raise LineageError(f"cannot read this event's source file {source_key}: {exc}") from None
    if "://" in source_key or not source_key:
        raise LineageError(f"the lake names no file this machine can read as this event's source ({source_key!r})")
    try:
        return sync.read_local_file(source_key)
    except FileNotFoundError:
        raise LineageError(f"this event's source file {source_key} is not on this machine (moved, deleted, or "
                           "compacted elsewhere): open the page where `compact` ran, or sync the file into the "
                           "cache") from None
    except (OSError, records.LogFileError) as exc:
        raise LineageError(f"cannot read this event's source file {source_key}: {exc}") from None


def parse_source_record(data: bytes, source_key: str, source_sha256: str | None, event_id: str) -> SourceRecord:
    """The record with `event_id` in a log file's bytes, refused unless the file is the one the lake was built from."""
    text = records.LogText()
    try:
        body = b"".join(records.iter_log_text(data, text=text))
    except records.LogFileError as exc:
        raise LineageError(f"this event's source file {source_key} is no readable log file now: {exc}") from None
    if source_sha256 and text.sha256.hexdigest() != source_sha256:
        raise LineageError(f"this event's source file {source_key} has changed since it was compacted into the lake "
                           "(its SHA-256 differs), so its records cannot be trusted as this event's: check the "
                           "trail's integrity on Integrity & coverage")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    found = document.get("Records") if isinstance(document, dict) else None
    for record in found if isinstance(found, list) else ():
        if isinstance(record, dict) and record.get("eventID") == event_id:
            return SourceRecord(record, source_key, bool(source_sha256))
    raise LineageError(f"this event's source file {source_key} holds no record with its event ID")


def fetch_source_record(source_key: str, source_sha256: str | None, event_id: str, sources: Sequence[Source] = (),
                        fallback: AwsAccess = DEFAULT_ACCESS) -> SourceRecord:
    """A lake event's original record from the file its lineage names, checked against the lake's SHA-256."""
    return parse_source_record(fetch_source_bytes(source_key, sources, fallback), source_key, source_sha256, event_id)
