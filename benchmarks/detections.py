"""Detections benchmark: every security detection together over a 1,000,000-event demo cache, beside the 3 s target.

Run on demand: `python benchmarks/detections.py [--events 1000000] [--db PATH] [--repeat 3]`. The cache is built once
under benchmarks/data/ (demo events in 250,000-event slices, so memory stays flat) and reused by later runs; the
pages benchmark's cache is used instead when it exists. Prints each detection's time, the total, and whether the
planted cases were found.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trailstream import demo, detections, store, sync  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
SHARED_CACHES = (DATA / "pages-1m.db", DATA / "pages.db")  # the pages benchmark's cache, if it was built
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SEED = 11
SLICE = 250_000
TARGET_SECONDS = 3.0


def event_count(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0


def build_cache(path: Path, events: int) -> None:
    """Import `events` demo events through the real pipeline, a slice at a time (planted cases repeat: kept once)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, events, SLICE)):
        sync.import_demo(path, events=min(SLICE, events - start), seed=SEED + index, end=END)
        print(f"  built {min(start + SLICE, events):,} / {events:,} events", flush=True)


def find_cache(events: int) -> Path:
    for shared in SHARED_CACHES:
        if shared.exists() and event_count(shared) >= events * 0.95:
            return shared
    return DATA / f"detections-{events // 1000}k.db"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="an existing cache to measure instead")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best is reported")
    args = parser.parse_args()
    path = args.db or find_cache(args.events)
    if not args.db and event_count(path) < args.events * 0.95:
        print(f"Building {path} with {args.events:,} demo events (once; later runs reuse it)…", flush=True)
        build_cache(path, args.events)
    db = store.open_cache(path)
    db.close()
    print(f"Cache: {path} ({event_count(path):,} events)")
    settings = detections.DetectionSettings()
    best, best_parts, findings = float("inf"), {}, []
    for run in range(args.repeat):
        conn = store.open_cache_readonly(path)
        parts, started = {}, time.perf_counter()
        findings = []
        for detect in detections.DETECTIONS:
            began = time.perf_counter()
            findings.extend(detect(conn, None, settings))
            parts[detect.__name__] = time.perf_counter() - began
        total = time.perf_counter() - started
        conn.close()
        label = "first run (loads geolocation data)" if run == 0 else f"run {run + 1}"
        print(f"  {label}: {total:.2f} s")
        if total < best:
            best, best_parts = total, parts
    for name, seconds in best_parts.items():
        print(f"  {name:<34} {seconds:6.2f} s")
    verdict = "OK" if best <= TARGET_SECONDS else "SLOWER THAN TARGET"
    print(f"All detections: {best:.2f} s (target <= {TARGET_SECONDS:.0f} s): {verdict}; {len(findings):,} findings")
    planted = [(kind, set(case["event_ids"])) for kind, cases in demo.PLANTED.items()
               if kind in detections.catalog.FINDING_TYPES for case in cases if case["expected"]]
    found = sum(any(finding.type == kind and set(finding.event_ids) & ids for finding in findings)
                for kind, ids in planted)
    print(f"Planted positives found: {found} / {len(planted)}")
    return 0 if best <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
