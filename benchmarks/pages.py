"""Pages benchmark: every page of app.py as a user waits for it, beside the data functions behind it, on any cache.

Run on demand: `python benchmarks/pages.py [--db PATH | --events 1000000 [--reuse]] [--repeat 3] [--only TEXT]`.
Without --db it builds benchmarks/data/pages-1m.db from the demo generator (250,000-event slices through the real
import pipeline); with --db it measures any cache, e.g. one of benchmarks/shapes.py's data shapes (migrated first).

Whole pages: each page renders in its own process through Streamlit's AppTest (the sidebar and the page, exactly
what `streamlit run app.py` executes): the app runs once to import everything, the cached loaders are cleared, then
the page's run is timed; the process's peak RSS is reported. The security pages read the findings the post-sync step
stored (run first, as after any sync). The period is the 7 UTC days up to the newest event,
set through the URL as a user's custom range. Data functions: the queries, transforms and chart specs of each page,
timed in this process on a fresh connection for the same period and three filter changes.
Targets: whole page <= 1.5 s and <= 600 MB; data functions <= 1.5 s first render, <= 0.5 s per filter change.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/, whose sigma.py would shadow the pySigma package

import polars as pl  # noqa: E402

from trailstream import jobs  # noqa: E402
from trailstream.analytics import activity_queries, charts, detections, queries, sqlguard, transforms  # noqa: E402
from trailstream.analytics.queries import SearchQuery  # noqa: E402
from trailstream.cache import bookkeeping, store  # noqa: E402
from trailstream.filters import EventFilter  # noqa: E402
from trailstream.ingest import sync  # noqa: E402
from trailstream.timefmt import iso_utc, parse_iso_utc  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
APP = ROOT / "app.py"
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SEED = 11
SLICE = 250_000
PAGE_TARGET_SECONDS = 1.5
PAGE_TARGET_MB = 600
FIRST_RENDER_TARGET = 1.5
FILTER_CHANGE_TARGET = 0.5
PAGE_TIMEOUT = 120


# --- The cache and the period ---------------------------------------------------------------


def default_path(events: int) -> Path:
    return DATA / ("pages-1m.db" if events == 1_000_000 else f"pages-{events // 1000}k.db")


def event_count(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0


def build_cache(path: Path, events: int) -> None:
    """Import `events` demo events through the real pipeline, a slice at a time so memory stays flat."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, events, SLICE)):
        sync.import_demo(path, events=min(SLICE, events - start), seed=SEED + index, end=END)
        print(f"  built {min(start + SLICE, events):,} / {events:,} events", flush=True)


def last_week(conn: sqlite3.Connection) -> tuple[dict, EventFilter]:
    """The 7 UTC days up to the newest event: as the URL of a custom range, and as the filter it makes."""
    newest = parse_iso_utc(queries.query_cache_summary(conn)["last_event"]).date()
    first = newest - timedelta(days=6)
    url = {"range": "custom", "from": first.isoformat(), "to": newest.isoformat()}
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    return url, EventFilter(start=iso_utc(start), end=iso_utc(start + timedelta(days=7)))


def filter_changes(conn: sqlite3.Connection, week: EventFilter) -> dict[str, EventFilter]:
    """The first render's period and the filter changes a user makes from it."""
    end = parse_iso_utc(week.end)
    busiest_account = queries.query_account_region_counts(conn, week).item(0, "account_id")
    return {
        "first render (7 days)": week,
        "one account": EventFilter(start=week.start, end=week.end, accounts=(busiest_account,)),
        "last 24 hours": EventFilter(start=iso_utc(end - timedelta(hours=24)), end=week.end),
        "30 days": EventFilter(start=iso_utc(end - timedelta(days=30)), end=week.end),
    }


class Inputs:
    """Realistic page inputs taken from the cache itself: a busy principal, a person, a resource ID."""

    def __init__(self, conn: sqlite3.Connection, event_filter: EventFilter):
        principals = queries.query_top_principals(conn, event_filter, limit=20)
        people = principals.filter(pl.col("user_type") == "IAMUser")
        self.busiest = principals.item(0, "principal")
        self.person = people.item(0, "principal") if people.height else self.busiest
        rules = transforms.security_group_rules(queries.query_use_case_events(conn, event_filter, "network"))
        self.group_id = rules.item(0, "group_id") if rules.height else "sg-0"
        instances = transforms.instance_changes(queries.query_use_case_events(conn, event_filter, "instances"))
        self.instance_id = instances.drop_nulls("instance_id").item(0, "instance_id") if instances.height else "i-0"

    def page_query(self, page: str) -> dict:
        """What a page needs in its URL to show something."""
        return {
            "pages/principal.py": {"principal": self.busiest},
            "pages/search.py": {"event": "AuthorizeSecurityGroupIngress"},
            "pages/resource.py": {"resource_id": self.group_id},
            "pages/sql.py": {"sql": sqlguard.EXAMPLES_BY_KEY["top_errors_per_service"].sql.strip()},
        }.get(page, {})


