"""Pure altair builders: aggregated frames in, charts out (explicit encoding types, container width, UTC times).

Pages render them through `trailstream.app.widgets.show_chart` (full width, with downloads); exports turn them into
PNG and SVG. Callers aggregate first: no builder here should be handed more than a few thousand rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import altair as alt
import polars as pl

from trailstream.analytics.timebins import TIME_BINS, choose_bin
from trailstream.analytics.transforms import rebin_timeline, top_n_with_other
from trailstream.timefmt import parse_iso_utc

TIME_FORMAT = "%Y-%m-%d %H:%M UTC"
HEIGHT = 320
OVERVIEW_HEIGHT = 70
COLOR_LIMIT = 10  # series beyond this are folded into "other" so the legend stays readable
KINDS = ("bar", "line", "area", "point")

# Streamlit's default autosize "fit" makes the given height the whole chart's, squeezing a few bars to nothing.
FIT_WIDTH_ONLY = alt.AutoSizeParams(type="fit-x", contains="padding")

# --- The one palette: categories get distinct colours; outcomes always mean the same colour on every page ---------
PALETTE = ("#4c78a8", "#f58518", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6", "#17becf", "#bcbd22",
           "#9467bd", "#08306b", "#fdae6b")  # no red, green or grey: those mean failure, success and "other"
FAILURE_RED, SUCCESS_GREEN, OTHER_GREY = "#e45756", "#54a24b", "#bab0ac"
SEMANTIC_COLORS = {"failure": FAILURE_RED, "failed": FAILURE_RED, "success": SUCCESS_GREEN,
                   "succeeded": SUCCESS_GREEN, "other": OTHER_GREY}
LEGEND = alt.Legend(labelLimit=0, symbolLimit=0)  # legends never cut a name to "AuthorizeSecurityGroupI…"
COUNT_AXIS = alt.Axis(tickMinStep=1, format=",d")  # counts are whole: no 0.5-event ticks

# --- The one time-axis rule (timebins), and how thin a bar may be drawn ------------------------------------------
MIN_BAR_PX = 4  # a bar narrower than this over the whole period is drawn this wide, so a burst stays visible
CHART_PX = 1000  # the width a full-width chart is drawn at on a laptop, to judge bar widths


def _tick_labels(span: timedelta) -> str:
    """Tick labels that always carry the date and year: two lines (time over date) for short spans."""
    if span <= timedelta(days=3):
        lines = ("%H:%M", "%b %d, %Y")
    elif span <= timedelta(days=90):
        lines = ("%b %d", "%Y")
    elif span <= timedelta(days=3 * 365):
        lines = ("%b", "%Y")
    else:
        lines = ("%Y",)
    return "[" + ", ".join(f"utcFormat(datum.value, '{line}')" for line in lines) + "]"


def _tick_count(span: timedelta):
    """Ticks on whole days, months or years past three days, so no two ticks carry the same label."""
    if span <= timedelta(days=3):
        return 8
    if span <= timedelta(days=90):
        return alt.TimeIntervalStep(interval="day", step=max(1, span.days // 8))
    if span <= timedelta(days=3 * 365):
        return alt.TimeIntervalStep(interval="month", step=max(1, span.days // 240))
    return alt.TimeIntervalStep(interval="year", step=max(1, span.days // (365 * 10)))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def time_frame(frame: pl.DataFrame, period: tuple[str | None, str | None] = (None, None)) -> tuple[pl.DataFrame, dict]:
    """The one time-axis rule applied: the frame re-binned to choose_bin's bin and the x axis's settings
    (the domain spans the chosen period, ticks carry dates, narrow bars get a minimum width)."""
    first = frame["bucket"].min() if frame.height else None
    last = frame["bucket_end"].max() if frame.height and "bucket_end" in frame.columns else first
    start = parse_iso_utc(period[0]) if period[0] else first
    end = parse_iso_utc(period[1]) if period[1] else last
    if period[0] and not period[1]:  # "the last 30 days" run to now, with or without events near it
        end = max(filter(None, (last, datetime.now(start.tzinfo))))
    span = end - start if start is not None and end is not None else None
    name = choose_bin(span, last - first if first is not None else None)
    binned = rebin_timeline(frame, TIME_BINS[name][0]) if frame.height else frame
    domain = [_ms(start), _ms(end)] if span else None
    thin = bool(span) and span / TIME_BINS[name][1] > CHART_PX / MIN_BAR_PX
    return binned, {"domain": domain, "labels": _tick_labels(span or timedelta(days=1)), "thin": thin, "bin": name,
                    "ticks": _tick_count(span or timedelta(days=1))}


def _time_axis(field: str, title: str | None = None, domain=None, labels: str | None = None, ticks=8) -> alt.X:
    """A UTC time axis; `domain` may be a brush selection or the period, so the axis follows it."""
    scale = alt.Scale(type="utc", domain=domain) if domain is not None else alt.Scale(type="utc")
    axis = alt.Axis(labelExpr=labels or _tick_labels(timedelta(days=1)), labelOverlap=True, tickCount=ticks,
                    labelSeparation=8)
    return alt.X(f"{field}:T", title=title, scale=scale, axis=axis)


def category_color(field: str, title: str | None = None, domain: list | None = None) -> alt.Color:
    """The one categorical colour: PALETTE, semantic colours for outcomes and "other", legend names never cut."""
    values = [v for v in (domain or []) if v is not None]
    colors = [SEMANTIC_COLORS.get(str(v).lower()) for v in values]
    rest = iter(PALETTE)
    scale = (alt.Scale(domain=values, range=[c or next(rest, OTHER_GREY) for c in colors]) if values
             else alt.Scale(range=list(PALETTE)))
    return alt.Color(f"{field}:N", title=title if title is not None else field.replace("_", " "), scale=scale,
                     legend=LEGEND)


def _time_tooltip(field: str, title: str) -> alt.Tooltip:
    return alt.Tooltip(f"{field}:T", title=title, format=TIME_FORMAT, formatType="utc")


def _bars_over_time(frame: pl.DataFrame, y: str, color: str | None, axis: dict, x_scale_domain=None) -> alt.Chart:
    """Bars one bin wide (bucket to bucket_end; a fixed minimum width when that is too thin), stacked by `color`."""
    label = y.replace("_", " ")
    encodings = {
        "x": _time_axis("bucket", None, x_scale_domain if x_scale_domain is not None else axis["domain"],
                        axis["labels"], axis["ticks"] if x_scale_domain is None else 8),
        "y": alt.Y(f"sum({y}):Q", title=label, stack="zero", axis=COUNT_AXIS),
        "tooltip": [_time_tooltip("bucket", "from"), _time_tooltip("bucket_end", "until"),
                    alt.Tooltip(f"sum({y}):Q", title=label, format=",")],
    }
    if "bucket_end" in frame.columns and not axis["thin"]:
        encodings["x2"] = alt.X2("bucket_end:T")
    if color:
        order = frame.group_by(color).agg(pl.col(y).sum()).sort(y, color, descending=[True, False])
        encodings["color"] = category_color(color, domain=order[color].to_list())
        encodings["tooltip"].insert(2, alt.Tooltip(f"{color}:N", title=color.replace("_", " ")))
    mark = alt.Chart(frame).mark_bar(size=MIN_BAR_PX) if axis["thin"] else alt.Chart(frame).mark_bar()
    return mark.encode(**encodings)


def timeline_chart(
    frame: pl.DataFrame, color: str | None = None, y: str = "events", title: str | None = None, top: int = COLOR_LIMIT,
    period: tuple[str | None, str | None] = (None, None),
) -> alt.Chart:
    """Counts per time bin over the period (frame from a query_*timeline), stacked by `color` when given."""
    if color and frame.height:
        frame = top_n_with_other(frame, color, top, y)
    frame, axis = time_frame(frame, period)
    return _bars_over_time(frame, y, color, axis).properties(width="container", height=HEIGHT, title=title or "")


def event_timeline_chart(frame: pl.DataFrame, color: str = "event_source", top: int = COLOR_LIMIT,
                         period: tuple[str | None, str | None] = (None, None)) -> alt.VConcatChart:
    """The overview timeline: stacked detail on top, and below it a strip to brush a period to zoom into."""
    if frame.height:
        frame = top_n_with_other(frame, color, top)
    frame, axis = time_frame(frame, period)
    brush = alt.selection_interval(encodings=["x"], name="zoom")
    detail = _bars_over_time(frame, "events", color, axis, x_scale_domain=brush).properties(
        width="container", height=HEIGHT, title="Events over time (drag on the strip below to zoom)"
    )
    strip = {"x": _time_axis("bucket", None, axis["domain"], axis["labels"], axis["ticks"]),
             "y": alt.Y("sum(events):Q", title=None, axis=None)}
    if "bucket_end" in frame.columns and not axis["thin"]:
        strip["x2"] = alt.X2("bucket_end:T")
    overview = (
        (alt.Chart(frame).mark_bar(color="#9ecae9", size=MIN_BAR_PX) if axis["thin"]
         else alt.Chart(frame).mark_bar(color="#9ecae9"))
        .encode(**strip)
        .add_params(brush)
        .properties(width="container", height=OVERVIEW_HEIGHT)
    )
    return alt.vconcat(detail, overview, spacing=8)


def top_n_bar_chart(
    frame: pl.DataFrame,
    category: str,
    value: str = "events",
    n: int = 15,
    color: str | None = None,
    title: str | None = None,
    fill: str = PALETTE[0],
) -> alt.Chart:
    """Horizontal bars of the n largest categories, largest on top; one `fill` (FAILURE_RED for refused calls) unless
    coloured by a `color` field."""
    top = frame.sort(value, descending=True).head(n)
    tooltip = [alt.Tooltip(f"{category}:N", title=category.replace("_", " ")), alt.Tooltip(f"{value}:Q", format=",")]
    tooltip += [alt.Tooltip(f"{c}:Q", format=",") for c in ("failed",) if c in top.columns and c != value]
    encodings = {
        "x": alt.X(f"{value}:Q", title=value.replace("_", " "), axis=COUNT_AXIS),
        "y": alt.Y(f"{category}:N", title=None, sort="-x", axis=alt.Axis(labelLimit=360, labelOverlap=False)),
        "tooltip": tooltip,
    }
    if color:
        encodings["color"] = category_color(color, domain=top[color].unique(maintain_order=True).to_list())
    return (
        alt.Chart(top)
        .mark_bar(color=fill)
        .encode(**encodings)
        .properties(width="container", height=max(120, 22 * top.height), title=title or "",
                    autosize=FIT_WIDTH_ONLY)
    )


def failure_share_chart(totals: pl.DataFrame) -> alt.Chart:
    """A donut of succeeded versus failed calls, from query_overview_totals."""
    events = int(totals["events"].sum()) if totals.height else 0
    failed = int(totals["failed"].sum()) if totals.height else 0
    parts = pl.DataFrame({"outcome": ["succeeded", "failed"], "events": [events - failed, failed]})
    return (
        alt.Chart(parts)
        .mark_arc(innerRadius=55)
        .encode(
            theta=alt.Theta("events:Q", stack=True),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=["succeeded", "failed"], range=[SUCCESS_GREEN, FAILURE_RED]),
                title=None,
            ),
            tooltip=[alt.Tooltip("outcome:N"), alt.Tooltip("events:Q", format=",")],
        )
        .properties(width="container", height=220, title="Failed calls")
    )


HEATMAP_ACCOUNTS, HEATMAP_REGIONS = 15, 12  # a readable grid: the busiest ones, the rest folded into "other"


def account_region_chart(frame: pl.DataFrame) -> alt.Chart:
    """A heatmap of events per account and region, from query_account_region_counts; past HEATMAP_ACCOUNTS accounts
    or HEATMAP_REGIONS regions (45 x 38 on public samples) the quieter ones are one "other" row or column."""
    frame = top_n_with_other(frame.select("account_id", "aws_region", "events", "failed"), "account_id",
                             HEATMAP_ACCOUNTS)
    frame = top_n_with_other(frame, "aws_region", HEATMAP_REGIONS)
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("aws_region:N", title="region", sort="-color"),
            y=alt.Y("account_id:N", title="account", sort="-color", axis=alt.Axis(labelLimit=0)),
            color=alt.Color("events:Q", title="events", scale=alt.Scale(scheme="blues", type="log")),
            tooltip=[
                alt.Tooltip("account_id:N", title="account"),
                alt.Tooltip("aws_region:N", title="region"),
                alt.Tooltip("events:Q", format=","),
                alt.Tooltip("failed:Q", format=","),
            ],
        )
        .properties(width="container", height=max(120, 26 * frame["account_id"].n_unique()),
                    title="Events by account and region", autosize=FIT_WIDTH_ONLY)
    )


TREND_COLORS = {"new": FAILURE_RED, "once": "#f58518", "rising": "#eeca3b", "steady": "#4c78a8", "falling": "#72b7b2"}


def rare_errors_chart(ranked: pl.DataFrame, n: int = 25) -> alt.Chart:
    """The rarest errors as bars (log scale), coloured by trend, from transforms.rank_rare_errors."""
    rarest = ranked.head(n)
    label_parts = [c for c in ("event_source", "event_name", "error_code") if c in rarest.columns]
    rarest = rarest.with_columns(error=pl.concat_str([pl.col(c).fill_null("?") for c in label_parts], separator=" · "))
    return (
        alt.Chart(rarest)
        .mark_bar()
        .encode(
            x=alt.X("events:Q", title="events in period", scale=alt.Scale(type="symlog"), axis=COUNT_AXIS),
            y=alt.Y("error:N", title=None, sort=alt.EncodingSortField("rarity_rank"),
                    axis=alt.Axis(labelLimit=420, labelOverlap=False)),
            color=alt.Color("trend:N", legend=LEGEND, scale=alt.Scale(domain=list(TREND_COLORS),
                                                                      range=list(TREND_COLORS.values()))),
            tooltip=[
                alt.Tooltip("error:N"),
                alt.Tooltip("events:Q", format=","),
                _time_tooltip("first_seen", "first seen"),
                _time_tooltip("last_seen", "last seen"),
                alt.Tooltip("trend:N"),
            ],
        )
        .properties(width="container", height=max(120, 22 * rarest.height), title="Rarest errors",
                    autosize=FIT_WIDTH_ONLY)
    )


def delivery_silence_chart(health: pl.DataFrame) -> alt.Chart:
    """Hours since the newest event per account and region; the quiet ones stand out, from ingestion_health."""
    frame = health.with_columns(
        hours_silent=(pl.col("silent_for").dt.total_seconds() / 3600).round(1),
        place=pl.concat_str(pl.col("account_id"), pl.lit(" / "), pl.col("aws_region")),
    )
    return (
        alt.Chart(_chartable(frame))
        .mark_bar()
        .encode(
            x=alt.X("hours_silent:Q", title="hours since the newest event"),
            y=alt.Y("place:N", title=None, sort="-x", axis=alt.Axis(labelLimit=360)),
            color=alt.Color("quiet:N", legend=LEGEND,
                            scale=alt.Scale(domain=[False, True], range=[SUCCESS_GREEN, FAILURE_RED])),
            tooltip=[
                alt.Tooltip("place:N", title="account / region"),
                alt.Tooltip("hours_silent:Q", title="hours silent"),
                _time_tooltip("newest_event_time", "newest event"),
                alt.Tooltip("files:Q", format=","),
            ],
        )
        .properties(width="container", height=max(120, 24 * frame.height), title="Delivery by account and region",
                    autosize=FIT_WIDTH_ONLY)
    )


def resource_timeline_chart(history: pl.DataFrame, period: tuple[str | None, str | None] = (None, None)) -> alt.Chart:
    """One resource's calls as dots: when (over the period, dated ticks) by which call, failed calls red."""
    frame = history.select(
        "event_time", "event_name", "principal",
        outcome=pl.when(pl.col("error_code").fill_null("") == "").then(pl.lit("succeeded")).otherwise(pl.lit("failed")))
    _, axis = time_frame(frame.select(bucket="event_time"), period)
    return (
        alt.Chart(frame)
        .mark_point(filled=True, size=90)
        .encode(
            x=_time_axis("event_time", None, axis["domain"], axis["labels"], axis["ticks"]),
            y=alt.Y("event_name:N", title=None, axis=alt.Axis(labelLimit=0)),
            color=category_color("outcome", "outcome", ["succeeded", "failed"]),
            tooltip=[_time_tooltip("event_time", "time"), alt.Tooltip("event_name:N", title="call"),
                     alt.Tooltip("principal:N", title="who"), alt.Tooltip("outcome:N")],
        )
        .properties(width="container", height=alt.Step(26), title="Calls on this resource",
                    autosize=FIT_WIDTH_ONLY)
    )


