"""Running SQL on Athena: start, poll until done, read every page of results, and keep each result locally (keyed by
the statement, which names its period) so moving between pages does not scan the lake again."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from trailstream.config import BackendSettings
from trailstream.ingest import aws

PRICE_PER_TB = 5.0  # USD per TB scanned (Athena's SQL engine, most regions), billed at least 10 MB a query
MIN_BILLED_BYTES = 10 * 1024 * 1024
_TYPES = {"bigint": pl.Int64, "integer": pl.Int64, "smallint": pl.Int64, "tinyint": pl.Int64,
          "double": pl.Float64, "real": pl.Float64, "boolean": pl.Boolean}
_BOOLEANS = {"true": "1", "false": "0"}
RESULTS_FOLDER = "athena-results"  # beside the cache file
KEEP_RESULTS_DAYS = 7  # a kept result older than this is dropped (the lake has grown since)
KEEP_RESULTS_BYTES = 256 * 1024 * 1024  # and past this size, the oldest results go first


@dataclass
class AthenaResult:
    """What one statement returned, what it scanned, and whether it came from the local cache."""

    columns: list[tuple[str, str]]
    rows: list[list[str | None]]
    scanned_bytes: int = 0
    cached: bool = False

    def frame(self) -> pl.DataFrame:
        """The rows typed as Athena typed them (Athena's API gives text)."""
        names = [name for name, _ in self.columns]
        frame = pl.DataFrame(self.rows, schema={name: pl.String for name in names}, orient="row")
        typed = [pl.col(name).replace(_BOOLEANS).cast(pl.Int8).cast(pl.Boolean) if kind == "boolean"
                 else pl.col(name).cast(_TYPES[kind]) for name, kind in self.columns if kind in _TYPES]
        return frame.with_columns(typed) if typed else frame


def _without_header(columns: list[tuple[str, str]], rows: list[list]) -> list[list]:
    """A SELECT's first row repeats the column names: the rows after it."""
    return rows[1:] if rows and rows[0] == [name for name, _ in columns] else rows


def wait_for_query(athena, execution_id: str, timeout: float, pause: Callable[[float], None]) -> int:
    """Poll until the query ends; its bytes scanned, or a SourceError saying why it did not succeed."""
    waited, delay = 0.0, 0.25
    while True:
        state, reason, scanned = aws.fetch_athena_state(athena, execution_id)
        if state == "SUCCEEDED":
            return scanned
        if state == "FAILED":
            raise aws.SourceError(f"Athena could not run the query: {reason or 'no reason given'}")
        if state == "CANCELLED":
            raise aws.SourceError("the Athena query was cancelled (from the console, or by the workgroup's "
                                  f"data-scanned limit): {reason or 'no reason given'}")
        if waited >= timeout:
            raise aws.SourceError(f"the Athena query was still {state.lower()} after {timeout:.0f} s: "
                                  "try a shorter period, or look at the workgroup's queue")
        pause(delay)
        waited, delay = waited + delay, min(delay * 2, 5.0)


@dataclass
class AthenaRunner:
    """Runs statements for one [backend], counting what they scanned; results kept under cache_dir when given."""

    settings: BackendSettings
    cache_dir: Path | None = None
    timeout: float = 300.0
    pause: Callable[[float], None] = time.sleep
    scanned_bytes: int = 0
    _client: object = field(default=None, repr=False)

    @property
    def client(self):
        if self._client is None:
            self._client = aws.make_client(aws.make_session(self.settings.access), "athena")
        return self._client

    def _cached(self, sql: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{hashlib.sha256(sql.encode()).hexdigest()}.json"

    def run(self, sql: str) -> AthenaResult:
        """One statement's result: from the local cache when this exact statement ran before."""
        cached = self._cached(sql)
        if cached is not None and cached.exists():
            return AthenaResult(**orjson.loads(cached.read_bytes()), cached=True)
        s = self.settings
        execution_id = aws.start_athena_query(self.client, sql, s.workgroup, s.database, s.output_location)
        scanned = wait_for_query(self.client, execution_id, self.timeout, self.pause)
        columns, rows = aws.fetch_athena_rows(self.client, execution_id)
        result = AthenaResult([tuple(c) for c in columns], _without_header(columns, rows), scanned)
        self.scanned_bytes += scanned
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(orjson.dumps({"columns": result.columns, "rows": result.rows,
                                             "scanned_bytes": scanned}))
            prune_results(cached.parent)
        return result

    def frame(self, sql: str) -> pl.DataFrame:
        return self.run(sql).frame()

    def cost_note(self) -> str:
        """The visible note on a page: what its queries scanned and about what that cost."""
        billed = max(self.scanned_bytes, MIN_BILLED_BYTES) if self.scanned_bytes else 0
        return f"scanned {self.scanned_bytes / 1e9:,.2f} GB, ≈ ${billed / 1e12 * PRICE_PER_TB:,.4f}"


def results_folder(db_path) -> Path:
    """Where the app and the report runner keep Athena results: beside the cache file."""
    return Path(db_path).with_name(RESULTS_FOLDER)


def prune_results(folder: Path, now: float | None = None, days: float = KEEP_RESULTS_DAYS,
                  max_bytes: int = KEEP_RESULTS_BYTES) -> int:
    """Keep the result folder bounded: drop results older than `days`, then the oldest until it holds at most
    `max_bytes`; returns how many went. A file another process removed first is simply gone."""
    kept = []
    for path in folder.glob("*.json"):
        try:
            found = path.stat()
        except FileNotFoundError:
            continue
        kept.append((found.st_mtime, found.st_size, path))
    kept.sort(key=lambda item: item[0], reverse=True)  # newest first
    cutoff, total, dropped = (now if now is not None else time.time()) - days * 86_400, 0, 0
    for modified, size, path in kept:
        total += size
        if modified < cutoff or total > max_bytes:
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


def fetch_scan_limit(runner: AthenaRunner) -> int | None:
    """The workgroup's per-query bytes-scanned limit (None: unlimited); a missing workgroup is a SourceError."""
    workgroup = runner.settings.workgroup
    found = aws.call(runner.client, "get_work_group", f"reading Athena workgroup {workgroup}", WorkGroup=workgroup)
    if not found.get("WorkGroup"):
        raise aws.SourceError(f"Athena workgroup {workgroup} was not found: check [backend] workgroup and region "
                              "on Sources & settings")
    limit = found["WorkGroup"].get("Configuration", {}).get("BytesScannedCutoffPerQuery")
    return int(limit) if limit else None


def scan_limit_note(limit: int | None) -> str:
    """What the workgroup allows one query to scan, for the page's note."""
    if limit is None:
        return "the workgroup sets no per-query scan limit (set one in Athena to cap what a page can cost)"
    return f"the workgroup stops any query past {limit / 1e9:,.2f} GB (≈ ${limit / 1e12 * PRICE_PER_TB:,.2f})"


def check_connection(settings: BackendSettings) -> str:
    """Reach the workgroup and run `SELECT 1` there now (never from the cache): a sentence saying what worked."""
    runner = AthenaRunner(settings, timeout=60.0)
    limit = fetch_scan_limit(runner)
    runner.run("SELECT 1")
    return f"Athena workgroup {settings.workgroup} ran a test query; {scan_limit_note(limit)}."


def run_query(settings: BackendSettings, sql: str) -> AthenaResult:
    """Run one statement now (DDL from `athena-ddl --apply`), never from the cache."""
    return AthenaRunner(settings).run(sql)
