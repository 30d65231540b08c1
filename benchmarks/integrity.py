"""Integrity benchmark: verify 30 days × 3 accounts × 4 regions of already-synced digests (8,640 signed digests,
~100,000 log files), and build the Integrity & coverage page's data from them.

Run on demand: `python benchmarks/integrity.py [--days 30] [--reuse] [--repeat 3]`. Builds
benchmarks/data/integrity.db with the test suite's fake CloudTrail (real RSA-2048 signatures, one key per region;
log files stored as `files` rows with their SHA-256, as a sync leaves them), then times `verify_integrity` (target
10 s) and the page's data and chart spec on a fresh connection (target 1.5 s), cold (every signature checked) and
warm (a running app remembers the signatures it checked, so after a sync only new digests cost a check).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cloudtrail_fake import FakeCloudTrail, SigningKey  # noqa: E402
from trailstream.analytics import charts, integrity  # noqa: E402
from trailstream.cache import bookkeeping, store  # noqa: E402
from trailstream.cache import integrity as tables  # noqa: E402
from trailstream.cache.bookkeeping import FileRef  # noqa: E402
from trailstream.ingest import digests  # noqa: E402
from trailstream.timefmt import iso_utc  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
ACCOUNTS = ("111122223333", "222233334444", "333344445555")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
FIRST = datetime(2026, 9, 1, tzinfo=timezone.utc)
LOGS_PER_HOUR = (11, 12, 12)  # ~11.6 a digest: ~100k log files over 8,640 digests
VERIFY_TARGET, PAGE_TARGET = 10.0, 1.5


def build_cache(path: Path, days: int) -> None:
    """Digests signed for real and their log files' rows, stored the way a sync stores them."""
    path.unlink(missing_ok=True)
    db = store.open_cache(path)
    keys = {region: SigningKey.generate() for region in REGIONS}
    tables.save_public_keys(db, [{"fingerprint": k.fingerprint, "value": k.public_der(), "region": r}
                                 for r, k in keys.items()])
    db.execute("BEGIN")
    for account in ACCOUNTS:
        for region in REGIONS:
            _store_chain(db, account, region, keys[region], days)
    db.execute("COMMIT")
    db.close()


def _store_chain(db, account: str, region: str, signer: SigningKey, days: int) -> None:
    trail = FakeCloudTrail()
    for hour in range(days * 24):
        start = FIRST + timedelta(hours=hour, seconds=30)
        logs = []
        for n in range(LOGS_PER_HOUR[hour % 3]):
            key = (f"AWSLogs/{account}/CloudTrail/{region}/{start:%Y/%m/%d}/"
                   f"{account}_CloudTrail_{region}_{start + timedelta(minutes=5 * n):%Y%m%dT%H%MZ}_{hour:05d}{n:02d}x.json.gz")
            trail.log_hashes[key] = hashlib.sha256(key.encode()).hexdigest()
            bookkeeping.save_file_row(db, FileRef("s3", trail.bucket, key), "ok", None, sha256=trail.log_hashes[key],
                                      oldest_event_time=iso_utc(start - timedelta(minutes=20)),
                                      newest_event_time=iso_utc(start + timedelta(minutes=5 * n)))
            logs.append(key)
        key = trail.add_digest(account, region, start, signer, logs)
        written = trail.objects.pop(key)
        text = gzip.decompress(written.body)
        row = digests.parse_digest_document(json.loads(text), hashlib.sha256(text).hexdigest())
        row.values.update(digests.digest_values_from_key(key) | {k: v for k, v in row.values.items() if v is not None})
        tables.save_digest(db, FileRef("s3", trail.bucket, key), row, None)
        tables.save_digest_signature(db, trail.bucket, key, written.metadata)


def timed(function, repeat: int, cold: bool = True) -> tuple[float, object]:
    """Best of `repeat`; cold forgets the signature checks remembered per process, as a fresh process would."""
    best, result = float("inf"), None
    for _ in range(repeat):
        if cold:
            integrity._checked_signature.cache_clear()
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def page_data(path: Path, since=None, until=None) -> None:
    """What pages/integrity.py computes on a first render: the report, the cells and the chart spec."""
    with store.open_cache_readonly(path) as conn:
        report = integrity.query_integrity_report(conn, since, until)
    cells = integrity.heatmap_cells(report.hours)
    charts.integrity_heatmap_chart(cells, integrity.STATE_COLORS).to_dict()
    report.problems()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep an existing benchmark cache")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = DATA / f"integrity-{args.days}d.db"
    DATA.mkdir(parents=True, exist_ok=True)
    if not (args.reuse and path.exists()):
        started = time.perf_counter()
        build_cache(path, args.days)
        print(f"built {path} in {time.perf_counter() - started:.1f} s")

    def verify():
        with store.open_cache_readonly(path) as conn:
            return integrity.verify_integrity(conn)

    seconds, report = timed(verify, args.repeat)
    counts = report.counts()
    assert not report.failed, report.problems().head()
    page_seconds, _ = timed(lambda: page_data(path), args.repeat)
    warm_seconds, _ = timed(lambda: page_data(path), args.repeat, cold=False)
    last = (FIRST + timedelta(days=args.days)).date()
    week_seconds, _ = timed(lambda: page_data(path, last - timedelta(days=7), last), args.repeat)
    print(f"{counts['digests']:,} digests, {counts['log_files']:,} log files, all verified (cpu count {os.cpu_count()})")
    print(f"{'measure':<28}{'seconds':>10}{'target':>10}")
    print(f"{'verify_integrity':<28}{seconds:>10.2f}{VERIFY_TARGET:>10.1f}")
    print(f"{'page, last 7 days':<28}{week_seconds:>10.2f}{PAGE_TARGET:>10.1f}")
    print(f"{f'page, all {args.days} days':<28}{page_seconds:>10.2f}{PAGE_TARGET:>10.1f}")
    print(f"{'  again after a sync (warm)':<28}{warm_seconds:>10.2f}{PAGE_TARGET:>10.1f}")


if __name__ == "__main__":
    main()
