"""Streamlit helpers every page shares: the cache, cached loaders, the sidebar (filters, Sync), tables and downloads.

The only trailstream module that imports streamlit. Event content is data, never markup: log fields reach the
screen through dataframes, st.text, st.code, st.json and st.metric only, never st.markdown or HTML.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import polars as pl
import streamlit as st

from trailstream.app import signin
from trailstream import catalog, config, jobs
from trailstream.analytics import charts, exports, queries
from trailstream.notify import saved
from trailstream.cache import store
from trailstream.ingest import sync
from trailstream.app.signin import escape_markdown
from trailstream.filters import DEFAULT_PRESET, TIME_PRESETS, EventFilter
from trailstream.timefmt import iso_utc
from trailstream.timefmt import parse_iso_utc
from trailstream.cache import bookkeeping

DEMO_EVENTS = 20_000
DEMO_SEED = 7
CUSTOM_RANGE = "custom"
RANGE_OPTIONS = (*TIME_PRESETS, CUSTOM_RANGE)  # shown as is: a bound widget keeps its shown label in the URL
EARLIEST_DAY = date(2013, 11, 1)  # CloudTrail's launch: nothing can be older
FILTER_KEY = "_trailstream_event_filter"
SYNC_RESULTS_KEY = "_trailstream_sync_results"
# The columns an event table shows, in order; the rest stay one click away in the raw event.
EVENT_TABLE_COLUMNS = ("event_time", "event_name", "principal", "account_id", "aws_region", "source_ip",
                       "error_code", "event_source", "user_agent")
COLUMN_LABELS = {
    "event_time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "event_name": "Event",
    "event_source": "Service",
    "principal": "Principal",
    "user_type": "Identity type",
    "account_id": "Account",
    "aws_region": "Region",
    "source_ip": "Source IP",
    "error_code": "Error",
    "user_agent": "User agent",
    "first_seen": st.column_config.DatetimeColumn("First seen", format="YYYY-MM-DD HH:mm"),
    "last_seen": st.column_config.DatetimeColumn("Last seen", format="YYYY-MM-DD HH:mm"),
    "events": st.column_config.NumberColumn("Events", format="localized"),
    "failed": st.column_config.NumberColumn("Failed", format="localized"),
}


# --- Settings and the cache ------------------------------------------------------


def settings() -> config.Settings:
    """The settings file as it is now (re-read each run: the CLI or an editor may have changed it)."""
    return config.load_settings()


def db_path() -> str:
    return settings().db_path()


@dataclass(frozen=True)
class CacheState:
    """Where the cache is and whether pages can read it: 'ok', 'missing', 'empty' or 'unreadable'."""

    path: str
    status: str
    generation: int = -1
    events: int = 0
    demo: bool = False
    problem: str = ""


def cache_state() -> CacheState:
    """Look at the cache without writing to it; never raises. Cheap: the counts are cached per generation."""
    path = db_path()
    if not Path(path).exists():
        return CacheState(path, "missing")
    try:
        conn = store.open_cache_readonly(path)
        try:
            generation = bookkeeping.cache_generation(conn)
        finally:
            conn.close()
        events, demo = _cache_facts(path, generation)
    except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
        return CacheState(path, "unreadable", problem=str(exc))
    return CacheState(path, "ok" if events else "empty", generation, events, demo)


@st.cache_data(show_spinner=False, max_entries=16)
def _cache_facts(path: str, generation: int) -> tuple[int, bool]:
    summary = _cached_call("trailstream.analytics.queries.query_cache_summary", path, generation, (), ())
    return summary["events"], jobs.holds_only_demo_data(path)


def prepare_cache() -> None:
    """First run (no cache, no source, a usable settings file): build the demo cache so the dashboard works at once."""
    current = settings()
    if current.errors or current.sources or Path(current.db_path()).exists():
        return
    with st.spinner("First run: generating demo CloudTrail activity so you can explore TrailStream…"):
        try:
            sync.import_demo(current.db_path(), DEMO_EVENTS, DEMO_SEED)
        except store.SyncAlreadyRunning:
            st.info("Another browser tab is building the demo data; reload this page in a few seconds.")
            st.stop()
        except (OSError, store.CacheUnreadable, sync.DemoRefused) as exc:
            st.error("Could not build the demo data. Check that the folder of the cache is writable, then reload.")
            st.text(str(exc))
            st.stop()


def demo_banner() -> None:
    """Said on every page while the cache holds only generated events."""
    if cache_state().demo:
        st.info(
            "**Demo data.** These events are generated, not read from your AWS account. To see your own, add a "
            "source on **Sources & settings** and press **Sync**: the demo data is then replaced.",
            icon=":material/science:",
        )


def require_cache(allow_empty: bool = True) -> CacheState:
    """Stop the page with a friendly next step unless the cache can be read (and, if asked, has events)."""
    state = cache_state()
    if state.status == "missing":
        st.info(
            "No cache yet. Add a source on **Sources & settings**, then press **Sync** in the sidebar "
            "(or run `python -m trailstream demo` to explore generated data).",
            icon=":material/inbox:",
        )
        st.page_link("pages/sources.py", label="Sources & settings", icon=":material/settings:")
        st.stop()
    if state.status == "unreadable":
        st.error(
            "The cache file cannot be read: it is damaged or not a TrailStream cache. Move it away (or point "
            "`db` in the settings file elsewhere) and press **Sync** to build a new one.",
            icon=":material/error:",
        )
        st.text(f"{state.path}: {state.problem}")
        st.stop()
    if state.status == "empty" and not allow_empty:
        st.info(
            "The cache has no events yet. Press **Sync** in the sidebar to fetch them from your sources, "
            "or check **Sync history** for files that failed.",
            icon=":material/inbox:",
        )
        st.stop()
    return state


# --- Cached loaders --------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=512)
def _cached_call(function_path: str, path: str, generation: int, args: tuple, kwargs: tuple):
    """Run a read-only query; the generation in the key makes every sync refresh the data."""
    module_name, _, name = function_path.rpartition(".")
    function = getattr(importlib.import_module(module_name), name)
    conn = store.open_cache_readonly(path)
    try:
        return function(conn, *args, **dict(kwargs))
    finally:
        conn.close()


def load(function: Callable, *args, **kwargs):
    """Call a `query_*(conn, ...)` function on the cache, cached until the next sync. Arguments must be hashable."""
    state = cache_state()
    return _cached_call(f"{function.__module__}.{function.__qualname__}", state.path, state.generation, args,
                        tuple(sorted(kwargs.items())))


def read_uncached(function: Callable, *args, **kwargs):
    """Call a `query_*(conn, ...)` function on a fresh read-only handle, for state that changes within a page."""
    with closing(store.open_cache_readonly(cache_state().path)) as conn:
        return function(conn, *args, **kwargs)


def write(function: Callable, *args, **kwargs):
    """Call a `save_*` / `delete_*(db, ...)` function on a writable handle: the one way a page changes the cache."""
    with closing(store.open_cache(cache_state().path)) as db:
        return function(db, *args, **kwargs)


def load_record(event_id: str) -> dict | None:
    """The original CloudTrail record of one event."""
    return load(store.load_record, event_id)


def clear_cached_data() -> None:
    _cached_call.clear()
    _cache_facts.clear()


# --- Sidebar: filters and sync -----------------------------------------------------


def sidebar_filters() -> EventFilter:
    """The global filters, kept in the URL so a view can be shared; call once per run (app.py), before the page."""
    options = queries.FilterOptions((), ())
    state = cache_state()
    if state.status in ("ok", "empty"):
        options = load(queries.query_filter_options)
    with st.sidebar:
        st.subheader("Filters")
        preset = st.segmented_control(
            "Period", RANGE_OPTIONS, default=DEFAULT_PRESET, key="range",
            bind="query-params", required=True,
        ) or DEFAULT_PRESET
        start = end = None
        if preset == CUSTOM_RANGE:
            today = datetime.now(timezone.utc).date()
            first = st.date_input("From (UTC)", today - timedelta(days=7), min_value=EARLIEST_DAY,
                                  max_value=today, key="from", bind="query-params")
            last = st.date_input("To (UTC, included)", today, min_value=EARLIEST_DAY, max_value=today, key="to",
                                 bind="query-params")
            start, end = _day_bounds(first, last)
        accounts = st.multiselect("Accounts", options.accounts, key="account", bind="query-params",
                                  placeholder="All accounts")
        regions = st.multiselect("Regions", options.regions, key="region", bind="query-params",
                                 placeholder="All regions")
        read_only = st.toggle("Include read-only events", value=True, key="read_only", bind="query-params",
                              help="Describe*, List*, Get* calls: most of the volume, rarely what you look for.")
    choices = {"accounts": tuple(accounts), "regions": tuple(regions), "include_read_only": read_only}
    if preset == CUSTOM_RANGE:
        event_filter = EventFilter(start=start, end=end, **choices)
    else:
        event_filter = EventFilter.from_preset(preset if preset in TIME_PRESETS else DEFAULT_PRESET, **choices)
    st.session_state[FILTER_KEY] = event_filter
    return event_filter


def _day_bounds(first: date | None, last: date | None) -> tuple[str | None, str | None]:
    """Whole UTC days [first 00:00, last+1 00:00); swapped if given backwards."""
    if first and last and first > last:
        first, last = last, first
    start = iso_utc(datetime.combine(first, time(), timezone.utc)) if first else None
    end = iso_utc(datetime.combine(last + timedelta(days=1), time(), timezone.utc)) if last else None
    return start, end


def current_filter() -> EventFilter:
    """The filter the sidebar built in this run (pages call this; app.py calls sidebar_filters first)."""
    return st.session_state.get(FILTER_KEY) or EventFilter.from_preset(DEFAULT_PRESET)


def sync_button() -> None:
    """The sidebar's Sync: runs every configured source with a live progress bar, then shows what happened."""
    with st.sidebar:
        clicked = st.button("Sync", type="primary", icon=":material/sync:", width="stretch",
                            help="Fetch new CloudTrail files from every source on Sources & settings.")
        if clicked:
            _run_sync()
        _show_sync_results()
        _show_freshness()


