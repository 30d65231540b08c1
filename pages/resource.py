"""Resource history: every call that named one resource (instance, security group, bucket, role, key...), in order."""

import streamlit as st

from trailstream.analytics import charts, queries, transforms
from trailstream.app import state, widgets

event_filter = widgets.page_start("Resource history", "Every event whose resources, request or response mention "
                                  "the ID or name you enter, oldest first.")
resource_id = st.text_input("Resource ID or name", key="resource_id", bind="query-params",
                            placeholder="i-0abc…, sg-0123…, arn:aws:iam::…:role/…, my-bucket")
if not resource_id.strip():
    st.info("Enter an ID, ARN or name to see its history.", icon=":material/history:")
    st.stop()
history = state.load(queries.query_resource_history, event_filter, resource_id.strip())
if widgets.no_matches(history, "events mentioning this resource"):
    st.stop()
times = transforms.column_values(history, "event_time")
widgets.metrics(transforms.event_counts(history) | {"First seen": widgets.time_label(times[0]),
                                                    "Last seen": widgets.time_label(times[-1])})
points = widgets.chart_rows(history.select("event_time", "event_name", "principal"), "events", order="oldest")
widgets.show_chart(charts.quick_chart(points, "event_time", color="event_name", kind="point"), history,
                   "resource-timeline")

st.subheader("History")
widgets.raw_event_viewer(history, "resource-history", "resource-history")