# --- What each page loads (mirrors pages/*.py: queries, transforms, and the chart specs Streamlit serialises) ---


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
    places = queries.query_account_region_counts(conn, event_filter)
    queries.query_top_event_names(conn, event_filter)
    queries.query_top_principals(conn, event_filter)
    queries.query_events(conn, event_filter, limit=1000)
    _specs(charts.event_timeline_chart(timeline), charts.failure_share_chart(totals),
           charts.account_region_chart(places.head(2000)))


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
                                         parse_iso_utc(event_filter.start) if event_filter.start else None)
    if ranked.height:
        top = ranked.row(0, named=True)
        queries.query_error_events(conn, event_filter, top["error_code"], top["event_source"], top["event_name"])
    _specs(charts.rare_errors_chart(ranked))


def search(query: Callable[[Inputs], SearchQuery]) -> Callable:
    def page(conn, event_filter, inputs) -> None:
        queries.query_search(conn, event_filter, query(inputs), 1000)

    return page


def principal_page(which: str) -> Callable:
    def page(conn, event_filter, inputs) -> None:
        principal = getattr(inputs, which)
        queries.query_principals(conn, event_filter)
        activity = queries.query_principal_activity(conn, event_filter, principal)
        activity_queries.QUERIES["principal_origin_counts"].cache(conn, event_filter, principal=principal)
        transforms.principal_summary(activity)
        transforms.principal_breakdown(activity, "event_name")  # the open tab; the others are read when opened
        queries.query_principal_events(conn, event_filter, principal, limit=1000)
        _specs(charts.timeline_chart(transforms.principal_timeline(activity), "event_name"))

    return page


def resource_page(which: str) -> Callable:
    def page(conn, event_filter, inputs) -> None:
        history = queries.query_resource_history(conn, event_filter, getattr(inputs, which))
        points = history.select("event_time", "event_name", "principal").head(2000)
        _specs(charts.quick_chart(points, "event_time", color="event_name", kind="point"))

    return page


def sync_health(conn, event_filter, inputs) -> None:
    queries.query_cache_summary(conn)
    bookkeeping.query_sync_runs(conn)
    transforms.ingestion_health(bookkeeping.query_delivery_health(conn), now=END)
    bookkeeping.query_files(conn, ("failed",))
    bookkeeping.query_rejected_records(conn)


def security_overview(conn, event_filter, inputs) -> None:
    findings = detections.query_period_findings(conn, event_filter, None).findings
    if findings:
        frame = detections.findings_frame(findings)
        _specs(charts.findings_by_type_chart(detections.findings_by_type(frame)))


def sign_ins(conn, event_filter, inputs) -> None:
    settings = detections.DetectionSettings()
    detections.sign_in_counts(detections.query_sign_ins(conn, event_filter, settings))
    _travel, routes, _note = detections.query_period_travel(conn, event_filter, settings)
    _specs(charts.travel_map_chart(routes, charts.MAP_PROJECTIONS[0]))


def access_denied(conn, event_filter, inputs) -> None:
    detections.query_unauthorized_calls(conn, event_filter)
    detections.detect_unauthorized_bursts(conn, event_filter, None)


# Pages whose data does not depend on the sidebar filters: a filter change reuses their cached data.
UNFILTERED = {"sidebar (cached per sync)", "Sync history & health"}

