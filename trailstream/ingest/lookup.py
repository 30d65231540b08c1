"""Event history without a trail: CloudTrail's LookupEvents, region by region, newest first, paced and resumable.

Every account keeps 90 days of management events (and Insights events) readable with no trail at all. Each page's
records go through the same Ingester as log files (eventID idempotency, so a trail added later stores nothing
twice), and a watermark per account, region and category is saved after each page commits: an interrupted lookup,
or the next `watch` round, carries on from there.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone

import orjson
from pyrate_limiter import BucketFactory, Duration, InMemoryBucket, Limiter, MonotonicClock, Rate, RateItem

from trailstream.cache import watermarks
from trailstream.cache.bookkeeping import FileRef
from trailstream.cache.watermarks import Watermark
from trailstream.config import AwsAccess
from trailstream.ingest import aws, records
from trailstream.ingest.aws import SourceError
from trailstream.ingest.sync import Ingester, ProgressCallback, SyncResult
from trailstream.timefmt import iso_utc, parse_iso_utc

HISTORY = timedelta(days=90)  # how far back Event history goes
LATE_ARRIVAL = timedelta(minutes=20)  # an event shows in Event history up to ~15 minutes after it happened
REQUESTS_PER_SECOND = 2  # LookupEvents' quota per account and region
CATEGORIES = ("management", "insight")
SOURCE = "lookup"


class _PerRegionBuckets(BucketFactory):
    """One leaky bucket per account and region (LookupEvents' quota is counted there), made when first asked for."""

    def __init__(self, rate: Rate):
        self.clock, self.rate, self.buckets = MonotonicClock(), rate, {}

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, self.clock.now(), weight=weight)

    def get(self, item: RateItem) -> InMemoryBucket:
        if item.name not in self.buckets:
            self.buckets[item.name] = self.create(InMemoryBucket, [self.rate])
        return self.buckets[item.name]


@functools.cache
def pacer(requests_per_second: int) -> Limiter:
    """One limiter per process and rate, shared by every source and `watch` round (one leak thread, not one per run)."""
    return Limiter(_PerRegionBuckets(Rate(requests_per_second, Duration.SECOND)))


def plan_windows(mark: Watermark, lower: datetime, upper: datetime) -> list[tuple[datetime, datetime]]:
    """The spans still to read, newest first: an unfinished gap, then time newer and older than what was read."""
    windows = [(parse_iso_utc(mark.gap_from), parse_iso_utc(mark.gap_to))] if mark.gap_from else []
    if not mark.covered_from:
        return windows + [(lower, upper)]
    covered_from, covered_to = parse_iso_utc(mark.covered_from), parse_iso_utc(mark.covered_to)
    if lower > covered_to or upper < covered_from:
        return windows + [(lower, upper)]
    if upper > covered_to:
        windows.append((max(lower, covered_to - LATE_ARRIVAL), upper))
    if lower < covered_from:
        windows.append((lower, covered_from))
    return windows


def begin_window(mark: Watermark, start: datetime, end: datetime) -> Watermark:
    """Coverage grows to take in the window, which stays an open gap until its last page is stored."""
    start_text, end_text = iso_utc(start), iso_utc(end)
    if not mark.covered_from or start_text > mark.covered_to or end_text < mark.covered_from:
        covered = (start_text, end_text)
    else:
        covered = (min(mark.covered_from, start_text), max(mark.covered_to, end_text))
    return replace(mark, covered_from=covered[0], covered_to=covered[1], gap_from=start_text, gap_to=end_text)


def after_page(mark: Watermark, reached: datetime) -> Watermark:
    """Pages come newest first: everything newer than the oldest event of a stored page is read."""
    return replace(mark, gap_to=max(mark.gap_from, min(mark.gap_to, iso_utc(reached))))


def end_window(mark: Watermark) -> Watermark:
    """The window's last page is stored: no gap is left, and the next lookup starts from the coverage."""
    return replace(mark, gap_from=None, gap_to=None)


def lookup_span(since: date | None, until: date | None, now: datetime) -> tuple[datetime, datetime]:
    """since..until as UTC times, within the 90 days Event history keeps; until means to the end of that day."""
    lower = now - HISTORY
    if since:
        lower = max(lower, datetime.combine(since, time(), timezone.utc))
    upper = min(now, datetime.combine(until + timedelta(days=1), time(), timezone.utc)) if until else now
    if lower >= upper:
        raise ValueError(f"nothing to read between {iso_utc(lower)} and {iso_utc(upper)}: Event history keeps the "
                         "last 90 days; check --since and --until")
    return lower, upper


