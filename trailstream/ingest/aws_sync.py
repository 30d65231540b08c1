"""Syncing from AWS: an SQS queue of CloudTrail notifications, an S3 backfill by date partition, and retries.

Messages are received by several long polls at once, objects fetched by many threads (S3 GETs wait on the network;
the bytes fetched and not yet stored are bounded) and parsed by the Ingester's worker processes; stored files are
committed in groups, and only then are their messages deleted, ten per DeleteMessageBatch: a message goes only once
every object it names is committed or recorded as skipped or failed, so a kill at any moment loses nothing and
replaying a message stores nothing twice. A CloudTrail event EventBridge put on the queue is stored at once as an
early event; `listen` keeps long-polling an empty queue and `on_early` runs after each commit that holds early events
(the alerts, seconds after the call).
"""

from __future__ import annotations

import logging
import queue as queues
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from functools import partial
from pathlib import Path

from trailstream.config import AwsAccess
from trailstream.ingest import aws, integrity_sync
from trailstream.ingest.digests import parse_digest_key
from trailstream.ingest.messages import (MessageError, explain_not_log_file, explain_other_bucket, parse_message_body,
                                         trail_buckets)
from trailstream.ingest.aws import SourceError
from trailstream.cache.bookkeeping import FileRef
from trailstream.cache.early import EarlyMessage
from trailstream.ingest.sync import Ingester, ProgressCallback, SyncResult, bounded, local_ref
from trailstream.cache import bookkeeping

log = logging.getLogger(__name__)

FETCH_THREADS = 16
DEFAULT_WAIT_SECONDS = 5  # a long poll this long that returns nothing means the queue is empty
LISTEN_WAIT_SECONDS = 20  # the longest long poll SQS allows, while listening for early events
_MISSING = object()


@dataclass(eq=False)
class _Message:
    """A received message and how many of its objects are not yet committed or recorded."""

    message_id: str
    receipt: str
    receive_count: int
    waiting: int = 0
    keep: bool = False  # a transient failure: leave the message for redelivery
    extended_at: float = 0.0


RECEIVERS = 3  # long polls in flight at once, so receiving overlaps fetching, parsing and committing
QUEUE_FETCHES = 32  # S3 GETs in flight in a queue sync: 16 allow about 160 a second when each takes 100 ms
HELD_BYTES = 256 << 20  # fetched and not yet stored: receiving pauses above this, so memory stays bounded
SQS_THREADS = RECEIVERS + 4  # long polls, deletes and visibility heartbeats, never queued behind S3 GETs
COMMIT_EVERY_FILES = 200  # a group commit (then one DeleteMessageBatch per ten messages) at least this often
COMMIT_EVERY_SECONDS = 1.0  # ... or this often while files keep arriving


@dataclass(frozen=True)
class _Queue:
    """The clients of one queue sync and what it needs to know about the queue before the first receive."""

    sqs: object
    s3: object
    url: str
    visibility: int  # seconds


def _connect(access: AwsAccess, queue: str) -> _Queue:
    """Make the clients and look the queue up: run while the cache opens (botocore's models take a while to load)."""
    session = aws.make_session(access, access.region or aws.queue_region(queue))
    sqs, s3 = aws.make_client(session, "sqs", SQS_THREADS), aws.make_client(session, "s3", QUEUE_FETCHES)
    url = aws.resolve_queue_url(sqs, queue)
    return _Queue(sqs, s3, url, aws.fetch_queue_visibility(sqs, url))


