"""SQL (admins): read-only queries behind the guard over the cache (or, with [backend] kind = "athena", over the
lake's events table), with examples, a quick chart and downloads."""

import streamlit as st

from trailstream.app import forms, signin, state, widgets
from trailstream.analytics import lake_sqlguard, sqlguard
from trailstream.cache import views

signin.require_admin()
event_filter = widgets.page_start(
    "SQL", "Read-only SQL over the events: one SELECT, with :start and :end for the period. Nothing you type can "
           "change them."
)
on_lake = state.sql_store() is not None


def use_example() -> None:
    st.session_state["sql"] = sqlguard.EXAMPLES_BY_KEY[st.session_state["example"]].sql.strip()


if on_lake:
    with st.expander("The lake's events table", icon=":material/help:"):
        st.text("One table, events, in Trino SQL (Athena's dialect); no other tables, files or table functions.\n"
                "Columns: " + ", ".join(state.lake_columns()))
else:
    with st.expander("Tables, views and JSON helpers", icon=":material/help:"):
        st.dataframe({"view": [view.name for view in views.VIEWS],
                      "holds": [view.description for view in views.VIEWS]}, hide_index=True)
        st.markdown(sqlguard.JSON_HELP)
    st.selectbox("Start from an example", list(sqlguard.EXAMPLES_BY_KEY), index=None, key="example",
                 format_func=lambda key: sqlguard.EXAMPLES_BY_KEY[key].title, on_change=use_example,
                 placeholder="Who used root this week, top errors, open security groups…")
sql = st.text_area("Query (Ctrl+Enter runs it)", key="sql", height=200, bind="query-params",
                   placeholder=lake_sqlguard.EXAMPLE)
st.button("Run", type="primary", icon=":material/play_arrow:")
if not (sql or "").strip():
    st.stop()

try:
    result = state.run_sql(sql, sqlguard.period_params(event_filter))
except sqlguard.QueryRefused as refused:
    st.error("The query was refused: nothing ran and nothing changed.", icon=":material/block:")
    st.text(str(refused))
    st.stop()
except sqlguard.QueryFailed as failed:
    st.error("The query did not finish.", icon=":material/error:")
    st.text(str(failed))
    st.stop()

st.caption(f"{result.frame.height:,} row(s) in {result.elapsed:.2f} s")
if result.notice:
    st.warning(result.notice, icon=":material/content_cut:")
widgets.table(result.frame, "sql-result", download="sql-query")

chart = forms.quick_chart_form(result.frame)
forms.save_search_form("sql", "Save this query", "Period for :start / :end", sql=sql, chart=chart)
