"""Principal activity: everything one user, role or service did, from where, with which keys and clients; the same
named queries on the cache or on the lake."""

import streamlit as st

from trailstream.analytics import backend, charts, policy, transforms
from trailstream.app import state, widgets

event_filter = widgets.page_start("Principal activity", "Pick a user, role or service to see what it did; a role's "
                                  "sessions count as the role and are listed one tab deeper.")
events = state.backend()
principals = events.query("principals", event_filter)
if widgets.no_matches(principals, "principals"):
    st.stop()
principal = st.selectbox("Principal", transforms.column_values(principals, "principal"), index=None, key="principal",
                         bind="query-params", placeholder="Choose a principal (busiest first)")
if principal is None:
    widgets.table(principals, "principals", ("principal", "user_type", "events", "failed", "first_seen", "last_seen"))
    st.stop()

seen = principals.row(principals.get_column("principal").index_of(principal), named=True)  # its first and last call
bucket = backend.bucket_for(event_filter, seen["first_seen"], seen["last_seen"])
activity = events.query("principal_activity", event_filter, principal=principal, bucket=bucket)
counted = events.query("principal_origin_counts", event_filter, principal=principal).row(0, named=True)
summary = transforms.principal_summary(activity).row(0, named=True)
widgets.metrics({"Events": summary["events"], "Failed calls": summary["failed"], "APIs": summary["event_names"],
                 "Source IPs": counted["source_ip"], "Access keys": counted["access_key_id"],
                 "Regions": summary["regions"]})
timeline = transforms.principal_timeline(activity)
widgets.show_chart(charts.timeline_chart(timeline, "event_name", title="Activity over time",
                                        period=widgets.period(event_filter)), timeline,
                   "principal-timeline")


def breakdown(column: str):
    """Read only for the open tab: a busy role's user agents alone mean reading every one of its events."""
    if column in ("event_name", "aws_region"):
        return transforms.principal_breakdown(activity, column)
    if column == "session":
        return events.query("principal_sessions", event_filter, principal=principal)
    return events.query("principal_origins", event_filter, principal=principal, origin=column)


BREAKDOWNS = {"APIs": "event_name", "Source IPs": "source_ip", "User agents": "user_agent",
              "Access keys": "access_key_id", "Regions": "aws_region", "Sessions": "session"}
for tab, column in zip(st.tabs(list(BREAKDOWNS), key="breakdown", bind="query-params"), BREAKDOWNS.values()):
    if tab.open:
        with tab:
            shown = breakdown(column)
            if counted.get(column, 0) > shown.height:
                st.caption(f"The busiest {shown.height:,} of {counted[column]:,}.")
            widgets.table(shown, f"principal-by-{column}")

if st.toggle("Least-privilege IAM policy from this activity", key="principal-policy-build"):  # read on demand
    observed = policy.policy_from_calls(principal, events.query("principal_calls", event_filter, principal=principal,
                                                                limit=policy.ROW_LIMIT + 1))
    st.caption(f"{len(observed.document['Statement'])} statement(s) allowing exactly the calls that succeeded in the "
               f"period; {observed.denied.height} kind(s) of call refused as unauthorized are left out (below).")
    st.download_button("Download the IAM policy (JSON)", observed.to_json(), file_name="least-privilege-policy.json",
                       mime="application/json", key="principal-policy", icon=":material/download:")
    widgets.table(observed.denied, "principal-refused")

st.subheader("Events")
if summary["events"] > widgets.TABLE_LIMIT:
    st.caption(f"The newest {widgets.TABLE_LIMIT:,} of {summary['events']:,} events.")
widgets.raw_event_viewer(events.query("principal_events", event_filter, principal=principal, limit=widgets.TABLE_LIMIT),
                         "principal-events", "principal-events")
