"""The Parquet lake: delivered log files become zstd Parquet under account=/region=/date= folders that Athena (or
DuckDB) reads with partition projection; one merged file per partition, idempotent on eventID per day.

Parsing is the cache's own (records.parse_log_file); the lake holds the `events` columns minus the lossless blob,
plus event time as epoch milliseconds and hour number, plus lineage (source key and the file's SHA-256).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from string import Template

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trailstream.cache import store
from trailstream.cache.rows import EVENT_COLUMNS
from trailstream.config import AwsAccess
from trailstream.ingest import aws, records, sync

# The one spelling of where a partition lives: the compactor fills it, the Athena DDL's projection template uses it.
PARTITION_TEMPLATE = "account=${account}/region=${region}/date=${date}"
PARTITION_KEYS = ("account", "region", "date")
UNKNOWN = "unknown"  # the partition of a record whose account or region is missing or not a real one
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")  # attacker text never becomes a path: anything else is UNKNOWN
_BLOB_COLUMNS = ("raw", "raw_codec", "record_hash")
FLAT_COLUMNS = tuple(name for name in EVENT_COLUMNS if name not in _BLOB_COLUMNS)
LAKE_SCHEMA = pa.schema(
    [(name, pa.int8() if name == "read_only" else pa.string()) for name in FLAT_COLUMNS]
    + [("event_time_ms", pa.int64()), ("event_hour", pa.int64()), ("source_key", pa.string()),
       ("source_sha256", pa.string())]
)
MAX_FILE_ROWS = 2_000_000  # a partition larger than this is written as several files of about this size
FLUSH_ROWS = 500_000  # parsed rows held before the touched partitions are merged and written
COMPRESSION = "zstd"
# Min/max kept only where rows are ordered (by time): other columns' statistics prune nothing in a day's file, and
# in a sparse partition's small file they were half its bytes.
STATISTICS_COLUMNS = ("event_time_ms", "event_hour")


class LakeError(ValueError):
    """The lake location cannot be used; the message says why, for a person."""


@dataclass
class CompactResult:
    """What one compaction did, with every failed file and its reason."""

    files: int = 0
    events: int = 0
    new_events: int = 0
    duplicates: int = 0
    rejected: int = 0
    partitions_written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"compact: {self.files:,} file(s), {self.events:,} event(s), {self.new_events:,} new, "
                f"{self.duplicates:,} duplicate(s), {self.rejected:,} record(s) refused, "
                f"{self.partitions_written:,} partition(s) written, {len(self.failures):,} failure(s)")


def open_lake(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The filesystem and base path of `s3://bucket/prefix` (pyarrow's S3 client: the default AWS credential chain,
    AWS_ENDPOINT_URL honoured) or a local folder."""
    location = os.fspath(location)
    if location.startswith("s3://"):
        try:
            return pafs.FileSystem.from_uri(location)
        except (pa.ArrowInvalid, OSError) as exc:
            raise LakeError(f"cannot open the lake at {location}: {exc}") from None
    if "://" in location:
        raise LakeError(f"the lake must be s3://BUCKET/PREFIX or a folder, not {location}")
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def partition_path(values: dict[str, str]) -> str:
    return Template(PARTITION_TEMPLATE).substitute(values)


class _NoBlob:
    """The lake keeps no lossless blob: the parser's compressor, doing nothing."""

    codec_id = 0

    def compress(self, data: bytes) -> bytes:
        return b""


def parse_lake_bytes(data: bytes) -> tuple[list[tuple] | None, str | None, int, str | None]:
    """A log file's rows (blob columns cut off), its SHA-256, the records refused, and why it failed.
    Plain tuples, no polars: this runs in forked workers, where polars' thread pool would deadlock."""
    try:
        try:
            parsed = records.parse_log_file(data, _NoBlob())
        except records.FileTooLargeToBuffer:
            parsed = records.parse_large_log_file(data, _NoBlob())
        rows = [row[: len(FLAT_COLUMNS)] for row in parsed.rows]
    except records.LogFileError as exc:
        return None, None, 0, str(exc)
    if parsed.kind != "records":
        return None, None, 0, None
    return rows, parsed.sha256, len(parsed.rejects), None


def parse_lake_file(path: str) -> tuple[list[tuple] | None, str | None, int, str | None]:
    """parse_lake_bytes of a local file, read as `import` reads it."""
    try:
        return parse_lake_bytes(sync.read_local_file(path))
    except records.LogFileError as exc:
        return None, None, 0, str(exc)
    except OSError as exc:
        return None, None, 0, f"cannot read the file: {exc.strerror or exc}"


