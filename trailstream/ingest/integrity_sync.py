"""What integrity verification needs from AWS besides the files: digest signatures (S3 metadata) and public keys.

Both are kept in the cache, so verification runs later offline.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

from trailstream.cache import integrity
from trailstream.ingest import aws
from trailstream.ingest.aws import SourceError
from trailstream.timefmt import parse_iso_utc

log = logging.getLogger(__name__)
METADATA_THREADS = 16
KEYS_BEFORE, KEYS_AFTER = timedelta(hours=1), timedelta(hours=2)  # a digest near a key rotation finds its key
BACKFILL_MARGIN = timedelta(hours=1)


def complete_digests(db, s3, bucket: str, access) -> None:
    """After a sync from S3: keep the new digests' signatures, and the public keys they need, for offline checks."""
    save_digest_metadata(db, s3, bucket)
    try:
        _, problems = fetch_missing_public_keys(db, aws.make_session(access))
    except SourceError as exc:
        problems = [str(exc)]
    for problem in problems:  # verification says "unknown key" until a later sync or `verify` fetches them
        log.warning("%s", problem)


def save_digest_metadata(db, s3, bucket: str) -> int:
    """Read and keep the S3 metadata (signature) of every digest from this bucket not read yet; returns how many."""
    keys = integrity.digests_without_metadata(db.conn, bucket)
    if not keys:
        return 0
    done = 0
    with ThreadPoolExecutor(METADATA_THREADS, thread_name_prefix="trailstream-digest") as threads:
        for key, future in zip(keys, [threads.submit(partial(aws.fetch_object_metadata, s3, bucket, k)) for k in keys]):
            try:
                metadata = future.result()
            except SourceError as exc:  # left unread: tried again on the next sync; its successor may vouch for it
                log.warning("signature of s3://%s/%s not read: %s", bucket, key, exc)
                continue
            integrity.save_digest_signature(db, bucket, key, metadata)
            done += 1
    return done


def public_key_windows(digests) -> dict[str, tuple]:
    """Per source region, the time range to ask ListPublicKeys for so every digest's key is in the answer."""
    windows: dict[str, tuple] = {}
    for row in digests:
        start, end = (row["start"] or row["end"]) - KEYS_BEFORE, row["end"] + KEYS_AFTER
        try:  # a backfill digest is signed with the key current when it was generated
            generated = parse_iso_utc(row.get("backfill_generated_at") or "")
            start, end = generated - BACKFILL_MARGIN, generated + BACKFILL_MARGIN
        except ValueError:
            pass
        low, high = windows.get(row["region"], (start, end))
        windows[row["region"]] = (min(low, start), max(high, end))
    return windows


def fetch_missing_public_keys(db, session) -> tuple[int, list[str]]:
    """Fetch from CloudTrail the keys of stored digests whose fingerprint is not in the cache; (keys saved, problems)."""
    known = integrity.query_public_keys(db.conn)
    frame = integrity.query_digests(db.conn)
    wanted = frame.filter(~frame["fingerprint"].is_in(list(known)) & frame["end"].is_not_null()
                          & frame["region"].is_not_null())
    saved, problems = 0, []
    for region, (start, end) in public_key_windows(wanted.to_dicts()).items():
        try:
            keys = aws.fetch_public_keys(session, region, start, end)
        except SourceError as exc:
            problems.append(f"public keys for {region} not fetched: {exc}")
            continue
        integrity.save_public_keys(db, keys)
        saved += len(keys)
    return saved, problems
