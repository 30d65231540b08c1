"""Overview: how much happened in the period, when, how much failed, where, which calls and who, and every event one
click from its record; the same named queries on the cache or on the lake."""

import streamlit as st

from trailstream.analytics import backend, charts
from trailstream.app import state, widgets
from trailstream.cache import early

LATEST = 1000

event_filter = widgets.page_start("Overview", "All CloudTrail activity in the period chosen in the sidebar.")
events = state.backend()

totals = events.query("totals", event_filter)
counts = totals.row(0, named=True)
widgets.metrics({"Events": counts["events"], "Failed calls": counts["failed"], "Principals": counts["principals"],
                 "Accounts": counts["accounts"], "Regions": counts["regions"]},
                {"Failed calls": "Calls that returned an error code (denied, throttled, invalid).",
                 "Principals": "Users and roles; a role's sessions count as the role."})
fresh = state.load(early.query_freshness) if events.engine is None else {"early": None}
if fresh["early"]:
    st.caption(f"Newest event from EventBridge (early): {fresh['early']} · from log files: "
               f"{fresh['log_files'] or 'none yet'}")
if widgets.no_matches(counts["events"]):
    st.stop()

st.subheader("Events over time")
bucket = backend.bucket_for(event_filter, counts["first_event"], counts["last_event"])
timeline = events.query("timeline", event_filter, group_by="event_source", bucket=bucket)
widgets.show_chart(charts.event_timeline_chart(timeline, period=widgets.period(event_filter)), timeline, "events-over-time")

share_column, places_column = st.columns([1, 2])
with share_column:
    st.subheader("Share of failed calls")
    widgets.show_chart(charts.failure_share_chart(totals), totals.select("events", "failed"), "failed-share")
with places_column:
    st.subheader("Events by account and region")
    places = events.query("account_regions", event_filter)
    charted = widgets.chart_rows(places, "account and region pairs", order="busiest")
    widgets.show_chart(charts.account_region_chart(charted), places, "account-region")

names_column, principals_column = st.columns(2)
with names_column:
    st.subheader("Top calls")
    top_names = events.query("top_event_names", event_filter)
    widgets.table(top_names, "top-event-names", ("event_name", "event_source", "events", "failed"))
with principals_column:
    st.subheader("Top principals")
    top_principals = events.query("top_principals", event_filter)
    widgets.table(top_principals, "top-principals", ("principal", "user_type", "events", "failed"))

st.subheader("Latest events")
if counts["events"] > LATEST:
    st.caption(f"The newest {LATEST:,} of {counts['events']:,} events: Search finds any of them.")
latest = events.query("events", backend.newest_period(event_filter, timeline, LATEST), limit=LATEST)
widgets.raw_event_viewer(latest, "overview-events", "overview-events")
