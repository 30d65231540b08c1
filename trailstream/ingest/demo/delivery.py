"""Log files as CloudTrail delivers them to S3."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path
from typing import Iterator

import orjson

from trailstream.ingest.demo.company import GLOBAL_REGION, MINUTE
from trailstream.ingest.demo.identities import _epoch


_UNIQUE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def iter_log_files(records: list[dict], records_per_file: int = 500,
                   window_minutes: int = 5) -> Iterator[tuple[str, bytes]]:
    """Group records as CloudTrail delivers them (per account and region, one delivery per `window_minutes`, at most
    `records_per_file` per file) and yield (S3 key, gzipped {"Records": [...]}) in delivery order."""
    window = window_minutes * MINUTE
    minutes: dict[str, int] = {}
    groups: dict[tuple[int, str, str], list[dict]] = {}
    for record in records:
        stamp = record["eventTime"][:16]
        minute = minutes.get(stamp)
        if minute is None:
            minute = minutes[stamp] = _epoch(stamp + ":00Z")
        account = record.get("recipientAccountId") or record.get("userIdentity", {}).get("accountId") or "000000000000"
        groups.setdefault((minute - minute % window, account, record.get("awsRegion") or GLOBAL_REGION), []).append(record)
    for (opened, account, region), members in sorted(groups.items()):
        delivered = time.gmtime(opened + window)
        folder, stamp = time.strftime("%Y/%m/%d", delivered), time.strftime("%Y%m%dT%H%MZ", delivered)
        for first in range(0, len(members), records_per_file):
            chunk = members[first:first + records_per_file]
            digest = hashlib.blake2b("".join(r.get("eventID", "") for r in chunk).encode(), digest_size=16).digest()
            unique = "".join(_UNIQUE_ALPHABET[byte % 62] for byte in digest)
            key = f"AWSLogs/{account}/CloudTrail/{region}/{folder}/{account}_CloudTrail_{region}_{stamp}_{unique}.json.gz"
            yield key, gzip.compress(orjson.dumps({"Records": chunk}), compresslevel=6, mtime=0)


def write_log_files(directory: Path, records: list[dict], records_per_file: int = 500,
                    window_minutes: int = 5) -> list[Path]:
    """Write iter_log_files under `directory` (creating folders); returns the paths written."""
    paths = []
    for key, data in iter_log_files(records, records_per_file, window_minutes):
        path = Path(directory) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths
