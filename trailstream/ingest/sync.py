"""Sync orchestration shared by the CLI and the app: parse in worker processes, commit per file, report progress.

Every source (local folder, S3 backfill, SQS) feeds files through one `Ingester`, which commits each file's
events together with its `files` row; a caller acknowledges anything (an SQS message) only after that commit.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import more_itertools
import orjson

from trailstream.ingest import digests, records
from trailstream.ingest.collector import without_cycle_collection
from trailstream.cache import integrity
from trailstream.cache.rows import DigestRow
from trailstream.cache import store
from trailstream.cache.bookkeeping import FileOutcome, FileRef
from trailstream.cache.early import EarlyMessage
from trailstream.cache import bookkeeping


@dataclass
class SyncProgress:
    files_done: int
    files_total: int | None
    new_events: int
    current: str = ""


ProgressCallback = Callable[[SyncProgress], None]


@dataclass
class SyncResult:
    """What one sync did: the counts the UI and CLI show, and every failure with its reason."""

    source: str
    files: int = 0
    ok: int = 0
    skipped: int = 0
    unchanged: int = 0
    failed: int = 0
    new_events: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    messages_deleted: int = 0
    early: int = 0  # of new_events: CloudTrail events EventBridge delivered before their log file
    confirmed: int = 0  # early events a log file's record replaced (neither new nor duplicate)
    failures: list[tuple[str, str]] = field(default_factory=list)
    skips: list[tuple[str, str]] = field(default_factory=list)

    def add(self, outcome: FileOutcome) -> None:
        self.files += 1
        if outcome.status == "ok":
            self.ok += 1
        elif outcome.status == "skipped":
            self.skipped += 1
            self.skips.append((outcome.ref.name, outcome.error or "not a log file"))
        else:
            self.failed += 1
            self.failures.append((outcome.ref.name, outcome.error or "unknown error"))
        self.new_events += outcome.new_events
        self.duplicates += outcome.duplicates
        self.conflicts += outcome.conflicts
        self.rejected += outcome.rejected
        self.confirmed += outcome.confirmed

    def fail(self, name: str, reason: str) -> None:
        """A failure that is not a file (an unreadable SQS message, an unreachable queue)."""
        self.failed += 1
        self.failures.append((name, reason))

    @property
    def succeeded(self) -> bool:
        return self.failed == 0

    def counts(self) -> dict:
        return {
            "files": self.files,
            "new_events": self.new_events,
            "duplicates": self.duplicates,
            "skipped": self.skipped + self.unchanged,
            "failures": self.failed,
        }

    def summary(self) -> str:
        parts = [
            f"{self.files:,} file(s)",
            f"{self.new_events:,} new event(s)",
            f"{self.duplicates:,} duplicate(s)",
        ]
        if self.early:
            parts.append(f"{self.early:,} early (EventBridge)")
        if self.confirmed:
            parts.append(f"{self.confirmed:,} early event(s) replaced by their log file")
        if self.unchanged:
            parts.append(f"{self.unchanged:,} already stored")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        if self.rejected:
            parts.append(f"{self.rejected:,} record(s) refused")
        if self.messages_deleted:
            parts.append(f"{self.messages_deleted:,} message(s) acknowledged")
        parts.append(f"{self.failed:,} failure(s)")
        return f"{self.source}: " + ", ".join(parts)


_worker_compressor = None
INLINE_PARSE_BYTES = 4 * 1024  # below this a file is parsed in-process: the hand-off to a worker costs more
GROUP_BYTES = 256 << 10  # an import hands a worker files up to about this many bytes together: one hand-off, not one each
GROUP_FILES = 32
WORKER_NICENESS = 5  # the single writer is an import's critical path: parse workers take the CPU it leaves
BATCH_WAL_BYTES = 64 << 20  # batch syncs let the WAL grow to about this much between checkpoints
BATCH_ROWS = 20_000  # batch mode commits about this often: one commit per small file cost more than its inserts
MAX_PAGE_COUNT_ENV = "TRAILSTREAM_MAX_PAGE_COUNT"  # caps the writer's cache in pages: how tests fill the disk


FULL_DISK = "the disk holding the cache is full: {} files stored, the rest left for the next sync"


class CacheFull(RuntimeError):
    """The disk filled up before a sync could start; during one, the result says so instead."""


def is_disk_full(exc: BaseException | None) -> bool:
    """SQLite's SQLITE_FULL: the filesystem (or the page cap) left no room for the rows being written."""
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


