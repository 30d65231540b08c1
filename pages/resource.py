"""Resource history: every call that named one resource (instance, security group, bucket, role, key...), in order;
the same named queries on the cache or on the lake."""

import streamlit as st

from trailstream.analytics import charts, queries, transforms
from trailstream.app import state, widgets

event_filter = widgets.page_start("Resource history", "Every event whose resources, request or response mention "
                                  "the ID or name you pick or enter, oldest first.")
events = state.backend()
resource_id = st.text_input("Resource ID or name", key="resource_id", bind="query-params",
                            placeholder="i-0abc…, sg-0123…, arn:aws:iam::…:role/…, my-bucket")
if not resource_id.strip():
    st.subheader("Recently changed resources")
    st.caption("Instances, security groups, addresses, users, roles and buckets changed in the period, latest "
               "first. Select one to see its history, or type any ID above.")
    recent = events.query("recent_resources", event_filter)
    row = widgets.table(recent, "recent-resources", ("resource", "last_changed", "last_call", "principal", "changes"),
                        select=True)
    if row is None:
        st.stop()
    resource_id = recent.item(row, "resource")
resource_id = resource_id.strip()
history = events.query("resource_history", event_filter, resource_id=resource_id)
if widgets.no_matches(history, "events mentioning this resource"):
    st.stop()
st.subheader("History")
st.text(resource_id)
times = transforms.column_values(history, "event_time")
total = (events.query("resource_history_count", event_filter, resource_id=resource_id).item()
         if history.height >= queries.DEFAULT_ROW_LIMIT else history.height)
widgets.metrics(transforms.event_counts(history) | {"Events": total})
if total > history.height:
    st.caption(f"Showing the newest {history.height:,} of {total:,} events that mention it (the other counts are "
               "theirs): narrow the period to see the rest.")
st.caption(f"First seen {widgets.time_label(times[0])} · last seen {widgets.time_label(times[-1])}")
points = widgets.chart_rows(history, "events", order="oldest")
widgets.show_chart(charts.resource_timeline_chart(points, widgets.period(event_filter)), history,
                   "resource-timeline")
widgets.raw_event_viewer(history, "resource-history", "resource-history")
