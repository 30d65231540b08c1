"""The cache as the app sees it: settings, whether the cache can be read, and the cached loaders pages call.

Pages never open the cache themselves: they read through `load` (cached until the next sync), `read_uncached`
(state that changes within a page) and write through `write`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType

import streamlit as st

from trailstream import config, jobs
from trailstream.analytics import queries, sqlguard
from trailstream.cache import bookkeeping, store
from trailstream.filters import DEFAULT_PRESET, EventFilter
from trailstream.ingest import sync

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
    """Said on every page while the cache holds only generated events."""
    if cache_state().demo:
        st.info(
            "**Demo data.** These events are generated, not read from your AWS account. To see your own, add a "
            "source on **Sources & settings** and press **Sync**: the demo data is then replaced. No trail? "
            "**Read my Event history** in the sidebar reads your account's last 90 days.",
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
    """A person's SQL behind the guard, cached until the next sync; a refused or failed query raises (uncached)."""
    cache = cache_state()
    return _guarded_query(cache.path, cache.generation, sql, tuple(params.items()))


def load_record(event_id: str) -> dict | None:
    """The original CloudTrail record of one event."""
    return load(store.load_record, event_id)


def clear_cached_data() -> None:
    """Forget every loaded result: called after anything in the app stored events."""
    _cached_call.clear()
    _cache_facts.clear()
    _guarded_query.clear()