DICTIONARY_SAMPLE_END = datetime(2026, 1, 1, tzinfo=timezone.utc)  # fixed, so every new cache trains the same dictionary


def _dictionary_samples() -> list[dict]:
    """Demo-generator records that teach a new cache's zstd dictionary what CloudTrail records look like."""
    from trailstream.ingest import demo

    return demo.generate_records(events=3000, seed=0, end=DICTIONARY_SAMPLE_END)


DICTIONARY_SAMPLE_RECORDS = 3000
SAMPLE_FILES = 64
SAMPLE_FILE_BYTES = 8 << 20  # larger files are left out of the sample: reading one whole costs more than it teaches
SAMPLE_TEXT_BYTES = 64 << 20  # nor files decompressing to more (a gzip bomb is refused later, with its reason)


def _records_of(path: Path) -> list:
    """The records of a small local file, or none if it is large, unreadable or not a log file."""
    try:
        if path.stat().st_size > SAMPLE_FILE_BYTES:
            return []
        found = orjson.loads(records.read_log_bytes(path.read_bytes(), SAMPLE_TEXT_BYTES)).get("Records")
    except (OSError, records.LogFileError, orjson.JSONDecodeError, AttributeError):
        return []
    return [record for record in found if isinstance(record, dict)] if isinstance(found, list) else []


