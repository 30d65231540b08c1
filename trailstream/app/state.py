"""The cache as the app sees it: settings, whether the cache can be read, and the cached loaders pages call.

Pages never open the cache themselves: they read through `load` (cached until the next sync), `read_uncached`
(state that changes within a page) and write through `write`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FunctionType

import polars as pl
import streamlit as st

from trailstream import config, jobs
from trailstream.analytics import backend as query_backend
from trailstream.analytics import choice_queries, lake_sqlguard, queries, sqlguard
from trailstream.cache import bookkeeping, store
from trailstream.filters import DEFAULT_PRESET, EventFilter
from trailstream.ingest import athena, aws, lake, lineage, sync
from trailstream.timefmt import iso_utc, parse_iso_utc

DEMO_EVENTS = 20_000
DEMO_SEED = 7
FILTER_KEY = "_trailstream_event_filter"


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
        with closing(store.open_cache_readonly(path)) as conn:
            generation = bookkeeping.cache_generation(conn)
        events, demo = _cache_facts(path, generation)
    except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
        return CacheState(path, "unreadable", problem=str(exc))
    return CacheState(path, "ok" if events else "empty", generation, events, demo)


@st.cache_data(show_spinner=False, max_entries=16)
def _cache_facts(path: str, generation: int) -> tuple[int, bool]:
    summary = _cached_call(queries.query_cache_summary, path, generation, (), ())
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
        except (OSError, store.CacheUnreadable, sync.DemoRefused, sync.CacheFull) as exc:
            st.error("Could not build the demo data. Check that the folder of the cache is writable, then reload.")
            st.text(str(exc))
            st.stop()


def demo_banner() -> None:
    """Said on every page while the cache holds only generated events: at the foot of the sidebar, so no page title
    is pushed down by it."""
    if cache_state().demo:
        st.sidebar.info(
            "**Demo data**: generated events, not your AWS account's. Add a source on **Sources & settings** and "
            "press **Sync** to replace them.",
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


def current_filter() -> EventFilter:
    """The filter the sidebar built in this run (pages call this; app.py calls sidebar.sidebar_filters first)."""
    return st.session_state.get(FILTER_KEY) or EventFilter.from_preset(DEFAULT_PRESET)


def _function_key(function: Callable) -> str:
    """A query function's cache key: where it lives (functions cannot be pickled for Streamlit's hasher)."""
    return f"{function.__module__}.{function.__qualname__}"


@st.cache_data(show_spinner=False, max_entries=512, hash_funcs={FunctionType: _function_key})
def _cached_call(function: Callable, path: str, generation: int, args: tuple, kwargs: tuple):
    """Call the query on a read-only handle; the generation in the key makes every sync refresh the data."""
    with closing(store.open_cache_readonly(path)) as conn:
        return function(conn, *args, **dict(kwargs))


def load(function: Callable, *args, **kwargs):
    """Call a `query_*(conn, ...)` function on the cache, cached until the next sync. Arguments must be hashable."""
    state = cache_state()
    return _cached_call(function, state.path, state.generation, args, tuple(sorted(kwargs.items())))


def read_uncached(function: Callable, *args, **kwargs):
    """Call a `query_*(conn, ...)` function on a fresh read-only handle, for state that changes within a page."""
    with closing(store.open_cache_readonly(cache_state().path)) as conn:
        return function(conn, *args, **kwargs)


def write(function: Callable, *args, **kwargs):
    """Call a `save_*` / `delete_*(db, ...)` function on a writable handle: the one way a page changes the cache."""
    with closing(store.open_cache(cache_state().path)) as db:
        return function(db, *args, **kwargs)


@st.cache_data(show_spinner="Running the query…", max_entries=32)
def _guarded_query(path: str, generation: int, sql: str, params: tuple) -> sqlguard.QueryResult:
    return sqlguard.run_query(path, sql, dict(params))


def run_sql(sql: str, params: dict) -> sqlguard.QueryResult:
    """A person's SQL behind the guard (the lake's guard while the lake is live), on the cache cached until the next
    sync; a refused or failed query raises QueryRefused or QueryFailed."""
    page = backend()
    if page.engine is None:
        cache = cache_state()
        return _guarded_query(cache.path, cache.generation, sql, tuple(params.items()))
    try:
        result = lake_sqlguard.run_lake_query(page.lake.run, page.lake.table, page.lake.dialect, sql, params,
                                              interrupt=page.lake.interrupt)
    except _LAKE_ERRORS as exc:
        raise sqlguard.QueryFailed(str(exc)) from None
    page._show_note()
    return result


def sql_store() -> str | None:
    """Which store the SQL page's queries read: None for the cache, else the lake's engine ("duckdb", "athena")."""
    return backend().engine


def lake_columns() -> tuple[str, ...]:
    """The columns of the lake's events table (partition keys last), for the SQL page's help."""
    return (*lake.LAKE_SCHEMA.names, *lake.PARTITION_KEYS)


def run_report(function: Callable, *args, **kwargs):
    """Call a notify.reports runner (run_saved, render_report) on the live store: the lake's note shows as on any
    lake page; a lake that cannot answer raises what the runner raises (QueryFailed, ReportError)."""
    page = backend()
    result = function(*args, lake=page.lake, **kwargs)
    if page.engine is not None:
        page._show_note()
    return result


def report_builder(function: Callable, *args) -> Callable[[], bytes]:
    """A download button's deferred call: the report file's bytes, built on the store live now."""
    lake_now = backend().lake
    return lambda: function(*args, lake=lake_now).data


def load_record(event_id: str) -> dict | None:
    """The original CloudTrail record of one event."""
    return load(store.load_record, event_id)


@st.cache_data(show_spinner="Reading the event's source file…", ttl=3600, max_entries=64)
def _source_record(source_key: str, sha256: str | None, event_id: str, sources: tuple,
                   access: config.AwsAccess) -> lineage.SourceRecord:
    return lineage.fetch_source_record(source_key, sha256, event_id, sources, access)


def lake_record(event_id: str, event_time: str) -> lineage.SourceRecord:
    """A lake event's original record from the file its lineage names, checked against the lake's SHA-256 (kept an
    hour once read); LineageError says why it cannot be shown."""
    page = backend()
    try:
        source = page.lake.query("record_source", EventFilter(), event_id=event_id, event_time=event_time)
    except _LAKE_ERRORS as exc:
        raise lineage.LineageError(f"the lake could not say which file this event came from: {exc}") from None
    page._show_note()
    if source.is_empty():
        raise lineage.LineageError("the lake holds no row with this event's ID at its time: it may have been "
                                   "compacted again since this page was read; reload the page")
    current = settings()
    return _source_record(*source.row(0), event_id, tuple(current.sources), backend_settings().access)


def clear_cached_data() -> None:
    """Forget every loaded result: called after anything in the app stored events."""
    _cached_call.clear()
    _cache_facts.clear()
    _guarded_query.clear()


# --- The query backend: the cache, or the lake when [backend] kind = "athena" ------------------------

# Pages whose queries run on the lake; every other page reads the cache.
LAKE_PAGES = ("Overview", "Search", "Network & security groups", "EC2 instances", "Elastic IPs", "IAM", "Rare errors",
              "SQL", "Reports", "Security overview", "Sign-ins", "Principal activity", "Resource history",
              "Access denied")
BACKEND_KEY = "_trailstream_page_backend"
LAKE_ROUND_SECONDS = 300  # an open period on the lake, in whole 5-minute marks: pages within 5 minutes share results
_LAKE_ERRORS = (aws.SourceError, query_backend.LakeUnavailable, query_backend.UnsupportedSearch, lake.LakeError)


def backend_settings() -> config.BackendSettings:
    """[backend] as written ("cache" when the file is broken: Sources & settings says what is wrong)."""
    current = settings()
    return config.BackendSettings() if current.errors else config.BackendSettings.from_section(current.section("backend"))


lake_engine = query_backend.lake_engine  # None for the cache; "duckdb" for a local lake folder; else "athena"


def store_words() -> str:
    """Where the pages' events are, in words: "in the cache" or "in the lake"."""
    return "in the lake" if lake_engine(backend_settings()) else "in the cache"