def _run_sync() -> None:
    current = settings()
    if current.errors:
        st.error("The settings file has problems; fix them on **Sources & settings** first.")
        return
    if not current.sources:
        st.warning("No source is configured yet: add one on **Sources & settings**, then press Sync.")
        return
    path = current.db_path()
    discarded = jobs.discard_demo_cache(path)
    bar = st.progress(0.0, text="Starting…")
    label = {"source": ""}

    def on_source(index: int, source: config.Source) -> None:
        label["source"] = f"{source.name} ({index + 1}/{len(current.sources)})"
        bar.progress(0.0, text=f"{label['source']}: listing files…")

    def on_progress(progress: sync.SyncProgress) -> None:
        total = progress.files_total
        fraction = min(progress.files_done / total, 1.0) if total else 0.0
        counted = f"{progress.files_done:,}/{total:,}" if total is not None else f"{progress.files_done:,}"
        bar.progress(fraction, text=f"{label['source']}: {counted} files, {progress.new_events:,} new events")

    results = jobs.run_configured_sync(current, path, on_progress, on_source)
    bar.empty()
    clear_cached_data()
    st.session_state[SYNC_RESULTS_KEY] = (results, discarded)
    signin.record("sync", {result.source: result.counts() for result in results})


def retry_failed() -> None:
    """Fetch the failed files again; the outcome shows under the Sync button like a sync's."""
    with st.spinner("Fetching the failed files again…"):
        result = jobs.retry_failed_files(settings(), db_path())
    clear_cached_data()
    st.session_state[SYNC_RESULTS_KEY] = ([result], False)
    signin.record("retry", result.counts())
    st.rerun()


