"""Sync history: every run, the files that failed (with a retry), and whether each account is still delivering logs."""

import streamlit as st

from trailstream.app import sidebar, signin, state, widgets
from trailstream.analytics import queries, transforms
from trailstream.cache import bookkeeping
from trailstream.filters import EventFilter

signin.require_admin()
st.title("Sync history")
st.caption("What each sync fetched, what failed and why, and how fresh each account's logs are.")
state.require_cache()

summary = state.load(queries.query_cache_summary)
runs, run_count = state.load(bookkeeping.query_sync_runs), state.load(bookkeeping.sync_run_count)
stored_files = summary["files"] - summary["failed_files"] - summary["skipped_files"]
widgets.metrics({"Sync runs": run_count, "Files stored": stored_files, "Files skipped": summary["skipped_files"],
                 "Files failed": summary["failed_files"], "Events": summary["events"]})

st.subheader("Ingestion health")
if not state.load(bookkeeping.has_delivery_summaries):
    st.info("Delivery lag and quiet pairs are counted from the next sync on: this cache was made by an older "
            "TrailStream. Press **Sync** in the sidebar, or run any `python -m trailstream` command, to update it.",
            icon=":material/update:")
health = transforms.ingestion_health(state.load(bookkeeping.query_delivery_health),
                                     state.load(queries.query_account_region_counts, EventFilter(), True))
quiet = transforms.rows_where(health, "quiet")
if quiet.height:
    st.warning(f"{quiet.height:,} account and region pair(s) have been silent for more than twice their longest "
               "gap so far (listed first below). Check that their trails are still logging and delivering: a "
               "stopped trail looks exactly like a quiet account.", icon=":material/warning:")
if health.height:
    st.caption("Delivery lag: how long events waited for their log file, from the event's time to the delivery time "
               "CloudTrail writes in the file's name (median and 95th percentile over the files). Files without "
               "CloudTrail's name (local exports, Event history) have no delivery time and are not judged quiet.")
    known = transforms.glance_columns(health)  # no trail-named file (local samples): no empty delivery columns
    widgets.table(health, "ingestion-health", tuple(c for c in ("quiet", "account_id", "aws_region", "events",
                                                                "newest_event_time", "silent_for", "delivery_lag",
                                                                "delivery_lag_p95", "files", "last_processed_at")
                                                    if c in known))
else:
    st.info("No log file has been stored yet.", icon=":material/inbox:")

st.subheader("Runs")
if run_count > runs.height:
    st.caption(f"The newest {runs.height:,} of {run_count:,} runs.")
widgets.table(runs, "sync-runs", ("id", "source", "started_at", "ended_at", "status", "files", "new_events",
                                  "duplicates", "skipped", "failures", "message"))

st.subheader("Failed files")
failed = state.load(bookkeeping.query_files, ("failed",))
if failed.height == 0:
    st.success("No failed files.", icon=":material/check_circle:")
else:
    if summary["failed_files"] > failed.height:
        st.caption(f"The newest {failed.height:,} of {summary['failed_files']:,} failed files; a retry fetches them all.")
    widgets.table(failed, "failed-files", ("processed_at", "source", "bucket", "key", "error"), download="failed-files")
    if st.button("Retry failed files", icon=":material/replay:", type="primary"):
        sidebar.retry_failed()

widgets.unconfirmed_early_events()

rejected = state.load(bookkeeping.query_rejected_records)
if rejected.height:
    st.subheader("Refused records")
    st.caption("Records inside stored files that could not be kept, and why.")
    if (refused := state.load(bookkeeping.rejected_record_count)) > rejected.height:
        st.caption(f"The newest {rejected.height:,} of {refused:,} refused records.")
    widgets.table(rejected, "rejected-records")
