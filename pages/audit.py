"""Audit log (admins): who signed in, synced, or changed a setting or an alert rule in TrailStream, and when."""

import streamlit as st

from trailstream.cache import audit
from trailstream.app import signin, state, widgets

signin.require_admin()
st.title("Audit log")
st.caption("TrailStream's own trail: sign-ins, syncs, setting and alert-rule changes, retried files. Times in UTC.")
state.require_cache()  # the log lives in the cache: a damaged one gets the sentence, not a traceback
action = st.selectbox("Action", [None, *audit.AUDIT_ACTIONS], key="audit_action",
                      format_func=lambda key: "All actions" if key is None else audit.AUDIT_ACTIONS[key])
entries = signin.load_audit_log(action)
if entries.is_empty():
    st.info("Nothing recorded yet: sign-ins, syncs and changes made in the app appear here.",
            icon=":material/history:")
    st.stop()
st.dataframe(entries, hide_index=True, key="audit_table",
             column_config={"at": "When (UTC)", "actor": "Who", "action": "What", "detail": "Details"})
widgets.download_table(entries, "audit-log")