def _show_sync_results() -> None:
    results, discarded = st.session_state.get(SYNC_RESULTS_KEY, ([], False))
    if discarded:
        st.caption("The demo data was removed: the cache now holds only your events.")
    for result in results:
        show_sync_result(result)


def show_sync_result(result: sync.SyncResult) -> None:
    """One result: counts in a success or error box, each failure's reason as plain text."""
    box = st.success if result.succeeded else st.error
    box(f"{result.files:,} file(s), {result.new_events:,} new event(s), {result.duplicates:,} duplicate(s), "
        f"{result.failed:,} failure(s)", icon=":material/check_circle:" if result.succeeded else ":material/error:")
    st.text(f"Source: {result.source}")
    if result.failures:
        with st.expander(f"{len(result.failures):,} failure(s)", expanded=len(result.failures) <= 3):
            for name, reason in result.failures[:50]:
                st.text(f"{name}\n  {reason}")
            if len(result.failures) > 50:
                st.caption(f"…and {len(result.failures) - 50:,} more: see Sync history.")


def _show_freshness() -> None:
    state = cache_state()
    if state.status not in ("ok", "empty"):
        return
    summary = load(queries.query_cache_summary)
    last_run = load(bookkeeping.query_sync_runs, 1)
    if last_run.height:
        ended = last_run.item(0, "ended_at") or last_run.item(0, "started_at")
        st.caption(f"Last sync: {ago(ended)} ({last_run.item(0, 'status')})")
    if summary["last_event"]:
        st.caption(f"Newest event: {ago(summary['last_event'])}")


