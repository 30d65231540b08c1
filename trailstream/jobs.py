"""What a sync is and what follows it: every configured source in order, then the one post-sync step
(alert rules, then the scheduled reports that are due), shared by the Sync button, the CLI and `watch`."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from trailstream.cache import bookkeeping, store
from trailstream.ingest import sync
from trailstream.config import (AwsAccess, AwsSourceSettings, LocalSource, LookupSource, S3Source, Settings, Source,
                                SqsSource)
from trailstream.ingest.sync import ProgressCallback, SyncResult
from trailstream.notify import alerts, mailer, saved

if TYPE_CHECKING:
    from trailstream.notify import reports


class SyncRefused(SyncResult):
    """A source not synced because another sync holds the cache; its failure says so."""


def refused(results: list[SyncResult]) -> bool:
    """True when another sync held the cache: that sync runs the post-sync step on what it stores, and ours beside
    its open write transaction would only meet a locked database."""
    return any(isinstance(result, SyncRefused) for result in results)


def run_source(source: Source, db_path: str | os.PathLike, progress: ProgressCallback | None = None,
               settings: Settings | None = None, listen: float | None = None,
               on_early: Callable[[], None] | None = None) -> SyncResult:
    """Sync one source; any error becomes a failure with a readable reason in the result, never an exception.
    A queue is long-polled for `listen` seconds when given, with `on_early` after each commit of early events."""
    try:
        if isinstance(source, LocalSource):
            path = settings.resolve(source.path) if settings else source.path
            result = sync.import_paths(db_path, [path], progress)
        elif isinstance(source, SqsSource):
            from trailstream.ingest import aws_sync

            result = aws_sync.sync_queue(db_path, source.queue, source.buckets, source.access, progress=progress,
                                         listen=listen, on_early=on_early)
        elif isinstance(source, S3Source):
            from trailstream.ingest import aws_sync

            result = aws_sync.backfill(
                db_path, source.bucket, prefix=source.prefix, since=source.since or None, until=source.until or None,
                accounts=source.accounts or None, regions=source.regions or None, access=source.access,
                progress=progress,
            )
        elif isinstance(source, LookupSource):
            from trailstream.ingest import lookup

            since = date.fromisoformat(source.since) if source.since else None
            result = lookup.lookup_events(db_path, source.access, source.regions or None, since, progress=progress)
        else:  # pragma: no cover - load_settings only builds the kinds above
            raise TypeError(f"unknown source kind {source!r}")
    except store.SyncAlreadyRunning as exc:
        result = SyncRefused(source.kind)
        result.fail(source.name, str(exc))
    except (store.CacheUnreadable, sync.CacheFull) as exc:
        result = SyncResult(source.kind)
        result.fail(source.name, str(exc))
    except Exception as exc:  # one broken source must not stop the others; the reason is shown to the user
        result = SyncResult(source.kind)
        result.fail(source.name, f"{type(exc).__name__}: {exc}")
    result.source = source.name
    return result


def holds_only_demo_data(db_path: str | os.PathLike) -> bool:
    """True when the cache exists and every file in it came from the demo generator."""
    if not os.path.exists(db_path):
        return False
    try:
        with closing(store.open_cache_readonly(db_path)) as conn:
            return bookkeeping.holds_only_demo_data(conn)
    except sqlite3.DatabaseError:
        return False


def discard_demo_cache(db_path: str | os.PathLike) -> bool:
    """Empty a cache that holds only demo data, so real events never mix with generated ones; True if it did.
    Alert rules, saved searches and the audit log made while trying the demo are kept."""
    if not holds_only_demo_data(db_path):
        return False
    with store.sync_lock(db_path), closing(store.open_cache(db_path)) as db:
        store.discard_demo_data(db)
    return True


def run_configured_sync(settings: Settings, db_path: str | os.PathLike | None = None,
                        progress: ProgressCallback | None = None,
                        on_source: Callable[[int, Source], None] | None = None) -> list[SyncResult]:
    """Sync every configured source into the cache, one after the other; one result per source.

    A cache holding only demo data is replaced by a fresh one first: generated events never mix with real ones.
    """
    db_path = db_path or settings.db_path()
    if settings.sources:
        discard_demo_cache(db_path)
    results = []
    for index, source in enumerate(settings.sources):
        if on_source:
            on_source(index, source)
        results.append(run_source(source, db_path, progress, settings))
    return results


def retry_failed_files(settings: Settings, db_path: str | os.PathLike | None = None,
                       progress: ProgressCallback | None = None) -> SyncResult:
    """Fetch again every file recorded as failed, with the credentials of the configured AWS source (if any)."""
    from trailstream.ingest import aws_sync

    db_path = db_path or settings.db_path()
    access = next((source.access for source in settings.sources if isinstance(source, AwsSourceSettings)), AwsAccess())
    try:
        return aws_sync.retry_failed(db_path, access, progress=progress)
    except Exception as exc:  # shown to the user as a failed retry, with the reason
        result = SyncResult("retry")
        result.fail("retry", f"{type(exc).__name__}: {exc}")
        return result


@dataclass
class RebuildOutcome:
    """A rebuild: the re-read (one sync result) and the stored files no source can give again, with why."""

    result: SyncResult
    not_rereadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def missing(self) -> list[tuple[str, str]]:
        return self.result.failures + self.not_rereadable

    def summary(self) -> str:
        return (f"rebuild: {self.result.ok} file(s) re-read with {self.result.new_events:,} events; "
                f"{len(self.missing)} could not be re-read")


def rebuild_cache(settings: Settings, db_path: str | os.PathLike, target: str | os.PathLike,
                  progress: ProgressCallback | None = None) -> RebuildOutcome:
    """Re-read every file the cache stored from its source (local path, S3 key with the configured AWS source's
    credentials) into a fresh cache at `target`, with what people made in the app (saved searches, alert rules, the
    audit log): the way back from a damaged cache that can still list its files."""
    from trailstream.cache import check

    with closing(store.open_cache_readonly(db_path)) as conn, closing(store.open_cache(target)) as db:
        refs, others = check.query_stored_files(conn)
        others += check.save_user_tables(db, conn)
        check.save_files_to_reread(db, refs)
    return RebuildOutcome(retry_failed_files(settings, target, progress), others)


@dataclass
class AfterSyncOutcome:
    """What the post-sync step did: the alert run and each due report's delivery, as lines a person reads."""

    alerts: alerts.AlertRunResult
    reports: list[reports.ReportDelivery] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sigma: list[str] = field(default_factory=list)  # the Sigma rules' run, first: their findings feed the alerts
    findings: list[str] = field(default_factory=list)  # every detector's findings stored for pages, after Sigma

    @property
    def succeeded(self) -> bool:
        return self.alerts.succeeded and all(delivery.sent for delivery in self.reports) and not self.problems

    def lines(self) -> list[str]:
        return [*self.sigma, *self.findings, self.alerts.summary(), *(f"report {d.name!r}: {d.message}" for d in self.reports),
                *(f"reports: {problem}" for problem in self.problems)]

    def summary(self) -> str:
        return "\n".join(self.lines())


