"""Reports: a saved search run for its period, written as CSV, Parquet or one self-contained HTML page, and the
scheduled ones emailed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import polars as pl
from markupsafe import Markup

from trailstream import config
from trailstream.analytics import backend as query_backend
from trailstream.analytics import exports, lake_sqlguard, sqlguard
from trailstream.ingest.errors import SourceError
from trailstream.notify import mailer, saved as saved_searches
from trailstream.notify.alerts.settings import section
from trailstream.cache import store
from trailstream.timefmt import iso_utc
from trailstream.timefmt import TIME_FORMAT
from trailstream.notify.saved import REPORT_FORMATS, SavedSearch, SavedSearchError

MIME_TYPES = {**exports.MIME_TYPES, "html": "text/html"}
HTML_TABLE_ROWS = 2_000  # rows an HTML report shows; the CSV and Parquet formats carry every row
DEFAULT_FORMAT = "csv"


class ReportError(ValueError):
    """A report cannot be produced or sent; the message says why and what to do."""


@dataclass(frozen=True)
class ReportFile:
    file_name: str
    data: bytes
    mime_type: str


@dataclass(frozen=True)
class ReportDelivery:
    """What happened to one scheduled report: sent, or the reason it was not (it is tried again next run)."""

    name: str
    sent: bool
    message: str


_LAKE_ERRORS = (query_backend.LakeUnavailable, query_backend.UnsupportedSearch, SourceError)


def open_lake(db_path, settings) -> query_backend.LakeBackend | None:
    """The lake a report reads when [backend] kind = "athena" (Athena results kept beside the cache, as the app keeps
    them); None: the cache. `settings` is a config.Settings or a plain dict, as the post-sync step gets it."""
    chosen = config.BackendSettings.from_section(section(settings, "backend"))
    engine = query_backend.lake_engine(chosen)
    if engine is None:
        return None
    run = None
    if engine == "athena":
        from trailstream.ingest import athena  # boto3 only for Athena: every post-sync step builds reports' imports

        run = athena.AthenaRunner(chosen, athena.results_folder(db_path)).frame
    try:
        return query_backend.backend_for(chosen, None, run)
    except _LAKE_ERRORS as exc:
        raise ReportError(f"the lake cannot be read for reports: {exc}") from None


def run_saved(db_path, saved: SavedSearch, now: datetime | None = None, row_cap: int = sqlguard.DEFAULT_ROW_CAP,
              lake: query_backend.LakeBackend | None = None) -> sqlguard.QueryResult:
    """Run a saved Search or SQL query for its period on the cache, or on the lake when given; SQL goes through the
    store's guard (QueryRefused / QueryFailed, which also says why the lake could not answer)."""
    event_filter = saved.filter_at(now)
    params = sqlguard.period_params(event_filter)
    if saved.kind == "sql" and lake is None:
        return sqlguard.run_query(db_path, saved.sql, params, row_cap=row_cap)
    started = time.monotonic()
    try:
        if saved.kind == "sql":
            return lake_sqlguard.run_lake_query(lake.run, lake.table, lake.dialect, saved.sql, params, row_cap,
                                                interrupt=lake.interrupt)
        if lake is not None:
            frame = lake.query("search", event_filter, search=saved.search, limit=row_cap + 1)
        else:
            frame = _cache_search(db_path, event_filter, saved.search, row_cap + 1)
    except _LAKE_ERRORS as exc:
        raise sqlguard.QueryFailed(str(exc)) from None
    return sqlguard.QueryResult(frame.head(row_cap), frame.height > row_cap, time.monotonic() - started, row_cap)


def _cache_search(db_path, event_filter, search, limit: int) -> pl.DataFrame:
    sqlguard.require_cache(db_path)
    conn = store.open_cache_readonly(db_path)
    try:
        return query_backend.CacheBackend(conn).query("search", event_filter, search=search, limit=limit)
    finally:
        conn.close()


EVENT_TIME = pl.col("event_time")