def ago(moment: datetime | str | None, now: datetime | None = None) -> str:
    """'5 min ago' style age of a UTC time (cache text or datetime)."""
    if moment is None:
        return "never"
    if isinstance(moment, str):
        moment = parse_iso_utc(moment)
    seconds = int(((now or datetime.now(timezone.utc)) - moment).total_seconds())
    if seconds < 0:
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


# --- Page parts ---------------------------------------------------------------------


def page_start(title: str, description: str) -> EventFilter:
    """Title, one-line purpose, the demo banner and the empty states; returns the global filter."""
    st.title(title)
    st.caption(description)
    require_cache(allow_empty=False)
    return current_filter()


def no_matches(rows: pl.DataFrame | int, what: str = "events") -> bool:
    """True (and a hint) when the filters leave nothing to show."""
    if (rows.height if isinstance(rows, pl.DataFrame) else rows) > 0:
        return False
    st.info(f"No {what} match the filters: widen the period in the sidebar, or clear the account and region "
            "choices.", icon=":material/filter_alt_off:")
    return True


def plain(text: str) -> str:
    """Text shown as typed in a markdown-rendering element (an alert): every markdown mark escaped."""
    return escape_markdown(text)










def period_start(event_filter: EventFilter) -> datetime | None:
    """The filter's start as a UTC datetime (None when the period is open)."""
    return parse_iso_utc(event_filter.start) \
        if event_filter.start else None


