"""Pages benchmark: every page's data functions (queries, transforms, chart specs) on a 1,000,000-event demo cache.

Run on demand: `python benchmarks/pages.py [--events 1000000] [--reuse] [--db PATH] [--repeat 3]`. Builds
benchmarks/data/pages-1m.db from trailstream.ingest.demo (250,000-event slices through the real import pipeline, so
memory stays flat; `--reuse` keeps an existing cache, migrating it), then times each page: its first render on a
fresh connection with the default period (the 7 days before the newest event), and three filter changes (one
account, the last 24 hours, 30 days).
Prints a table with the 1.5 s first-render and 0.5 s filter-change targets beside.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from benchmarks.detections import DATA, END, build_cache, event_count  # noqa: E402  (the same demo cache)
from trailstream import timefmt
from trailstream import charts, queries, store, transforms  # noqa: E402
from trailstream.filters import EventFilter, iso_utc  # noqa: E402
from trailstream.analytics.queries import SearchQuery  # noqa: E402
from trailstream.cache import bookkeeping

FIRST_RENDER_TARGET = 1.5
FILTER_CHANGE_TARGET = 0.5


def default_path(events: int) -> Path:
    return DATA / ("pages-1m.db" if events == 1_000_000 else f"pages-{events // 1000}k.db")


# --- What each page loads (mirrors pages/*.py: queries, transforms, and the chart specs Streamlit serialises) ---


class Inputs:
    """Realistic page inputs taken from the cache itself: a busy principal, a resource ID, a search."""

    def __init__(self, conn: sqlite3.Connection, event_filter: EventFilter):
        principals = queries.query_top_principals(conn, event_filter, limit=20)
        people = principals.filter(pl.col("user_type") == "IAMUser")
        self.busiest = principals.item(0, "principal")
        self.person = people.item(0, "principal") if people.height else self.busiest
        rules = transforms.security_group_rules(queries.query_use_case_events(conn, event_filter, "network"))
        self.group_id = rules.item(0, "group_id") if rules.height else "sg-0"
        instances = transforms.instance_changes(queries.query_use_case_events(conn, event_filter, "instances"))
        self.instance_id = instances.drop_nulls("instance_id").item(0, "instance_id") if instances.height else "i-0"


def _specs(*built) -> None:
    for chart in built:
        chart.to_dict()


def sidebar(conn, event_filter, inputs) -> None:
    queries.query_filter_options(conn)
    queries.query_cache_summary(conn)
    bookkeeping.query_sync_runs(conn, 1)


def overview(conn, event_filter, inputs) -> None:
    totals = queries.query_overview_totals(conn, event_filter)
    timeline = queries.query_event_timeline(conn, event_filter, "event_source")
    queries.query_top_event_names(conn, event_filter)
    queries.query_top_principals(conn, event_filter)
    queries.query_events(conn, event_filter, limit=1000)
    _specs(charts.event_timeline_chart(timeline), charts.failure_share_chart(totals))


def use_case_page(key: str, *tables: Callable) -> Callable:
    def page(conn, event_filter, inputs) -> None:
        events = queries.query_use_case_events(conn, event_filter, key)
        for table in tables:
            table(events)
        timeline = queries.query_use_case_timeline(conn, event_filter, key)
        _specs(charts.timeline_chart(timeline, "event_name"))

    page.__name__ = key
    return page


def rare_errors(conn, event_filter, inputs) -> None:
    counts = queries.query_error_counts(conn, event_filter)
    ranked = transforms.rank_rare_errors(counts, queries.query_error_first_seen(conn, event_filter),
                                         datetime.fromisoformat(event_filter.start) if event_filter.start else None)
    if ranked.height:
        top = ranked.row(0, named=True)
        queries.query_error_events(conn, event_filter, top["error_code"], top["event_source"], top["event_name"])
    _specs(charts.rare_errors_chart(ranked))


def search_by_name(conn, event_filter, inputs) -> None:
    queries.query_search(conn, event_filter, SearchQuery(event_name="AuthorizeSecurityGroupIngress"), 1000)


def search_by_user(conn, event_filter, inputs) -> None:
    queries.query_search(conn, event_filter, SearchQuery(user_name=inputs.person), 1000)


def search_free_text(conn, event_filter, inputs) -> None:
    queries.query_search(conn, event_filter, SearchQuery(text=inputs.group_id), 1000)


def search_common_words(conn, event_filter, inputs) -> None:
    queries.query_search(conn, event_filter, SearchQuery(text="us-east-1"), 1000)


def search_no_match(conn, event_filter, inputs) -> None:
    queries.query_search(conn, event_filter, SearchQuery(text="no-such-thing-anywhere"), 1000)


def principal_page(which: str) -> Callable:
    def page(conn, event_filter, inputs) -> None:
        principal = getattr(inputs, which)
        queries.query_principals(conn, event_filter)
        activity = queries.query_principal_activity(conn, event_filter, principal)
        for origin in queries.PRINCIPAL_ORIGINS:
            queries.query_principal_origins(conn, event_filter, principal, origin)
        transforms.principal_summary(activity)
        for column in ("event_name", "aws_region"):
            transforms.principal_breakdown(activity, column)
        queries.query_principal_events(conn, event_filter, principal)
        _specs(charts.timeline_chart(transforms.principal_timeline(activity), "event_name"))

    page.__name__ = f"principal ({which})"
    return page


def resource_page(which: str) -> Callable:
    def page(conn, event_filter, inputs) -> None:
        history = queries.query_resource_history(conn, event_filter, getattr(inputs, which))
        points = history.select("event_time", "event_name", "principal")
        _specs(charts.quick_chart(points, "event_time", color="event_name", kind="point"))

    page.__name__ = f"resource ({which})"
    return page


def sync_health(conn, event_filter, inputs) -> None:
    queries.query_cache_summary(conn)
    bookkeeping.query_sync_runs(conn)
    health = transforms.ingestion_health(bookkeeping.query_delivered_files(conn), now=END)
    bookkeeping.query_files(conn, ("failed",))
    bookkeeping.query_rejected_records(conn)
    _specs(charts.delivery_silence_chart(health))


# Pages whose data does not depend on the sidebar filters: a filter change reuses their cached data.
UNFILTERED = {"sidebar (cached per sync)", "Sync history & health"}

PAGES: dict[str, Callable] = {
    "sidebar (cached per sync)": sidebar,
    "Overview": overview,
    "Network & security groups": use_case_page("network", transforms.network_changes, transforms.security_group_rules),
    "EC2 instances": use_case_page("instances", transforms.instance_changes),
    "Elastic IPs": use_case_page("elastic_ips", transforms.elastic_ip_changes),
    "IAM": use_case_page("iam", transforms.iam_changes),
    "Rare errors": rare_errors,
    "Search: event name": search_by_name,
    "Search: user name": search_by_user,
    "Search: free text (a group ID)": search_free_text,
    "Search: free text, common words": search_common_words,
    "Search: free text, no match": search_no_match,
    "Principal: busiest": principal_page("busiest"),
    "Principal: a person": principal_page("person"),
    "Resource: security group": resource_page("group_id"),
    "Resource: instance": resource_page("instance_id"),
    "Sync history & health": sync_health,
}


def filters(conn: sqlite3.Connection) -> dict[str, EventFilter]:
    """The default period (7 days before the newest event) and the filter changes a user makes from it."""
    newest = datetime.strptime(queries.query_cache_summary(conn)["last_event"], timefmt.TIME_FORMAT)
    newest = newest.replace(tzinfo=timezone.utc) + timedelta(seconds=1)
    busiest_account = queries.query_account_region_counts(conn, EventFilter()).item(0, "account_id")
    week = EventFilter(start=iso_utc(newest - timedelta(days=7)), end=iso_utc(newest))
    return {
        "first render (7 days)": week,
        "one account": EventFilter(start=week.start, end=week.end, accounts=(busiest_account,)),
        "last 24 hours": EventFilter(start=iso_utc(newest - timedelta(hours=24)), end=week.end),
        "30 days": EventFilter(start=iso_utc(newest - timedelta(days=30)), end=week.end),
    }


def timed(page: Callable, conn, event_filter, inputs) -> float:
    started = time.perf_counter()
    page(conn, event_filter, inputs)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="an existing cache to measure instead (migrated first)")
    parser.add_argument("--reuse", action="store_true", help="reuse the benchmark cache if it is already built")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best of each is reported")
    parser.add_argument("--mmap-mb", type=int, default=0,
                        help="memory-map this much of the cache on each read-only connection (PRAGMA mmap_size)")
    args = parser.parse_args()
    path = args.db or default_path(args.events)
    if not args.db and not (args.reuse and event_count(path) >= args.events * 0.95):
        print(f"Building {path} with {args.events:,} demo events…", flush=True)
        build_cache(path, args.events)
    store.open_cache(path).close()  # a cache built by an older version gets the current migrations

    probe = store.open_cache_readonly(path)
    periods = filters(probe)
    inputs = Inputs(probe, periods["first render (7 days)"])
    probe.close()
    print(f"Cache: {path} ({event_count(path):,} events, {path.stat().st_size / 1e6:,.0f} MB); "
          f"busiest principal {inputs.busiest!r}, person {inputs.person!r}, group {inputs.group_id}, "
          f"instance {inputs.instance_id}")

    best: dict[tuple[str, str], float] = {}
    for _ in range(args.repeat):
        for name, page in PAGES.items():
            conn = store.open_cache_readonly(path)  # a fresh connection: the page's first render
            if args.mmap_mb:
                conn.execute(f"PRAGMA mmap_size = {args.mmap_mb * 1024 * 1024}")
            for label, event_filter in periods.items():
                seconds = timed(page, conn, event_filter, inputs)
                best[name, label] = min(seconds, best.get((name, label), float("inf")))
                if name in UNFILTERED:
                    break  # a filter change reuses its cached data
            conn.close()

    labels = list(periods)
    width = max(len(name) for name in PAGES)
    header = f"{'page':<{width}}  {labels[0]:>22}  " + "  ".join(f"{label:>14}" for label in labels[1:])
    print(f"\n{header}\n{'':<{width}}  {'target <= 1.5 s':>22}  " + "  ".join(f"{'<= 0.5 s':>14}" for _ in labels[1:]))
    slow = 0
    for name in PAGES:
        cells = []
        for index, label in enumerate(labels):
            if (name, label) not in best:
                cells.append(f"{'(cached)':>14}")
                continue
            seconds = best[name, label]
            target = FIRST_RENDER_TARGET if index == 0 else FILTER_CHANGE_TARGET
            over = seconds > target
            slow += over
            cells.append(f"{seconds:>{22 if index == 0 else 14}.3f}" if not over else
                         f"{f'{seconds:.3f} SLOW':>{22 if index == 0 else 14}}")
        print(f"{name:<{width}}  " + "  ".join(cells))
    mapped = f", {args.mmap_mb:,} MB memory-mapped" if args.mmap_mb else ""
    print(f"\n{slow} measurement(s) slower than their target (best of {args.repeat} runs{mapped}).")
    return 0 if slow == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
