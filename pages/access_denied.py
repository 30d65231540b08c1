"""Access denied: calls refused as unauthorized, by principal, address, service and API, and the bursts among them;
the same named queries on the cache or on the lake."""

import streamlit as st

from trailstream.analytics import backend, charts, detections
from trailstream.app import state, widgets

CALL_COLUMNS = ("event_time", "principal", "api", "error_code", "source_ip", "account_id", "user_type")
BREAKDOWNS = {"principal": "principal", "source_ip": "source IP", "api": "API", "error_code": "error code"}

event_filter = widgets.page_start(
    "Access denied", "Calls refused as unauthorized (AccessDenied, UnauthorizedOperation, "
                     "Forbidden and kin): who, from where, for what, and bursts no person makes by mistake.")
settings, problems = detections.usable_detection_settings(state.settings())
for problem in problems:
    st.warning(f"Detection settings: {widgets.plain(problem)}", icon=":material/warning:")

events = state.backend()
counts = events.query("denied_counts", event_filter).row(0, named=True)
if widgets.no_matches(counts["calls"], "refused calls"):
    st.stop()
bursts = detections.detect_unauthorized_bursts(events, event_filter, settings)  # reads the store `events` answers from
widgets.metrics({"Refused calls": counts["calls"], "Principals": counts["principals"],
                 "Source IPs": counts["source_ips"], "APIs": counts["apis"], "Bursts": len(bursts)},
                {"Principals": "A role's sessions count as the role; each session is in the table below.",
                 "Bursts": f"{settings.unauthorized_threshold} or more refused calls by one principal within "
                           f"{settings.unauthorized_window_minutes} minutes."})

bucket = backend.bucket_for(event_filter, counts["first_seen"], counts["last_seen"])
timeline = events.query("denied_timeline", event_filter, bucket=bucket)
widgets.show_chart(charts.timeline_chart(timeline, "event_source", title="Refused calls over time",
                                        period=widgets.period(event_filter)), timeline,
                   "refused-calls-over-time")
by = st.segmented_control("Refused calls by", list(BREAKDOWNS), format_func=BREAKDOWNS.get, default="principal",
                          key="by", bind="query-params", required=True)
by_count = events.query("denied_breakdown", event_filter, by=by)
widgets.show_chart(charts.top_n_bar_chart(by_count, by, title=f"Refused calls by {BREAKDOWNS[by]}",
                                          fill=charts.FAILURE_RED), by_count,
                   f"refused-by-{by}")

if bursts:
    st.subheader("Bursts")
    bursts_frame = detections.findings_frame(bursts)
    widgets.table(bursts_frame, "unauthorized-bursts",
                  ("time", "severity", "principal", "account_id", "events", "summary"))
    widgets.download_table(bursts_frame.drop("key"), "unauthorized-bursts")

st.subheader("Refused calls, newest first")
calls = events.query("denied_calls", event_filter)
if counts["calls"] > calls.height:
    st.caption(f"The newest {calls.height:,} of {counts['calls']:,} refused calls: narrow the period to see the rest.")
widgets.raw_event_viewer(calls, "refused-calls", "refused-calls", CALL_COLUMNS)