DATA_FUNCTIONS: dict[str, Callable] = {
    "sidebar (cached per sync)": sidebar,
    "Overview": overview,
    "Network & security groups": use_case_page("network", transforms.network_changes, transforms.security_group_rules),
    "EC2 instances": use_case_page("instances", transforms.instance_changes),
    "Elastic IPs": use_case_page("elastic_ips", transforms.elastic_ip_changes),
    "IAM": use_case_page("iam", transforms.iam_changes),
    "Rare errors": rare_errors,
    "Security overview": security_overview,
    "Sign-ins": sign_ins,
    "Access denied": access_denied,
    "Search: event name": search(lambda inputs: SearchQuery(event_name="AuthorizeSecurityGroupIngress")),
    "Search: user name": search(lambda inputs: SearchQuery(user_name=inputs.person)),
    "Search: free text (a group ID)": search(lambda inputs: SearchQuery(text=inputs.group_id)),
    "Search: free text, common words": search(lambda inputs: SearchQuery(text="us-east-1")),
    "Search: free text, no match": search(lambda inputs: SearchQuery(text="no-such-thing-anywhere")),
    "Principal: busiest": principal_page("busiest"),
    "Principal: a person": principal_page("person"),
    "Resource: security group": resource_page("group_id"),
    "Resource: instance": resource_page("instance_id"),
    "Sync history & health": sync_health,
}


def time_data_functions(path: Path, periods: dict[str, EventFilter], inputs: Inputs, repeat: int,
                        only: str) -> dict[tuple[str, str], float]:
    """Best of `repeat` runs of every page's data functions, each page on a fresh connection."""
    best: dict[tuple[str, str], float] = {}
    for _ in range(repeat):
        for name, page in DATA_FUNCTIONS.items():
            if only.lower() not in name.lower():
                continue
            conn = store.open_cache_readonly(path)
            for label, event_filter in periods.items():
                started = time.perf_counter()
                page(conn, event_filter, inputs)
                seconds = time.perf_counter() - started
                best[name, label] = min(seconds, best.get((name, label), float("inf")))
                if name in UNFILTERED:
                    break  # a filter change reuses its cached data
            conn.close()
    return best


# --- Whole pages: one process per page, through AppTest ----------------------------------------


def app_pages() -> list[tuple[str, str]]:
    """(file, title) of every page app.py lists, read from its PAGES table so new pages are measured too."""
    table = next(node.value for node in ast.parse(APP.read_text()).body if isinstance(node, ast.Assign)
                 and any(getattr(target, "id", None) == "PAGES" for target in node.targets))
    return [(path, title) for specs in ast.literal_eval(table).values() for path, title, _icon in specs]


def own_peak_mb() -> float:
    """This process's own peak RSS (VmHWM): ru_maxrss would start at the parent's RSS when it forked this process."""
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) / 1024


def render_page(page: str, db: Path, query: dict) -> dict:
    """In this (fresh) process: run the app once so every module is imported, clear the cached loaders, then time
    the page's run as a user who opens it waits for it. Returns seconds, peak RSS and any exception."""
    from streamlit.testing.v1 import AppTest
    from streamlit.testing.v1.util import patch_config_options

    from trailstream.app import state

    settings = Path(tempfile.mkdtemp()) / "trailstream.toml"  # no sources, no sign-in: an admin sees every page
    os.environ.update({"TRAILSTREAM_DB": str(db), "TRAILSTREAM_CONFIG": str(settings)})
    os.chdir(ROOT)
    at = AppTest.from_file(str(APP), default_timeout=PAGE_TIMEOUT)
    at.query_params.update(query)
    at.run()
    state.clear_cached_data()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        with patch_config_options({"client.showErrorDetails": "full"}):  # the benchmark reports what broke
            at.switch_page(page).run()
        problem = "; ".join(str(exception.value)[:200] for exception in at.exception)
    except RuntimeError as exc:  # AppTest's timeout
        problem = str(exc)[:200]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = own_peak_mb()
    return {"page": page, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "problem": problem}


def time_whole_pages(path: Path, url: dict, inputs: Inputs, repeat: int, only: str) -> dict[str, dict]:
    """Each page rendered `repeat` times, each time in a new process; the best time and the largest peak RSS."""
    results: dict[str, dict] = {}
    for page, title in app_pages():
        if only.lower() not in f"{page} {title}".lower():
            continue
        for _ in range(repeat):
            query = json.dumps(url | inputs.page_query(page))
            done = subprocess.run([sys.executable, __file__, "--render", page, "--db", str(path), "--query", query],
                                  capture_output=True, text=True, cwd=ROOT)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            measured = json.loads(lines[-1][7:]) if lines else {
                "seconds": float("nan"), "cpu": float("nan"), "peak_mb": float("nan"),
                "problem": done.stderr.strip()[-200:]}
            kept = results.setdefault(title, measured)
            kept["seconds"] = min(kept["seconds"], measured["seconds"])
            kept["cpu"] = min(kept["cpu"], measured["cpu"])
            kept["peak_mb"] = max(kept["peak_mb"], measured["peak_mb"])
            kept["problem"] = kept["problem"] or measured["problem"]
            print(f"  {title}: {measured['seconds']:.2f} s ({measured['cpu']:.2f} s CPU), {measured['peak_mb']:.0f} MB",
                  flush=True)
    return results


