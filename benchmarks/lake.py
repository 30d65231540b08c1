"""Lake benchmark: the compactor against the cache import on the same gzip files, the lake's size against the
uncompressed JSON, and the bytes a 30-day Overview would make Athena scan against the whole lake.

Run on demand: `python benchmarks/lake.py [--events 200000] [--days 365] [--workers 2]`; for the 10M-event lake
`--events 10000000 --skip-import --records-per-file 5000 --window-minutes 60 --work /tmp/lake10m` (demo slices of
`--slice` events, each its own stretch of days, so memory stays flat; `--work` keeps the lake and a rerun only
measures it). Targets (issue 16):
compactor >= the import's speed, lake <= 0.15x the JSON, a 30-day Overview scans <= 2% of the lake, each page query
through DuckDB <= 2 s (on a 10M-event lake). The scan is
counted the way Athena bills Parquet: the compressed column chunks of the columns read, in the partitions read.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trailstream import catalog  # noqa: E402
from trailstream.analytics import backend, lake_sqlguard, sqlguard  # noqa: E402
from trailstream.analytics.detections.events import SINGLE_EVENT_NAMES  # noqa: E402
from trailstream.filters import EventFilter  # noqa: E402
from trailstream.ingest import demo, lake, sync  # noqa: E402

# What the Overview's aggregate queries read (analytics/backend.py: totals, top lists, account and region, timeline).
OVERVIEW_COLUMNS = ("event_time_ms", "event_time", "error_code", "principal", "user_type", "account_id",
                    "aws_region", "event_name", "event_source", "read_only")

# Principal activity (the demo's busiest role), Resource history and Access denied: analytics/activity_queries.
ACTIVITY_CASES = (
    ("principals", {}), ("principal_activity", {"principal": "web-app", "bucket": "hour"}),
    ("principal_origins", {"principal": "web-app", "origin": "source_ip"}),
    ("principal_origins", {"principal": "web-app", "origin": "user_agent"}),
    ("principal_sessions", {"principal": "web-app"}), ("principal_events", {"principal": "web-app"}),
    ("principal_calls", {"principal": "web-app"}), ("recent_resources", {}),
    ("resource_history", {"resource_id": "sg-"}), ("resource_history_count", {"resource_id": "sg-"}),
    ("denied_counts", {}), ("denied_timeline", {"bucket": "hour"}), ("denied_breakdown", {"by": "api"}),
    ("denied_calls", {}),
)
# The SQL page on the lake (analytics/lake_sqlguard): an admin's typical question.
SQL_PAGE_QUERY = ("SELECT event_source, error_code, count(*) AS calls FROM events WHERE event_time >= :start "
                  "AND error_code <> '' GROUP BY 1, 2 ORDER BY 3 DESC")


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def overview_scan_bytes(folder: Path, first_day: str, latest_day: str) -> tuple[int, int]:
    """(bytes a 30-day Overview reads: its aggregate columns in partitions from first_day on, plus every column of
    the partitions from latest_day on, where its newest 1,000 events are; bytes of every Parquet file)."""
    scanned = total = 0
    for path in folder.rglob("*.parquet"):
        total += path.stat().st_size
        day = path.parent.name.removeprefix("date=")
        if day < first_day:
            continue
        meta = pq.ParquetFile(path).metadata
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            scanned += sum(row_group.column(c).total_compressed_size for c in range(row_group.num_columns)
                           if day >= latest_day or row_group.column(c).path_in_schema in OVERVIEW_COLUMNS)
    return scanned, total


def latest_events_day(folder: Path, first_day: str) -> str:
    """The first day the Overview's newest 1,000 events query reads (backend.newest_period over its timeline)."""
    duck = backend.duckdb_backend(str(folder))
    period = EventFilter(start=f"{first_day}T00:00:00Z")
    timeline = duck.query("timeline", period, bucket="hour", group_by="event_source")
    return backend.newest_period(period, timeline, 1000).start[:10]


# The security detectors' slices (analytics/security_queries); sign-ins are read over the whole lake by the pages.
SECURITY_CASES = (("security_unauthorized", {}), ("security_privilege_changes", {}), ("security_root_calls", {}),
                  ("security_sign_ins", {}), ("security_moves", {}),
                  ("security_successful_calls", {"event_names": SINGLE_EVENT_NAMES}))
# Sigma rules' candidate rows (one narrowed by its services and APIs, one reading every row) and the alert rules' events.
RULE_CASES = (("sigma_candidates", {"rules": ("event_source COLLATE NOCASE = 'cloudtrail.amazonaws.com' AND "
                                              "(event_name COLLATE NOCASE = 'StopLogging' OR event_name COLLATE "
                                              "NOCASE = 'DeleteTrail')",)}),
              ("sigma_candidates", {"rules": ("NOT COALESCE((event_type COLLATE NOCASE = 'AwsServiceEvent'), 0)",)}),
              ("alert_events", {"event_names": ("CreateUser", "CreateAccessKey"), "condition": "e.error_code IS NULL"}),
              ("alert_events", {"once": True}),  # the rare-error rule on the lake
              ("alert_events", {"search": '{"error_code": "AccessDenied"}'}))


def slowest_page_query(folder: Path, first_day: str) -> tuple[str, float]:
    """The slowest of the page queries over the last 30 days through DuckDB on the lake (stand-in for Athena)."""
    times = page_query_times(folder, first_day)
    over = sorted(((seconds, name) for name, seconds in times.items() if seconds > 2), reverse=True)
    print(f"{len(over)} of {len(times)} page queries over 2 s: " + "; ".join(f"{n} {t:.2f} s" for t, n in over))
    return max(times.items(), key=lambda item: item[1])