class _QueueSync:
    """The event loop of one queue sync: receive, fetch, parse and store, commit a group, then delete its messages."""

    def __init__(self, ingester: Ingester, connected: _Queue, buckets: list[str], receive_limit: int):
        self.ingester, self.result = ingester, ingester.result
        self.sqs, self.s3 = connected.sqs, connected.s3
        self.queue_url, self.visibility = connected.url, connected.visibility
        self.queue_name = self.queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.buckets = buckets
        self.receive_limit = receive_limit
        self.done: queues.SimpleQueue = queues.SimpleQueue()  # (future, its callback) as each finishes
        self.in_flight = 0  # futures whose callback has not run yet
        self.held_bytes = 0  # fetched, not yet stored
        self.objects: dict[tuple[str, str], list[_Message]] = {}  # in flight -> the messages waiting on it
        self.active: set[_Message] = set()  # received, not yet acknowledged: their visibility is kept extended
        self.acknowledge: list[_Message] = []  # everything they named is stored: deleted after the next commit
        self.receiving, self.receives, self.requested, self.received = True, 0, 0, 0
        self.last_commit = time.monotonic()
        self.listen_until: float | None = None  # keep long-polling an empty queue until then (monotonic)
        self.on_early: Callable[[], None] | None = None
        self.early_handed_on = 0  # early events on_early has been told about

    def run(self, threads: ThreadPoolExecutor, fetches: ThreadPoolExecutor, max_messages: int | None,
            wait_seconds: int) -> None:
        """Calls to SQS go on `threads`, S3 GETs on `fetches`; every callback runs here, on the loop's thread."""
        self.threads, self.fetches = threads, fetches
        heartbeat = max(0.5, min(5.0, self.visibility / 3))
        while True:
            self._receive_more(max_messages, wait_seconds)
            if not self.in_flight:
                self._commit_and_acknowledge()
                if not self.in_flight:
                    return
            try:
                finished = [self.done.get(timeout=heartbeat)]
                while not self.done.empty():  # handle everything that is ready before deciding to commit
                    finished.append(self.done.get())
            except queues.Empty:
                finished = []
            for future, on_done in finished:
                self.in_flight -= 1
                on_done(future)
            if self._commit_due():
                self._commit_and_acknowledge()
            self._extend_visibility()

    def _receive_more(self, max_messages: int | None, wait_seconds: int) -> None:
        """Keep up to RECEIVERS long polls going while there is room for more files in flight."""
        while (self.receiving and self.receives < RECEIVERS and len(self.objects) < 2 * QUEUE_FETCHES
               and self.held_bytes < HELD_BYTES):
            left = aws.MAX_RECEIVE if max_messages is None else max_messages - self.received - self.requested
            wanted = min(aws.MAX_RECEIVE, left)
            listening = self._listen_seconds()
            if wanted <= 0 or listening == 0:
                if self.receives == 0:
                    self.receiving = False
                return
            wait_for = wait_seconds if listening is None else min(LISTEN_WAIT_SECONDS, listening)
            self._track(self.threads.submit(aws.receive_messages, self.sqs, self.queue_url, wait_for, wanted),
                        partial(self._on_received, wanted))
            self.receives += 1
            self.requested += wanted

    def _listen_seconds(self) -> int | None:
        """Whole seconds left to listen (0 once the time is up), or None when not listening."""
        if self.listen_until is None:
            return None
        return max(0, int(self.listen_until - time.monotonic()))

    def _commit_due(self) -> bool:
        """Commit when a group is ready: many files, a second gone by, or nothing left in flight to wait for."""
        if not self.acknowledge:
            return False
        return (not self.objects or len(self.acknowledge) >= COMMIT_EVERY_FILES
                or time.monotonic() - self.last_commit >= COMMIT_EVERY_SECONDS)

    def _commit_and_acknowledge(self) -> None:
        """Commit what is stored, then delete its messages ten per call: never a message before its events."""
        ready, self.acknowledge = self.acknowledge, []
        self.ingester.checkpoint()
        self.last_commit = time.monotonic()
        for start in range(0, len(ready), aws.MAX_RECEIVE):
            group = ready[start:start + aws.MAX_RECEIVE]
            self.active.difference_update(group)
            self._track(self.threads.submit(aws.delete_messages, self.sqs, self.queue_url,
                                            [item.receipt for item in group]), partial(self._on_deleted, group))
        if self.on_early and self.result.early > self.early_handed_on:
            self.early_handed_on = self.result.early
            self.on_early()

    def _track(self, future: Future, on_done: Callable[[Future], None]) -> None:
        """Run on_done in the loop's thread once the future finishes (a call on a thread, a parse in a worker)."""
        self.in_flight += 1
        future.add_done_callback(lambda finished: self.done.put((finished, on_done)))

    def _on_received(self, wanted: int, future: Future) -> None:
        self.receives -= 1
        self.requested -= wanted
        try:
            messages = future.result()
        except SourceError as exc:
            self.result.fail(f"queue {self.queue_name}", str(exc))
            self.receiving = False
            return
        if not messages and self.listen_until is None:
            self.receiving = False
        self.received += len(messages)
        for message in messages:
            self._start_message(message)

    def _start_message(self, message: dict) -> None:
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        pending = _Message(message["MessageId"], message["ReceiptHandle"], count, extended_at=time.monotonic())
        try:
            notification = parse_message_body(message.get("Body", ""))
        except MessageError as exc:
            ref = FileRef("sqs", "", f"sqs://{self.queue_name}/{pending.message_id}")
            self.ingester.fail(ref, f"unreadable message, deleted: {exc}")
            self.acknowledge.append(pending)
            return
        if notification.kind == "cloudtrail_event":
            ref = FileRef("eventbridge", "", f"sqs://{self.queue_name}/{pending.message_id}")
            self.ingester.store_early(ref, notification.record, EarlyMessage(self.queue_name, pending.message_id))
            self.acknowledge.append(pending)
            return
        if not notification.objects:
            level = logging.WARNING if notification.kind == "subscription_confirmation" else logging.INFO
            log.log(level, "acknowledged %s message %s: %s", notification.kind, pending.message_id, notification.note)
            self.acknowledge.append(pending)
            return
        pending.waiting = len(notification.objects)
        self.active.add(pending)
        for item in notification.objects:
            self._start_object(pending, FileRef("sqs", item.bucket, item.key, size=item.size))

    def _start_object(self, pending: _Message, ref: FileRef) -> None:
        ident = (ref.bucket, ref.key)
        if ident in self.objects:  # the same file named twice in flight: fetch it once
            self.objects[ident].append(pending)
            return
        already = bookkeeping.stored_file_etags(self.ingester.db, ref.bucket, [ref.key])
        if refusal := explain_other_bucket(ref.bucket, self.buckets):
            self._refuse(ref, already, refusal)
        elif (reason := explain_not_log_file(ref.key, ref.size)) and not parse_digest_key(ref.key):
            self.ingester.skip(ref, reason)
        elif already:
            self.result.unchanged += 1
            self.ingester.report(ref.name)
        else:
            self.objects[ident] = [pending]
            self._track(self.fetches.submit(aws.fetch_object, self.s3, ref.bucket, ref.key),
                        partial(self._on_fetched, ref))
            return
        self._resolved(pending)

    def _refuse(self, ref: FileRef, already: dict, reason: str) -> None:
        """A forged or misrouted notification must not inject events into the audit trail."""
        if already:  # never overwrite the row of a file another source stored
            self.result.fail(ref.name, reason)
        else:
            self.ingester.fail(replace(ref, source="refused"), reason)

    def _on_fetched(self, ref: FileRef, future: Future) -> None:
        try:
            data, etag, size = future.result()
        except SourceError as exc:
            self._on_fetch_error(ref, exc)
            return
        ref = replace(ref, etag=etag, size=size)
        if size == 0:
            self._finish(ref, self.ingester.skip(ref, "empty object, not a log file"))
            return
        self.held_bytes += size
        self._track(self.ingester.parse_async(data), partial(self._on_parsed, ref))

    def _on_fetch_error(self, ref: FileRef, exc: SourceError) -> None:
        deliveries = max(pending.receive_count for pending in self.objects[(ref.bucket, ref.key)])
        if not exc.transient:
            self._finish(ref, self.ingester.fail(ref, str(exc)))
        elif deliveries >= self.receive_limit:
            self._finish(ref, self.ingester.fail(ref, f"{exc} (gave up after {deliveries} deliveries of its message)"))
        else:
            log.info("leaving %s for redelivery: %s", ref.name, exc)
            self._finish(ref, None)

    def _on_parsed(self, ref: FileRef, future: Future) -> None:
        self.held_bytes -= ref.size
        self._finish(ref, self.ingester.store(ref, future))

    def _finish(self, ref: FileRef, outcome) -> None:
        for pending in self.objects.pop((ref.bucket, ref.key)):
            pending.keep = pending.keep or outcome is None
            self._resolved(pending)

    def _resolved(self, pending: _Message) -> None:
        pending.waiting -= 1
        if pending.waiting > 0:
            return
        if pending.keep:
            self.active.discard(pending)  # left for redelivery: SQS shows it again after its visibility timeout
        else:
            self.acknowledge.append(pending)

    def _on_deleted(self, group: list[_Message], future: Future) -> None:
        try:
            failed = set(future.result())
        except SourceError as exc:  # they come back later and are recognised as already stored
            log.warning("%d message(s) not deleted: %s", len(group), exc)
            return
        for pending in group:
            if pending.receipt in failed:
                log.warning("message %s not deleted; it comes back and is recognised as stored", pending.message_id)
        self.result.messages_deleted += len(group) - len(failed)

    def _extend_visibility(self) -> None:
        """Keep the messages held for half their visibility timeout hidden, ten per call, off the loop's thread."""
        if self.visibility <= 0:
            return
        now = time.monotonic()
        due = [pending for pending in self.active if now - pending.extended_at >= self.visibility / 2]
        for start in range(0, len(due), aws.MAX_RECEIVE):
            group = due[start:start + aws.MAX_RECEIVE]
            for pending in group:
                pending.extended_at = now
            self._track(self.threads.submit(aws.extend_visibility, self.sqs, self.queue_url,
                                            [pending.receipt for pending in group], self.visibility),
                        partial(self._on_extended, group))

    @staticmethod
    def _on_extended(group: list[_Message], future: Future) -> None:
        try:
            refused = set(future.result())
        except SourceError as exc:  # they may be shown again to another consumer, which stores nothing twice
            log.warning("could not extend the visibility of %d message(s): %s", len(group), exc)
            return
        for pending in group:
            if pending.receipt in refused:
                log.warning("could not extend the visibility of message %s", pending.message_id)


