"""Soak: `python -m trailstream watch --every 1s` for N cycles against moto's server while new log files keep arriving.

    python benchmarks/soak.py [--cycles 300] [--events 20]

moto runs in its own process on 127.0.0.1; every second this script puts a new CloudTrail file in the trail bucket
and its notification on the queue. It samples the watch process (and its children) from /proc: RSS, open files and
threads, and reports their growth from the end of the warm-up (the first 10% of cycles) to the end. Issue 17's
target: growth <= 10% for each, no lock held once watch stops, every file stored once.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUCKET, QUEUE, ACCOUNT = "soak-trail", "soak-queue", "111122223333"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_file(n: int, events: int) -> tuple[str, bytes]:
    key = (f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/27/"
           f"{ACCOUNT}_CloudTrail_us-east-1_20261127T1005Z_{n:016d}.json.gz")
    records = [{"eventVersion": "1.09", "eventTime": f"2026-11-27T10:{i % 60:02d}:00Z", "eventID": f"soak-{n}-{i}",
                "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "awsRegion": "us-east-1",
                "sourceIPAddress": "203.0.113.7", "userAgent": "soak", "eventType": "AwsApiCall",
                "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/soak", "accountId": ACCOUNT},
                "recipientAccountId": ACCOUNT, "readOnly": True} for i in range(events)]
    return key, gzip.compress(json.dumps({"Records": records}).encode())


def tree_pids(pid: int) -> list[int]:
    """The process and its descendants, read from /proc."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                pass
    return pids


def sample(pid: int) -> dict:
    """RSS (MB) of the whole tree, open files and threads of the watch process itself."""
    rss = 0
    for member in tree_pids(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        rss += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    status = Path(f"/proc/{pid}/status").read_text()
    threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))
    return {"rss_mb": rss / 1024, "open_files": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def wait_for_moto(url: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise SystemExit(f"moto did not start on {url}")


def held_locks(db: Path) -> list[str]:
    """Lock files beside the cache that something still holds."""
    held = []
    for path in db.parent.glob(f"{db.name}.*-lock"):
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(path.name)
    return held


def run(cycles: int, events: int) -> dict:
    import boto3

    work = Path(tempfile.mkdtemp(prefix="trailstream-soak-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "soak", "AWS_SECRET_ACCESS_KEY": "soak",
           "AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("AWS_PROFILE", None)
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_moto(url)
        os.environ.update({name: env[name] for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                                        "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket=BUCKET)
        queue = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        settings = work / "trailstream.toml"
        settings.write_text(f'[[sources]]\nname = "soak"\nkind = "sqs"\nqueue = "{QUEUE}"\nbuckets = ["{BUCKET}"]\n'
                            'region = "us-east-1"\n')
        db = work / "cache.db"
        watch = subprocess.Popen([sys.executable, "-m", "trailstream", "--db", str(db), "--config", str(settings),
                                  "watch", "--every", "1s"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        samples, sent, done, errors = [], 0, 0, []
        while done < cycles:
            line = watch.stdout.readline()
            if not line:
                raise SystemExit(f"watch stopped after {done} cycles: {errors[-3:]}")
            if "error" in line.lower() and "0 failure" not in line:
                errors.append(line.strip())
            if not line.startswith("alerts:"):  # the last line of each cycle's post-sync step
                continue
            done += 1
            key, body = log_file(sent, events)  # a new file arrives for the next cycle
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": [key]}))
            sent += 1
            samples.append(sample(watch.pid))
            if done % max(1, cycles // 10) == 0:
                print(f"cycle {done}: {samples[-1]}", file=sys.stderr, flush=True)
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=60)
        # the last file may have arrived after the last sync: one more sync picks it up, as the next cycle would
        subprocess.run([sys.executable, "-m", "trailstream", "--db", str(db), "--config", str(settings), "sync"],
                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
        with sqlite3.connect(db) as conn:
            files = conn.execute("SELECT count(*), count(DISTINCT key) FROM files WHERE bucket = ?", [BUCKET]).fetchone()
            stored = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        warm = samples[max(0, len(samples) // 10 - 1)]
        last = samples[-1]
        return {
            "cycles": done, "files_sent": sent, "files_stored": files[0], "distinct_files": files[1],
            "events_expected": sent * events, "events_stored": stored[0], "distinct_events": stored[1],
            "held_locks": held_locks(db), "errors": errors[:5],
            **{f"{name}_after_warmup": warm[name] for name in warm},
            **{f"{name}_at_end": last[name] for name in last},
            **{f"{name}_growth_pct": round(100 * (last[name] - warm[name]) / warm[name], 1) for name in warm},
            "peak_rss_mb": max(s["rss_mb"] for s in samples),
        }
    finally:
        moto.terminate()
        moto.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--events", type=int, default=20, help="events per arriving log file")
    args = parser.parse_args()
    started = time.monotonic()
    figures = run(args.cycles, args.events)
    figures["seconds"] = round(time.monotonic() - started, 1)
    for name, value in figures.items():
        print(f"{name:>24}: {round(value, 1) if isinstance(value, float) else value}")
    ok = (all(figures[f"{name}_growth_pct"] <= 10 for name in ("rss_mb", "open_files", "threads"))
          and not figures["held_locks"] and figures["files_stored"] == figures["distinct_files"] == figures["files_sent"]
          and figures["events_stored"] == figures["distinct_events"] == figures["events_expected"])
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
