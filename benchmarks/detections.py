"""Detections benchmark: every security detection over a 1,000,000-event cache of one shape, beside the targets, and
the `findings` and `alerts run` commands as a user runs them (wall time and peak RSS of the process).

`alerts run` is the post-sync step, timed four times: with the stored findings forgotten (every detector over the
whole cache, as on a cache from before stored findings or after a settings change), with the stored findings current
(as after a sync that brought nothing), and on copies whose findings were stored before 10,000 events arrived (as
after a sync: windowed detectors recompute from their reach back, travel judges only the principals with new moves):
the newest 10,000 by event time, and the last 10,000 imported (one region's files, interleaved over hours with the
others': late for most principals). `findings` reads the stored findings.

Run on demand: `python benchmarks/detections.py [--shape demo|roaming|many-sessions] [--events 1000000] [--db PATH]
[--repeat 3] [--stages]`. The cache is built once under benchmarks/data/ (demo events in 250,000-event slices; other
shapes written by benchmarks/shapes.py and imported) and reused by later runs. Targets (issue 12): <= 3 s and <= 500 MB.
A cache given with --db is changed (migrated, its stored findings forgotten and stored again): pass a copy of a shared
one. --stages also times the step's stages (imports, Sigma, findings, alert rules, reports) in a fresh process each
after the newest and the last imported events, and recomputing every finding.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The project root instead of this folder: benchmarks/sigma.py would otherwise hide the pySigma package.
sys.path[0] = str(ROOT)

from benchmarks import shapes  # noqa: E402
from trailstream import catalog  # noqa: E402
from trailstream.analytics import detections  # noqa: E402
from trailstream.cache import store  # noqa: E402
from trailstream.ingest import demo, sync  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
SHARED_CACHES = (DATA / "pages-1m.db", DATA / "pages.db")  # the pages benchmark's demo cache, if it was built
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SEED = 11
SLICE = 250_000
TARGET_SECONDS = 3.0
TARGET_MB = 500
NEW_EVENTS = 10_000  # a sync's worth of new events for the incremental post-sync step


def event_count(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0


def build_cache(path: Path, events: int, shape: str = "demo") -> None:
    """Import `events` events of the shape through the real pipeline (demo: a slice at a time)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shape != "demo":
        folder = Path(tempfile.mkdtemp(prefix=f"{shape}-", dir=path.parent))
        try:
            shapes.write_shape(shape, folder, events, SEED, END)
            sync.import_paths(path, [folder])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    for index, start in enumerate(range(0, events, SLICE)):
        sync.import_demo(path, events=min(SLICE, events - start), seed=SEED + index, end=END)
        print(f"  built {min(start + SLICE, events):,} / {events:,} events", flush=True)


def find_cache(events: int, shape: str = "demo") -> Path:
    if shape == "demo":
        for shared in SHARED_CACHES:
            if shared.exists() and event_count(shared) >= events * 0.95:
                return shared
        return DATA / f"detections-{events // 1000}k.db"
    return DATA / f"detections-{shape}-{events // 1000}k.db"


def time_detectors(path: Path, repeat: int) -> tuple[float, dict, list]:
    """Best total over `repeat` runs of every registered detector, in this process, with each one's time."""
    settings = detections.DetectionSettings()
    best, best_parts, findings = float("inf"), {}, []
    for run in range(repeat):
        conn = store.open_cache_readonly(path)
        parts, started, findings = {}, time.perf_counter(), []
        for detect in detections.DETECTORS:
            began = time.perf_counter()
            findings.extend(detect(conn, None, settings))
            parts[detect.__name__] = time.perf_counter() - began
        total = time.perf_counter() - started
        conn.close()
        print(f"  {'first run (loads geolocation data)' if run == 0 else f'run {run + 1}'}: {total:.2f} s")
        if total < best:
            best, best_parts = total, parts
    return best, best_parts, findings


