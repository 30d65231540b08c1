"""Ingest benchmark: `python -m trailstream import` of each data shape (benchmarks/shapes.py) beside DuckDB.

Run on demand: `python benchmarks/ingest.py [--events 200000] [--shape demo --shape roaming ...] [--keep]`. For every
shape: import time against DuckDB reading the same gzip files into the same columns with a typed schema (each record
parsed once), peak RSS of the whole process tree, cache size against the uncompressed JSON (and the share of derived
data), and a recoverability check. Targets (issue 12): import <= 1.25x DuckDB (aim 1.0x), cache <= 1.0x JSON
(aim 0.8x), derived data <= 25% of the cache, peak RSS <= 500 MB.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.shapes import SHAPES, write_shape  # noqa: E402
from trailstream.cache import store  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SEED = 11


def generate(folder: Path, shape: str, events: int) -> tuple[int, int]:
    """Write the shape's files once (reused by later runs); returns (files, uncompressed bytes)."""
    marker = folder / ".complete"
    if not marker.exists():
        if folder.exists():
            for path in folder.rglob("*.json.gz"):
                path.unlink()
        write_shape(shape, folder, events, SEED, END)
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


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_import(folder: Path, db_path: Path) -> tuple[float, int, str, float]:
    """(seconds, peak RSS of the process tree, the import's summary, CPU seconds of the process tree)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)  # the import's workers are reaped into it before it exits
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
    return elapsed, peak, out.strip(), cpu_seconds(resource.RUSAGE_CHILDREN) - cpu


_IDENTITY = ("STRUCT(type VARCHAR, principalId VARCHAR, arn VARCHAR, accountId VARCHAR, accessKeyId VARCHAR, "
             "userName VARCHAR, invokedBy VARCHAR, sessionContext JSON, onBehalfOf JSON)")
RECORD_TYPE = (
    "STRUCT(eventVersion VARCHAR, userIdentity " + _IDENTITY + ", eventTime VARCHAR, eventSource VARCHAR, "
    "eventName VARCHAR, awsRegion VARCHAR, sourceIPAddress VARCHAR, userAgent VARCHAR, errorCode VARCHAR, "
    "errorMessage VARCHAR, requestParameters JSON, responseElements JSON, additionalEventData JSON, "
    "requestID VARCHAR, eventID VARCHAR, readOnly BOOLEAN, resources JSON, eventType VARCHAR, managementEvent BOOLEAN, "
    "recipientAccountId VARCHAR, eventCategory VARCHAR, tlsDetails JSON)[]"
)


def run_duckdb(folder: Path) -> tuple[float, int, float]:
    """The reference: DuckDB reads the same gzip files with a typed schema (each record parsed once), unnests
    Records and materialises the same columns. Returns (seconds, distinct events, CPU seconds)."""
    import duckdb

    cpu = cpu_seconds(resource.RUSAGE_SELF)
    started = time.perf_counter()
    conn = duckdb.connect()
    conn.execute("SET enable_progress_bar = false")
    conn.execute(
        f"""
        CREATE TABLE events AS
        SELECT r.eventID AS event_id, r.eventTime AS event_time, r.eventSource AS event_source,
               r.eventName AS event_name, r.awsRegion AS aws_region,
               coalesce(r.recipientAccountId, r.userIdentity.accountId) AS account_id,
               r.userIdentity.arn AS principal_arn, r.userIdentity.type AS user_type,
               r.userIdentity.accessKeyId AS access_key_id, r.sourceIPAddress AS source_ip,
               r.userAgent AS user_agent, r.errorCode AS error_code, r.errorMessage AS error_message,
               r.readOnly AS read_only, r.eventType AS event_type, r.eventCategory AS event_category,
               r.resources AS resources, r.requestParameters AS request_parameters,
               r.responseElements AS response_elements, r.additionalEventData AS additional_event_data
        FROM (SELECT unnest(Records) AS r FROM read_json(?, columns = {{'Records': '{RECORD_TYPE}'}},
                                                          maximum_object_size = 67108864))
        """,
        [str(folder / "**" / "*.json.gz")],
    )
    count = conn.execute("SELECT count(DISTINCT event_id) FROM events").fetchone()[0]
    return time.perf_counter() - started, count, cpu_seconds(resource.RUSAGE_SELF) - cpu


def derived_bytes(db_path: Path) -> int:
    """Bytes of the rollup tables, their indexes and the word index (SQLite's dbstat)."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'rollup%' OR name LIKE 'events_words%'"
        ).fetchone()[0]
    finally:
        conn.close()


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


