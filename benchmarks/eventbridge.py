"""EventBridge alert latency: a StopLogging event put on the SQS queue (as an EventBridge rule delivers it) reaches
the inbox as an alert email within 10 s (target), with `watch` running as it does in production.

Run on demand: `python benchmarks/eventbridge.py [--trials 5] [--every 120]`. Everything is real and on loopback:
moto's server for SQS, aiosmtpd for mail, `jobs.watch` in a thread (its first round drains the queue, then it
long-polls). Each trial puts one event (its own principal) and waits for the email naming that principal.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its sigma.py would hide pySigma's `sigma` package

from trailstream import config, jobs  # noqa: E402
from trailstream.notify.alerts.settings import parse_interval  # noqa: E402

TARGET_SECONDS = 10.0
ACCOUNT = "111122223333"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """Keeps every mail aiosmtpd accepts, with the moment it arrived."""

    def __init__(self):
        self.arrivals: list[tuple[float, str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.arrivals.append((time.monotonic(), envelope.content.decode("utf-8", "replace")))
        return "250 Message accepted for delivery"


def stop_logging_event(user: str) -> str:
    """An EventBridge 'AWS API Call via CloudTrail' event for a StopLogging call by `user`, as the queue receives it."""
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}", "accountId": ACCOUNT,
                         "userName": user},
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.66",
        "userAgent": "aws-cli/2.15",
        "requestParameters": {"name": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail"},
        "responseElements": None,
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
                       "source": "aws.cloudtrail", "account": ACCOUNT, "time": detail["eventTime"],
                       "region": "us-east-1", "resources": [], "detail": detail})


def write_settings(folder: Path, smtp_port: int, queue_url: str) -> config.Settings:
    path = folder / "trailstream.toml"
    path.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\ntimeout = 10\n'
        'sender = "TrailStream <trailstream@example.com>"\nrecipients = ["secops@example.com"]\n\n'
        '[alerts]\nbase_url = "http://127.0.0.1:8501"\n\n'
        f'[[sources]]\nname = "bridge"\nkind = "sqs"\nqueue = "{queue_url}"\nbuckets = ["trail-bucket"]\n'
    )
    return config.load_settings(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--every", default="120s", help="watch's round interval (the queue is long-polled between)")
    args = parser.parse_args()

    import boto3
    from aiosmtpd.controller import Controller
    from moto.server import ThreadedMotoServer

    moto_port, smtp_port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="eventbridge-bench")["QueueUrl"]
        with tempfile.TemporaryDirectory() as scratch:
            settings = write_settings(Path(scratch), smtp_port, queue_url)
            first_round = threading.Event()

            def report(line: str) -> None:
                if line.startswith("alerts: "):
                    first_round.set()

            watcher = threading.Thread(target=jobs.watch, daemon=True, name="watch",
                                       args=(Path(scratch) / "bench.db", settings, parse_interval(args.every), 2, report))
            watcher.start()
            if not first_round.wait(120):
                print("watch did not finish its first round within 120 s")
                return 1
            latencies = []
            for trial in range(args.trials):
                user = f"bench-user-{trial}"
                seen = len(inbox.arrivals)
                sent_at = time.monotonic()
                sqs.send_message(QueueUrl=queue_url, MessageBody=stop_logging_event(user))
                while not any(user in text for _, text in inbox.arrivals[seen:]):
                    if time.monotonic() - sent_at > 60:
                        print(f"trial {trial}: no alert email within 60 s")
                        return 1
                    time.sleep(0.01)
                arrived = next(at for at, text in inbox.arrivals[seen:] if user in text)
                latencies.append(arrived - sent_at)
                print(f"trial {trial}: alert email {latencies[-1]:.2f} s after the event was put on the queue")
    finally:
        smtp.stop()
        moto.stop()
    worst = max(latencies)
    print(f"EventBridge event -> alert email: median {statistics.median(latencies):.2f} s, worst {worst:.2f} s "
          f"over {len(latencies)} trial(s) (target {TARGET_SECONDS:.0f} s): {'OK' if worst <= TARGET_SECONDS else 'OVER'}")
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