def _sampled_records(paths: list[Path]) -> Callable[[], list[dict]]:
    """Records of the files about to be imported, to train a new cache's dictionary on this trail's own shape (on
    the roaming shape its records come out a fifth smaller than with the demo's); the demo's if they are too few."""

    def sample() -> list[dict]:
        found: list[dict] = []
        spread = paths[:: max(1, len(paths) // SAMPLE_FILES)]  # over accounts, regions and days; then the rest
        for path in dict.fromkeys(spread + paths):
            file_records = _records_of(path)
            found += file_records[:: max(1, len(file_records) * SAMPLE_FILES // DICTIONARY_SAMPLE_RECORDS)]
            if len(found) >= DICTIONARY_SAMPLE_RECORDS:
                break
        found = found[:DICTIONARY_SAMPLE_RECORDS]
        enough = len(found) >= DICTIONARY_SAMPLE_RECORDS // 3 and sum(map(len, map(orjson.dumps, found))) >= 1 << 20
        return found if enough else _dictionary_samples()  # zstd cannot train a dictionary on much less

    return sample


DICTIONARY_CHILD_SECONDS = 60  # training takes about a second; a child still silent after this is stuck


def _dictionary_in_child(sample_records: Callable[[], list[dict]]) -> bytes:
    """Train the dictionary in a short-lived forked process: the tens of MB sampling and training take stay with it,
    instead of in this process's heap, which every parse worker forked later would carry (and count) again."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_send_dictionary, args=(sender, sample_records), daemon=True)
    child.start()
    sender.close()
    try:  # a child that died (EOFError) or hangs (a lock some other thread held at the fork) is trained here instead
        dictionary = receiver.recv() if receiver.poll(DICTIONARY_CHILD_SECONDS) else None
    except EOFError:
        dictionary = None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    return dictionary if dictionary is not None else store.dictionary_from(sample_records)  # here, then


def _send_dictionary(sender, sample_records: Callable[[], list[dict]]) -> None:
    try:
        sender.send(store.dictionary_from(sample_records))
    except Exception:  # noqa: BLE001 - the parent trains it itself and sees the error there
        sender.send(None)


def _init_worker(compressor, lifeline: tuple[int, int] | None = None) -> None:
    global _worker_compressor
    _worker_compressor = compressor
    try:  # with as many workers as cores, the writer otherwise gets only its share of one and everything waits on it
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    if lifeline is not None:
        os.close(lifeline[1])  # this worker's copy of the writer's end
        threading.Thread(target=_exit_with_writer, args=(lifeline[0],), daemon=True).start()


def _exit_with_writer(read_end: int) -> None:
    """End this worker once the writer's end of the lifeline closes (the writer was killed, or finished): else a
    worker of a killed import blocks for ever writing a result into a pipe nobody reads."""
    while os.read(read_end, 1):
        pass
    os._exit(0)


@without_cycle_collection  # 3-10% of a worker's CPU
def _parse_bytes(data: bytes) -> records.ParsedLog:
    return records.parse_log_file(data, _worker_compressor)


def read_local_file(path: str) -> bytes:
    """A local file's bytes; one over the size cap is refused before it is read."""
    if os.path.getsize(path) > records.DEFAULT_MAX_DECOMPRESSED_BYTES:
        raise records.LogFileError(f"file is larger than the {records.DEFAULT_MAX_DECOMPRESSED_BYTES:,}-byte limit")
    return Path(path).read_bytes()


def _parse_whole_or_streamed(data: bytes, compressor) -> records.ParsedLog:
    """Parse here: whole, or record by record (as the writer stores them) when the file is too large to hold."""
    try:
        return records.parse_log_file(data, compressor)
    except records.FileTooLargeToBuffer:
        return records.parse_large_log_file(data, compressor)


def _read_and_parse(path: str, compressor) -> records.ParsedLog:
    return _parse_whole_or_streamed(read_local_file(path), compressor)


@without_cycle_collection
def _parse_path(path: str) -> records.ParsedLog:
    return records.parse_log_file(read_local_file(path), _worker_compressor)


@without_cycle_collection
def _parse_paths(paths: list[str]) -> list:
    """Several local files in one task (small files too, which the writer would otherwise parse itself): each
    file's ParsedLog, or the exception it raised, so one bad file never fails the others."""
    parsed: list = []
    for path in paths:
        try:
            parsed.append(_parse_path(path))
        except Exception as exc:  # noqa: BLE001 - handed back for the writer to record against this file alone
            parsed.append(exc)
    return parsed


def _file_of_group(group: Future, index: int, path: str, compressor) -> Future:
    """One file's parse out of its group's task; a file too large to send back whole, or whose group's task
    failed as a whole (a dead worker), is parsed by the writer."""
    settled: Future = Future()

    def settle(done: Future) -> None:
        try:
            try:
                result = done.result()[index]
            except Exception:  # noqa: BLE001 - the task, not this file: parse it here instead
                result = _read_and_parse(path, compressor)
            if isinstance(result, records.FileTooLargeToBuffer):
                result = records.parse_large_log_file(read_local_file(path), compressor)
            elif isinstance(result, BaseException):
                raise result
            settled.set_result(result)
        except BaseException as exc:
            settled.set_exception(exc)

    group.add_done_callback(settle)
    return settled


def groups_of(refs: Iterable[FileRef], max_bytes: int = GROUP_BYTES, max_files: int = GROUP_FILES) -> Iterator[tuple]:
    """Consecutive refs in groups of about max_bytes (a larger file alone), in order."""
    return more_itertools.constrained_batches(refs, max_bytes, max_files, get_len=lambda ref: ref.size or 0,
                                              strict=False)


def _streamed_if_too_large(future: Future, load: Callable[[], bytes], compressor) -> Future:
    """The worker's parse; for a file too large to send back whole, a streamed parse the writer reads as it stores."""
    settled: Future = Future()

    def settle(done: Future) -> None:
        try:
            try:
                result = done.result()
            except records.FileTooLargeToBuffer:
                result = records.parse_large_log_file(load(), compressor)
            settled.set_result(result)
        except BaseException as exc:
            settled.set_exception(exc)

    future.add_done_callback(settle)
    return settled


class Ingester:
    """Holds the sync lock, a sync run and a pool of parsers for one sync; use as a context manager."""

    def __init__(self, db_path, source: str, progress: ProgressCallback | None = None, workers: int | None = None,
                 batch: bool = False, samples: Callable[[], list[dict]] | None = None):
        """batch=True groups many files per transaction (imports and backfills, which acknowledge nothing);
        without it every store() is durable when it returns, as an SQS sync needs before deleting a message."""
        self.db_path = db_path
        self.batch = batch
        self.samples = samples or _dictionary_samples  # what a new cache's dictionary learns from
        self._uncommitted_rows = 0
        self.result = SyncResult(source)
        self._durable = SyncResult(source)  # the result as of the last commit: what a full disk leaves stored
        self.progress = progress
        self.workers = workers if workers is not None else max(1, (os.cpu_count() or 1))
        self.files_total: int | None = None
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Ingester":
        self._lock = store.sync_lock(self.db_path)
        self._lock.__enter__()
        try:
            self.db = store.open_cache(self.db_path)
            if os.environ.get(MAX_PAGE_COUNT_ENV):
                self.db.execute(f"PRAGMA max_page_count={int(os.environ[MAX_PAGE_COUNT_ENV])}")
            bookkeeping.mark_interrupted_runs(self.db)
            self.compressor = store.ensure_compressor(self.db, self.samples, train=_dictionary_in_child)
            self.run_id = bookkeeping.start_sync_run(self.db, self.result.source)
            store.ensure_event_indexes(self.db)  # an earlier first import killed before it built them
            self._indexes_deferred = self.batch and store.defer_event_indexes(self.db)
            if self.batch:
                # Checkpoint less often: each one copies the index pages the next rows will change again (an import of
                # many-sessions files took 30% less time); the WAL is cut back to this size after each checkpoint.
                page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
                self.db.execute(f"PRAGMA wal_autocheckpoint={BATCH_WAL_BYTES // page_size}")
                self.db.execute(f"PRAGMA journal_size_limit={BATCH_WAL_BYTES}")
        except BaseException as exc:
            self._lock.__exit__(None, None, None)
            if is_disk_full(exc):
                raise CacheFull(FULL_DISK.format(0)) from None
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        full = is_disk_full(exc)
        try:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                os.close(self._lifeline[0])
                os.close(self._lifeline[1])
            if full:
                self._stop_on_full_disk()
            else:
                self.commit()  # every file stored so far is whole (a file that failed part-way rolled back), so keep it
            self._build_deferred_indexes()
            if exc_type is None or full:
                status = "ok" if self.result.succeeded else "failed"
                message = None if self.result.succeeded else "; ".join(r for _, r in self.result.failures[:3])
            else:
                status, message = "interrupted", f"{exc_type.__name__}: {exc}"
            try:
                bookkeeping.finish_sync_run(self.db, self.run_id, status, self.result.counts(), message)
            except sqlite3.OperationalError as error:  # no room even for that: the next sync marks it interrupted
                if not (full and is_disk_full(error)):
                    raise
            self.db.close()
        finally:
            self._lock.__exit__(exc_type, exc, tb)
        return full  # a full disk ends the sync with a sentence in its result, not an exception

    def _build_deferred_indexes(self) -> None:
        """After a first bulk load, build the indexes of `events` once. The events are committed already: if the
        build cannot finish (a full disk, a writer holding the lock), the next open or sync builds them."""
        if not self._indexes_deferred:
            return
        try:
            store.ensure_event_indexes(self.db)
        except sqlite3.OperationalError:
            pass

    def _stop_on_full_disk(self) -> None:
        """Drop the uncommitted files (their SQS messages stay queued) and say how many are stored."""
        self._roll_back_to_last_commit()
        self.result.fail("cache", FULL_DISK.format(f"{self.result.ok:,}"))

    def _roll_back_to_last_commit(self) -> None:
        """Drop the files stored since the last commit, and their counts from the result (their SQS messages stay
        queued, and the next sync stores them)."""
        if self.db.conn.in_transaction:
            self.db.execute("ROLLBACK")
        self._uncommitted_rows = 0
        not_rolled_back = {"unchanged": self.result.unchanged, "messages_deleted": self.result.messages_deleted}
        self.result.__dict__.update(replace(self._durable, failures=list(self._durable.failures),
                                            skips=list(self._durable.skips), **not_rolled_back).__dict__)

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._lifeline = os.pipe()  # the writer holds its write end open for as long as the workers may live
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                # fork, not spawn: a spawned worker re-runs the parent's main script, and inside Streamlit (or
                # AppTest) that is app.py itself, which would start the app again in every worker.
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_worker,
                initargs=(self.compressor, self._lifeline),
            )
        return self._pool

    def parse_async(self, data: bytes) -> Future:
        """Parse file bytes in a worker process; small files here, where the hand-off would cost more."""
        if self.workers <= 1 or len(data) < INLINE_PARSE_BYTES:
            return _done(_parse_whole_or_streamed, data, self.compressor)
        return _streamed_if_too_large(self.pool.submit(_parse_bytes, data), lambda: data, self.compressor)

    def parse_path_async(self, path: str, size: int | None = None) -> Future:
        if self.workers <= 1 or (size is not None and size < INLINE_PARSE_BYTES):
            return _done(_read_and_parse, path, self.compressor)
        return _streamed_if_too_large(self.pool.submit(_parse_path, path), lambda: read_local_file(path), self.compressor)

    def parse_paths_async(self, paths: list[str]) -> list[Future]:
        """Parse several local files in one worker task; a future for each file."""
        if self.workers <= 1:
            return [_done(_read_and_parse, path, self.compressor) for path in paths]
        group = self.pool.submit(_parse_paths, paths)
        return [_file_of_group(group, index, path, self.compressor) for index, path in enumerate(paths)]

    def store(self, ref: FileRef, parsed: Future | records.ParsedLog) -> FileOutcome:
        """Store one parsed file (or record why it was skipped or failed); durable on return unless in batch mode."""
        try:
            result = parsed.result() if isinstance(parsed, Future) else parsed
        except records.LogFileError as exc:
            if digests.parse_digest_key(ref.key):
                return self.store_digest(ref, DigestRow({"error": f"malformed digest: {exc}"}))
            return self.fail(ref, str(exc))
        except OSError as exc:
            return self.fail(ref, f"cannot read the file: {exc.strerror or exc}")
        except Exception as exc:  # a parser bug must not stop the other files
            return self.fail(ref, f"unexpected error while parsing: {type(exc).__name__}: {exc}")
        if result.kind == "digest" and (digests.parse_digest_key(ref.key) or not result.digest.values.get("error")):
            return self.store_digest(ref, result.digest)
        if result.kind == "digest":
            return self.skip(ref, "CloudTrail digest file, not a log file")
        if result.kind != "records":
            return self.skip(ref, 'readable JSON without "Records": not a CloudTrail log file')
        self._begin_batch()
        whole_batch_on_error = self.batch and not result.streamed  # only a streamed file can turn out broken
        try:
            saved = store.save_parsed_file(self.db, ref, result, self.run_id, refresh_derived=not self.batch,
                                           savepoint=not whole_batch_on_error)
        except records.LogFileError as exc:  # a streamed file found broken part-way: none of it is kept
            return self.fail(ref, str(exc))
        except BaseException:
            if whole_batch_on_error:  # part of this file may be written: nothing since the last commit is kept
                self._roll_back_to_last_commit()
            raise
        return self._record(saved)

    def store_early(self, ref: FileRef, record: dict, message: EarlyMessage) -> FileOutcome:
        """Store a CloudTrail record EventBridge delivered, marked early until the log file with its eventID comes."""
        parsed = records.parse_log_file(orjson.dumps({"Records": [record]}), self.compressor)
        self._begin_batch()
        saved = store.save_parsed_file(self.db, ref, parsed, self.run_id, refresh_derived=not self.batch, early=message)
        self.result.early += saved.new_events
        return self._record(saved)

    def store_digest(self, ref: FileRef, digest: DigestRow) -> FileOutcome:
        """A digest goes to the integrity tables, never the event parser; what its key says fills what it lacks."""
        from_key = digests.digest_values_from_key(ref.key)
        digest.values.update({name: value for name, value in from_key.items() if digest.values.get(name) is None})
        self._begin_batch()
        integrity.save_digest(self.db, ref, digest, self.run_id)
        return self._record(FileOutcome(ref, "ok", records=len(digest.log_files)))

    def skip(self, ref: FileRef, reason: str) -> FileOutcome:
        self._begin_batch()
        return self._record(bookkeeping.mark_file(self.db, ref, "skipped", reason, self.run_id))

    def fail(self, ref: FileRef, reason: str) -> FileOutcome:
        self._begin_batch()
        return self._record(bookkeeping.mark_file(self.db, ref, "failed", reason, self.run_id))

    def _record(self, outcome: FileOutcome) -> FileOutcome:
        self.result.add(outcome)
        if not self.batch:  # durable already: each file committed itself
            self._snapshot()
        self._uncommitted_rows += outcome.records + 1
        if self.batch and self._uncommitted_rows >= BATCH_ROWS:
            self.commit()
        self.report(outcome.ref.name)
        return outcome

    def _begin_batch(self) -> None:
        """Batch mode's transaction begins IMMEDIATE at its first write, not while a sync waits on SQS or S3: storing
        a file reads before it writes, and a deferred read fails when another writer commits in between."""
        if self.batch and not self.db.conn.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Make everything stored so far durable (a no-op outside batch mode, where each file commits itself)."""
        store.commit_batch(self.db)
        self._uncommitted_rows = 0
        self._snapshot()

    def _snapshot(self) -> None:
        self._durable = replace(self.result, failures=list(self.result.failures), skips=list(self.result.skips))

    def checkpoint(self) -> None:
        """Commit now (the next write begins a new transaction): an SQS sync deletes only messages a checkpoint made
        durable."""
        self.commit()

    def report(self, current: str = "") -> None:
        if self.progress:
            self.progress(SyncProgress(self.result.files, self.files_total, self.result.new_events, current))


def _done(function, *args) -> Future:
    future: Future = Future()
    try:
        future.set_result(function(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def bounded(items: Iterable, submit: Callable, in_flight: int) -> Iterator[tuple]:
    """Yield (item, future) in order while keeping at most in_flight parses running, so memory stays flat."""
    pending: deque = deque()
    for item in items:
        pending.append((item, submit(item)))
        if len(pending) >= in_flight:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


LOCAL_SUFFIXES = (".json", ".json.gz")


def find_local_files(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named on the command line, and *.json / *.json.gz below named folders; plus paths that do not exist."""
    found, missing = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(LOCAL_SUFFIXES)))
        elif path.is_file():
            found.append(path)
        else:
            missing.append((str(path), "no such file or folder"))
    return found, missing


def _real_path(path: Path, real_folder: Callable[[str], str]) -> str:
    """path.resolve(), through `real_folder` (a cached os.path.realpath: resolving 5,000 files one by one took 0.8 s)."""
    return str(path.resolve()) if path.is_symlink() else os.path.join(real_folder(str(path.parent)), path.name)


def local_ref(path: Path, real_folder: Callable[[str], str] = os.path.realpath) -> FileRef:
    """A local file's identity: its absolute path, with size and mtime as the etag that says it changed."""
    stat = path.stat()
    return FileRef("local", "", _real_path(path, real_folder), f"{stat.st_size}-{stat.st_mtime_ns}", stat.st_size)


def import_paths(db_path, paths: Iterable[str | os.PathLike], progress: ProgressCallback | None = None,
                 workers: int | None = None) -> SyncResult:
    """Import local files and folders; files already imported unchanged (same size and mtime) are not re-read."""
    files, missing = find_local_files(paths)
    with Ingester(db_path, "local", progress, workers, batch=True, samples=_sampled_records(files)) as ingester:
        for name, reason in missing:
            ingester.result.fail(name, reason)
        real_folder = functools.lru_cache(maxsize=None)(os.path.realpath)  # each folder once, for this import only
        refs = [local_ref(path, real_folder) for path in files]
        known = bookkeeping.stored_file_etags(ingester.db, "", [ref.key for ref in refs])
        todo = [ref for ref in refs if known.get(ref.key, object()) != ref.etag]
        ingester.result.unchanged = len(refs) - len(todo)
        ingester.files_total = len(todo)
        ingester.report()
        parse = lambda group: ingester.parse_paths_async([ref.key for ref in group])  # noqa: E731
        for group, futures in bounded(groups_of(todo), parse, 2 * ingester.workers + 2):
            for ref, future in zip(group, futures):
                ingester.store(ref, future)
        return ingester.result
    return ingester.result  # a full disk stopped it


def import_demo(db_path, events: int, seed: int, end=None, progress: ProgressCallback | None = None,
                workers: int | None = None) -> SyncResult:
    """Fill the cache from the built-in demo generator, through the same pipeline as real files."""
    from trailstream.ingest import demo

    db = store.open_cache(db_path)
    try:
        real_files = bookkeeping.real_file_count(db.conn)
    finally:
        db.close()
    if real_files:
        raise DemoRefused(
            f"{db_path} already holds {real_files:,} real log file(s); demo data would mix with them. "
            "Use another --db for the demo."
        )
    generated = demo.generate_records(events=events, seed=seed, end=end)
    with Ingester(db_path, "demo", progress, workers, batch=True) as ingester:
        log_files = list(demo.iter_log_files(generated))
        ingester.files_total = len(log_files)
        for (key, data), future in bounded(log_files, lambda item: ingester.parse_async(item[1]), 2 * ingester.workers + 2):
            ingester.store(FileRef("demo", "demo", key, None, len(data)), future)
        return ingester.result
    return ingester.result  # a full disk stopped it


class DemoRefused(RuntimeError):
    """Demo data would be mixed into a cache of real events."""
