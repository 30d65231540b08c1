"""Sigma benchmark: every enabled rule over a 1,000,000-event demo cache from scratch (target 3 s), then per 10,000
new events (target 100 ms), beside the findings over the whole period.

Run on demand: `python benchmarks/sigma_rules.py [--events 1000000] [--rules ../shared/sigma] [--db PATH [--shape
roaming|many-sessions]]`. The cache is built once under benchmarks/data/ (demo events in 250,000-event slices) and
reused; each incremental round imports 10,000 more events of the cache's shape (benchmarks/shapes.py) after the
newest, so a cache grows by that much per run: measure a copy of a cache you want to keep.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: this file's name would hide pySigma's `sigma` package

from benchmarks import shapes  # noqa: E402
from trailstream.analytics import sigma  # noqa: E402
from trailstream.analytics.sigma.settings import SigmaSettings  # noqa: E402
from trailstream.cache import sigma_state, store  # noqa: E402
from trailstream.filters import EventFilter  # noqa: E402
from trailstream.ingest import sync  # noqa: E402
from trailstream.timefmt import iso_utc  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
RULES = ROOT.parent / "shared" / "sigma"
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SEED = 11
SLICE = 250_000
INCREMENT = 10_000
SCRATCH_TARGET, INCREMENT_TARGET = 3.0, 0.100


def event_count(path: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0


def build_cache(path: Path, events: int) -> None:
    """Import `events` demo events through the real pipeline, a slice at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(event_count(path), events, SLICE)):
        sync.import_demo(path, events=min(SLICE, events - start), seed=SEED + index, end=END, workers=1)
        print(f"  built {min(start + SLICE, events):,} / {events:,} events", flush=True)


def from_scratch(path: Path, ruleset) -> tuple[float, float, sigma.SigmaRun]:
    """Every enabled rule over every stored event: watermarks and counts reset first."""
    with closing(store.open_cache(path)) as db:
        sigma.save_rules(db, ruleset, SigmaSettings())
        sigma_state.reset_counts(db)
        started, cpu = time.perf_counter(), time.process_time()
        run = sigma.evaluate_new_events(db)
        return time.perf_counter() - started, time.process_time() - cpu, run


def incremental(path: Path, round_number: int, shape: str) -> tuple[float, float, sigma.SigmaRun]:
    """Import 10,000 newer events of the cache's shape, then time the rules over just those."""
    with closing(sqlite3.connect(path)) as conn:
        newest, stored = conn.execute("SELECT max(event_time), count(*) FROM events").fetchone()
    end = datetime.fromisoformat(newest.replace("Z", "+00:00")) + timedelta(hours=2)
    seed = SEED + 100 + round_number + stored  # new events on every run, not the last run's again
    if shape == "demo":
        sync.import_demo(path, events=INCREMENT, seed=seed, end=end, workers=1)
    else:  # a cache of log files refuses demo data: import files of its shape
        with tempfile.TemporaryDirectory() as folder:
            sync.import_paths(path, shapes.write_shape(shape, Path(folder), INCREMENT, seed, end), workers=1)
    with closing(store.open_cache(path)) as db:
        started, cpu = time.perf_counter(), time.process_time()
        run = sigma.evaluate_new_events(db)
        return time.perf_counter() - started, time.process_time() - cpu, run


def findings_time(path: Path, days: int | None) -> tuple[float, int]:
    """Sigma findings over the newest `days` of the cache (all of it for None), as the Security overview asks."""
    with closing(store.open_cache_readonly(path)) as conn:
        newest = conn.execute("SELECT max(event_time) FROM events").fetchone()[0]
        start = datetime.fromisoformat(newest.replace("Z", "+00:00")) - timedelta(days=days) if days else None
        started = time.perf_counter()
        found = sigma.detect_sigma_findings(conn, EventFilter(start=iso_utc(start)) if start else None)
        return time.perf_counter() - started, len(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rules", type=Path, default=RULES)
    parser.add_argument("--db", type=Path, help="an existing cache to measure instead")
    parser.add_argument("--rounds", type=int, default=3, help="incremental rounds of 10,000 events")
    parser.add_argument("--shape", choices=shapes.SHAPES, default="demo", help="what the --db cache holds")
    args = parser.parse_args()
    path = args.db or DATA / f"sigma-{args.events // 1000}k.db"
    if not args.db:
        build_cache(path, args.events)
    ruleset = sigma.load_rules([args.rules])
    runnable = sum(rule.runnable for rule in ruleset.rules)
    print(f"{event_count(path):,} events, {runnable} of {len(ruleset.rules)} rules converted")
    with_columns_only = sigma.RuleSet([rule for rule in ruleset.rules if "sigma_values(" not in (rule.where or "")])
    for label, rules in (("rules reading only columns", with_columns_only), ("all rules", ruleset)):
        seconds, cpu, run = from_scratch(path, rules)
        print(f"from scratch, {label}: {seconds:.2f} s ({cpu:.2f} s of CPU) for {run.rules} rules, "
              f"{run.matches:,} matches (target {SCRATCH_TARGET:.0f} s) {'OK' if seconds <= SCRATCH_TARGET else 'SLOW'}")
        for problem in run.problems:
            print(f"  {problem}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for round_number in range(args.rounds):
        seconds, cpu, run = incremental(path, round_number, args.shape)
        print(f"incremental: {seconds * 1000:.0f} ms ({cpu * 1000:.0f} ms of CPU) over {run.new_events:,} new events, "
              f"{run.matches:,} matches "
              f"(target {INCREMENT_TARGET * 1000:.0f} ms) {'OK' if seconds <= INCREMENT_TARGET else 'SLOW'}")
    for days in (7, None):
        seconds, count = findings_time(path, days)
        print(f"findings over {f'the last {days} days' if days else 'the whole cache'}: {seconds:.2f} s, "
              f"{count:,} findings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