def measure(shape: str, events: int, keep: bool, repeat: int = 1) -> dict:
    """One shape's figures; with repeat > 1 the best time of each side (the machine is shared: noise only adds)."""
    folder = DATA / f"shape-{shape}-{events}"
    files, uncompressed = generate(folder, shape, events)
    db_path = DATA / f"ingest-{shape}-{events}.db"
    runs, ducks = [], []
    for _ in range(repeat):  # interleaved, so both sides meet the same moments of a shared machine
        runs.append(run_import(folder, db_path))
        ducks.append(run_duckdb(folder))
    elapsed, peak, summary = min(runs)[0], max(run[1] for run in runs), runs[-1][2]
    import_cpu, duck_cpu = min(run[3] for run in runs), min(duck[2] for duck in ducks)  # CPU: less moved by load
    duck_elapsed, duck_count, _ = min(ducks)
    stored = store.open_cache_readonly(db_path).execute("SELECT count(*) FROM events").fetchone()[0]
    store.open_cache(db_path).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache_bytes = sum(Path(f"{db_path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db_path}{s}").exists())
    derived = derived_bytes(db_path)
    matched, sampled = check_recoverable(folder, db_path)
    if not keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return {"shape": shape, "files": files, "events": stored, "json_mb": uncompressed / 1e6, "import_s": elapsed,
            "duckdb_s": duck_elapsed, "duckdb_rows": duck_count, "ratio": elapsed / duck_elapsed, "rss_mb": peak / 1e6,
            "import_cpu_s": import_cpu, "duckdb_cpu_s": duck_cpu,
            "cache_ratio": cache_bytes / uncompressed, "derived_share": derived / cache_bytes,
            "recovered": f"{matched:,}/{sampled:,}", "summary": summary}


def measure_huge_file(megabytes: int) -> dict:
    """One gzip log file of about `megabytes` MB of JSON (a busy account's five minutes, many-sessions records),
    imported with the whole process tree's peak RSS measured (issue 17: <= 1 GB for 300 MB)."""
    from benchmarks.shapes import ManySessions

    folder = DATA / f"huge-{megabytes}mb"
    path = folder / "AWSLogs/284716359021/CloudTrail/us-east-1/2026/11/01/284716359021_CloudTrail_us-east-1_20261101T0005Z_huge.json.gz"
    if not path.exists():
        rng, records, size = random.Random(SEED), [], 0
        cast = ManySessions(rng)
        while size < megabytes * 1_000_000:
            records.append(cast.call(rng, END))
            size += len(orjson.dumps(records[-1])) + 1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(orjson.dumps({"Records": records}), compresslevel=6))
        del records
    uncompressed = len(gzip.decompress(path.read_bytes()))
    db_path = DATA / f"huge-{megabytes}mb.db"
    elapsed, peak, summary, _ = run_import(folder, db_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return {"json_mb": uncompressed / 1e6, "import_s": elapsed, "rss_mb": peak / 1e6, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--shape", action="append", choices=SHAPES, help="repeat for several; default: every shape")
    parser.add_argument("--keep", action="store_true", help="keep the caches for the page benchmarks")
    parser.add_argument("--huge-mb", type=int, help="instead: import one log file of this many MB of JSON")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs of each side")
    args = parser.parse_args()
    if args.huge_mb:
        r = measure_huge_file(args.huge_mb)
        print(f"one file of {r['json_mb']:,.0f} MB of JSON: import {r['import_s']:.1f} s, peak RSS of the process "
              f"tree {r['rss_mb']:,.0f} MB (target <= 1,000 MB); import said: {r['summary']}")
        return
    print(f"machine: {os.cpu_count()} cores; {args.events:,} events per shape")
    header = ("shape", "files", "JSON MB", "import s", "DuckDB s", "import/DuckDB", "CPU s import / DuckDB",
              "peak RSS MB", "cache/JSON", "derived share", "recovered", "load average before / after")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for shape in args.shape or SHAPES:
        load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
        r = measure(shape, args.events, args.keep, args.repeat)
        print(f"{r['shape']} | {r['files']:,} | {r['json_mb']:,.0f} | {r['import_s']:.1f} | {r['duckdb_s']:.1f} | "
              f"{r['ratio']:.2f}x | {r['import_cpu_s']:.1f} / {r['duckdb_cpu_s']:.1f} | {r['rss_mb']:,.0f} | {r['cache_ratio']:.2f}x | {r['derived_share']:.0%} | "
              f"{r['recovered']} | {load_before:.1f} / {os.getloadavg()[0]:.1f}", flush=True)
        if r["events"] != r["duckdb_rows"]:
            print(f"  note: {r['events']:,} events stored, DuckDB read {r['duckdb_rows']:,}; import said: {r['summary']}")
    print("targets: import/DuckDB <= 1.25x (aim 1.0x), peak RSS <= 500 MB, cache/JSON <= 1.0x (aim 0.8x), "
          "derived share <= 25%")


if __name__ == "__main__":
    main()