def time_label(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "–"




def metrics(values: dict[str, object], helps: dict[str, str] | None = None) -> None:
    """A row of headline numbers; integers get thousands separators."""
    columns = st.columns(len(values))
    for column, (label, value) in zip(columns, values.items()):
        shown = f"{value:,}" if isinstance(value, int) else ("–" if value is None else value)
        column.metric(label, shown, help=(helps or {}).get(label), border=True)




def use_case_events(key: str) -> pl.DataFrame:
    """A use-case page's start: title, purpose and its events in the period; stops the page when none match."""
    use_case = catalog.USE_CASES[key]
    event_filter = page_start(use_case.title, use_case.description)
    events = load(queries.query_use_case_events, event_filter, key)
    if no_matches(events, f"{use_case.title} events"):
        st.stop()
    return events


def use_case_timeline(key: str) -> None:
    """The use case's calls over time, one colour per event name."""
    timeline = load(queries.query_use_case_timeline, current_filter(), key)
    chart = charts.timeline_chart(timeline, "event_name", title=f"{catalog.USE_CASES[key].title} over time")
    show_chart(chart, timeline, f"{key}-timeline")


def show_chart(chart, frame: pl.DataFrame, name: str) -> None:
    """An Altair chart with its PNG, SVG and CSV downloads underneath."""
    st.altair_chart(chart, width="stretch")
    download_chart(chart, frame, name)


def _download_row(downloads: list, key: str) -> None:
    columns = st.columns(len(downloads) + 4)
    for column, download in zip(columns, downloads):
        column.download_button(download.label, download.build, file_name=download.file_name, mime=download.mime,
                               key=f"{key}-{download.label}", icon=":material/download:", on_click="ignore",
                               type="tertiary")


def download_chart(chart, frame: pl.DataFrame, name: str) -> None:
    """PNG and SVG of the chart as shown, and CSV of the numbers behind it."""
    _download_row(exports.chart_downloads(chart, frame, name, current_filter()), f"chart-{name}")


def download_table(frame: pl.DataFrame, name: str) -> None:
    """CSV, JSON and Parquet of a table, named after the page and the period."""
    _download_row(exports.table_downloads(frame, name, current_filter()), f"table-{name}")


def column_config(frame: pl.DataFrame, columns: list[str]) -> dict:
    """Readable headers for the shown columns; times as UTC date and time."""
    configured = {}
    for name in columns:
        label = COLUMN_LABELS.get(name)
        if isinstance(label, str) or label is None:
            title = label or name.replace("_", " ").capitalize()
            label = (st.column_config.DatetimeColumn(title, format="YYYY-MM-DD HH:mm:ss")
                     if frame.schema[name] == pl.Datetime("us", "UTC") else title)
        configured[name] = label
    return configured


def table(frame: pl.DataFrame, key: str, columns: tuple[str, ...] | None = None, select: bool = False):
    """A read-only table with readable headers; with select=True, one row can be picked (returns its index or None)."""
    shown = [c for c in (columns or frame.columns) if c in frame.columns]
    options = {"hide_index": True, "column_config": column_config(frame, shown), "key": key}
    if not select:
        st.dataframe(frame.select(shown), **options)
        return None
    event = st.dataframe(frame.select(shown), on_select="rerun", selection_mode="single-row", **options)
    rows = event.selection.rows if event else []
    return rows[0] if rows else None


def raw_event_viewer(frame: pl.DataFrame, key: str, name: str = "events",
                     columns: tuple[str, ...] | None = EVENT_TABLE_COLUMNS) -> None:
    """The event table (newest first), its downloads, and the raw CloudTrail record of the selected row.

    columns=None shows every column of the frame but the event ID.
    """
    st.caption(f"{frame.height:,} row(s). Select a row to see the raw CloudTrail record.")
    shown = columns or tuple(column for column in frame.columns if column != "event_id")
    row = table(frame, key, shown, select=True)
    download_table(frame, name)
    if row is None or row >= frame.height or "event_id" not in frame.columns:
        return
    event_id = frame.item(row, "event_id")
    record = load_record(event_id)
    st.subheader("Raw event")
    if record is None:
        st.warning("This event is no longer in the cache; press Sync or pick another row.")
        return
    st.json(record, expanded=2)


# --- Search -------------------------------------------------------------------------

SEARCH_LIMIT = 1000
# SearchQuery field -> (label, URL key, placeholder); event name and error code offer the cache's values.
SEARCH_FIELDS = {
    "text": ("Contains", "q", "any text: a name, an ARN, an IP, a bucket…"),
    "event_name": ("Event name", "event", "e.g. AuthorizeSecurityGroupIngress"),
    "user_name": ("User or role", "user", "IAM user, role or role/session"),
    "resource_name": ("Resource name or ID", "resource", "i-0abc…, sg-0123…, my-bucket"),
    "error_code": ("Error code", "error", "e.g. AccessDenied"),
    "source_ip": ("Source IP", "ip", "exact address"),
    "access_key_id": ("Access key ID", "access_key", "AKIA… or ASIA…"),
    "event_source": ("Service", "service", "e.g. ec2.amazonaws.com"),
    "resource_type": ("Resource type", "resource_type", "e.g. AWS::EC2::Instance"),
    "event_id": ("Event ID", "event_id", "exact eventID"),
}
SUGGESTED = {"event_name": queries.query_event_names, "error_code": queries.query_error_codes}


def search_form() -> queries.SearchQuery:
    """The search fields (kept in the URL); event names and error codes suggest what the cache holds."""
    values = {}
    columns = st.columns(3)
    for position, (field_name, (label, key, placeholder)) in enumerate(SEARCH_FIELDS.items()):
        with columns[position % 3]:
            if field_name in SUGGESTED:
                values[field_name] = st.selectbox(label, load(SUGGESTED[field_name]), index=None, key=key,
                                                  bind="query-params", accept_new_options=True,
                                                  placeholder=placeholder) or ""
            else:
                values[field_name] = st.text_input(label, key=key, bind="query-params", placeholder=placeholder)
    return queries.SearchQuery.from_dict(values)


# --- Sources & settings -------------------------------------------------------------

# kind -> (setting, label, widget, help); widget is "text", "list" (comma separated) or "date".
SOURCE_FIELDS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "sqs": (
        ("queue", "Queue name or URL", "text", "The SQS queue that receives the trail bucket's S3 notifications."),
        ("buckets", "Trail buckets", "list", "Buckets the queue's notifications point to, comma separated."),
    ),
    "s3": (
        ("bucket", "Trail bucket", "text", "The S3 bucket CloudTrail delivers to."),
        ("prefix", "Prefix", "text", "The trail's S3 key prefix, if it has one (before AWSLogs/)."),
        ("since", "From (UTC day)", "date", "First day to import."),
        ("until", "To (UTC day, included)", "date", "Last day to import; empty means today."),
        ("accounts", "Accounts", "list", "Only these 12-digit account IDs, comma separated; empty means all."),
        ("regions", "Regions", "list", "Only these regions, comma separated; empty means all."),
    ),
    "local": (
        ("path", "Folder", "text", "A folder of CloudTrail .json / .json.gz files (read recursively)."),
    ),
}
AWS_FIELDS = (
    ("region", "AWS region", "text", "e.g. eu-west-1; empty uses AWS_DEFAULT_REGION or the profile's region."),
    ("profile", "AWS profile", "text", "A profile from ~/.aws/config; empty uses the default credential chain."),
    ("role_arn", "Role to assume (ARN)", "text", "Optional: assume this role, e.g. in another account."),
    ("external_id", "External ID", "text", "Only if the role's trust policy requires one."),
)
CREDENTIALS_HELP = """
TrailStream never stores AWS keys. It uses the standard AWS credential chain of the machine it runs on:

- **Environment variables** `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) set before
  `streamlit run app.py`;
- a **profile** in `~/.aws/credentials` or `~/.aws/config` (SSO profiles too: run `aws sso login --profile NAME`
  first), named in the source's *AWS profile* field;
- an **instance or container role** when TrailStream runs on EC2, ECS or EKS.

The credentials need `sqs:ReceiveMessage`, `sqs:DeleteMessage`, `sqs:ChangeMessageVisibility`,
`sqs:GetQueueAttributes` on the queue and `s3:ListBucket`, `s3:GetObject` on the trail buckets
(plus `kms:Decrypt` if the logs are KMS-encrypted).
"""


