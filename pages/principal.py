"""Principal activity: everything one user, role or service did, from where, with which keys and clients; the same
named queries on the cache or on the lake."""

import streamlit as st

from trailstream.analytics import backend, charts, policy, queries, transforms
from trailstream.app import state, widgets

event_filter = widgets.page_start("Principal activity", "Pick a user, role or service to see what it did; a role's "
                                  "sessions count as the role and are listed one tab deeper.")
events = state.backend()
principals = events.query("principals", event_filter)
if events.no_matches(principals.height) or widgets.no_matches(principals, "principals"):
    st.stop()
principal = st.selectbox("Principal", transforms.column_values(principals, "principal"), index=None, key="principal",
                         bind="query-params", placeholder="Choose a principal (busiest first)")
if principal is None:
    widgets.table(principals, "principals", ("principal", "user_type", "events", "failed", "first_seen", "last_seen"))
    st.stop()

seen = principals.row(principals.get_column("principal").index_of(principal), named=True)  # its first and last call
bucket = backend.bucket_for(event_filter, seen["first_seen"], seen["last_seen"])
activity = events.query("principal_activity", event_filter, principal=principal, bucket=bucket)
origins = {origin: events.query("principal_origins", event_filter, principal=principal, origin=origin)
           for origin in queries.PRINCIPAL_ORIGINS}
summary = transforms.principal_summary(activity).row(0, named=True)
widgets.metrics({"Events": summary["events"], "Failed calls": summary["failed"], "APIs": summary["event_names"],
                 "Source IPs": origins["source_ip"].height, "Access keys": origins["access_key_id"].height,
                 "Regions": summary["regions"]})
timeline = transforms.principal_timeline(activity)
widgets.show_chart(charts.timeline_chart(timeline, "event_name", title="Activity over time",
                                        period=widgets.period(event_filter)), timeline,
                   "principal-timeline")

breakdowns = {"event_name": transforms.principal_breakdown(activity, "event_name"), **origins,
              "aws_region": transforms.principal_breakdown(activity, "aws_region"),
              "session": events.query("principal_sessions", event_filter, principal=principal)}
tabs = st.tabs(["APIs", "Source IPs", "User agents", "Access keys", "Regions", "Sessions"])
for tab, (column, breakdown) in zip(tabs, breakdowns.items()):
    with tab:
        widgets.table(breakdown, f"principal-by-{column}")

if st.toggle("Least-privilege IAM policy from this activity", key="principal-policy-build"):  # read on demand
    observed = policy.policy_from_calls(principal, events.query("principal_calls", event_filter, principal=principal,
                                                                limit=policy.ROW_LIMIT + 1))
    st.caption(f"{len(observed.document['Statement'])} statement(s) allowing exactly the calls that succeeded in the "
               f"period; {observed.denied.height} kind(s) of call refused as unauthorized are left out (below).")
    st.download_button("Download the IAM policy (JSON)", observed.to_json(), file_name="least-privilege-policy.json",
                       mime="application/json", key="principal-policy", icon=":material/download:")
    widgets.table(observed.denied, "principal-refused")

st.subheader("Events")
widgets.raw_event_viewer(events.query("principal_events", event_filter, principal=principal), "principal-events",
                         "principal-events")
