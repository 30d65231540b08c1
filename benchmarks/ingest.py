"""Ingest benchmark: `python -m trailstream import` of 1,000,000 demo events in ~2,000 gzip files, beside DuckDB.

Run on demand: `python benchmarks/ingest.py [--events 1000000] [--keep]`. Prints events/s, peak RSS of the whole
process tree, cache size against the uncompressed JSON, a recoverability check, and DuckDB's read_json time on the
same files as the reference. Targets (issue #2): >= 100,000 events/s and no worse than 2x DuckDB, peak RSS <= 500 MB,
cache <= uncompressed JSON.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trailstream import demo, store  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SEED = 11


def generate(folder: Path, events: int) -> tuple[int, int]:
    """Write the demo files once (reused by later runs); returns (files, uncompressed bytes)."""
    marker = folder / f".complete-{events}"
    if not marker.exists():
        if folder.exists():
            for path in folder.rglob("*.json.gz"):
                path.unlink()
        chunk = 250_000  # generate in slices so the generator's memory stays flat
        for index, start in enumerate(range(0, events, chunk)):
            # One day of busy activity, so files hold hundreds of records each, as in a large organisation's trail.
            slice_end = END - timedelta(days=index)
            generated = demo.generate_records(events=min(chunk, events - start), seed=SEED + index, end=slice_end, days=1,
                                              planted=index == 0)  # planted cases have fixed IDs: once only
            demo.write_log_files(folder, generated, records_per_file=500)
        marker.write_text("ok")
    files = sorted(folder.rglob("*.json.gz"))
    uncompressed = sum(len(gzip.decompress(path.read_bytes())) for path in files)
    return len(files), uncompressed


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def run_import(folder: Path, db_path: Path) -> tuple[float, int, str]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "trailstream", "--db", str(db_path), "--quiet", "--no-alerts", "import", str(folder)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"import failed ({process.returncode}): {err}")
    return elapsed, peak, out.strip()


def run_duckdb(folder: Path) -> tuple[float, int]:
    """The reference: DuckDB reads the same gzip files, unnests Records and materialises the same columns."""
    import duckdb

    started = time.perf_counter()
    conn = duckdb.connect()
    conn.execute(
        """
        CREATE TABLE events AS
        SELECT r ->> 'eventID' AS event_id, r ->> 'eventTime' AS event_time, r ->> 'eventSource' AS event_source,
               r ->> 'eventName' AS event_name, r ->> 'awsRegion' AS aws_region,
               coalesce(r ->> 'recipientAccountId', r ->> '$.userIdentity.accountId') AS account_id,
               r ->> '$.userIdentity.arn' AS principal_arn, r ->> '$.userIdentity.type' AS user_type,
               r ->> '$.userIdentity.accessKeyId' AS access_key_id, r ->> 'sourceIPAddress' AS source_ip,
               r ->> 'userAgent' AS user_agent, r ->> 'errorCode' AS error_code, r ->> 'errorMessage' AS error_message,
               r ->> 'readOnly' AS read_only, r ->> 'eventType' AS event_type, r ->> 'eventCategory' AS event_category,
               r -> 'resources' AS resources, r -> 'requestParameters' AS request_parameters,
               r -> 'responseElements' AS response_elements, r AS raw
        FROM (SELECT unnest(Records) AS r FROM read_json(?, columns = {'Records': 'JSON[]'},
                                                          maximum_object_size = 67108864))
        """,
        [str(folder / "**" / "*.json.gz")],
    )
    count = conn.execute("SELECT count(DISTINCT event_id) FROM events").fetchone()[0]
    return time.perf_counter() - started, count


def check_recoverable(folder: Path, db_path: Path, samples: int = 5_000) -> tuple[int, int]:
    """Compare a random sample of original records with what the cache gives back: (matched, sampled)."""
    rng = random.Random(1)
    files = sorted(folder.rglob("*.json.gz"))
    conn = store.open_cache_readonly(db_path)
    matched = sampled = 0
    for path in rng.sample(files, min(len(files), samples // 10)):
        file_records = orjson.loads(gzip.decompress(path.read_bytes()))["Records"]
        for record in rng.sample(file_records, min(10, len(file_records))):
            matched += store.load_record(conn, record["eventID"]) == record
            sampled += 1
    return matched, sampled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the cache for the page benchmarks")
    args = parser.parse_args()

    folder = DATA / f"ingest-{args.events}"
    files, uncompressed = generate(folder, args.events)
    db_path = DATA / f"ingest-{args.events}.db"
    elapsed, peak, summary = run_import(folder, db_path)
    events = store.open_cache_readonly(db_path).execute("SELECT count(*) FROM events").fetchone()[0]
    store.open_cache(db_path).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache_bytes = sum(Path(f"{db_path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db_path}{s}").exists())
    matched, sampled = check_recoverable(folder, db_path)
    duck_elapsed, duck_count = run_duckdb(folder)

    rate = events / elapsed
    print(f"machine: {os.cpu_count()} cores; {files:,} gzip files; {events:,} events; {uncompressed / 1e6:,.0f} MB of JSON")
    print(f"{'':28}{'measured':>14}{'target':>18}")
    print(f"{'import time':28}{elapsed:>13.1f}s{'':>18}")
    print(f"{'import rate':28}{rate:>12,.0f}/s{'>= 100,000/s':>18}")
    print(f"{'DuckDB read_json (ref.)':28}{duck_elapsed:>13.1f}s{f'{duck_count:,} rows':>18}")
    print(f"{'import / DuckDB':28}{elapsed / duck_elapsed:>13.2f}x{'<= 2x':>18}")
    print(f"{'peak RSS (process tree)':28}{peak / 1e6:>12,.0f}MB{'<= 500 MB':>18}")
    print(f"{'cache / uncompressed JSON':28}{cache_bytes / uncompressed:>13.2f}x{'<= 1x':>18}")
    print(f"{'records recovered exactly':28}{f'{matched:,} / {sampled:,}':>14}{'all sampled':>18}")
    print(f"import said: {summary}")
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