def _encoding_type(dtype: pl.DataType) -> str:
    if dtype.is_temporal():
        return "T"
    if dtype.is_numeric():
        return "Q"
    return "N"


def quick_chart(
    frame: pl.DataFrame, x: str, y: str | None = None, color: str | None = None, kind: str = "bar"
) -> alt.Chart:
    """A chart of any result table (the SQL page): encoding types follow the column dtypes; no y counts rows."""
    if kind not in KINDS:
        raise ValueError(f"unknown chart kind {kind!r}; choose one of {', '.join(KINDS)}")
    for column in (x, y, color):
        if column is not None and column not in frame.columns:
            raise ValueError(f"no column {column!r} in the result; choose one of {', '.join(frame.columns)}")
    schema = frame.schema
    x_type = _encoding_type(schema[x])
    x_enc = alt.X(f"{x}:{x_type}", title=x, scale=alt.Scale(type="utc") if x_type == "T" else alt.Undefined)
    if y is None:
        y_enc, y_tip = alt.Y("count():Q", title="rows"), alt.Tooltip("count():Q", title="rows")
    else:
        y_type = _encoding_type(schema[y])
        aggregate = "sum" if y_type == "Q" else "count"
        y_enc = alt.Y(f"{aggregate}({y}):Q", title=y)
        y_tip = alt.Tooltip(f"{aggregate}({y}):Q", title=y)
    encodings = {"x": x_enc, "y": y_enc, "tooltip": [alt.Tooltip(f"{x}:{x_type}", title=x), y_tip]}
    if color:
        encodings["color"] = alt.Color(f"{color}:{_encoding_type(schema[color])}", title=color)
        encodings["tooltip"].append(alt.Tooltip(f"{color}:{_encoding_type(schema[color])}", title=color))
    mark = {"bar": alt.Chart.mark_bar, "line": alt.Chart.mark_line, "area": alt.Chart.mark_area, "point": alt.Chart.mark_point}
    chart = mark[kind](alt.Chart(_chartable(frame)))
    return chart.encode(**encodings).properties(width="container", height=HEIGHT)