def source_fields(kind: str) -> tuple[tuple[str, str, str, str], ...]:
    return SOURCE_FIELDS[kind] + (AWS_FIELDS if kind in ("sqs", "s3") else ())


def source_form(kind: str, existing: config.Source | None, key: str, default_name: str = "") -> config.Source | None:
    """A form for one source; returns the checked Source when saved, else None (problems are shown)."""
    values = config.source_table(existing) if existing else {}
    with st.form(key):
        raw = {"kind": kind, "name": st.text_input("Name", values.get("name", default_name), key=f"{key}-name",
                                                   help="A short name shown in sync results.")}
        columns = st.columns(2)
        for position, (name, label, widget, help_text) in enumerate(source_fields(kind)):
            with columns[position % 2]:
                raw[name] = _field_input(name, label, widget, help_text, values.get(name), f"{key}-{name}")
        submitted = st.form_submit_button("Save source", type="primary", icon=":material/save:")
    if not submitted:
        return None
    source, problems = config.parse_source({k: v for k, v in raw.items() if v not in ("", [], None)})
    if problems:
        st.error("The source was not saved. Fix this and save again:", icon=":material/error:")
        for problem in problems:
            st.text(f"• {problem}")
        return None
    return source


def _field_input(name: str, label: str, widget: str, help_text: str, value, key: str):
    if widget == "list":
        text = st.text_input(label, ", ".join(value or []), key=key, help=help_text)
        return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]
    if widget == "date":
        chosen = st.date_input(label, date.fromisoformat(value) if value else None, key=key, help=help_text)
        return chosen.isoformat() if chosen else ""
    return st.text_input(label, value or "", key=key, help=help_text).strip()