def after_sync(db_path: str | os.PathLike, settings, now: datetime | None = None) -> AfterSyncOutcome:
    """The one post-sync step: the Sigma rules, the stored findings and then the alert rules on what arrived, then
    the due reports."""
    sigma_lines = run_sigma_rules(db_path, settings)
    findings_lines = store_findings(db_path, settings)
    outcome = AfterSyncOutcome(alerts.run_alerts(db_path, settings, now), sigma=sigma_lines, findings=findings_lines)
    try:
        smtp = mailer.smtp_settings_from(settings.section("smtp") if hasattr(settings, "section") else
                                         alerts.section(settings, "smtp"))
    except mailer.MailSettingsError as exc:
        smtp = None
        outcome.problems.append(str(exc))
    outcome.reports = send_due_reports(db_path, smtp, now, settings)
    return outcome


def send_due_reports(db_path: str | os.PathLike, smtp, now: datetime | None, settings) -> list[reports.ReportDelivery]:
    """Each due report's delivery; the reports module (and the query backends it renders with, a tenth of a second
    to load) is loaded only when a report is due, not on every post-sync step."""
    if not os.path.exists(db_path):
        return []
    with closing(store.open_cache_readonly(db_path)) as conn:
        if not saved.due_reports(conn, now):
            return []
    from trailstream.notify import reports

    return reports.send_scheduled_reports(db_path, smtp, now, settings)


def run_sigma_rules(db_path: str | os.PathLike, settings) -> list[str]:
    """Load the configured Sigma rules into the cache and run them over the events stored since their watermarks;
    problems (a missing folder, a broken settings table, a rule that failed) come back as lines, never raised."""
    from trailstream.analytics import sigma
    from trailstream.config import SettingsError

    if not os.path.exists(db_path):
        return []
    try:
        sigma_config = sigma.sigma_settings(settings)
    except (sigma.SigmaSettingsError, SettingsError) as exc:
        return [f"sigma: rules not run: {exc}"]
    ruleset = sigma.configured_rules(sigma_config)
    with store.file_lock(db_path, "sigma") as acquired:
        if not acquired:
            return ["sigma: another run is checking the rules right now; this one leaves it to that run"]
        with closing(store.open_cache(db_path)) as db:
            sigma.save_rules(db, ruleset, sigma_config)
            run = sigma.evaluate_new_events(db)
    return [f"sigma: {problem}" for problem in ruleset.problems] + [run.summary()]