def _chartable(frame: pl.DataFrame) -> pl.DataFrame:
    """Vega-Lite datasets hold scalars: drop nested and binary columns, turn durations into seconds."""
    keep = [c for c, dtype in frame.schema.items() if not dtype.is_nested() and dtype != pl.Binary]
    return frame.select(keep).with_columns(pl.col(pl.Duration).dt.total_seconds(fractional=True))


# --- Security (findings, sign-ins, access denied, impossible travel) ------------------------------------------------

SEVERITY_COLORS = {"low": "#9ecae9", "medium": "#f2cf5b", "high": "#f58518", "critical": "#e45756"}
MAP_PROJECTIONS = ("equalEarth", "mercator", "naturalEarth1")
TRAVEL_COLOR = "#e45756"


def _severity_color() -> alt.Color:
    """Critical first in the legend, in the fixed severity colours."""
    order = list(reversed(SEVERITY_COLORS))
    return alt.Color("severity:N", title="severity", sort=order, legend=LEGEND,
                     scale=alt.Scale(domain=order, range=[SEVERITY_COLORS[s] for s in order]))


def findings_timeline_chart(frame: pl.DataFrame, title: str = "Findings over time",
                            period: tuple[str | None, str | None] = (None, None)) -> alt.Chart:
    """Findings per time bin over the period stacked by severity, critical on top of the legend
    (frame from detections.count_over_time(..., 'severity'))."""
    frame, axis = time_frame(frame, period)
    order = alt.Order("severity_rank:Q", sort="descending")
    ranked = frame.with_columns(
        severity_rank=pl.col("severity").replace_strict(list(SEVERITY_COLORS), range(len(SEVERITY_COLORS)),
                                                        default=0, return_dtype=pl.Int64))
    encodings = {
        "x": _time_axis("bucket", None, axis["domain"], axis["labels"], axis["ticks"]),
        "y": alt.Y("sum(findings):Q", title="findings", stack="zero", axis=COUNT_AXIS),
        "color": _severity_color(),
        "order": order,
        "tooltip": [_time_tooltip("bucket", "from"), alt.Tooltip("severity:N"),
                    alt.Tooltip("sum(findings):Q", title="findings", format=",")],
    }
    if not axis["thin"]:
        encodings["x2"] = alt.X2("bucket_end:T")
    mark = alt.Chart(ranked).mark_bar(size=MIN_BAR_PX) if axis["thin"] else alt.Chart(ranked).mark_bar()
    return mark.encode(**encodings).properties(width="container", height=HEIGHT, title=title)