def forget_stored_findings(path: Path) -> None:
    """The next post-sync step recomputes and stores every finding, as after a sync that brought events."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM findings_state")


def full_recompute(path: Path, repeat: int) -> tuple[float, float, int, float]:
    """The post-sync step recomputing and storing every finding, best of `repeat` runs (single runs of this
    two-threaded step vary by about 0.4 s on this machine), with the largest peak RSS."""
    runs = []
    for _ in range(repeat):
        forget_stored_findings(path)
        runs.append(run_command(path, "alerts", "run"))
    best = min(runs)
    return best[0], max(run[1] for run in runs), max(run[2] for run in runs), best[3]


STORED_TABLES = ("stored_findings", "stored_travel_routes", "stored_principal_routes", "stored_places",
                 "findings_state")


def store_before_newest(path: Path, count: int) -> None:
    """Store the findings the post-sync step left before the sync that brought the newest `count` events (computed
    on a copy without them), so the next step adds just those events. Only pretending they are new (moving the stored
    state's rowid back) would extend stored incidents with events they already hold."""
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        earlier = Path(folder) / "earlier.db"
        subprocess.run(["cp", "--reflink=auto", str(path), str(earlier)], check=True)
        with closing(sqlite3.connect(earlier)) as conn, conn:
            conn.execute("DELETE FROM events WHERE rowid > (SELECT max(rowid) FROM events) - ?", [count])
            conn.execute("DELETE FROM findings_state")
        run_command(earlier, "alerts", "run")
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("ATTACH ? AS earlier", [str(earlier)])
            for table in STORED_TABLES:
                conn.execute(f"DELETE FROM main.{table}")
                conn.execute(f"INSERT INTO main.{table} SELECT * FROM earlier.{table}")


def synced_copy(path: Path, folder: Path, count: int, newest_by_time: bool) -> Path:
    """A copy of the cache as the post-sync step finds it after a sync brought `count` events: the newest by event
    time (as a sync of every region's latest files brings them), or the last imported (benchmarks/shapes writes
    files by account and region, so these are one region's, interleaved over hours with the others')."""
    work = folder / "synced.db"
    subprocess.run(["cp", "--reflink=auto", str(path), str(work)], check=True)
    if newest_by_time:  # stored again after the others, as a later sync would have
        with closing(sqlite3.connect(work)) as conn, conn:
            conn.execute("CREATE TEMP TABLE arriving AS SELECT * FROM events WHERE rowid IN "
                         "(SELECT rowid FROM events ORDER BY event_time DESC LIMIT ?)", [count])
            conn.execute("DELETE FROM events WHERE event_id IN (SELECT event_id FROM temp.arriving)")
            conn.execute("INSERT INTO events SELECT * FROM temp.arriving")
    store_before_newest(work, count)
    return work


def _environment() -> dict:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TRAILSTREAM_")}
    return environment | {"PYTHONPATH": str(ROOT)}


# Runs `python -m trailstream ...` and writes the process's own peak RSS (VmHWM, kB) to the file named first: a
# child's ru_maxrss starts at its parent's RSS when forked (this process holds the detectors' frames), so it
# reported this process's peak, not the command's.
LAUNCH = """
import atexit, runpy, sys
report = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
runpy.run_module("trailstream", run_name="__main__", alter_sys=True)
"""


def run_command(path: Path, *command: str) -> tuple[float, float, int, float]:
    """Wall seconds, peak RSS (MB), exit status and CPU seconds (user + system: a figure the machine's other work
    inflates less than wall time) of `python -m trailstream --db PATH COMMAND` in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:  # no settings file: the defaults, as on a first run
        peak = Path(folder) / "peak"
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", LAUNCH, str(peak), "--db", str(path), "--quiet", *command],
                                   cwd=folder, stdout=subprocess.DEVNULL, env=_environment())
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        peak_mb = int(peak.read_text()) / 1024 if peak.exists() else float("nan")
        return seconds, peak_mb, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


# The post-sync step's stages in one fresh process, each with its wall and CPU seconds: where a step's time goes.
STAGES = """
import sys, time
path = sys.argv[1]
def mark(name, began, cpu):
    print(f"  {name:<40} {time.perf_counter() - began:6.2f} s wall {time.process_time() - cpu:6.2f} s CPU", flush=True)
began, cpu = time.perf_counter(), time.process_time()
from trailstream import jobs
from trailstream.notify import alerts, reports
mark("imports", began, cpu)
for name, call in (("Sigma rules (none configured)", lambda: jobs.run_sigma_rules(path, {})),
                   ("findings", lambda: jobs.store_findings(path, {})),
                   ("alert rules", lambda: alerts.run_alerts(path, {}, None)),
                   ("due reports", lambda: reports.send_scheduled_reports(path, None, None))):
    began, cpu = time.perf_counter(), time.process_time()
    call()
    mark(name, began, cpu)
"""


def print_stages(path: Path, title: str) -> None:
    """The post-sync step's stages on `path` (changed: its findings are stored), timed in a fresh process."""
    print(f"Post-sync stages, {title}:", flush=True)
    subprocess.run([sys.executable, "-c", STAGES, str(path)], cwd=tempfile.gettempdir(), env=_environment(),
                   check=False)


def report(best: float, parts: dict, findings: list, commands: dict) -> bool:
    for name, seconds in parts.items():
        print(f"  {name:<38} {seconds:6.2f} s")
    by_type = {}
    for finding in findings:
        by_type[finding.type] = by_type.get(finding.type, 0) + 1
    print(f"All detections in process: {best:.2f} s; {len(findings):,} findings {by_type}")
    ok = True
    for name, (seconds, megabytes, status, cpu) in commands.items():
        within = seconds <= TARGET_SECONDS and megabytes <= TARGET_MB and status == 0
        ok &= within
        print(f"`{name}`: {seconds:.2f} s (target <= {TARGET_SECONDS:.0f} s; {cpu:.2f} s of CPU), peak "
              f"{megabytes:,.0f} MB (target <= {TARGET_MB} MB), exit {status}: "
              f"{'OK' if within else 'MISSES THE TARGET'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=shapes.SHAPES, default="demo")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="an existing cache to measure instead")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best is reported")
    parser.add_argument("--stages", action="store_true",
                        help="also time the post-sync step's stages (imports, Sigma, findings, alerts, reports)")
    args = parser.parse_args()
    path = args.db or find_cache(args.events, args.shape)
    if not args.db and event_count(path) < args.events * 0.95:
        print(f"Building {path} with {args.events:,} {args.shape} events (once; later runs reuse it)…", flush=True)
        build_cache(path, args.events, args.shape)
    store.open_cache(path).close()
    print(f"Cache: {path} ({event_count(path):,} events, shape {args.shape})")
    best, parts, findings = time_detectors(path, args.repeat)
    commands = {"alerts run (stores every finding)": full_recompute(path, args.repeat),
                "alerts run (stored findings current)": run_command(path, "alerts", "run"),
                "findings --format json": run_command(path, "findings", "--format", "json")}
    for newest_by_time, arrival in ((True, "newest by time"), (False, "last imported")):
        with tempfile.TemporaryDirectory(dir=path.parent) as folder:
            work = synced_copy(path, Path(folder), NEW_EVENTS, newest_by_time)
            commands[f"alerts run ({NEW_EVENTS:,} {arrival} arrive)"] = run_command(work, "alerts", "run")
        if args.stages:
            with tempfile.TemporaryDirectory(dir=path.parent) as folder:
                print_stages(synced_copy(path, Path(folder), NEW_EVENTS, newest_by_time),
                             f"{NEW_EVENTS:,} {arrival} arrive")
    if args.stages:
        forget_stored_findings(path)
        print_stages(path, "every finding")
    ok = report(best, parts, findings, commands)
    if args.shape == "demo":
        planted = [(kind, set(case["event_ids"])) for kind, cases in demo.PLANTED.items()
                   if kind in catalog.FINDING_TYPES for case in cases if case["expected"]]
        found = sum(any(finding.type == kind and set(finding.event_ids) & ids for finding in findings)
                    for kind, ids in planted)
        print(f"Planted positives found: {found} / {len(planted)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
