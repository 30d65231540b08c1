"""Sources & settings: add, edit, test and remove the places TrailStream reads CloudTrail logs from."""

import streamlit as st

from trailstream.app import forms, signin, sources_form, state, widgets
from trailstream import config

signin.require_admin()
st.title("Sources & settings")
current = state.settings()
st.caption("Where TrailStream reads CloudTrail logs from. **Sync** in the sidebar (or `python -m trailstream sync`) "
           "reads every source below.")
if current.errors:
    sources_form.settings_problems(current)
    st.stop()
st.text(f"Settings file: {current.path.resolve()}\nCache file:    {current.db_path()}")
with st.expander("How TrailStream gets AWS credentials", icon=":material/key:"):
    st.markdown(sources_form.CREDENTIALS_HELP)

st.subheader("Where pages read events")
sources_form.backend_panel()

st.subheader("Configured sources")
if not current.sources:
    st.info("No source yet: add one below, then press **Sync** in the sidebar.", icon=":material/inbox:")
for source in current.sources:
    with st.container(border=True):
        heading, edit_column, test_column, remove_column = st.columns([6, 1, 1, 1], vertical_alignment="center")
        heading.text(f"{source.name}  ·  {config.SOURCE_KINDS[source.kind]}\n{source.describe()}")
        editing = edit_column.toggle("Edit", key=f"edit-{source.name}")
        testing = test_column.button("Test", key=f"test-{source.name}", icon=":material/network_check:",
                                     help="Test connection")
        if remove_column.button("Remove", key=f"remove-{source.name}", icon=":material/delete:"):
            if forms.remove_source(current, source.name):
                st.rerun()
        if testing:
            sources_form.connection_check(source)
        if editing:
            edited = sources_form.source_form(source.kind, source, key=f"form-{source.name}")
            if edited and forms.save_source(current, edited, replacing=source.name):
                st.session_state.pop(f"edit-{source.name}", None)
                st.rerun()

with st.expander("Connect AWS: wire an existing trail to a new queue in one step", icon=":material/cable:"):
    sources_form.connect_aws(current)

st.subheader("Add a source")
kind = st.segmented_control("Kind", list(config.SOURCE_KINDS), format_func=config.SOURCE_KINDS.get,
                            default="sqs", required=True, key="new-kind")
new = sources_form.source_form(kind, None, key=f"new-{kind}", default_name=f"{kind}-{len(current.sources) + 1}")
if new and forms.save_source(current, new):
    st.toast(f"Source {widgets.plain(new.name)} saved. Press Sync to read it.", icon=":material/check_circle:")
    st.rerun()
