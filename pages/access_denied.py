"""Access denied: calls refused as unauthorized, by principal, address, service and API, and the bursts among them."""

import streamlit as st

from trailstream.analytics import charts, detections, queries, transforms
from trailstream.app import state, widgets

CALL_COLUMNS = ("event_time", "principal", "api", "error_code", "source_ip", "account_id", "user_type")
BREAKDOWNS = {"principal": "principal", "source_ip": "source IP", "api": "API", "error_code": "error code"}
COLUMNS = {"principal": "actor"}  # a role's sessions count as the role; each session is in the table below

event_filter = widgets.page_start(
    "Access denied", "Calls refused as unauthorized (AccessDenied, UnauthorizedOperation, "
                     "Forbidden and kin): who, from where, for what, and bursts no person makes by mistake.")
settings, problems = detections.usable_detection_settings(state.settings())
for problem in problems:
    st.warning(f"Detection settings: {widgets.plain(problem)}", icon=":material/warning:")

calls = state.load(detections.query_unauthorized_calls, event_filter)
if widgets.no_matches(calls, "refused calls"):
    st.stop()
bursts = state.load(detections.detect_unauthorized_bursts, event_filter, settings)
widgets.metrics({"Refused calls": calls.height, "Principals": transforms.distinct_count(calls, "actor"),
                 "Source IPs": transforms.distinct_count(calls, "source_ip"),
                 "APIs": transforms.distinct_count(calls, "api"), "Bursts": len(bursts)},
                {"Bursts": f"{settings.unauthorized_threshold} or more refused calls by one principal within "
                           f"{settings.unauthorized_window_minutes} minutes."})

every = queries.BUCKETS[state.load(queries.pick_bucket, event_filter)][1]
timeline = detections.count_over_time(calls, every, "event_source")
widgets.show_chart(charts.timeline_chart(timeline, "event_source", title="Refused calls over time",
                                        period=widgets.period(event_filter)), timeline,
                   "refused-calls-over-time")
by = st.segmented_control("Refused calls by", list(BREAKDOWNS), format_func=BREAKDOWNS.get, default="principal",
                          key="by", bind="query-params", required=True)
counts = detections.breakdown(calls, by, column=COLUMNS.get(by))
widgets.show_chart(charts.top_n_bar_chart(counts, by, title=f"Refused calls by {BREAKDOWNS[by]}",
                                          fill=charts.FAILURE_RED), counts,
                   f"refused-by-{by}")

if bursts:
    st.subheader("Bursts")
    bursts_frame = detections.findings_frame(bursts)
    widgets.table(bursts_frame, "unauthorized-bursts",
                  ("time", "severity", "principal", "account_id", "events", "summary"))
    widgets.download_table(bursts_frame.drop("key"), "unauthorized-bursts")

st.subheader("Refused calls, newest first")
widgets.raw_event_viewer(calls, "refused-calls", "refused-calls", CALL_COLUMNS)