def findings_by_type_chart(frame: pl.DataFrame, title: str = "Findings by type") -> alt.Chart:
    """Horizontal bars per finding type, split by severity (frame from detections.findings_by_type)."""
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("sum(findings):Q", title="findings", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("title:N", title=None, sort="-x", axis=alt.Axis(labelLimit=360)),
            color=_severity_color(),
            tooltip=[alt.Tooltip("title:N", title="type"), alt.Tooltip("severity:N"),
                     alt.Tooltip("sum(findings):Q", title="findings", format=",")],
        )
        .properties(width="container", height=alt.Step(28), title=title,
                    autosize=FIT_WIDTH_ONLY)
    )


MAX_ROUTES = 200  # a map draws at most this many routes (the busiest); the rest are counted in its subtitle
_ROUTE_ENDS = ("from_latitude", "from_longitude", "to_latitude", "to_longitude")


def drawable_routes(routes: pl.DataFrame, top: int = MAX_ROUTES) -> pl.DataFrame:
    """The busiest `top` routes whose two places both have coordinates (frame from detections.query_travel_routes)."""
    return routes.drop_nulls(list(_ROUTE_ENDS)).sort("hops", descending=True, maintain_order=True).head(top)


def _travel_ends(routes: pl.DataFrame) -> pl.DataFrame:
    """Every place the drawn routes start or end at, once, with the hops through it."""
    return (
        pl.concat([routes.select(place=pl.col(f"{end}_place"), latitude=pl.col(f"{end}_latitude"),
                                 longitude=pl.col(f"{end}_longitude"), hops=pl.col("hops")) for end in ("from", "to")])
        .group_by("place", "latitude", "longitude")
        .agg(pl.col("hops").sum())
        .sort("hops", "place", descending=[True, False])
    )


