"""Network & security groups: who changed which security group, ACL, route or VPC, and what is now open to the world."""

import streamlit as st

from trailstream.analytics import transforms
from trailstream.app import widgets

events = widgets.use_case_events("network")
changes = transforms.network_changes(events)
rules = transforms.security_group_rules(events)
world_rules = transforms.rows_where(rules, "open_to_world")
widgets.metrics(transforms.event_counts(events) | {"Open to all": world_rules.height},  # a label the tile never cuts
                {"Open to all": "Security group rules authorized with a 0.0.0.0/0 or ::/0 peer: open to the world."})
widgets.use_case_timeline("network")

if world_rules.height:
    st.subheader("Opened to the whole internet")
    st.caption("Security group rules allowing traffic from 0.0.0.0/0 or ::/0. Check each one is intended.")
    widgets.table(world_rules, "world-rules", ("event_time", "principal", "action", "group_id", "direction",
                                               "protocol", "port_range", "peer", "account_id", "aws_region"))

st.subheader("Security group rules")
widgets.raw_event_viewer(rules, "sg-rules", "security-group-rules",
                         ("event_time", "principal", "action", "group_id", "direction", "protocol", "port_range",
                          "peer", "description", "error_code", "account_id", "aws_region"))

st.subheader("All network changes")
widgets.raw_event_viewer(changes, "network-changes", "network-changes", columns=None)