@st.cache_data(show_spinner=False, ttl=3600, max_entries=8)
def _lake_store_wide(name: str, chosen: config.BackendSettings, path: str) -> pl.DataFrame:
    """A named query over the whole lake (choices, suggestions): kept an hour, as the lake only grows."""
    run = athena.AthenaRunner(chosen, athena.results_folder(path)).frame if lake_engine(chosen) == "athena" else None
    return query_backend.backend_for(chosen, None, run).query(name, EventFilter())


def filter_options() -> queries.FilterOptions:
    """The sidebar's account and region choices: the lake's while it is live (kept an hour), else the cache's."""
    chosen = backend_settings()
    if lake_engine(chosen):
        try:
            return choice_queries.filter_options(_lake_store_wide("filter_choices", chosen, db_path()))
        except _LAKE_ERRORS:
            return queries.FilterOptions((), ())  # the page itself says what is wrong with the lake
    if cache_state().status in ("ok", "empty"):
        return load(queries.query_filter_options)
    return queries.FilterOptions((), ())


def search_suggestions() -> dict[str, list[str]]:
    """The event names and error codes the Search form suggests: the lake's while it is live (kept an hour)."""
    chosen = backend_settings()
    if lake_engine(chosen):
        try:
            return choice_queries.suggestions(_lake_store_wide("search_suggestions", chosen, db_path()))
        except _LAKE_ERRORS:
            return dict.fromkeys(choice_queries.SUGGESTED_COLUMNS, [])  # the page itself says what is wrong
    if cache_state().status in ("ok", "empty"):
        return choice_queries.suggestions(load(choice_queries.query_search_suggestions, EventFilter()))
    return dict.fromkeys(choice_queries.SUGGESTED_COLUMNS, [])