def sync_queue(db_path, queue: str, buckets, access: AwsAccess = AwsAccess(), max_messages: int | None = None,
               progress: ProgressCallback | None = None, receive_limit: int = 5,
               wait_seconds: int = DEFAULT_WAIT_SECONDS, workers: int | None = None, listen: float | None = None,
               on_early: Callable[[], None] | None = None) -> SyncResult:
    """Drain a queue of CloudTrail/S3/EventBridge notifications into the cache; a message is deleted after its files
    commit. With `listen`, keep long-polling for that many seconds even when the queue is empty, calling `on_early`
    after each commit that stored early (EventBridge) events."""
    buckets = trail_buckets(buckets)
    connector = ThreadPoolExecutor(1, thread_name_prefix="trailstream-sqs-connect")
    connecting = connector.submit(_connect, access, queue)
    connector.shutdown(wait=False)
    with Ingester(db_path, "sqs", progress, workers, batch=True) as ingester:
        try:
            queue_sync = _QueueSync(ingester, connecting.result(), buckets, receive_limit)
            queue_sync.on_early = on_early
            queue_sync.listen_until = None if listen is None else time.monotonic() + listen
        except SourceError as exc:
            ingester.result.fail(f"queue {queue}", str(exc))
            return ingester.result
        threads = ThreadPoolExecutor(SQS_THREADS, thread_name_prefix="trailstream-sqs")
        fetches = ThreadPoolExecutor(QUEUE_FETCHES, thread_name_prefix="trailstream-sqs-s3")
        try:
            queue_sync.run(threads, fetches, max_messages, wait_seconds)
            for bucket in buckets:
                integrity_sync.complete_digests(ingester.db, queue_sync.s3, bucket, access)
        finally:  # on an error, unfinished messages stay in the queue and come back after their visibility timeout
            threads.shutdown(wait=False, cancel_futures=True)
            fetches.shutdown(wait=False, cancel_futures=True)
        return ingester.result
    return ingester.result  # a full disk stopped it: its unstored messages stay queued


