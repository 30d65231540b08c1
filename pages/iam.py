"""IAM: changes to users, groups, roles, policies, access keys and MFA, with administrator grants first."""

import streamlit as st

from trailstream.analytics import transforms
from trailstream.app import widgets

events = widgets.use_case_events("iam")
changes = transforms.iam_changes(events)
admin_grants = transforms.rows_where(changes, "admin_policy")
widgets.metrics(transforms.event_counts(events) | {"Admin grants": admin_grants.height},  # a label the tile never cuts
                {"Admin grants": "Calls attaching the AdministratorAccess policy."})
widgets.use_case_timeline("iam")

if admin_grants.height:
    st.subheader("Administrator access granted")
    widgets.table(admin_grants, "admin-grants", ("event_time", "event_name", "entity_kind", "target", "policy",
                                                 "principal", "account_id"))

st.subheader("IAM changes")
widgets.raw_event_viewer(changes, "iam-changes", "iam-changes", columns=None)
