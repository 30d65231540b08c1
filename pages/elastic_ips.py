"""Elastic IPs: addresses allocated, associated, disassociated and released."""

import streamlit as st

from trailstream.analytics import transforms
from trailstream.app import ui

events = ui.use_case_events("elastic_ips")
changes = transforms.elastic_ip_changes(events)
ui.metrics(transforms.event_counts(events) | {"Public IPs": transforms.distinct_count(changes, "public_ip")})
ui.use_case_timeline("elastic_ips")

st.subheader("Elastic IP changes")
ui.raw_event_viewer(changes, "eip-changes", "elastic-ip-changes", columns=None)
