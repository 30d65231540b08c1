"""CloudTrail digest files (log file integrity validation): their S3 key names and their JSON. Pure: no I/O.

A digest lists every log file delivered in its hour with the SHA-256 of its uncompressed bytes and links to the
previous digest; verification (signatures, chain, grid) is analytics.integrity's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trailstream.cache.rows import DigestRow
from trailstream.timefmt import parse_iso_utc

DIGEST_KEY = re.compile(
    r"(?:^|/)AWSLogs/(?:(?P<org>o-[a-z0-9]{10,32})/)?(?P<account>\d{12})/CloudTrail-Digest/(?P<region>[a-z0-9-]+)/"
    r"\d{4}/\d\d/\d\d/(?P=account)_CloudTrail-Digest_(?P=region)_(?P<trail>.+)_(?P<home>[a-z]{2}(?:-[a-z]+)+-\d+)_"
    r"(?P<stamp>\d{8}T\d{6}Z)(?P<backfill>_backfill)?\.json\.gz$"
)
_ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_YEARS = range(2013, 3000)  # CloudTrail's lifetime, give or take: a digest dated outside it is forged
_TEXT_FIELDS = ("digestStartTime", "digestEndTime", "digestS3Bucket", "digestS3Object",
                "digestPublicKeyFingerprint", "digestSignatureAlgorithm")


@dataclass(frozen=True)
class DigestKey:
    """What a digest's S3 key says: whose, which region and trail, and whether it is a backfill."""

    account: str
    region: str
    trail: str
    home_region: str
    org: str | None
    backfill: bool
    stamp: str  # YYYYMMDDTHHMMSSZ: when it was delivered

    @property
    def end_time(self) -> str:
        """The stamp as cache time text: a malformed digest's hour, when its content cannot say."""
        s = self.stamp
        return f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}Z"


def parse_digest_key(key: str) -> DigestKey | None:
    """The parts of a digest key, or None if the key is not named like a CloudTrail digest."""
    match = DIGEST_KEY.search(key)
    if not match:
        return None
    return DigestKey(match["account"], match["region"], match["trail"], match["home"], match["org"],
                     bool(match["backfill"]), match["stamp"])


def parse_digest_document(document: dict, sha256: str) -> DigestRow:
    """A digest's columns and listed log files; a field of the wrong shape makes it 'malformed' (kept, with why)."""
    values = {"sha256": sha256, "backfill": 0}
    try:
        values.update(_digest_values(document))
        log_files = [_log_file_entry(item) for item in document["logFiles"]]
    except (KeyError, TypeError, ValueError) as exc:
        values["error"] = f"malformed digest: {exc}"
        return DigestRow(values, [])
    return DigestRow(values, log_files)


def _digest_values(document: dict) -> dict:
    for name in _TEXT_FIELDS:
        if not isinstance(document.get(name), str):
            raise ValueError(f'"{name}" is missing or not text')
    for name in ("digestStartTime", "digestEndTime"):
        if not _ISO_SECONDS.match(document[name]) or not _plausible_time(document[name]):
            raise ValueError(f'"{name}" is not a CloudTrail time like 2026-03-01T13:01:31Z')
    if not isinstance(document.get("logFiles"), list):
        raise ValueError('"logFiles" is missing or not a list')
    object_key = document["digestS3Object"]
    key = parse_digest_key(object_key)
    return {
        "account_id": _optional_text(document.get("awsAccountId")) or (key and key.account),
        "region": key and key.region,
        "home_region": key and key.home_region,
        "trail": key and key.trail,
        "org_id": key and key.org,
        "backfill": int(bool(key and key.backfill)),
        "start_time": document["digestStartTime"],
        "end_time": document["digestEndTime"],
        "digest_s3_bucket": document["digestS3Bucket"],
        "digest_s3_object": object_key,
        "fingerprint": document["digestPublicKeyFingerprint"],
        "signature_algorithm": document["digestSignatureAlgorithm"],
        "previous_bucket": _optional_text(document.get("previousDigestS3Bucket")),
        "previous_object": _optional_text(document.get("previousDigestS3Object")),
        "previous_hash": _optional_text(document.get("previousDigestHashValue")),
        "previous_signature": _optional_text(document.get("previousDigestSignature")),
        "newest_event_time": _optional_text(document.get("newestEventTime")),
        "oldest_event_time": _optional_text(document.get("oldestEventTime")),
    }


def _plausible_time(text: str) -> bool:
    """A real calendar time (no month 13, no year 0) in the years a CloudTrail digest can have."""
    try:
        return parse_iso_utc(text).year in _YEARS
    except ValueError:
        return False


def _log_file_entry(item) -> tuple:
    if not isinstance(item, dict) or not isinstance(item.get("s3Object"), str):
        raise ValueError("a logFiles entry has no s3Object")
    return (_optional_text(item.get("s3Bucket")), item["s3Object"], _optional_text(item.get("hashValue")),
            _optional_text(item.get("hashAlgorithm")))


def _optional_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not text")


def digest_values_from_key(key: str) -> dict:
    """What the key alone says, for a digest file that cannot be read at all (kept as malformed)."""
    parts = parse_digest_key(key)
    if parts is None:
        return {}
    return {"account_id": parts.account, "region": parts.region, "home_region": parts.home_region,
            "trail": parts.trail, "org_id": parts.org, "backfill": int(parts.backfill),
            "end_time": parts.end_time if _plausible_time(parts.end_time) else None}