def report_chart(saved: SavedSearch, frame: pl.DataFrame):
    """The report's chart: the saved quick-chart choices, else events per day, else the first numbers by label."""
    from trailstream.analytics import charts

    if not frame.height:
        return None
    chosen = saved.chart or {}
    if chosen.get("x") in frame.columns and {chosen.get("y"), chosen.get("color")} - {None} <= set(frame.columns):
        return charts.quick_chart(frame, chosen["x"], chosen.get("y"), chosen.get("color"), chosen.get("kind", "bar"))
    if "event_time" in frame.columns:
        as_time = EVENT_TIME
        if frame.schema["event_time"] == pl.String:  # SQL results carry the cache's text times
            as_time = EVENT_TIME.str.to_datetime(TIME_FORMAT, time_zone="UTC", strict=False)
        per_day = (
            frame.lazy()
            .select(as_time.dt.truncate("1d").alias("day"))
            .drop_nulls()
            .group_by("day")
            .agg(pl.len().alias("events"))
            .sort("day")
            .collect()
        )
        return charts.quick_chart(per_day, "day", "events", None, "bar") if per_day.height else None
    guess = default_chart_choice(frame)
    return charts.quick_chart(frame, guess["x"], guess["y"], None, guess["kind"])


def default_chart_choice(frame: pl.DataFrame) -> dict:
    """A first guess at a quick chart of any result: the first label column by the first number column."""
    numbers = [name for name, dtype in frame.schema.items() if dtype.is_numeric()]
    labels = [name for name in frame.columns if name not in numbers]
    x = labels[0] if labels else frame.columns[0]
    return {"x": x, "y": next((name for name in numbers if name != x), None), "color": None, "kind": "bar"}


