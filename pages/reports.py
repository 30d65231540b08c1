"""Reports: saved searches and SQL queries, run again for their period, downloaded as reports, emailed on a schedule."""

from dataclasses import replace

import streamlit as st

from trailstream.app import signin, state, widgets
from trailstream.notify import reports, saved
from trailstream.analytics import sqlguard
from trailstream.filters import TIME_PRESETS

widgets.page_start("Reports",
                   "Saved searches and SQL queries: run one again, download it as a report, or have it emailed.")
path = state.cache_state().path
found = {item.name: item for item in saved.load_saved_searches(path)}
if not found:
    st.info("Nothing is saved yet. Save a query on the SQL page or a search on the Search page; it then appears "
            "here.", icon=":material/bookmarks:")
    st.stop()

name = st.selectbox("Saved search", list(found), key=saved.SHARE_PARAM, bind="query-params",
                    help="The page address names the chosen search: copy it to share this view.")
chosen = found[name]
st.caption(signin.escape_markdown(chosen.describe()))
if chosen.kind == "sql":
    st.code(chosen.sql, language="sql")
else:
    st.json(chosen.definition(), expanded=False)

try:
    result = state.run_report(reports.run_saved, path, chosen)
except (sqlguard.QueryRefused, sqlguard.QueryFailed) as problem:
    st.error("This saved search cannot run as it is: edit it on the SQL page and save it again.",
             icon=":material/error:")
    st.text(str(problem))
    st.stop()
if result.notice:
    st.warning(result.notice, icon=":material/content_cut:")
chart = reports.report_chart(chosen, result.frame)
if chart is not None:
    widgets.show_chart(chart, result.frame, f"{chosen.name}-chart")
widgets.table(result.frame, "report-result")
widgets.download_table(result.frame, chosen.name)

fmt = chosen.format or reports.DEFAULT_FORMAT
st.download_button(f"Download the report ({saved.REPORT_FORMATS[fmt]})",
                   state.report_builder(reports.render_report, path, chosen),
                   file_name=reports.report_file_name(chosen),
                   mime=reports.MIME_TYPES[fmt], on_click="ignore", icon=":material/summarize:")

if not signin.is_admin():
    st.caption("Admins can turn this into a scheduled report or delete it.")
    st.stop()

with st.form("report-settings"):
    st.markdown("**Report settings**")
    left, middle, right = st.columns(3)
    periods = [None, *TIME_PRESETS]
    period = left.selectbox("Period", periods, index=periods.index(chosen.period),
                            format_func=lambda key: "Dates as saved" if key is None else f"Last {key}")
    formats, schedules = [None, *saved.REPORT_FORMATS], [None, *saved.SCHEDULES]
    fmt = middle.selectbox("Format", formats, index=formats.index(chosen.format),
                           format_func=lambda key: "Not a report" if key is None else saved.REPORT_FORMATS[key])
    schedule = right.selectbox("Email it", schedules, index=schedules.index(chosen.schedule),
                               format_func=lambda key: "Never" if key is None else saved.SCHEDULES[key])
    recipients = st.text_input("Recipients, comma-separated (empty: the [smtp] recipients)",
                               ", ".join(chosen.recipients))
    if chosen.schedule:
        st.caption(f"Last emailed: {widgets.ago(chosen.last_sent_at)}")
    if st.form_submit_button("Save settings", icon=":material/save:"):
        addresses = tuple(item.strip() for item in recipients.split(",") if item.strip())
        try:
            kept = saved.save_search(path, replace(chosen, period=period, format=fmt, schedule=schedule,
                                                   recipients=addresses))
        except saved.SavedSearchError as problem:
            st.error("Not saved.", icon=":material/error:")
            st.text(str(problem))
        else:
            signin.record("setting_changed", {"report": kept.name, "period": period, "format": fmt,
                                               "schedule": schedule, "recipients": list(addresses)})
            st.toast("Report settings saved.", icon=":material/check:")
            st.rerun()

with st.popover("Delete", icon=":material/delete:"):
    if st.button("Delete this saved search for good", type="primary"):
        saved.delete_saved_search(path, chosen.name)
        signin.record("setting_changed", {"deleted_saved_search": chosen.name})
        st.rerun()
