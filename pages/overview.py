"""Overview: how much happened in the period, when, which calls and who, and every event one click from its record."""

import streamlit as st

from trailstream.analytics import charts, queries
from trailstream.app import state, widgets

event_filter = widgets.page_start("Overview", "All CloudTrail activity in the period chosen in the sidebar.")

totals = state.load(queries.query_overview_totals, event_filter).row(0, named=True)
widgets.metrics(
    {
        "Events": totals["events"],
        "Failed calls": totals["failed"],
        "Principals": totals["principals"],
        "Accounts": totals["accounts"],
        "Regions": totals["regions"],
    },
    {"Failed calls": "Calls that returned an error code (denied, throttled, invalid)."},
)
if widgets.no_matches(totals["events"]):
    st.stop()

st.subheader("Events over time")
timeline = state.load(queries.query_event_timeline, event_filter, "event_source")
widgets.show_chart(charts.event_timeline_chart(timeline), timeline, "events-over-time")

names_column, principals_column = st.columns(2)
with names_column:
    st.subheader("Top calls")
    top_names = state.load(queries.query_top_event_names, event_filter)
    widgets.table(top_names, "top-event-names", ("event_name", "event_source", "events", "failed"))
with principals_column:
    st.subheader("Top principals")
    top_principals = state.load(queries.query_top_principals, event_filter)
    widgets.table(top_principals, "top-principals", ("principal", "user_type", "events", "failed"))

st.subheader("Latest events")
widgets.raw_event_viewer(state.load(queries.query_events, event_filter, limit=1000), "overview-events", "overview-events")