def _travel_lines(routes: pl.DataFrame) -> list[dict]:
    """Each route as a GeoJSON LineString: a map projection draws it as the great circle between the two places."""
    lines = routes.select(
        geometry=pl.struct(type=pl.lit("LineString"), coordinates=pl.concat_list(
            *(pl.concat_list(f"{end}_longitude", f"{end}_latitude").cast(pl.Array(pl.Float64, 2))
              for end in ("from", "to")))),
        properties=pl.struct(route=pl.format("{} → {}", pl.col("from_place").fill_null("?"),
                                             pl.col("to_place").fill_null("?")),
                             hops="hops", principals="principals", fastest_kmh=pl.col("fastest_kmh").round(0)),
    )
    return [{"type": "Feature", **line} for line in lines.to_dicts()]


def travel_map_chart(routes: pl.DataFrame, projection: str = "equalEarth", title: str = "Impossible travel",
                     top: int = MAX_ROUTES) -> alt.LayerChart:
    """The busiest routes (from place -> to place, by hops) as great-circle lines on a globe outline, graticule and
    city dots; the subtitle says how many of all routes are drawn. Nothing is fetched: the cities sketch the land."""
    from trailstream.analytics import geo

    if projection not in MAP_PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; choose one of {', '.join(MAP_PROJECTIONS)}")
    drawn = drawable_routes(routes, top)
    position = {"longitude": "longitude:Q", "latitude": "latitude:Q"}
    sphere = alt.Chart(alt.sphere()).mark_geoshape(fill="#f2f6fa", stroke="#b8c4d0", strokeWidth=0.5)
    graticule = alt.Chart(alt.graticule(step=[30, 30])).mark_geoshape(filled=False, stroke="#d3dbe3", strokeWidth=0.5)
    land = alt.Chart(geo.reference_points()).mark_circle(size=3, color="#aab6c2", opacity=0.6).encode(**position)
    lines = alt.Chart(alt.Data(values=_travel_lines(drawn))).mark_geoshape(
        filled=False, stroke=TRAVEL_COLOR, opacity=0.7
    ).encode(strokeWidth=alt.StrokeWidth("properties.hops:Q", title="hops", scale=alt.Scale(range=[1, 5])),
             tooltip=[alt.Tooltip("properties.route:N", title="route"),
                      alt.Tooltip("properties.hops:Q", title="hops", format=","),
                      alt.Tooltip("properties.principals:Q", title="principals", format=","),
                      alt.Tooltip("properties.fastest_kmh:Q", title="fastest km/h", format=",")])
    ends = _travel_ends(drawn)
    points = alt.Chart(ends).mark_circle(size=60, color=TRAVEL_COLOR, stroke="white", strokeWidth=1, opacity=1).encode(
        **position, tooltip=[alt.Tooltip("place:N"), alt.Tooltip("hops:Q", title="hops", format=",")])
    labels = alt.Chart(ends.head(20)).mark_text(dy=-10, fontSize=11, color="#333333").encode(**position, text="place:N")
    unplaced = routes.height - routes.drop_nulls(list(_ROUTE_ENDS)).height
    subtitle = f"Top {drawn.height:,} of {routes.height:,} routes by hops" + (
        f"; {unplaced:,} with a place of unknown coordinates cannot be drawn" if unplaced else "")
    return (
        alt.layer(sphere, graticule, land, lines, points, labels)
        .project(type=projection)
        .properties(width="container", height=440, title=alt.TitleParams(title, subtitle=subtitle))
    )


def integrity_heatmap_chart(cells: pl.DataFrame, colors: dict[str, str]) -> alt.Chart:
    """Hours (or days) × account/region, coloured by integrity state; a click selects a cell ("cell")."""
    span = cells["span"][0] if cells.height else "hour"
    pick = alt.selection_point(name="cell", fields=["trail", "hour", "span"], on="click")
    return (
        alt.Chart(cells.select("trail", "account_id", "region", "hour", "span", "state", "problems"))
        .mark_rect()
        .encode(
            x=alt.X("hour:T", title=f"{span} (UTC)", timeUnit="utcyearmonthdatehours" if span == "hour" else "utcyearmonthdate"),
            y=alt.Y("trail:N", title="account and region"),
            color=alt.Color("state:N", title="state", scale=alt.Scale(domain=list(colors), range=list(colors.values()))),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.5)),
            tooltip=[alt.Tooltip("trail:N", title="account and region"), _time_tooltip("hour", span),
                     alt.Tooltip("state:N"), alt.Tooltip("problems:Q")],
        )
        .add_params(pick)
        .properties(height=alt.Step(18))
    )