def lake_frame(rows: list[tuple], source_keys: list[str], sha256s: list[str | None],
               since: str | None = None) -> pl.DataFrame:
    """Parsed `events` rows (blob columns cut off) and each row's source as lake rows with their time numbers,
    lineage and partition: one frame for many files (a frame per small file cost more than its rows)."""
    schema = {name: (pl.Int8 if name == "read_only" else pl.String) for name in FLAT_COLUMNS}
    frame = pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        source_key=pl.Series(source_keys, dtype=pl.String), source_sha256=pl.Series(sha256s, dtype=pl.String))
    if since:
        frame = frame.filter(pl.col("event_time") >= since)
    millis = pl.col("event_time").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="ms").dt.epoch("ms")
    return frame.with_columns(
        event_time_ms=millis,
        event_hour=millis // 3_600_000,
        account=pl.when(pl.col("account_id").str.contains(_ACCOUNT.pattern)).then("account_id").otherwise(pl.lit(UNKNOWN)),
        region=pl.when(pl.col("aws_region").str.contains(_REGION.pattern)).then("aws_region").otherwise(pl.lit(UNKNOWN)),
        date=pl.col("event_time").str.slice(0, 10),
    )


def _existing_files(fs: pafs.FileSystem, folder: str) -> list[str]:
    selector = pafs.FileSelector(folder, allow_not_found=True)
    return sorted(info.path for info in fs.get_file_info(selector)
                  if info.type == pafs.FileType.File and info.path.endswith(".parquet"))


def _merge_partition(fs: pafs.FileSystem, base: str, values: dict, rows: pl.DataFrame) -> tuple[int, bool]:
    """Merge new rows into one partition: events already there are kept as they are (first copy wins), the rest
    added, and the partition rewritten as few large files. Returns (new events, whether anything was written)."""
    folder = f"{base}/{partition_path(values)}"
    old_files = _existing_files(fs, folder)
    old = [pl.from_arrow(pq.read_table(path, filesystem=fs, schema=LAKE_SCHEMA)) for path in old_files]
    fresh = rows.select(LAKE_SCHEMA.names).unique("event_id", keep="first", maintain_order=True)
    if old:
        fresh = fresh.join(pl.concat([frame.select("event_id") for frame in old]), on="event_id", how="anti")
    if fresh.is_empty():
        return 0, False
    # Deduplicated again: an interrupted or concurrent earlier run may have left two files holding the same event.
    merged = pl.concat([*old, fresh]).unique("event_id", keep="first", maintain_order=True) if old else fresh
    merged = merged.sort("event_time_ms", "event_id")
    if isinstance(fs, pafs.LocalFileSystem):  # on S3 a folder is only a key prefix: no marker objects
        fs.create_dir(folder, recursive=True)
    for start in range(0, merged.height, MAX_FILE_ROWS):
        table = merged.slice(start, MAX_FILE_ROWS).to_arrow().cast(LAKE_SCHEMA)
        pq.write_table(table, f"{folder}/part-{uuid.uuid4().hex}.parquet", filesystem=fs, compression=COMPRESSION,
                       write_statistics=list(STATISTICS_COLUMNS), store_schema=False)
    for path in old_files:  # only after the merged files are whole: a crash leaves duplicates, never a loss
        fs.delete_file(path)
    return fresh.height, True


def save_lake_rows(fs: pafs.FileSystem, base: str, frame: pl.DataFrame, result: CompactResult) -> None:
    """Merge buffered rows into every partition they touch."""
    for key, rows in frame.partition_by(list(PARTITION_KEYS), as_dict=True, maintain_order=True).items():
        new, written = _merge_partition(fs, base, dict(zip(PARTITION_KEYS, key)), rows)
        result.new_events += new
        result.duplicates += rows.height - new
        result.partitions_written += int(written)


def _parsed_files(paths: list[Path], workers: int) -> Iterator[tuple[str, tuple]]:
    """(path, parse_lake_file result) per file, parsed in worker processes when there are several."""
    names = [str(path) for path in paths]
    if workers <= 1 or len(names) < 2:
        yield from ((name, parse_lake_file(name)) for name in names)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield from zip(names, pool.map(parse_lake_file, names, chunksize=8))


def _flush(fs: pafs.FileSystem, base: str, frame: pl.DataFrame, result: CompactResult) -> None:
    result.events += frame.height
    save_lake_rows(fs, base, frame, result)


