"""SQS sync throughput: N one-file notifications through moto's server, with and without added network latency.

    python benchmarks/sqs.py [--files 300] [--events 50] [--latency-ms 50] [--stock-moto]

Latency is added by a TCP proxy on 127.0.0.1 that holds every request for the given time before passing it on,
the way a region far away does; boto3 talks to the proxy through AWS_ENDPOINT_URL. Issue 12's target: 300 files
in <= 6 s with 50 ms per request, and latency adding <= 20% to the no-latency time.

moto's server runs in its own process, as AWS does. Stock moto checks each message it hands out against the queue's
retention period by computing every queue attribute, three of them a scan of the whole queue, so a ReceiveMessage
costs time in proportion to the queue's depth (about 40 ms of the server's CPU per message at 300 queued), which
real SQS does not. Unless --stock-moto is given, the server reads the retention period alone for that check, and does
not format a log line per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUCKET, QUEUE, ACCOUNT = "bench-trail", "bench-queue", "111122223333"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LatencyProxy:
    """Forwards TCP from a loopback port to another, holding each client->server chunk (a request) for `delay` s."""

    def __init__(self, target_port: int, delay: float):
        self.target_port, self.delay, self.port = target_port, delay, free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader, writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, upstream_writer, self.delay), self._pipe(upstream_reader, writer, 0))

    @staticmethod
    async def _pipe(reader, writer, delay: float) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"moto's server did not start on port {port}")


def log_file(number: int, events: int) -> bytes:
    records = [{"eventVersion": "1.11", "eventID": f"bench-{number}-{n}", "eventTime": "2026-12-01T10:00:00Z",
                "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances", "awsRegion": "us-east-1",
                "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2",
                "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
                                 "accountId": ACCOUNT, "userName": "alice"},
                "requestParameters": {"maxResults": n}, "readOnly": True, "eventType": "AwsApiCall",
                "recipientAccountId": ACCOUNT} for n in range(events)]
    return gzip.compress(json.dumps({"Records": records}).encode())


def fill(endpoint: str, files: int, events: int) -> None:
    """Put the files, then announce each in its own message (ten per SendMessageBatch, to fill quickly)."""
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=8)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config)
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    keys = [f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/12/01/{ACCOUNT}_CloudTrail_us-east-1_20261201T1000Z_"
            f"{number:016x}.json.gz" for number in range(files)]
    with ThreadPoolExecutor(8) as threads:
        list(threads.map(lambda number: s3.put_object(Bucket=BUCKET, Key=keys[number], Body=log_file(number, events)),
                         range(files)))
    for start in range(0, files, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(number), "MessageBody": json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": [keys[number]]})}
            for number in range(start, min(files, start + 10))])


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time so far of this process and its reaped children (the parse workers), or of another process."""
    if pid is None:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(endpoint_port: int, latency: float, files: int, events: int, server_pid: int) -> tuple[float, float, float]:
    """Reset moto, fill it, then time one sync through the proxy (or straight, without latency); also the CPU seconds
    the sync and moto spent, which say more than the time when others load the machine."""
    import urllib.request

    from trailstream.ingest import aws_sync

    direct = f"http://127.0.0.1:{endpoint_port}"
    urllib.request.urlopen(urllib.request.Request(f"{direct}/moto-api/reset", method="POST")).read()
    fill(direct, files, events)
    endpoint = f"http://127.0.0.1:{LatencyProxy(endpoint_port, latency).port}" if latency else direct
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    with tempfile.TemporaryDirectory() as folder:
        started, cpu, moto_cpu = time.perf_counter(), cpu_seconds(), cpu_seconds(server_pid)
        result = aws_sync.sync_queue(Path(folder) / "bench.db", QUEUE, [BUCKET], wait_seconds=1)
        elapsed = time.perf_counter() - started
        cpu, moto_cpu = cpu_seconds() - cpu, cpu_seconds(server_pid) - moto_cpu
    assert result.ok == files and result.messages_deleted >= files, result.summary()  # SQS may deliver twice
    return elapsed, cpu, moto_cpu


def serve_moto(port: int) -> None:
    """moto's server, its SQS retention check reading the one attribute it needs (see the module docstring)."""
    from moto.core.utils import unix_time
    from moto.server import main as moto_main
    from moto.sqs.models import SQSBackend

    def within_retention(backend, queue_name: str, message) -> bool:
        retention = int(backend.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = within_retention
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request, formatted for nobody
    moto_main(["-H", "127.0.0.1", "-p", str(port)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--stock-moto", action="store_true", help="moto as released, its receives slowing with depth")
    parser.add_argument("--runs", type=int, default=1, help="syncs of each kind; the best is compared")
    parser.add_argument("--serve-moto", type=int, help=argparse.SUPPRESS)  # the server process this script starts
    args = parser.parse_args()
    if args.serve_moto:
        return serve_moto(args.serve_moto)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    # moto in its own process, as AWS is: in this process it would share the interpreter lock with the sync.
    command = ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)] if args.stock_moto else [
        __file__, "--serve-moto", str(port)]
    server = subprocess.Popen([sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        moto = "stock" if args.stock_moto else "patched"
        print(f"{args.files} one-file notifications of {args.events} events, {moto} moto", flush=True)
        best = {}
        for latency in [0.0, args.latency_ms / 1000] * args.runs:
            elapsed, cpu, moto_cpu = run(port, latency, args.files, args.events, server.pid)
            best[latency] = min(best.get(latency, elapsed), elapsed)
            print(f"  {1000 * latency:3.0f} ms per request: {elapsed:6.2f} s ({args.files / elapsed:5.1f} files/s); "
                  f"CPU: sync {cpu:4.2f} s, moto {moto_cpu:4.2f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        server.terminate()
        server.wait()
    plain, slow = best[0.0], best[args.latency_ms / 1000]
    print(f"best: {plain:.2f} s, {slow:.2f} s with latency (target <= 6 s); "
          f"latency adds {100 * (slow / plain - 1):.1f} % (target <= 20 %)")


if __name__ == "__main__":
    main()
