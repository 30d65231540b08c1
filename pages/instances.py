"""EC2 instances: launches, starts, stops, reboots, terminations and changes, per instance and principal."""

import streamlit as st

from trailstream.analytics import transforms
from trailstream.app import widgets

events = widgets.use_case_events("instances")
changes = transforms.instance_changes(events)
widgets.metrics(transforms.event_counts(events))
widgets.metrics({"Instances": transforms.distinct_count(changes, "instance_id")}
                | transforms.instance_lifecycle_counts(changes))
widgets.use_case_timeline("instances")

st.subheader("Instance changes")
st.caption("One row per instance and call; launch rows show the type, image and key pair.")
widgets.raw_event_viewer(changes, "instance-changes", "instance-changes", columns=None)