_HTML = jinja2.Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="TrailStream">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
.meta, .notice { color: #59636e; }
.notice { font-weight: 600; }
figure { margin: 1.5rem 0; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #d1d9e0; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
td { max-width: 40rem; overflow-wrap: anywhere; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ description }}. Period: {{ period }}. Generated {{ generated }}. {{ "{:,}".format(total) }} row(s).</p>
{% if notice %}<p class="notice">{{ notice }}</p>{% endif %}
{% if chart_svg %}<figure>{{ chart_svg }}</figure>{% endif %}
<table>
<thead><tr>{% for column in columns %}<th>{{ column }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr>{% for value in row %}<td>{{ "" if value is none else value }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
</body>
</html>
""")


def report_html(saved: SavedSearch, result: sqlguard.QueryResult, chart_svg: str | None, period: str,
                generated: str) -> str:
    """One self-contained page: chart (inline SVG from vl-convert) and table, every value escaped."""
    frame = result.frame
    notes = [result.notice] if result.notice else []
    if frame.height > HTML_TABLE_ROWS:
        notes.append(f"The table shows the first {HTML_TABLE_ROWS:,} rows; the CSV or Parquet report has them all.")
    return _HTML.render(
        title=saved.name,
        description=saved.describe(),
        period=period,
        generated=generated,
        total=frame.height,
        notice=" ".join(notes),
        chart_svg=Markup(chart_svg) if chart_svg else None,
        columns=frame.columns,
        rows=frame.head(HTML_TABLE_ROWS).iter_rows(),
    )


def report_file_name(saved: SavedSearch, now: datetime | None = None, fmt: str | None = None) -> str:
    """'trailstream_<name>_<period>.<format>', as every export is named."""
    return exports.export_file_name(saved.name, saved.filter_at(now), fmt or saved.format or DEFAULT_FORMAT)


def render_report(db_path, saved: SavedSearch, now: datetime | None = None, fmt: str | None = None,
                  lake: query_backend.LakeBackend | None = None) -> ReportFile:
    """Run the saved search (on the lake when given) and build the report file in its format (or `fmt`)."""
    now = now or datetime.now(timezone.utc)
    fmt = fmt or saved.format or DEFAULT_FORMAT
    if fmt not in REPORT_FORMATS:
        raise ReportError(f"{fmt!r} is not a report format; use one of {', '.join(REPORT_FORMATS)}")
    try:
        result = run_saved(db_path, saved, now, lake=lake)
    except (sqlguard.QueryRefused, sqlguard.QueryFailed) as exc:
        raise ReportError(f"report {saved.name!r} could not run: {exc}") from None
    event_filter = saved.filter_at(now)
    file_name = report_file_name(saved, now, fmt)
    if fmt == "csv":
        return ReportFile(file_name, exports.table_csv(result.frame), MIME_TYPES[fmt])
    if fmt == "parquet":
        return ReportFile(file_name, exports.table_parquet(result.frame), MIME_TYPES[fmt])
    chart = report_chart(saved, result.frame)
    svg = exports.chart_svg(chart).decode("utf-8") if chart is not None else None
    period = f"{event_filter.start or 'the beginning'} to {event_filter.end or iso_utc(now)}"
    html = report_html(saved, result, svg, period, iso_utc(now))
    return ReportFile(file_name, html.encode("utf-8"), MIME_TYPES[fmt])


def _format_for(output: Path | None, saved: SavedSearch) -> str | None:
    """The format a file name asks for (report.html -> html), else the report's own."""
    suffix = output.suffix.lstrip(".").lower() if output is not None and output.suffix else ""
    return suffix if suffix in REPORT_FORMATS else saved.format


def write_report(db_path, name: str, output=None, now: datetime | None = None, settings=None) -> Path:
    """Write the saved report NAME to `output` (a file, or a folder for the default name), from the store `settings`'
    [backend] names; returns the path."""
    try:
        sqlguard.require_cache(db_path)
    except sqlguard.QueryFailed as exc:
        raise ReportError(str(exc)) from None
    conn = store.open_cache_readonly(db_path)
    try:
        saved = saved_searches.query_saved_search(conn, name)
    except SavedSearchError as exc:
        raise ReportError(str(exc)) from None
    finally:
        conn.close()
    target = Path(output) if output else None
    into_folder = target is not None and target.is_dir()
    report = render_report(db_path, saved, now, None if into_folder else _format_for(target, saved),
                           open_lake(db_path, settings))
    path = (target / report.file_name if into_folder else target) or Path(report.file_name)
    try:
        path.write_bytes(report.data)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}; pick another --output") from None
    return path


def send_scheduled_reports(db_path, smtp: mailer.SmtpSettings | None, now: datetime | None = None,
                           settings=None) -> list[ReportDelivery]:
    """Email every report due now (daily / weekly), read from the store [backend] names, and mark it sent; a failure
    is reported and retried next run."""
    now = now or datetime.now(timezone.utc)
    if not Path(db_path).exists():
        return []
    conn = store.open_cache_readonly(db_path)
    try:
        due = saved_searches.due_reports(conn, now)
    finally:
        conn.close()
    if due and smtp is None:
        return [ReportDelivery(report.name, False, "mail is not set up: add an [smtp] section on Sources & settings")
                for report in due]
    try:
        lake = open_lake(db_path, settings) if due else None
    except ReportError as exc:
        return [ReportDelivery(report.name, False, str(exc)) for report in due]
    return [_send_report(db_path, smtp, report, now, lake) for report in due]


def _send_report(db_path, smtp: mailer.SmtpSettings, report: SavedSearch, now: datetime,
                 lake: query_backend.LakeBackend | None = None) -> ReportDelivery:
    try:
        built = render_report(db_path, report, now, lake=lake)
        recipients = report.recipients or smtp.recipients
        text = (f"The TrailStream report {report.name!r} ({report.describe()}) is attached as {built.file_name}.\n"
                "Change or stop it on the Reports page.\n")
        mailer.send_mail(smtp, recipients, f"TrailStream report: {report.name}", text,
                         attachments=[mailer.Attachment(built.file_name, built.data, built.mime_type)])
    except (ReportError, mailer.MailError) as exc:
        return ReportDelivery(report.name, False, str(exc))
    saved_searches.mark_report_sent(db_path, report.name, iso_utc(now))
    return ReportDelivery(report.name, True, f"sent {built.file_name} to {', '.join(recipients)}")