def _as_date(value) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a date like 2026-11-27") from None


def _fetch_and_store(ingester: Ingester, s3, threads: ThreadPoolExecutor, refs: Iterable[FileRef]) -> None:
    """Fetch with threads and parse in the workers, a bounded number ahead, committing each file in order."""
    fetches = bounded(refs, lambda ref: threads.submit(aws.fetch_object, s3, ref.bucket, ref.key),
                      2 * FETCH_THREADS)

    def parse(item):
        ref, fetch = item
        return None if fetch.exception() else ingester.parse_async(fetch.result()[0])

    for (ref, fetch), parsed in bounded(fetches, parse, 2 * ingester.workers + 2):
        if parsed is None:
            exc = fetch.exception()
            if not isinstance(exc, SourceError):
                reason = f"{type(exc).__name__}: {exc}"
            elif exc.transient:
                reason = f"{exc}; a temporary error: retry the failed files later"
            else:
                reason = str(exc)
            ingester.fail(ref, reason)
        else:
            _, etag, size = fetch.result()
            ingester.store(replace(ref, etag=etag, size=size), parsed)


def backfill(db_path, bucket: str, prefix: str = "", since: date | str | None = None, until: date | str | None = None,
             accounts=None, regions=None, access: AwsAccess = AwsAccess(), progress: ProgressCallback | None = None,
             workers: int | None = None) -> SyncResult:
    """Import the log files of a date range straight from S3, walking account/region/date partitions; stored files are skipped."""
    since, until = _as_date(since), _as_date(until)
    location = f"s3://{bucket}/{prefix.lstrip('/')}"
    with Ingester(db_path, "s3", progress, workers, batch=True) as ingester:
        result = ingester.result
        with ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="trailstream-s3") as threads:
            try:
                s3 = aws.make_client(aws.make_session(access), "s3", FETCH_THREADS)
                log_prefixes = aws.find_log_prefixes(s3, bucket, prefix, accounts, regions)
            except SourceError as exc:
                result.fail(location, str(exc))
                return result
            if not log_prefixes:
                result.fail(location, "no CloudTrail log folders found (expected PREFIX/AWSLogs/[o-ORG/]ACCOUNT/"
                                      "CloudTrail/REGION/): check the bucket, the prefix and the account/region filters")
                return result
            listed = []
            for log_prefix, (found, error) in zip(log_prefixes, threads.map(
                    partial(_list_or_fail, s3, bucket, since, until), log_prefixes)):
                listed.extend(found)
                if error:
                    result.fail(f"s3://{bucket}/{log_prefix.prefix}", error)
            _fetch_and_store(ingester, s3, threads, _select_new(ingester, "s3", bucket, listed))
            ingester.commit()
            integrity_sync.complete_digests(ingester.db, s3, bucket, access)
        return result
    return result  # a full disk stopped it


