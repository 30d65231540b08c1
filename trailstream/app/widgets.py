"""What pages are made of: the page start, headline numbers, bounded tables and charts with their downloads, the
raw-record viewer, and plain-text helpers.

Event content is data, never markup: log fields reach the screen through dataframes, st.text, st.code, st.json and
st.metric only, or through `plain` where an element renders markdown. Whatever the data, a table shows at most
TABLE_LIMIT rows and a chart at most CHART_LIMIT, each saying "N of M" and offering the whole result as a download.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import altair as alt
import polars as pl
import streamlit as st

from trailstream import catalog
from trailstream.analytics import backend, charts, exports, transforms
from trailstream.app import state
from trailstream.app.integrity import integrity_badge
from trailstream.app.signin import current_identity, escape_markdown
from trailstream.cache import early
from trailstream.filters import TIME_PRESETS, EventFilter
from trailstream.ingest import lineage
from trailstream.notify.alerts import settings as alert_settings
from trailstream.timefmt import iso_utc, parse_iso_utc

TABLE_LIMIT = 1_000
CHART_LIMIT = 2_000
USE_CASE_LIMIT = 10_000  # events a use-case page reads, newest first; its timeline counts them all
# The columns an event table shows, in order; the rest stay one click away in the raw event.
EVENT_TABLE_COLUMNS = ("event_time", "principal", "event_name", "error_code", "source_ip", "account_id", "aws_region",
                       "event_source", "user_agent")  # time, who, action first
COLUMN_LABELS = {
    "event_time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "event_name": "Event",
    "event_source": "Service",
    "principal": st.column_config.TextColumn("Principal", width="large"),  # text, never a link; role sessions not cut
    "user_type": "Identity type",
    "account_id": "Account",
    "aws_region": "Region",
    "source_ip": "Source IP",
    "error_code": "Error",
    "user_agent": "User agent",
    "first_seen": st.column_config.DatetimeColumn("First seen", format="YYYY-MM-DD HH:mm"),
    "last_seen": st.column_config.DatetimeColumn("Last seen", format="YYYY-MM-DD HH:mm"),
    "events": st.column_config.NumberColumn("Events", format="localized"),
    "failed": st.column_config.NumberColumn("Failed", format="localized"),
    "share": st.column_config.NumberColumn("Share", format="percent"),  # 1.6 %, not 0.0159
    "failed_share": st.column_config.NumberColumn("Failed share", format="percent"),
}

ACRONYMS = {"ip": "IP", "ips": "IPs", "id": "ID", "ids": "IDs", "arn": "ARN", "mfa": "MFA", "url": "URL", "api": "API",
            "aws": "AWS", "ec2": "EC2", "iam": "IAM", "p95": "p95"}


# --- Page parts ---------------------------------------------------------------------


def page_start(title: str, description: str) -> EventFilter:
    """Title, one-line purpose and the empty states; returns the global filter. The access gate runs first if app.py
    did not (Streamlit serves pages/ files by name until app.py's st.navigation first runs after a start)."""
    current_identity()
    st.title(title)
    st.caption(description)
    state.require_cache(allow_empty=bool(state.lake_engine(state.backend_settings())))  # the lake holds the events
    return state.current_filter()


def no_matches(rows: pl.DataFrame | int, what: str = "events", searched: bool = False) -> bool:
    """True (and a hint naming what emptied the page) when the filters leave nothing to show."""
    if (rows.height if isinstance(rows, pl.DataFrame) else rows) > 0:
        return False
    explain_empty(what, searched)
    return True


def event_count(event_filter: EventFilter) -> int:
    """The events the filters leave, in the live store (cache or lake)."""
    return int(state.backend().query("totals", event_filter)["events"].sum())


def period_has_events(event_filter: EventFilter) -> bool:
    """Whether a verdict ("no findings") means anything: the filters leave at least one event."""
    return event_count(event_filter) > 0


def cell_filter(account: str, region: str, start: datetime, span: str = "hour") -> EventFilter:
    """One account and region over one hour (or day) of a heatmap: what the store's events are counted over."""
    end = start + (timedelta(days=1) if span == "day" else timedelta(hours=1))
    return EventFilter(start=iso_utc(start), end=iso_utc(end), accounts=(account,), regions=(region,))


def widen_to(age: timedelta) -> str:
    """The shortest period preset that reaches back `age`."""
    return next((name for name, span in TIME_PRESETS.items() if span is not None and span > age), "all")


def explain_empty(what: str = "events", searched: bool = False) -> None:
    """Say what emptied the page: a period older than the newest event (with a button to widen it), the account and
    region choices, or the search text; never a green "all clear" over no data. From the live store (cache or lake)."""
    event_filter = state.current_filter()
    newest, chosen = state.backend().query("newest_event", event_filter).row(0)
    icon = ":material/filter_alt_off:"
    if chosen and event_filter.start and chosen < event_filter.start:
        age = datetime.now(timezone.utc) - parse_iso_utc(chosen)
        preset = widen_to(age)
        st.info(f"No {what} in this period: the newest event is {_age_words(age)} old.", icon=icon)
        label = "Show all time" if preset == "all" else f"Show {preset.replace('d', ' days').replace('h', ' hours')}"
        st.button(label, key=f"widen-{what}", on_click=st.session_state.update, args=({"range": preset},),
                  icon=":material/history:")
    elif newest and not chosen:
        st.info(f"No {what}: no event {state.store_words()} matches the account, region or read-only choices in "
                "the sidebar; clear them to see the rest.", icon=icon)
    elif searched:
        st.info(f"No {what} match the search in this period: check the spelling, remove a field, or widen the "
                "period.", icon=":material/search_off:")
    else:
        st.info(f"No {what} match the filters in this period; the newest matching event is from "
                f"{(chosen or '?')[:10]}: choose a period that reaches it in the sidebar.", icon=icon)


def _age_words(age: timedelta) -> str:
    days = age.days
    return f"{days} days" if days > 1 else "1 day" if days == 1 else f"{max(1, age.seconds // 3600)} hours"


def plain(text: str) -> str:
    """Text shown as typed in a markdown-rendering element (an alert): every markdown mark escaped."""
    return escape_markdown(text)


def period(event_filter: EventFilter) -> tuple[str | None, str | None]:
    """The filter's period as a timeline chart's x domain (None: open on that side)."""
    return event_filter.start, event_filter.end


def period_start(event_filter: EventFilter) -> datetime | None:
    """The filter's start as a UTC datetime (None when the period is open)."""
    return parse_iso_utc(event_filter.start) if event_filter.start else None


def time_label(moment: datetime | None) -> str:
    """A UTC moment as people read it, to the minute."""
    return moment.strftime(charts.TIME_FORMAT) if moment else "–"


def time_text(text: str | None) -> str | None:
    """Cache time text ('2026-03-04T15:30:00Z') as time_label shows it; text that is no cache time stays as it is."""
    try:
        return time_label(parse_iso_utc(text)) if text else None
    except ValueError:
        return text


def ago(moment: datetime | str | None, now: datetime | None = None) -> str:
    """'5 min ago' style age of a UTC time (cache text or datetime)."""
    if moment is None:
        return "never"
    if isinstance(moment, str):
        moment = parse_iso_utc(moment)
    seconds = int(((now or datetime.now(timezone.utc)) - moment).total_seconds())
    if seconds < 0:
        return time_label(moment)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def metrics(values: dict[str, object], helps: dict[str, str] | None = None) -> None:
    """A row of headline numbers; integers get thousands separators."""
    columns = st.columns(len(values))
    for column, (label, value) in zip(columns, values.items()):
        shown = f"{value:,}" if isinstance(value, int) else ("–" if value is None else value)
        column.metric(label, shown, help=(helps or {}).get(label), border=True)


def use_case_events(key: str) -> pl.DataFrame:
    """A use-case page's start: title, purpose and its newest USE_CASE_LIMIT events in the period (saying so when
    there are more); stops the page when none match. On the cache or the lake, whichever is live."""
    use_case = catalog.USE_CASES[key]
    event_filter = page_start(use_case.title, use_case.description)
    store = state.backend()
    events = store.query("events", event_filter, event_names=use_case.event_names, limit=USE_CASE_LIMIT)
    if no_matches(events, f"{use_case.title} events"):
        st.stop()
    total = transforms.column_total(_use_case_timeline(key), "events")
    if total > events.height:
        st.caption(f"The newest {events.height:,} of {total:,} {use_case.title} events are listed and counted here: "
                   "narrow the period or pick an account to see the rest.")
    return events


def _use_case_timeline(key: str) -> pl.DataFrame:
    """The use case's counts per time bucket and event name, the bucket chosen from the events' own span."""
    event_filter, names = state.current_filter(), catalog.USE_CASES[key].event_names
    span = state.backend().query("span", event_filter, event_names=names).row(0, named=True)
    bucket = backend.bucket_for(event_filter, span["first_event"], span["last_event"])
    return state.backend().query("timeline", event_filter, group_by="event_name", bucket=bucket, event_names=names)


def use_case_timeline(key: str) -> None:
    """The use case's calls over time, one colour per event name (time buckets: bounded whatever the data)."""
    timeline = _use_case_timeline(key)
    chart = charts.timeline_chart(timeline, "event_name", title=f"{catalog.USE_CASES[key].title} over time",
                                  period=period(state.current_filter()))
    show_chart(chart, timeline, f"{key}-timeline")


# --- Charts, tables and downloads ---------------------------------------------------


def chart_rows(frame: pl.DataFrame, what: str, limit: int | None = None, order: str = "first") -> pl.DataFrame:
    """At most `limit` (CHART_LIMIT) rows for a chart, saying "the first (or busiest) N of M" when it cuts; the CSV
    download behind the chart keeps them all."""
    limit = limit or CHART_LIMIT
    if frame.height <= limit:
        return frame
    st.caption(f"The chart draws the {order} {limit:,} of {frame.height:,} {what}; its CSV download holds them all.")
    return frame.head(limit)


def show_chart(chart: alt.TopLevelMixin, frame: pl.DataFrame, name: str) -> None:
    """An Altair chart with its PNG, SVG and CSV downloads underneath."""
    st.altair_chart(chart, width="stretch")
    download_chart(chart, frame, name)


def _download_row(downloads: list, key: str) -> None:
    columns = st.columns(len(downloads) + 4)
    for column, download in zip(columns, downloads):
        column.download_button(download.label, download.build, file_name=download.file_name, mime=download.mime,
                               key=f"{key}-{download.label}", icon=":material/download:", on_click="ignore",
                               type="tertiary")


def download_chart(chart: alt.TopLevelMixin, frame: pl.DataFrame, name: str) -> None:
    """PNG and SVG of the chart as shown, and CSV of the numbers behind it."""
    _download_row(exports.chart_downloads(chart, frame, name, state.current_filter()), f"chart-{name}")


def download_table(frame: pl.DataFrame, name: str) -> None:
    """CSV, JSON and Parquet of a table, named after the page and the period."""
    _download_row(exports.table_downloads(frame, name, state.current_filter()), f"table-{name}")


def header(name: str) -> str:
    """A column name as a header: 'public_ip' reads 'Public IP', 'group_id' 'Group ID'."""
    words = [ACRONYMS.get(word, word) for word in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def column_config(frame: pl.DataFrame, columns: list[str]) -> dict:
    """Readable headers for the shown columns; times as UTC date and time."""
    configured = {}
    for name in columns:
        label = COLUMN_LABELS.get(name)
        if isinstance(label, str) or label is None:
            title = label or header(name)
            label = (st.column_config.DatetimeColumn(title, format="YYYY-MM-DD HH:mm:ss")
                     if frame.schema[name] == pl.Datetime("us", "UTC") else title)
        configured[name] = label
    return configured


def table(frame: pl.DataFrame, key: str, columns: tuple[str, ...] | None = None, select: bool = False,
          download: str | None = None):
    """A read-only table of at most TABLE_LIMIT rows with readable headers; with select=True, one row can be picked
    (returns its index or None). A cut table says so and offers the whole result (as does `download`, by name)."""
    shown = [c for c in (columns or frame.columns) if c in frame.columns]
    rows = frame.head(TABLE_LIMIT).select(shown)
    if frame.height > TABLE_LIMIT:
        st.caption(f"Showing the first {TABLE_LIMIT:,} of {frame.height:,} rows; the downloads hold them all.")
        download = download or key
    options = {"hide_index": True, "column_config": column_config(frame, shown), "key": key}
    if not select:
        st.dataframe(rows, **options)
        picked = None
    else:
        event = st.dataframe(rows, on_select="rerun", selection_mode="single-row", **options)
        picked = (event.selection.rows or [None])[0] if event else None
    if download:
        download_table(frame, download)
    return picked


def raw_event_viewer(frame: pl.DataFrame, key: str, name: str = "events",
                     columns: tuple[str, ...] | None = EVENT_TABLE_COLUMNS) -> None:
    """The event table (newest first), its downloads, and the raw CloudTrail record of the selected row.

    columns=None shows the frame's columns time, who, action first, leaving out the ID and columns empty on every row.
    """
    st.caption("Select a row to see its raw CloudTrail record.")  # a cut list says "N of M" in `table`
    visible = [c for c in transforms.glance_columns(frame) if c != "event_id"]  # columns empty on every row hidden
    shown = tuple(c for c in columns if c in visible) if columns else tuple(visible)
    row = table(frame, key, shown, select=True, download=name)
    if row is None or row >= frame.height or "event_id" not in frame.columns:
        return
    event_id = frame.item(row, "event_id")
    record = state.load_record(event_id)
    st.subheader("Raw event")
    if record is None and state.lake_engine(state.backend_settings()) and "event_time" in frame.columns:
        lake_raw_event(event_id, frame.item(row, "event_time"))
        return
    if record is None:
        st.warning("This event is no longer in the cache; press Sync or pick another row.")
        return
    integrity_badge(event_id)
    st.json(record, expanded=2)


def lake_raw_event(event_id: str, event_time: datetime) -> None:
    """A lake event the cache has no copy of: its record read back from the source file the lake names (inert JSON),
    or the sentence saying why not (a missing file, or one changed since compaction)."""
    try:
        found = state.lake_record(event_id, iso_utc(event_time))
    except lineage.LineageError as problem:
        st.warning("The lake keeps this event's columns (in the table above), not its original record, the local "
                   "cache holds no copy of it, and its source file cannot be shown:", icon=":material/link_off:")
        st.text(str(problem))  # as typed: it quotes a path or key
        return
    st.caption("Read from the event's source file, " + ("whose SHA-256 still matches the lake's:" if found.verified
               else "which the lake kept no SHA-256 for, so it could not be checked:"))
    st.text(found.source_key)
    st.json(found.record, expanded=2)


def unconfirmed_early_events() -> None:
    """Early (EventBridge) events no log file confirmed after the grace period: seen live, missing from the
    delivered record; shown on Sync history and Integrity & coverage."""
    grace, grace_problem = alert_settings.early_grace(state.settings())
    unconfirmed, total = state.read_uncached(early.query_unconfirmed, datetime.now(timezone.utc), grace)
    if grace_problem:
        st.warning(grace_problem, icon=":material/warning:")
    if not total:
        return
    st.subheader("Early events no log file confirmed")
    st.warning(f"{total:,} event(s) EventBridge delivered live are in no log file after {grace} "
               "([eventbridge] grace): seen happening but missing from the delivered record, worth a look.",
               icon=":material/warning:")
    if total > unconfirmed.height:
        st.caption(f"The newest {unconfirmed.height:,} of {total:,}.")
    table(unconfirmed, "unconfirmed-early-events", download="unconfirmed-early-events")
