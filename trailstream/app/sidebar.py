"""The shared sidebar: the global filters (kept in the URL so a view can be shared) and the Sync button, which runs
every source with live progress and then the one post-sync step (alert rules, due reports), like every other sync."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import streamlit as st

from trailstream import config, jobs
from trailstream.analytics import queries
from trailstream.app import forms, signin, state, widgets
from trailstream.cache import bookkeeping
from trailstream.filters import DEFAULT_PRESET, TIME_PRESETS, EventFilter
from trailstream.ingest import sync
from trailstream.timefmt import iso_utc

CUSTOM_RANGE = "custom"
RANGE_OPTIONS = (*TIME_PRESETS, CUSTOM_RANGE)  # shown as is: a bound widget keeps its shown label in the URL
EARLIEST_DAY = date(2013, 11, 1)  # CloudTrail's launch: nothing can be older
SYNC_RESULTS_KEY = "_trailstream_sync_results"
SHOWN_FAILURES = 50


def sidebar_filters() -> EventFilter:
    """The global filters, kept in the URL so a view can be shared; call once per run (app.py), before the page."""
    options = state.filter_options()
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
    st.session_state[state.FILTER_KEY] = event_filter
    return event_filter


def _day_bounds(first: date | None, last: date | None) -> tuple[str | None, str | None]:
    """Whole UTC days [first 00:00, last+1 00:00); swapped if given backwards."""
    if first and last and first > last:
        first, last = last, first
    start = iso_utc(datetime.combine(first, time(), timezone.utc)) if first else None
    end = iso_utc(datetime.combine(last + timedelta(days=1), time(), timezone.utc)) if last else None
    return start, end


def sync_button() -> None:
    """The sidebar's Sync: every configured source with a live progress bar, the post-sync step, then a summary."""
    with st.sidebar:
        clicked = st.button("Sync", type="primary", icon=":material/sync:", width="stretch",
                            help="Fetch new CloudTrail files from every source on Sources & settings, then check "
                                 "the alert rules and send the reports that are due.")
        if clicked:
            _run_sync()
        _event_history_offer()
        _show_sync_results()
        _show_freshness()


def _event_history_offer() -> None:
    """No trail yet (no source, or only demo data): one click adds an Event history source and syncs it."""
    current, cache = state.settings(), state.cache_state()
    if current.errors or current.sources or (cache.status == "ok" and not cache.demo):
        return
    st.caption("No trail? Read the last 90 days of your account's Event history (CloudTrail's LookupEvents, with "
               "the AWS credentials this app runs with; no trail or queue needed).")
    if st.button("Read my Event history", icon=":material/history:", width="stretch", key="event-history-offer"):
        if forms.save_source(current, config.LookupSource(name="event-history")):
            _run_sync()


def _run_sync() -> None:
    """Sync every source, then run the post-sync step on what arrived; both outcomes are kept for the summary."""
    current = state.settings()
    if current.errors:
        st.error("The settings file has problems; fix them on **Sources & settings** first.")
        return
    if not current.sources:
        st.warning("No source is configured yet: add one on **Sources & settings**, then press Sync.")
        return
    path = current.db_path()
    discarded = jobs.discard_demo_cache(path)
    bar = st.progress(0.0, text="Starting…")
    on_source, on_progress = _progress_reporters(bar, len(current.sources))
    results = jobs.run_configured_sync(current, path, on_progress, on_source)
    bar.empty()
    if jobs.refused(results):  # the running sync checks alerts and reports itself: say so now, not after its lock
        st.session_state[SYNC_RESULTS_KEY] = (results, discarded, None)
        return
    with st.spinner("Checking the alert rules and sending the reports that are due…"):
        outcome = jobs.after_sync(path, current)
    state.clear_cached_data()
    st.session_state[SYNC_RESULTS_KEY] = (results, discarded, outcome)
    signin.record("sync", {result.source: result.counts() for result in results})


def _progress_reporters(bar, sources: int):
    """Callbacks that move the progress bar: one when a source starts, one per file done."""
    label = {"source": ""}

    def on_source(index: int, source: config.Source) -> None:
        label["source"] = f"{source.name} ({index + 1}/{sources})"
        label["kind"] = source.kind
        bar.progress(0.0, text=f"{label['source']}: listing files…")

    def on_progress(progress: sync.SyncProgress) -> None:
        total = progress.files_total
        fraction = min(progress.files_done / total, 1.0) if total else 0.0
        if label.get("kind") == "lookup":  # Event history has no files: say the region and the day reached
            counted = progress.current or "starting"
        else:
            counted = f"{progress.files_done:,}" + (f"/{total:,}" if total is not None else "") + " files"
        bar.progress(fraction, text=f"{label['source']}: {counted}, {progress.new_events:,} new events")

    return on_source, on_progress


def retry_failed() -> None:
    """Fetch the failed files again; the outcome shows under the Sync button like a sync's."""
    with st.spinner("Fetching the failed files again…"):
        result = jobs.retry_failed_files(state.settings(), state.db_path())
    state.clear_cached_data()
    st.session_state[SYNC_RESULTS_KEY] = ([result], False, None)
    signin.record("retry", result.counts())
    st.rerun()


def _show_sync_results() -> None:
    results, discarded, outcome = st.session_state.get(SYNC_RESULTS_KEY, ([], False, None))
    if discarded:
        st.caption("The demo data was removed: the cache now holds only your events.")
    for result in results:
        show_sync_result(result)
    if outcome is not None:
        (st.success if outcome.succeeded else st.warning)(
            "Alerts and reports checked." if outcome.succeeded else "Alerts and reports checked, with problems:",
            icon=":material/notifications_active:")
        st.text(outcome.summary())


def show_sync_result(result: sync.SyncResult) -> None:
    """One result: counts in a success or error box, each failure's reason as plain text."""
    box = st.success if result.succeeded else st.error
    box(f"{result.files:,} file(s), {result.new_events:,} new event(s), {result.duplicates:,} duplicate(s), "
        f"{result.failed:,} failure(s)", icon=":material/check_circle:" if result.succeeded else ":material/error:")
    st.text(f"Source: {result.source}")
    if result.failures:
        with st.expander(f"{len(result.failures):,} failure(s)", expanded=len(result.failures) <= 3):
            for name, reason in result.failures[:SHOWN_FAILURES]:
                st.text(f"{name}\n  {reason}")
            if len(result.failures) > SHOWN_FAILURES:
                st.caption(f"…and {len(result.failures) - SHOWN_FAILURES:,} more: see Sync history.")


def _show_freshness() -> None:
    if state.cache_state().status not in ("ok", "empty"):
        return
    summary = state.load(queries.query_cache_summary)
    last_run = state.load(bookkeeping.query_sync_runs, 1)
    if last_run.height:
        ended = last_run.item(0, "ended_at") or last_run.item(0, "started_at")
        st.caption(f"Last sync: {widgets.ago(ended)} ({last_run.item(0, 'status')})")
    if summary["last_event"]:
        st.caption(f"Newest event: {widgets.ago(summary['last_event'])}")