def _list_or_fail(s3, bucket, since, until, log_prefix: aws.LogPrefix):
    try:
        return aws.list_log_objects(s3, bucket, log_prefix.prefix, since, until), None
    except SourceError as exc:
        return [], str(exc)


def _select_new(ingester: Ingester, source: str, bucket: str, listed: list) -> list[FileRef]:
    """Refs of listed objects not stored yet (same key and etag); non-log objects are recorded as skipped."""
    listed = sorted(listed, key=lambda item: item.key)
    known = bookkeeping.stored_file_etags(ingester.db, bucket, [item.key for item in listed])
    new = [item for item in listed if known.get(item.key, _MISSING) != item.etag]
    ingester.result.unchanged += len(listed) - len(new)
    ingester.files_total = len(new)
    ingester.report()
    refs = []
    for item in new:
        ref = FileRef(source, bucket, item.key, item.etag, item.size)
        if (reason := explain_not_log_file(item.key, item.size)) and not parse_digest_key(item.key):
            ingester.skip(ref, reason)
        else:
            refs.append(ref)
    return refs


def retry_failed(db_path, access: AwsAccess = AwsAccess(), progress: ProgressCallback | None = None,
                 workers: int | None = None) -> SyncResult:
    """Fetch again every file recorded as failed: S3 ones from S3, local ones from their path."""
    with Ingester(db_path, "retry", progress, workers, batch=True) as ingester:
        refs = bookkeeping.failed_file_refs(ingester.db.conn)
        remote = [ref for ref in refs if ref.bucket]
        local = [ref for ref in refs if not ref.bucket]
        ingester.files_total = len(refs)
        ingester.report()
        for ref, parsed in bounded(local, _parse_local(ingester), 2 * ingester.workers + 2):
            if parsed is None:
                ingester.fail(ref, "the file no longer exists")
            else:
                ingester.store(local_ref(Path(ref.key)), parsed)
        if remote:
            try:
                session = aws.make_session(access)
                s3 = aws.make_client(session, "s3", FETCH_THREADS)
            except SourceError as exc:
                ingester.result.fail("AWS", str(exc))
                return ingester.result
            with ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="trailstream-retry") as threads:
                _fetch_and_store(ingester, s3, threads, remote)
        return ingester.result
    return ingester.result  # a full disk stopped it


def _parse_local(ingester: Ingester):
    return lambda ref: ingester.parse_path_async(ref.key) if Path(ref.key).is_file() else None