def _compact(location: str | os.PathLike, parsed: Iterable[tuple[str, tuple]], since: str | None,
             result: CompactResult, progress: Callable[[int], None] | None) -> CompactResult:
    """Merge (source key, parse result) pairs into the lake a flush at a time; failures are kept with their reason."""
    fs, base = open_lake(location)
    rows, keys, hashes = [], [], []
    for name, (found, sha256, rejected, error) in parsed:
        result.files += 1
        result.rejected += rejected
        if error:
            result.failures.append((name, error))
        elif found:
            rows += found
            keys += [name] * len(found)
            hashes += [sha256] * len(found)
        if len(rows) >= FLUSH_ROWS:
            _flush(fs, base, lake_frame(rows, keys, hashes, since), result)
            rows, keys, hashes = [], [], []
        if progress:
            progress(result.files)
    if rows:
        _flush(fs, base, lake_frame(rows, keys, hashes, since), result)
    return result


def compact_paths(location: str | os.PathLike, paths: Iterable[str | os.PathLike], since: str | None = None,
                  workers: int | None = None, progress: Callable[[int], None] | None = None) -> CompactResult:
    """Compact local log files (as `import` finds them) into the lake; one bad file never blocks the others."""
    open_lake(location)  # a bad location is refused before any file is read
    files, missing = sync.find_local_files(paths)
    parsed = ((str(Path(name).resolve()), found) for name, found in _parsed_files(files, workers or os.cpu_count() or 1))
    return _compact(location, parsed, since, CompactResult(failures=list(missing)), progress)


_SOURCE_KEY = "CASE WHEN f.bucket != '' THEN 's3://' || f.bucket || '/' || f.key ELSE f.key END"


def compact_cache(location: str | os.PathLike, db_path: str | os.PathLike, after_rowid: int) -> tuple[CompactResult, int]:
    """The events the cache stored after `after_rowid` (what the latest syncs brought, from any source) into the lake;
    returns the result and the new mark. The source SHA-256 is not known here (the cache keeps no file digest)."""
    fs, base = open_lake(location)
    result, mark = CompactResult(), after_rowid
    columns = ", ".join(f"e.{name}" for name in FLAT_COLUMNS)
    sql = (f"SELECT e.rowid, {columns}, {_SOURCE_KEY} FROM events e LEFT JOIN files f ON f.id = e.file_id "
           "WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?")
    with closing(store.open_cache_readonly(db_path)) as conn:
        if (conn.execute("SELECT max(rowid) FROM events").fetchone()[0] or 0) < mark:
            mark = 0  # a rebuilt cache numbers its events from 1 again; the lake skips what it already holds
        while rows := conn.execute(sql, (mark, FLUSH_ROWS)).fetchall():
            keys = [row[-1] for row in rows]
            _flush(fs, base, lake_frame([row[1:-1] for row in rows], keys, [None] * len(rows)), result)
            result.files += len(set(keys))
            mark = rows[-1][0]
    return result, mark


def _fetched(s3, bucket: str, keys: list[str]) -> Iterator[tuple[str, tuple]]:
    for key in keys:
        try:
            data = aws.fetch_object(s3, bucket, key)[0]
        except aws.SourceError as exc:
            yield f"s3://{bucket}/{key}", (None, None, 0, str(exc))
            continue
        yield f"s3://{bucket}/{key}", parse_lake_bytes(data)


def compact_s3(location: str, source: str, since: date, access: AwsAccess = AwsAccess(),
               progress: Callable[[int], None] | None = None) -> CompactResult:
    """Compact a trail bucket's log files delivered on or after `since` (s3://BUCKET[/PREFIX], walked as `backfill`
    walks it) straight from S3, for running where the trail bucket is; `since` picks files, never events."""
    open_lake(location)
    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    result = CompactResult()
    try:
        s3 = aws.make_client(aws.make_session(access), "s3")
        keys = [listed.key for log_prefix in aws.find_log_prefixes(s3, bucket, prefix)
                for listed in aws.list_log_objects(s3, bucket, log_prefix.prefix, since, None)]
    except aws.SourceError as exc:
        result.failures.append((source, str(exc)))
        return result
    if not keys:
        result.failures.append((source, "no CloudTrail log files found on or after that day (expected "
                                        "PREFIX/AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/): check the bucket and prefix"))
        return result
    # Every event of the files read is kept, however old: a late delivery's events go to their own day's partition.
    return _compact(location, _fetched(s3, bucket, keys), None, result, progress)
