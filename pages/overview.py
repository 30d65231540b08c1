"""Overview: how much happened in the period, when, which calls and who, and every event one click from its record."""

import streamlit as st

from trailstream.analytics import charts, queries
from trailstream.app import ui

event_filter = ui.page_start("Overview", "All CloudTrail activity in the period chosen in the sidebar.")

totals = ui.load(queries.query_overview_totals, event_filter).row(0, named=True)
ui.metrics(
    {
        "Events": totals["events"],
        "Failed calls": totals["failed"],
        "Principals": totals["principals"],
        "Accounts": totals["accounts"],
        "Regions": totals["regions"],
    },
    {"Failed calls": "Calls that returned an error code (denied, throttled, invalid)."},
)
if ui.no_matches(totals["events"]):
    st.stop()

st.subheader("Events over time")
timeline = ui.load(queries.query_event_timeline, event_filter, "event_source")
ui.show_chart(charts.event_timeline_chart(timeline), timeline, "events-over-time")

names_column, principals_column = st.columns(2)
with names_column:
    st.subheader("Top calls")
    top_names = ui.load(queries.query_top_event_names, event_filter)
    ui.table(top_names, "top-event-names", ("event_name", "event_source", "events", "failed"))
with principals_column:
    st.subheader("Top principals")
    top_principals = ui.load(queries.query_top_principals, event_filter)
    ui.table(top_principals, "top-principals", ("principal", "user_type", "events", "failed"))

st.subheader("Latest events")
ui.raw_event_viewer(ui.load(queries.query_events, event_filter, limit=1000), "overview-events", "overview-events")