# --- Report ------------------------------------------------------------------------------------


def print_whole_pages(results: dict[str, dict]) -> int:
    width = max(map(len, results), default=4)
    print(f"\n{'page':<{width}}  {'whole page (s)':>14}  {'peak RSS (MB)':>13}\n"
          f"{'':<{width}}  {f'<= {PAGE_TARGET_SECONDS} s':>14}  {f'<= {PAGE_TARGET_MB} MB':>13}")
    over = 0
    for title, measured in results.items():
        slow = not measured["seconds"] <= PAGE_TARGET_SECONDS
        large = not measured["peak_mb"] <= PAGE_TARGET_MB
        over += slow + large + bool(measured["problem"])
        print(f"{title:<{width}}  {measured['seconds']:>9.2f}{' SLOW' if slow else '     '}  "
              f"{measured['peak_mb']:>8.0f}{' OVER' if large else '     '}  {measured['cpu']:6.2f} s CPU"
              + (f"  FAILED: {measured['problem']}" if measured["problem"] else ""))
    return over


def print_data_functions(best: dict[tuple[str, str], float], labels: list[str]) -> int:
    names = list(dict.fromkeys(name for name, _label in best))
    width = max(map(len, names), default=4)
    print(f"\n{'data functions':<{width}}  {labels[0]:>22}  " + "  ".join(f"{label:>14}" for label in labels[1:]))
    print(f"{'':<{width}}  {'target <= 1.5 s':>22}  " + "  ".join(f"{'<= 0.5 s':>14}" for _ in labels[1:]))
    slow = 0
    for name in names:
        cells = []
        for index, label in enumerate(labels):
            size = 22 if index == 0 else 14
            if (name, label) not in best:
                cells.append(f"{'(cached)':>{size}}")
                continue
            seconds = best[name, label]
            over = seconds > (FIRST_RENDER_TARGET if index == 0 else FILTER_CHANGE_TARGET)
            slow += over
            cells.append(f"{f'{seconds:.3f} SLOW' if over else f'{seconds:.3f}':>{size}}")
        print(f"{name:<{width}}  " + "  ".join(cells))
    return slow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="demo events to build when --db is not given")
    parser.add_argument("--db", type=Path, help="an existing cache to measure (migrated first)")
    parser.add_argument("--reuse", action="store_true", help="reuse the built demo cache if it is already there")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best of each is reported")
    parser.add_argument("--only", default="", help="measure only pages whose name contains this text")
    parser.add_argument("--skip-pages", action="store_true", help="time the data functions only")
    parser.add_argument("--skip-data", action="store_true", help="time the whole pages only")
    parser.add_argument("--render", help=argparse.SUPPRESS)  # a child process: render this page and report
    parser.add_argument("--query", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        print("RESULT " + json.dumps(render_page(args.render, args.db, json.loads(args.query))), flush=True)
        return 0

    path = args.db or default_path(args.events)
    if not args.db and not (args.reuse and event_count(path) >= args.events * 0.95):
        print(f"Building {path} with {args.events:,} demo events…", flush=True)
        build_cache(path, args.events)
    store.open_cache(path).close()  # a cache built by an older version gets the current migrations
    print(*jobs.store_findings(path, {}), flush=True)  # what the post-sync step leaves for the security pages
    with closing(store.open_cache_readonly(path)) as probe:
        url, week = last_week(probe)
        periods = filter_changes(probe, week)
        inputs = Inputs(probe, week)
    print(f"Cache: {path} ({event_count(path):,} events, {path.stat().st_size / 1e6:,.0f} MB); period "
          f"{url['from']} to {url['to']}; busiest principal {inputs.busiest!r}, person {inputs.person!r}, "
          f"group {inputs.group_id}, instance {inputs.instance_id}", flush=True)

    over = 0
    if not args.skip_pages:
        over += print_whole_pages(time_whole_pages(path, url, inputs, args.repeat, args.only))
    if not args.skip_data:
        over += print_data_functions(time_data_functions(path, periods, inputs, args.repeat, args.only),
                                     list(periods))
    print(f"\n{over} measurement(s) over their target (best time, largest RSS of {args.repeat} run(s)).")
    return 0 if over == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
