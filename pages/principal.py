"""Principal activity: everything one user, role or service did, from where, with which keys and clients."""

import streamlit as st

from trailstream import charts, queries, transforms, ui

event_filter = ui.page_start("Principal activity", "Pick a user, role session or service to see what it did.")
principals = ui.load(queries.query_principals, event_filter)
if ui.no_matches(principals, "principals"):
    st.stop()
principal = st.selectbox("Principal", transforms.column_values(principals, "principal"), index=None, key="principal",
                         bind="query-params", placeholder="Choose a principal (busiest first)")
if principal is None:
    ui.table(principals, "principals", ("principal", "user_type", "events", "failed", "first_seen", "last_seen"))
    st.stop()

activity = ui.load(queries.query_principal_activity, event_filter, principal)
summary = transforms.principal_summary(activity).row(0, named=True)
ui.metrics({"Events": summary["events"], "Failed calls": summary["failed"], "APIs": summary["event_names"],
            "Source IPs": summary["source_ips"], "Access keys": summary["access_keys"], "Regions": summary["regions"]})
timeline = transforms.principal_timeline(activity)
ui.show_chart(charts.timeline_chart(timeline, "event_name", title="Activity over time"), timeline,
              "principal-timeline")

tabs = st.tabs(["APIs", "Source IPs", "User agents", "Access keys", "Regions"])
for tab, column in zip(tabs, ("event_name", "source_ip", "user_agent", "access_key_id", "aws_region")):
    with tab:
        ui.table(transforms.principal_breakdown(activity, column), f"principal-by-{column}")

st.subheader("Events")
ui.raw_event_viewer(ui.load(queries.query_principal_events, event_filter, principal), "principal-events",
                    "principal-events")