def _cache_query(conn: sqlite3.Connection, name: str, event_filter: EventFilter, options: tuple) -> pl.DataFrame:
    return query_backend.CacheBackend(conn).query(name, event_filter, **dict(options))


@st.cache_data(show_spinner=False, ttl=600, max_entries=8)
def _scan_limit(backend: config.BackendSettings) -> int | None:
    return athena.fetch_scan_limit(athena.AthenaRunner(backend))


@dataclass
class PageBackend:
    """One page run's named queries on the live backend, and the note saying where they ran and what they scanned."""

    settings: config.BackendSettings
    engine: str | None
    note: object = None
    lake: query_backend.LakeBackend | None = None
    runner: athena.AthenaRunner | None = None
    scan_limit: int | None = None

    def query(self, name: str, event_filter: EventFilter, **options):
        """A named query (analytics.backend.QUERY_NAMES); on the lake, a failure stops the page with a sentence."""
        if self.engine is None:
            return load(_cache_query, name, event_filter, tuple(sorted(options.items())))
        try:
            frame = self.lake.query(name, _lake_period(event_filter), **options)
        except _LAKE_ERRORS as exc:
            _lake_failed(exc)
        self._show_note()
        return frame

    def _show_note(self) -> None:
        if self.engine == "duckdb":
            note = f"Read from the lake at {self.settings.lake} with DuckDB (the local stand-in for Athena)."
        else:
            note = (f"Athena workgroup {self.settings.workgroup}: this page {self.runner.cost_note()}; "
                    f"{athena.scan_limit_note(self.scan_limit)}. Results are kept, so the same query and period do "
                    "not scan again.")
        self.note.text(note)  # as typed: in markdown "$" would start LaTeX and a path's "_" italics


