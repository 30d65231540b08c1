"""Forms several pages share: the search fields (kept in the URL), "save under a name" for searches and SQL, the
quick chart, and writing the settings file (adding and removing sources, detection settings)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from trailstream import config
from trailstream.analytics import charts, queries
from trailstream.app import signin, state, widgets
from trailstream.app.widgets import plain
from trailstream.filters import TIME_PRESETS
from trailstream.notify import reports, saved

SEARCH_LIMIT = 1000
# SearchQuery field -> (label, URL key, placeholder); event name and error code offer the cache's values.
SEARCH_FIELDS = {
    "text": ("Contains", "q", "any text: a name, an ARN, an IP, a bucket…"),
    "event_name": ("Event name", "event", "e.g. AuthorizeSecurityGroupIngress"),
    "user_name": ("User or role", "user", "IAM user, role or role/session"),
    "resource_name": ("Resource name or ID", "resource", "i-0abc…, sg-0123…, my-bucket"),
    "error_code": ("Error code", "error", "e.g. AccessDenied"),
    "source_ip": ("Source IP", "ip", "exact address"),
    "access_key_id": ("Access key ID", "access_key", "AKIA… or ASIA…"),
    "event_source": ("Service", "service", "e.g. ec2.amazonaws.com"),
    "resource_type": ("Resource type", "resource_type", "e.g. AWS::EC2::Instance"),
    "event_id": ("Event ID", "event_id", "exact eventID"),
}
def search_form() -> queries.SearchQuery:
    """The search fields (kept in the URL); event names and error codes suggest what the live store holds."""
    values, suggested = {}, state.search_suggestions()
    columns = st.columns(3)
    for position, (field_name, (label, key, placeholder)) in enumerate(SEARCH_FIELDS.items()):
        with columns[position % 3]:
            if field_name in suggested:
                values[field_name] = st.selectbox(label, suggested[field_name], index=None, key=key,
                                                  bind="query-params", accept_new_options=True,
                                                  placeholder=placeholder) or ""
            else:
                values[field_name] = st.text_input(label, key=key, bind="query-params", placeholder=placeholder)
    return queries.SearchQuery.from_dict(values)


def save_search_form(kind: str, heading: str, period_label: str, **definition) -> None:
    """The "save under a name" form of the Search and SQL pages; a saved search then appears on Reports."""
    with st.form(f"save-{kind}", border=True):
        st.markdown(f"**{heading}** (it then appears on **Reports**, where it can become a scheduled report)")
        name_column, period_column = st.columns([3, 1])
        name = name_column.text_input("Name", max_chars=saved.MAX_NAME_LENGTH)
        period = period_column.selectbox(period_label, list(TIME_PRESETS),
                                         index=list(TIME_PRESETS).index(saved.DEFAULT_REPORT_PERIOD))
        if not st.form_submit_button("Save", icon=":material/bookmark_add:"):
            return
    try:
        kept = saved.save_search(state.db_path(), saved.SavedSearch(name, kind, period=period, **definition))
    except saved.SavedSearchError as problem:
        st.error("Not saved.", icon=":material/error:")
        st.text(str(problem))
        return
    signin.record("setting_changed", {"saved_search": kept.name, "kind": kind})
    st.success("Saved. To share it, send the Reports page address ending in:", icon=":material/bookmark_added:")
    st.code(saved.share_query(kept), language=None)


def quick_chart_form(frame: pl.DataFrame) -> dict | None:
    """The SQL page's quick chart: columns and a kind to pick (a guess to start), the chart drawn; returns the choice
    (saved with the query), or None when the result has nothing to draw."""
    if not (frame.height and frame.width):
        return None
    st.subheader("Quick chart")
    columns, guess = frame.columns, reports.default_chart_choice(frame)
    x_column, y_column, color_column, kind_column = st.columns(4)
    x = x_column.selectbox("X", columns, index=columns.index(guess["x"]), key="chart_x")
    y = y_column.selectbox("Y (none counts rows)", columns, key="chart_y",
                           index=columns.index(guess["y"]) if guess["y"] else None)
    color = color_column.selectbox("Colour", columns, index=None, key="chart_color")
    kind = kind_column.selectbox("Kind", charts.KINDS, key="chart_kind")
    drawn = widgets.chart_rows(frame, "rows")
    widgets.show_chart(charts.quick_chart(drawn, x, y, color, kind), frame, "sql-chart")
    return {"x": x, "y": y, "color": color, "kind": kind}


def save_source(current: config.Settings, source: config.Source, replacing: str | None = None) -> bool:
    """Add a source (or replace the one named `replacing`) and write the settings file; False if it could not."""
    if any(other.name == source.name for other in current.sources if other.name != replacing):
        st.error(f'A source is already named "{plain(source.name)}": pick another name.', icon=":material/error:")
        return False
    names = [other.name for other in current.sources]
    if replacing in names:
        current.sources[names.index(replacing)] = source
    else:
        current.sources.append(source)
    return save_settings(current, {"source": source.name, "change": "edited" if replacing in names else "added"})


def remove_source(current: config.Settings, name: str) -> bool:
    current.sources = [source for source in current.sources if source.name != name]
    return save_settings(current, {"source": name, "change": "removed"})


def save_settings(current: config.Settings, change: dict | None = None) -> bool:
    """Write the settings file and note the change in the audit log; False (and why, on screen) if it could not."""
    try:
        config.save_settings(current)
    except (OSError, config.SettingsError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        st.error(f"Could not write {plain(str(current.path))}: {plain(reason)}. Check that the file and its folder "
                 "are writable.", icon=":material/error:")
        return False
    signin.record("setting_changed", change or {"file": str(current.path)})
    return True