def save_source(current: config.Settings, source: config.Source, replacing: str | None = None) -> bool:
    """Add a source (or replace the one named `replacing`) and write the settings file; False if it could not."""
    if any(other.name == source.name for other in current.sources if other.name != replacing):
        st.error(f'A source is already named "{plain(source.name)}": pick another name.', icon=":material/error:")
        return False
    names = [other.name for other in current.sources]
    if replacing in names:
        current.sources[names.index(replacing)] = source
    else:
        current.sources.append(source)
    return _write_settings(current, {"source": source.name, "change": "edited" if replacing in names else "added"})


def remove_source(current: config.Settings, name: str) -> bool:
    current.sources = [source for source in current.sources if source.name != name]
    return _write_settings(current, {"source": name, "change": "removed"})


def _write_settings(current: config.Settings, change: dict | None = None) -> bool:
    """Save the settings file and note the change in the audit log."""
    try:
        config.save_settings(current)
    except (OSError, config.SettingsError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        st.error(f"Could not write {plain(str(current.path))}: {plain(reason)}. Check that the file and its folder "
                 "are writable.", icon=":material/error:")
        return False
    signin.record("setting_changed", change or {"file": str(current.path)})
    return True


def settings_problems(current: config.Settings) -> None:
    """Explain a settings file that cannot be used, and what to do."""
    st.error(f"The settings file has problems, so TrailStream will not change it. Edit {plain(str(current.path))} "
             "in a text editor, fix each line below, then reload this page.", icon=":material/error:")
    for problem in current.errors:
        st.text(f"• {problem}")


def connection_check(source: config.Source) -> None:
    """The Test connection answer for a source: credentials, queue and buckets, or the local folder's files."""
    if isinstance(source, config.LocalSource):
        files, missing = sync.find_local_files([settings().resolve(source.path)])
        if missing:
            st.error(f"Folder not found: {source.path}. Check the path (relative paths start at the settings "
                     "file's folder).", icon=":material/error:")
        elif not files:
            st.warning("The folder exists but holds no .json or .json.gz files.", icon=":material/warning:")
        else:
            st.success(f"Found {len(files):,} log file(s) to import.", icon=":material/check_circle:")
        return
    from trailstream.ingest import aws

    buckets = source.buckets if isinstance(source, config.SqsSource) else [source.bucket]
    with st.spinner("Asking AWS…"):
        check = aws.check_connection(
            queue=getattr(source, "queue", None), buckets=buckets, region=source.region or None,
            profile=source.profile or None, role_arn=source.role_arn or None, external_id=source.external_id or None,
        )
    (st.success if check.ok else st.error)("Connection OK" if check.ok else "Connection failed",
                                           icon=":material/check_circle:" if check.ok else ":material/error:")
    st.text(check.message if not check.ok else "\n".join(check.details))


def save_search_form(kind: str, heading: str, period_label: str, **definition) -> None:
    """The "save under a name" form of the Search and SQL pages; a saved search then appears on Reports."""
    with st.form(f"save-{kind}", border=True):
        st.markdown(f"**{heading}** (it then appears on **Reports**, where it can become a scheduled report)")
        name_column, period_column = st.columns([3, 1])
        name = name_column.text_input("Name", max_chars=saved.MAX_NAME_LENGTH)
        period = period_column.selectbox(period_label, list(TIME_PRESETS),
                                         index=list(TIME_PRESETS).index(saved.DEFAULT_REPORT_PERIOD))
        if not st.form_submit_button("Save", icon=":material/bookmark_add:"):
            return
    try:
        kept = saved.save_search(db_path(), saved.SavedSearch(name, kind, period=period, **definition))
    except saved.SavedSearchError as problem:
        st.error("Not saved.", icon=":material/error:")
        st.text(str(problem))
        return
    signin.record("setting_changed", {"saved_search": kept.name, "kind": kind})
    st.success("Saved. To share it, send the Reports page address ending in:", icon=":material/bookmark_added:")
    st.code(saved.share_query(kept), language=None)
