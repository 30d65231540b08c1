"""An SQS sync that keeps up: a message held long stays hidden, and the bound on fetched bytes never stalls a sync."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from trailstream.ingest import aws, aws_sync
from tests.test_aws_sync import (  # noqa: F401 - s3 and trail_queue are fixtures
    BUCKET, event_ids, log_bytes, log_key, queue_depth, raw_notification, s3, send, sync, trail_queue, wait_until,
)


class GatedProxy:
    """A loopback TCP forwarder to moto that holds every request until `release` is set: an S3 as slow as needed."""

    def __init__(self, target: str):
        self.target = (urlparse(target).hostname, urlparse(target).port)
        self.release, self.requests = threading.Event(), 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, gated: bool) -> None:
        try:
            while data := source.recv(65536):
                if gated:
                    self.requests += 1
                    self.release.wait()
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_a_message_held_past_its_visibility_timeout_is_not_shown_to_another_consumer(
        db_path, aws, s3, sqs, trail_queue, monkeypatch):
    key = log_key("slow")
    s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes("slow-1"))
    send(sqs, trail_queue, raw_notification(key))
    gate = GatedProxy(aws)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", gate.url)  # the file's GET waits at the gate; SQS answers as usual

    with ThreadPoolExecutor(1) as runner:
        syncing = runner.submit(sync, db_path, trail_queue)
        wait_until(lambda: gate.requests > 0, what="the sync to ask S3 for the file")
        # another consumer long-polls for more than twice the queue's 2 s visibility timeout
        seen_by_other = sqs.receive_message(QueueUrl=trail_queue, WaitTimeSeconds=5).get("Messages", [])
        gate.release.set()
        result = syncing.result()

    assert seen_by_other == []
    assert (result.ok, result.messages_deleted) == (1, 1)
    assert event_ids(db_path) == ["slow-1"] and queue_depth(sqs, trail_queue) == (0, 0)


def test_a_sync_over_its_budget_of_fetched_bytes_still_stores_every_file(db_path, s3, sqs, trail_queue, monkeypatch):
    monkeypatch.setattr(aws_sync, "HELD_BYTES", 1)  # any one file is over budget: receiving waits for each to store
    monkeypatch.setattr(aws_sync, "RECEIVERS", 1)  # one message per receive, one receive at a time, so the budget
    monkeypatch.setattr(aws, "MAX_RECEIVE", 1)  # bites long before all twelve are received
    keys = [log_key(f"budget{n:02d}x") for n in range(12)]
    for n, key in enumerate(keys):
        s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes(f"b-{n}"))
    send(sqs, trail_queue, *(raw_notification(key) for key in keys))

    result = sync(db_path, trail_queue, workers=2)

    assert (result.ok, result.messages_deleted) == (12, 12), result.summary()
    assert event_ids(db_path) == sorted(f"b-{n}" for n in range(12))
    assert queue_depth(sqs, trail_queue) == (0, 0)
