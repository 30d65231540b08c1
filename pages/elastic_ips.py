"""Elastic IPs: addresses allocated, associated, disassociated and released."""

import streamlit as st

from trailstream.analytics import transforms
from trailstream.app import widgets

events = widgets.use_case_events("elastic_ips")
changes = transforms.elastic_ip_changes(events)
widgets.metrics(transforms.event_counts(events) | {"Public IPs": transforms.distinct_count(changes, "public_ip")})
widgets.use_case_timeline("elastic_ips")

st.subheader("Addresses, latest activity first")
widgets.table(transforms.elastic_ip_history(changes), "eip-history",
              ("public_ip", "last_call", "principals", "calls", "first_seen", "last_seen", "history"))  # who first

st.subheader("Elastic IP changes")
widgets.raw_event_viewer(transforms.with_public_ip(changes), "eip-changes", "elastic-ip-changes", columns=None)
