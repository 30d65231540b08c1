"""Chart builders, checked through chart.to_dict(): marks, typed encodings, the zoom brush, tooltips."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import altair as alt
import polars as pl
import pytest

from trailstream.analytics import charts, queries, timebins, transforms

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def hourly_events_by_source() -> pl.DataFrame:
    """Six hours of counts for 14 event sources (more than the legend keeps)."""
    rows = [
        {"bucket": T0 + timedelta(hours=h), "event_source": f"svc{s}.amazonaws.com", "events": s + h, "failed": s % 2}
        for h in range(6)
        for s in range(14)
    ]
    return queries.with_bucket_end(pl.DataFrame(rows, schema=queries.timeline_schema("event_source")), "hour")


def encodings(spec: dict) -> dict:
    return spec["encoding"]


def test_overview_timeline_is_stacked_detail_over_a_brushable_strip(hourly_events_by_source):
    spec = charts.event_timeline_chart(hourly_events_by_source).to_dict()
    detail, strip = spec["vconcat"]
    assert detail["mark"]["type"] == strip["mark"]["type"] == "bar"
    brush = next(p for p in spec["params"] if p["select"]["type"] == "interval")
    assert brush["select"]["encodings"] == ["x"] and brush["views"] == [strip["name"]]
    assert encodings(detail)["x"]["scale"]["domain"] == {"param": brush["name"]}  # the detail zooms to the brush
    assert encodings(detail)["x"]["type"] == "temporal" and encodings(detail)["x2"]["field"] == "bucket_end"
    assert encodings(detail)["y"]["type"] == "quantitative" and encodings(detail)["y"]["stack"] == "zero"
    assert encodings(detail)["color"] == {**encodings(detail)["color"], "field": "event_source", "type": "nominal"}
    assert {t["field"] for t in encodings(detail)["tooltip"]} >= {"bucket", "event_source", "events"}
    assert detail["width"] == strip["width"] == "container"


def test_overview_timeline_keeps_ten_sources_and_folds_the_rest(hourly_events_by_source):
    chart = charts.event_timeline_chart(hourly_events_by_source)
    sources = set(pl.DataFrame(next(iter(chart.to_dict()["datasets"].values())))["event_source"])
    assert len(sources) == charts.COLOR_LIMIT + 1 and transforms.OTHER in sources


def test_timeline_chart_without_colour_is_one_series(hourly_events_by_source):
    spec = charts.timeline_chart(hourly_events_by_source, title="All events").to_dict()
    assert "color" not in encodings(spec) and spec["title"] == "All events"
    assert encodings(spec)["x"]["scale"]["type"] == "utc"


def test_timeline_chart_of_nothing_still_builds():
    empty = queries.with_bucket_end(pl.DataFrame(schema=queries.timeline_schema("event_name")), "day")
    spec = charts.timeline_chart(empty, color="event_name").to_dict()
    assert spec["mark"]["type"] == "bar"


def test_top_n_bar_chart_keeps_the_largest_sorted():
    frame = pl.DataFrame({"event_name": [f"Call{i}" for i in range(30)], "events": list(range(30)), "failed": [1] * 30})
    chart = charts.top_n_bar_chart(frame, "event_name", n=5)
    spec = chart.to_dict()
    data = pl.DataFrame(next(iter(spec["datasets"].values())))
    assert sorted(data["events"].to_list()) == [25, 26, 27, 28, 29]
    assert encodings(spec)["y"] == {**encodings(spec)["y"], "field": "event_name", "type": "nominal", "sort": "-x"}
    assert encodings(spec)["x"]["type"] == "quantitative"


def test_failure_share_is_a_donut_of_succeeded_and_failed():
    totals = pl.DataFrame({"events": [120], "failed": [20]})
    spec = charts.failure_share_chart(totals).to_dict()
    assert spec["mark"]["type"] == "arc" and spec["mark"]["innerRadius"] > 0
    data = dict(pl.DataFrame(next(iter(spec["datasets"].values()))).rows())
    assert data == {"succeeded": 100, "failed": 20}


def test_account_region_chart_is_a_heatmap():
    frame = pl.DataFrame({"account_id": ["1", "1", "2"], "aws_region": ["a", "b", "a"], "events": [5, 1, 9],
                          "failed": [0, 1, 0]})
    spec = charts.account_region_chart(frame).to_dict()
    assert spec["mark"]["type"] == "rect"
    assert (encodings(spec)["x"]["type"], encodings(spec)["y"]["type"], encodings(spec)["color"]["type"]) == (
        "nominal", "nominal", "quantitative")


def test_rare_errors_chart_labels_each_combination_and_colours_the_trend():
    ranked = pl.DataFrame({
        "rarity_rank": [1, 2], "event_source": ["iam", "s3"], "event_name": ["CreateUser", "GetObject"],
        "error_code": ["EntityAlreadyExists", "AccessDenied"], "events": [1, 40], "share": [0.02, 0.98],
        "days_seen": [1, 4], "first_seen": [T0, T0], "last_seen": [T0, T0], "trend": ["once", "rising"],
    })
    spec = charts.rare_errors_chart(ranked).to_dict()
    data = pl.DataFrame(next(iter(spec["datasets"].values())))
    assert data["error"].to_list() == ["iam · CreateUser · EntityAlreadyExists", "s3 · GetObject · AccessDenied"]
    assert encodings(spec)["color"]["field"] == "trend"


def test_delivery_chart_marks_quiet_places():
    health = pl.DataFrame({
        "account_id": ["1", "1"], "aws_region": ["a", "b"], "files": [3, 4], "newest_event_time": [T0, T0],
        "silent_for": [timedelta(hours=1), timedelta(hours=9)], "delivery_lag": [timedelta(minutes=5)] * 2,
        "median_lag": [timedelta(minutes=5)] * 2, "quiet": [False, True],
    })
    spec = charts.delivery_silence_chart(health).to_dict()
    data = pl.DataFrame(next(iter(spec["datasets"].values())))
    assert data["hours_silent"].to_list() == [1.0, 9.0]
    assert encodings(spec)["color"]["field"] == "quiet"


@pytest.fixture
def sql_result() -> pl.DataFrame:
    """What the SQL page might return: a time, a category, a number, a nested column."""
    return pl.DataFrame({
        "day": [T0, T0 + timedelta(days=1)], "event_name": ["A", "B"], "n": [3, 4], "tags": [["x"], ["y", "z"]],
    })


@pytest.mark.parametrize("kind", charts.KINDS)
def test_quick_chart_types_follow_the_columns(sql_result, kind):
    spec = charts.quick_chart(sql_result, "day", "n", "event_name", kind).to_dict()
    assert spec["mark"]["type"] == kind
    assert (encodings(spec)["x"]["type"], encodings(spec)["y"]["type"], encodings(spec)["color"]["type"]) == (
        "temporal", "quantitative", "nominal")
    assert "tags" not in next(iter(spec["datasets"].values()))[0]


def test_quick_chart_without_y_counts_rows(sql_result):
    spec = charts.quick_chart(sql_result, "event_name").to_dict()
    assert encodings(spec)["y"]["aggregate"] == "count"


@pytest.mark.parametrize("x, kind, message", [("nope", "bar", "no column 'nope'"), ("day", "pie", "unknown chart kind")])
def test_quick_chart_explains_a_bad_choice(sql_result, x, kind, message):
    with pytest.raises(ValueError, match=message):
        charts.quick_chart(sql_result, x, kind=kind)


def test_every_builder_returns_an_altair_chart(hourly_events_by_source):
    assert isinstance(charts.event_timeline_chart(hourly_events_by_source), alt.VConcatChart)
    assert isinstance(charts.timeline_chart(hourly_events_by_source, color="event_source"), alt.Chart)


# --- The one time-axis rule -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("period", "data", "expected"), [
    (timedelta(hours=1), timedelta(minutes=50), "10min"),
    (timedelta(days=30), timedelta(minutes=14), "10min"),  # a burst in a month keeps 10-minute bars
    (timedelta(days=30), timedelta(days=29), "6h"),
    (timedelta(days=7), timedelta(days=7), "3h"),
    (timedelta(days=12 * 365), timedelta(days=12 * 365), "month"),
    (timedelta(days=60 * 365), timedelta(days=60 * 365), "year"),
    (timedelta(days=7), None, "3h"),  # no data: the period decides
])
def test_bin_adapts_to_the_period_and_the_data(period, data, expected):
    assert timebins.choose_bin(period, data) == expected


def _timeline(rows: list[tuple[datetime, str, int]], bucket: str) -> pl.DataFrame:
    frame = pl.DataFrame([{"bucket": b, "event_name": n, "events": e, "failed": 0} for b, n, e in rows],
                         schema=queries.timeline_schema("event_name"))
    return queries.with_bucket_end(frame, bucket)


def _chart_data(spec: dict) -> pl.DataFrame:
    return pl.DataFrame(next(iter(spec["datasets"].values())))


def test_one_hour_timeline_spans_the_hour_with_ten_minute_bars_and_dated_ticks():
    frame = _timeline([(T0 + timedelta(minutes=10 * i), "RunInstances", i + 1) for i in range(6)], "10min")
    spec = charts.timeline_chart(frame, "event_name", period=("2026-11-20T00:00:00Z", "2026-11-20T01:00:00Z")).to_dict()
    x = encodings(spec)["x"]
    assert x["scale"]["domain"] == [int(T0.timestamp() * 1000), int((T0 + timedelta(hours=1)).timestamp() * 1000)]
    assert "%H:%M" in x["axis"]["labelExpr"] and "%Y" in x["axis"]["labelExpr"]  # time over a date with its year
    assert encodings(spec)["x2"]["field"] == "bucket_end" and _chart_data(spec).height == 6
    assert encodings(spec)["y"]["axis"]["tickMinStep"] == 1


def test_a_fourteen_minute_burst_in_thirty_days_stays_visible_on_a_month_wide_axis():
    burst = [(T0 + timedelta(minutes=m), name, 1) for m, name in ((0, "StopLogging"), (3, "DeleteDetector"),
                                                                   (10, "CreateUser"))]
    start = T0 - timedelta(days=29)
    spec = charts.timeline_chart(_timeline(burst, "10min"), "event_name",
                                 period=(start.strftime("%Y-%m-%dT%H:%M:%SZ"), None)).to_dict()
    domain = encodings(spec)["x"]["scale"]["domain"]
    assert domain[0] == int(start.timestamp() * 1000) and domain[1] - domain[0] >= 29 * 86_400_000  # not the day
    assert _chart_data(spec).height == 3  # still 10-minute bars: StopLogging and DeleteDetector apart
    assert spec["mark"]["size"] == charts.MIN_BAR_PX and "x2" not in encodings(spec)  # a minimum width, not 0.2 px
    assert "%b %d" in encodings(spec)["x"]["axis"]["labelExpr"]


def test_twelve_years_of_days_fold_into_months_with_year_ticks():
    days = [(datetime(2014, 1, 1, tzinfo=timezone.utc) + timedelta(days=d), "GetObject", 1) for d in range(0, 4380, 3)]
    spec = charts.timeline_chart(_timeline(days, "day"), "event_name").to_dict()
    data = _chart_data(spec)
    assert data["events"].sum() == len(days) and data.height <= timebins.MAX_BARS
    assert encodings(spec)["x"]["axis"]["labelExpr"] == "[utcFormat(datum.value, '%Y')]"
    assert "Jan 01 00:00" not in str(spec)


def test_outcomes_keep_their_colours_and_legends_keep_whole_names():
    frame = pl.DataFrame({"bucket": [T0, T0, T0], "outcome": ["success", "failure", "other"], "events": [5, 2, 1],
                          "failed": [0, 2, 0]}, schema=queries.timeline_schema("outcome"))
    color = encodings(charts.timeline_chart(queries.with_bucket_end(frame, "hour"), "outcome").to_dict())["color"]
    colours = dict(zip(color["scale"]["domain"], color["scale"]["range"]))
    assert colours == {"success": charts.SUCCESS_GREEN, "failure": charts.FAILURE_RED, "other": charts.OTHER_GREY}
    assert color["legend"]["labelLimit"] == 0


def test_every_series_of_a_full_legend_gets_its_own_colour(hourly_events_by_source):
    color = encodings(charts.timeline_chart(hourly_events_by_source, "event_source").to_dict())["color"]
    assert len(set(color["scale"]["range"])) == len(color["scale"]["domain"]) == charts.COLOR_LIMIT + 1


def test_failed_calls_are_red_and_succeeded_green_on_the_share_donut():
    totals = pl.DataFrame({"events": [10], "failed": [3]})
    color = encodings(charts.failure_share_chart(totals).to_dict())["color"]
    assert dict(zip(color["scale"]["domain"], color["scale"]["range"])) == {
        "succeeded": charts.SUCCESS_GREEN, "failed": charts.FAILURE_RED}


def test_bar_charts_count_in_whole_events_and_label_every_bar():
    frame = pl.DataFrame({"api": [f"AuthorizeSecurityGroup{d}" for d in ("Ingress", "Egress")], "events": [1, 2]})
    spec = charts.top_n_bar_chart(frame, "api").to_dict()
    assert encodings(spec)["x"]["axis"]["tickMinStep"] == 1 and encodings(spec)["x"]["axis"]["format"] == ",d"
    assert encodings(spec)["y"]["axis"]["labelOverlap"] is False


def test_findings_legend_puts_critical_first_in_red():
    frame = pl.DataFrame({"bucket": [T0], "bucket_end": [T0 + timedelta(hours=1)], "severity": ["low"],
                          "findings": [1]})
    color = encodings(charts.findings_timeline_chart(frame).to_dict())["color"]
    assert color["scale"]["domain"][0] == "critical" and color["scale"]["range"][0] == charts.FAILURE_RED


def test_week_long_axes_tick_once_a_day_at_most_so_no_label_repeats():
    frame = _timeline([(T0 + timedelta(hours=3 * i), "ConsoleLogin", 1) for i in range(56)], "hour")
    spec = charts.timeline_chart(frame, "event_name", period=("2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z")).to_dict()
    assert encodings(spec)["x"]["axis"]["tickCount"] == {"interval": "day", "step": 1}


def test_an_empty_timeline_still_spans_the_chosen_period():
    empty = queries.with_bucket_end(pl.DataFrame(schema=queries.timeline_schema("event_name")), "hour")
    spec = charts.timeline_chart(empty, "event_name", period=("2026-11-20T00:00:00Z", None)).to_dict()
    assert encodings(spec)["x"]["scale"]["domain"][0] == int(T0.timestamp() * 1000)