def _lake_period(event_filter: EventFilter, now: datetime | None = None) -> EventFilter:
    """An open-ended period as whole 5-minute marks (start rounded down, end the next mark): the pages of one visit
    ask the same statements, and a kept result is never older than 5 minutes (the lake grows as syncs run)."""
    if event_filter.end:
        return event_filter
    moment = (now or datetime.now(timezone.utc)).timestamp()
    end = iso_utc(datetime.fromtimestamp(moment - moment % LAKE_ROUND_SECONDS + LAKE_ROUND_SECONDS, timezone.utc))
    if not event_filter.start:
        return replace(event_filter, end=end)
    start = parse_iso_utc(event_filter.start).timestamp()
    return replace(event_filter, start=iso_utc(datetime.fromtimestamp(start - start % LAKE_ROUND_SECONDS, timezone.utc)),
                   end=end)


def _lake_failed(exc: Exception):
    st.error("The lake could not answer this page's queries; what went wrong, and what to do:",
             icon=":material/cloud_off:")
    st.text(str(exc))  # as typed: it may quote a path or Athena's own words
    st.stop()


def backend() -> PageBackend:
    """The backend this page's queries go to: the cache, or the lake ([backend] kind = "athena"); its note shows where
    the page first calls this, and later calls in the same run share it (backend_notice starts each run afresh)."""
    if st.session_state.get(BACKEND_KEY) is not None:
        return st.session_state[BACKEND_KEY]
    chosen = backend_settings()
    engine = lake_engine(chosen)
    if engine is None:
        return PageBackend(chosen, None)  # nothing to keep: cache queries are cached by `load`
    page = PageBackend(chosen, engine, st.empty())
    if chosen.problems():
        _lake_failed(ValueError("; ".join(chosen.problems()) + ": fix [backend] in the settings file"))
    try:
        if engine == "athena":
            page.scan_limit = _scan_limit(chosen)
            page.runner = athena.AthenaRunner(chosen, athena.results_folder(db_path()))
        page.lake = query_backend.backend_for(chosen, None, page.runner.frame if page.runner else None)
    except _LAKE_ERRORS as exc:
        _lake_failed(exc)
    st.session_state[BACKEND_KEY] = page
    return page


def load_on_store(function: Callable, *args):
    """Call a `query_*(source, ...)` function taking a cache connection or an events source: on the cache through
    `load` (cached until the next sync), on the lake with this page's backend (its note shows; failures are sentences)."""
    page = backend()
    return load(function, *args) if page.engine is None else function(page, *args)


# The pages of the app's own state (its syncs, verified digests, rules, fired alerts, actions: kept in the local file
# whatever the backend), each saying in one line what it reads while the lake is live.
OWN_STATE_NOTICES = {
    "Sync history": "Sync history lists this machine's syncs and the files they stored in the local cache; the lake "
                    "is written by `compact` (or `watch --compact-to`), whose runs are not listed here.",
    "Integrity & coverage": "Integrity & coverage checks the digests and log files this machine synced (kept in the "
                            "local cache); the events it counts per period and hour come from the lake.",
    "Audit log": "The Audit log lists what was done in this app (sign-ins, syncs, changes), kept in the local cache "
                 "whatever the backend.",
    "Alerts": "Alerts lists the rules, channels and fired alerts kept in the local cache (the app's own state, "
              "whatever the backend); with the lake live the rules check the lake's events.",
    "Detection rules": "Detection rules lists the Sigma rules, their switches and exceptions kept in the local cache "
                       "(the app's own state); their findings on the lake show on the Security overview.",
}


def backend_notice(page_title: str) -> None:
    """While the lake is live, a page not (wholly) on it says in one line what it reads: the app's own state, or that
    it still reads the local cache (never the cache shown as if it were the lake)."""
    st.session_state[BACKEND_KEY] = None  # a new run: the page makes its own backend and note
    if page_title in LAKE_PAGES or page_title == "Sources & settings" or not lake_engine(backend_settings()):
        return
    st.info(OWN_STATE_NOTICES.get(page_title) or f"{page_title} still reads the local cache, not the lake: only "
            f"{', '.join(LAKE_PAGES)} run on the lake so far.", icon=":material/info:")