def store_findings(db_path: str | os.PathLike, settings) -> list[str]:
    """Run every detector over the cache and store the findings pages and `findings` read (unless the stored ones
    are current); a problem comes back as a line, never raised: pages then compute the findings themselves."""
    from trailstream.analytics import detections
    from trailstream.config import SettingsError
    from trailstream.notify.alerts.settings import detection_settings

    if not os.path.exists(db_path):
        return []
    try:
        chosen = detection_settings(settings)
    except (ValueError, SettingsError) as exc:
        return [f"findings: not stored: the detection settings cannot be used ({exc})"]
    with store.file_lock(db_path, "findings") as acquired:
        if not acquired:
            return ["findings: another run is storing the findings right now; this one leaves it to that run"]
        try:
            with closing(store.open_cache(db_path)) as db:
                return [detections.save_detected_findings(db, chosen)]
        except Exception as exc:  # the alerts and reports still run; pages compute the findings until the next run
            return [f"findings: not stored ({type(exc).__name__}: {exc}); pages compute them until the next sync"]


def compact_new_events(db_path, location: str) -> str:
    """Write to the lake what the cache stored since the last call (the mark is kept beside the cache, per lake); a
    summary line, or a sentence saying why the lake was not written (the cache and the alerts carry on)."""
    import orjson

    from trailstream.ingest import lake

    mark_file = Path(db_path).with_name(Path(db_path).name + ".lake-mark.json")
    marks = orjson.loads(mark_file.read_bytes()) if mark_file.exists() else {}
    try:
        result, marks[str(location)] = lake.compact_cache(location, db_path, int(marks.get(str(location), 0)))
    except (lake.LakeError, OSError) as exc:
        return f"compact: the lake was not written ({exc}); the next round tries again"
    mark_file.write_bytes(orjson.dumps(marks))
    return result.summary()


def watch(db_path, settings, every: timedelta, iterations: int | None = None,
          report: Callable[[str], None] = print, compact_to: str | None = None) -> AfterSyncOutcome | None:
    """Sync every configured source, then the post-sync step, every `every` (forever unless iterations is given);
    between rounds the SQS queues are long-polled instead of sleeping, so early events alert within seconds. With
    `compact_to`, each round also writes what the syncs brought to the Parquet lake."""
    last = None
    done = 0
    queues = [source for source in getattr(settings, "sources", None) or [] if isinstance(source, SqsSource)]
    while iterations is None or done < iterations:
        started = time.monotonic()
        results = run_configured_sync(settings, db_path) if getattr(settings, "sources", None) else []
        for sync_result in results:
            report(sync_result.summary())
        if not results:
            report("sync: no sources are configured; add one on the app's Sources & settings page")
        if compact_to:
            report(compact_new_events(db_path, compact_to))
        if refused(results):  # the sync holding the cache runs the post-sync step itself when it finishes
            report("alerts: left to the sync that holds the cache; it checks them when it finishes")
        else:
            last = after_sync(db_path, settings)
            for line in last.lines():
                report(line)
        done += 1
        if iterations is None or done < iterations:
            rest = max(0.0, every.total_seconds() - (time.monotonic() - started))
            if queues:
                listen_to_queues(db_path, settings, queues, rest, report)
            else:
                time.sleep(rest)
    return last


def listen_to_queues(db_path, settings, queues: list[SqsSource], seconds: float,
                     report: Callable[[str], None] = print) -> None:
    """Long-poll the queues for `seconds` (shared between them), running the post-sync step as soon as early
    (EventBridge) events are committed: alerts go out seconds after the call, not at the next round."""
    def alert_now() -> None:
        for line in after_sync(db_path, settings).lines():
            report(line)

    deadline = time.monotonic() + seconds
    for index, source in enumerate(queues):
        share = (deadline - time.monotonic()) / (len(queues) - index)
        if share < 1:
            break
        result = run_source(source, db_path, settings=settings, listen=share, on_early=alert_now)
        report(result.summary())
    time.sleep(max(0.0, deadline - time.monotonic()))  # a queue that failed at once must not make a busy loop
