"""Run every configured source once, in order: what the sidebar Sync button and `python -m trailstream sync` share."""

from __future__ import annotations

import os
from collections.abc import Callable

from trailstream import store, sync
from trailstream.config import LocalSource, S3Source, Settings, Source, SqsSource
from trailstream.sync import ProgressCallback, SyncResult


def run_source(source: Source, db_path: str | os.PathLike, progress: ProgressCallback | None = None,
               settings: Settings | None = None) -> SyncResult:
    """Sync one source; any error becomes a failure with a readable reason in the result, never an exception."""
    try:
        if isinstance(source, LocalSource):
            path = settings.resolve(source.path) if settings else source.path
            result = sync.import_paths(db_path, [path], progress)
        elif isinstance(source, SqsSource):
            from trailstream import aws_sync

            result = aws_sync.sync_queue(
                db_path, source.queue, buckets=source.buckets, region=source.region or None,
                profile=source.profile or None, role_arn=source.role_arn or None, progress=progress,
            )
        elif isinstance(source, S3Source):
            from trailstream import aws_sync

            result = aws_sync.backfill(
                db_path, source.bucket, prefix=source.prefix, since=source.since or None, until=source.until or None,
                accounts=source.accounts or None, regions=source.regions or None, region=source.region or None,
                profile=source.profile or None, role_arn=source.role_arn or None, progress=progress,
            )
        else:  # pragma: no cover - load_settings only builds the kinds above
            raise TypeError(f"unknown source kind {source!r}")
    except (store.SyncAlreadyRunning, store.CacheUnreadable) as exc:
        result = SyncResult(source.kind)
        result.fail(source.name, str(exc))
    except Exception as exc:  # one broken source must not stop the others; the reason is shown to the user
        result = SyncResult(source.kind)
        result.fail(source.name, f"{type(exc).__name__}: {exc}")
    result.source = source.name
    return result


def run_configured_sync(settings: Settings, db_path: str | os.PathLike | None = None,
                        progress: ProgressCallback | None = None,
                        on_source: Callable[[int, Source], None] | None = None) -> list[SyncResult]:
    """Sync every configured source into the cache, one after the other; one result per source."""
    db_path = db_path or settings.db_path()
    results = []
    for index, source in enumerate(settings.sources):
        if on_source:
            on_source(index, source)
        results.append(run_source(source, db_path, progress, settings))
    return results