def lookup_events(db_path, access: AwsAccess, regions=None, since: date | None = None, until: date | None = None,
                  progress: ProgressCallback | None = None, requests_per_second: int = REQUESTS_PER_SECOND,
                  now: datetime | None = None) -> SyncResult:
    """Read Event history into the cache, region by region; a region that fails never loses what others stored."""
    with Ingester(db_path, SOURCE, progress, workers=1) as ingester:
        try:
            lower, upper = lookup_span(since, until, now or datetime.now(timezone.utc))
            session = aws.make_session(access, access.region or (regions[0] if regions else "us-east-1"))
            account = aws.fetch_account_id(session)
            chosen = choose_regions(session, list(regions or []), ingester.result)
        except (SourceError, ValueError) as exc:
            ingester.result.fail("Event history", str(exc))
            return ingester.result
        for region in chosen:
            try:
                _read_region(ingester, session, account, region, (lower, upper), requests_per_second)
            except SourceError as exc:
                ingester.result.fail(f"Event history in {region}", str(exc))
        return ingester.result
    return ingester.result  # a full disk stopped it


def choose_regions(session, requested: list[str], result: SyncResult) -> list[str]:
    """The requested regions that are enabled (others fail with a sentence), or every enabled region."""
    try:
        status = aws.fetch_region_status(session)
    except SourceError as exc:
        if requested:  # cannot check them; LookupEvents itself will say if one is unusable
            return requested
        raise SourceError(f"{exc}; name the regions to read instead (--region, or regions in the source)") from None
    if not requested:
        return sorted(region for region, state in status.items() if state != "not-opted-in")
    chosen = []
    for region in requested:
        if problem := aws.region_problem(status, region):
            result.fail(f"Event history in {region}", problem)
        else:
            chosen.append(region)
    return chosen


def _read_region(ingester: Ingester, session, account: str, region: str, span: tuple[datetime, datetime],
                 requests_per_second: int) -> None:
    """Both categories of one region through one pacer: the quota is per account and region."""
    client = aws.make_regional_client(session, "cloudtrail", region)
    limiter = pacer(requests_per_second)
    for category in CATEGORIES:
        mark = watermarks.query_watermark(ingester.db.conn, account, region, category)
        for start, end in plan_windows(mark, *span):
            mark = begin_window(mark, start, end)
            watermarks.save_watermark(ingester.db, mark)
            mark = _read_window(ingester, client, limiter, mark)


def _read_window(ingester: Ingester, client, limiter: Limiter, mark: Watermark) -> Watermark:
    """Page through one window newest first; the watermark moves after each page is committed."""
    start, end = parse_iso_utc(mark.gap_from), parse_iso_utc(mark.gap_to)
    token = None
    while True:
        limiter.try_acquire(f"{mark.account_id}/{mark.region}")
        events, token = aws.fetch_event_history_page(client, start, end, mark.category, token)
        if events:
            save_page(ingester, mark, events)
            mark = after_page(mark, min(event["EventTime"] for event in events))
            watermarks.save_watermark(ingester.db, mark)
        ingester.report(f"{mark.region} {mark.category}: reached {mark.gap_to[:10]}")
        if not token:
            break
    mark = end_window(mark)
    watermarks.save_watermark(ingester.db, mark)
    return mark


def save_page(ingester: Ingester, mark: Watermark, events: list[dict]) -> None:
    """Store one page's full records (`CloudTrailEvent`) as one file; unreadable ones are refused with a reason."""
    page = [parse_history_event(event) for event in events]
    first = events[0]
    key = (f"eventhistory/{mark.account_id}/{mark.region}/{mark.category}/"
           f"{iso_utc(first['EventTime'])}/{first.get('EventId', '')}")
    data = orjson.dumps({"Records": page})
    ingester.store(FileRef(SOURCE, "", key, None, len(data)), records.parse_log_file(data, ingester.compressor))


def parse_history_event(event: dict):
    """The CloudTrail record inside an Event history entry; text that is not JSON is passed on to be refused."""
    text = event.get("CloudTrailEvent")
    try:
        return orjson.loads(text) if isinstance(text, str) else text
    except orjson.JSONDecodeError:
        return f"CloudTrailEvent of {event.get('EventId', 'an event')} is not JSON"