def page_query_times(folder: Path, first_day: str) -> dict[str, float]:
    """Seconds each page query takes over the last 30 days through DuckDB on the lake."""
    duck = backend.duckdb_backend(str(folder))
    period = EventFilter(start=f"{first_day}T00:00:00Z")
    times = {}
    text = backend.queries.SearchQuery(text="AccessDenied")
    iam = catalog.USE_CASES["iam"].event_names
    for name, options in (("totals", {}), ("span", {}), ("top_event_names", {}), ("top_principals", {}),
                          ("top_services", {}), ("account_regions", {}),
                          ("timeline", {"bucket": "hour", "group_by": "event_source"}),
                          ("timeline", {"bucket": "hour", "group_by": "event_name", "event_names": iam}),
                          ("events", {"limit": 1000}), ("events", {"event_names": iam, "limit": 10_000}),
                          ("search", {"search": text}), ("search_count", {"search": text}),
                          ("error_counts", {}), ("error_first_seen", {}),
                          ("error_events", {"error_code": "AccessDenied"}), *ACTIVITY_CASES,
                          *SECURITY_CASES, *RULE_CASES, ("filter_choices", {}), ("search_suggestions", {}),
                          ("newest_event", {}),
                          ("record_source", {"event_id": "not-an-id", "event_time": f"{first_day}T12:00:00Z"})):
        times[f"{name} {sorted(options)}"] = _timed(lambda: duck.query(name, period, **options))
    sql_page = (duck.run, duck.table, duck.dialect, SQL_PAGE_QUERY, sqlguard.period_params(period))
    times["SQL page"] = _timed(lake_sqlguard.run_lake_query, *sql_page)
    return times


def demo_slices(events: int, days: int, end: datetime, size: int):
    """(events, days, end) of each demo slice, newest first: slices share the days so each stretch is its own."""
    count = max(1, -(-events // size))
    if count > days:
        raise SystemExit(f"{count} slices of {size:,} events do not fit in {days} days: raise --slice")
    for index in range(count):
        first, last = days * index // count, days * (index + 1) // count
        yield events * (index + 1) // count - events * index // count, last - first, end - timedelta(days=first)


def build(work: Path, args, end: datetime) -> dict:
    """Write each demo slice's log files, import them (unless skipped) and compact them; the logs are removed after."""
    figures = {"files": 0, "json_bytes": 0, "import_s": 0.0, "compact_s": 0.0}
    for index, (count, days, slice_end) in enumerate(demo_slices(args.events, args.days, end, args.slice)):
        records = demo.generate_records(count, seed=5 + index, end=slice_end, days=days, planted=index == 0)
        files = demo.write_log_files(work / "logs", records, args.records_per_file, args.window_minutes)
        del records
        figures["files"] += len(files)
        figures["json_bytes"] += sum(len(gzip.decompress(path.read_bytes())) for path in files)
        if not args.skip_import:
            figures["import_s"] += _timed(sync.import_paths, work / "cache.db", [work / "logs"], None, args.workers)
        figures["compact_s"] += _timed(lake.compact_paths, work / "lake", [work / "logs"], None, args.workers)
        shutil.rmtree(work / "logs")
        print(f"  slice {index + 1}: {count:,} events over {days} days compacted", flush=True)
    return figures


def measure(folder: Path, end: datetime) -> tuple[int, int, str, float]:
    """(Overview scan bytes, lake bytes, slowest page query, its seconds) over the 30 days before `end`."""
    first_day = (end - timedelta(days=30)).date().isoformat()
    scanned, lake_bytes = overview_scan_bytes(folder, first_day, latest_events_day(folder, first_day))
    return scanned, lake_bytes, *slowest_page_query(folder, first_day)


def report(args, figures: dict | None, scanned: int, lake_bytes: int, slowest: str, slowest_s: float) -> None:
    if figures:
        json_bytes = figures["json_bytes"]
        print(f"{args.events:,} demo events over {args.days} days in {figures['files']:,} files, "
              f"{json_bytes / 1e6:,.1f} MB of JSON")
        if figures["import_s"]:
            print(f"import {figures['import_s']:.1f} s, compact {figures['compact_s']:.1f} s: compactor at "
                  f"{figures['import_s'] / figures['compact_s']:.2f}x the import's speed (target >= 1.0x)")
        else:
            print(f"compact {figures['compact_s']:.1f} s (import skipped)")
        print(f"lake {lake_bytes / 1e6:,.1f} MB = {lake_bytes / json_bytes:.3f}x the JSON (target <= 0.15x)")
    else:
        print(f"lake {lake_bytes / 1e6:,.1f} MB (measured as found)")
    print(f"slowest 30-day page query through DuckDB: {slowest} {slowest_s:.2f} s (target <= 2 s on a 10M-event lake)")
    print(f"30-day Overview scans {scanned / 1e6:,.2f} MB = {scanned / lake_bytes:.2%} of the lake (target <= 2%)")
    print(f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slice", type=int, default=250_000, help="demo events generated at a time")
    parser.add_argument("--records-per-file", type=int, default=500, help="CloudTrail's is up to a few hundred")
    parser.add_argument("--window-minutes", type=int, default=5, help="one delivery per account/region per window")
    parser.add_argument("--skip-import", action="store_true", help="only build the lake (no cache import timing)")
    parser.add_argument("--work", type=Path, help="keep the lake here; a lake already there is measured, not rebuilt")
    args = parser.parse_args()
    end = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        figures = None
        if not any((work / "lake").rglob("*.parquet")):
            figures = build(work, args, end)
        report(args, figures, *measure(work / "lake", end))


if __name__ == "__main__":
    main()
