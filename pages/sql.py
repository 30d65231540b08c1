"""SQL (admins): read-only queries over the cache behind the guard, with examples, a quick chart and downloads."""

import streamlit as st

from trailstream.app import forms, signin, state, widgets
from trailstream.analytics import charts, sqlguard
from trailstream.notify import reports
from trailstream.cache import views

signin.require_admin()
event_filter = widgets.page_start(
    "SQL", "Read-only SQL over the cache: the events table and the views below. Nothing you type can change it."
)


@st.cache_data(show_spinner="Running the query…", max_entries=32)
def run(path: str, generation: int, sql: str, params: tuple) -> sqlguard.QueryResult:
    return sqlguard.run_query(path, sql, dict(params))


def use_example() -> None:
    st.session_state["sql"] = sqlguard.EXAMPLES_BY_KEY[st.session_state["example"]].sql.strip()


with st.expander("Tables, views and JSON helpers", icon=":material/help:"):
    st.dataframe({"view": [view.name for view in views.VIEWS],
                  "holds": [view.description for view in views.VIEWS]}, hide_index=True)
    st.markdown(sqlguard.JSON_HELP)
st.selectbox("Start from an example", list(sqlguard.EXAMPLES_BY_KEY), index=None, key="example",
             format_func=lambda key: sqlguard.EXAMPLES_BY_KEY[key].title, on_change=use_example,
             placeholder="Who used root this week, top errors, open security groups…")
sql = st.text_area("Query (Ctrl+Enter runs it)", key="sql", height=200, bind="query-params",
                   placeholder="SELECT event_name, count(*) FROM events WHERE event_time >= :start GROUP BY 1")
st.button("Run", type="primary", icon=":material/play_arrow:")
if not (sql or "").strip():
    st.stop()

cache = state.cache_state()
try:
    result = run(cache.path, cache.generation, sql, tuple(sqlguard.period_params(event_filter).items()))
except sqlguard.QueryRefused as refused:
    st.error("The query was refused: nothing ran and the cache is unchanged.", icon=":material/block:")
    st.text(str(refused))
    st.stop()
except sqlguard.QueryFailed as failed:
    st.error("The query did not finish.", icon=":material/error:")
    st.text(str(failed))
    st.stop()

st.caption(f"{result.frame.height:,} row(s) in {result.elapsed:.2f} s")
if result.notice:
    st.warning(result.notice, icon=":material/content_cut:")
widgets.table(result.frame, "sql-result")
widgets.download_table(result.frame, "sql-query")

if result.frame.height and result.frame.width:
    st.subheader("Quick chart")
    columns, guess = result.frame.columns, reports.default_chart_choice(result.frame)
    x_column, y_column, color_column, kind_column = st.columns(4)
    x = x_column.selectbox("X", columns, index=columns.index(guess["x"]), key="chart_x")
    y = y_column.selectbox("Y (none counts rows)", columns, key="chart_y",
                           index=columns.index(guess["y"]) if guess["y"] else None)
    color = color_column.selectbox("Colour", columns, index=None, key="chart_color")
    kind = kind_column.selectbox("Kind", charts.KINDS, key="chart_kind")
    widgets.show_chart(charts.quick_chart(result.frame, x, y, color, kind), result.frame, "sql-chart")
    chart = {"x": x, "y": y, "color": color, "kind": kind}
else:
    chart = None

forms.save_search_form("sql", "Save this query", "Period for :start / :end", sql=sql, chart=chart)
