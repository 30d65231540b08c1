"""Downloads: real PNG and SVG images, tables that read back the same, file names that say what and when."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from trailstream.analytics import charts, exports, queries
from trailstream.filters import EventFilter
from trailstream import timefmt

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def hourly_events() -> pl.DataFrame:
    """A day of hourly counts for two sources."""
    rows = [{"bucket": T0 + timedelta(hours=h), "event_source": s, "events": h + 1, "failed": 0}
            for h in range(24) for s in ("ec2.amazonaws.com", "iam.amazonaws.com")]
    return queries.with_bucket_end(pl.DataFrame(rows, schema=queries.timeline_schema("event_source")), "hour")


@pytest.fixture
def awkward_table() -> pl.DataFrame:
    """Every dtype a page table holds: UTC times, nulls, booleans, lists, structs, durations, commas and quotes."""
    return pl.DataFrame({
        "event_time": [T0, T0 + timedelta(seconds=1.5)],
        "event_name": ['Create "quoted", with comma', None],
        "open_to_world": [True, False],
        "peers": [["0.0.0.0/0", "::/0"], []],
        "instance": [{"instanceId": "i-1", "state": "running"}, None],
        "silent_for": [timedelta(hours=9), None],
        "events": [1, 2],
    })


@pytest.mark.parametrize("build", [charts.event_timeline_chart, lambda f: charts.timeline_chart(f, "event_source")])
def test_charts_export_as_png_and_svg(hourly_events, build):
    chart = build(hourly_events)
    png = exports.chart_png(chart)
    assert png.startswith(PNG_SIGNATURE)
    width = int.from_bytes(png[16:20], "big")
    assert width >= exports.EXPORT_WIDTH * exports.PNG_SCALE  # drawn at the export width, not the container's
    svg = ElementTree.fromstring(exports.chart_svg(chart))
    assert svg.tag.endswith("svg")


def test_exporting_leaves_the_chart_fit_to_its_container(hourly_events):
    chart = charts.timeline_chart(hourly_events)
    exports.chart_png(chart)
    assert chart.to_dict()["width"] == "container"


def test_parquet_reads_back_equal(awkward_table):
    assert pl.read_parquet(io.BytesIO(exports.table_parquet(awkward_table))).equals(awkward_table)


def test_csv_holds_every_column_as_text(awkward_table):
    back = pl.read_csv(io.BytesIO(exports.table_csv(awkward_table)), infer_schema=False)
    assert back.columns == awkward_table.columns and back.height == 2
    first = back.row(0, named=True)
    assert first["event_time"] == "2026-11-20T00:00:00Z" and back["event_time"][1] == "2026-11-20T00:00:01.500Z"
    assert first["event_name"] == 'Create "quoted", with comma'
    assert json.loads(first["peers"]) == ["0.0.0.0/0", "::/0"]
    assert json.loads(first["instance"]) == {"instanceId": "i-1", "state": "running"}
    assert float(first["silent_for"]) == 9 * 3600


def test_json_is_an_array_of_rows(awkward_table):
    rows = json.loads(exports.table_json(awkward_table))
    assert len(rows) == 2 and rows[0]["peers"] == ["0.0.0.0/0", "::/0"] and rows[1]["event_name"] is None
    assert rows[0]["silent_for"] == 9 * 3600


def test_empty_tables_export_with_their_header():
    empty = pl.DataFrame(schema=queries.EVENT_SCHEMA)
    assert exports.table_csv(empty).decode().splitlines() == [",".join(queries.EVENT_SCHEMA)]
    assert json.loads(exports.table_json(empty)) == []
    assert pl.read_parquet(io.BytesIO(exports.table_parquet(empty))).schema == empty.schema


@pytest.mark.parametrize(
    "what, event_filter, extension, expected",
    [
        ("Security group changes", EventFilter(start="2026-11-20T00:00:00Z", end="2026-11-27T00:00:00Z"), "csv",
         "trailstream_security-group-changes_2026-11-20_to_2026-11-27.csv"),
        ("Rare errors / by code", EventFilter(start="2026-11-01T08:00:00Z", end="2026-11-02T00:00:00Z"), ".parquet",
         "trailstream_rare-errors-by-code_2026-11-01_to_2026-11-02.parquet"),
        ("", EventFilter(end="2026-11-02T00:00:00Z"), "png", "trailstream_export_beginning_to_2026-11-02.png"),
    ],
)
def test_file_names_say_what_and_which_period(what, event_filter, extension, expected):
    assert exports.export_file_name(what, event_filter, extension) == expected


def test_an_open_period_is_named_up_to_today():
    name = exports.export_file_name("Overview", EventFilter(start="2026-11-20T00:00:00Z"), "svg")
    assert name == f"trailstream_overview_2026-11-20_to_{timefmt.utc_now()[:10]}.svg"


def test_downloads_are_built_only_when_asked(hourly_events, awkward_table):
    period = EventFilter(start="2026-11-20T00:00:00Z", end="2026-11-21T00:00:00Z")
    chart_files = exports.chart_downloads(charts.timeline_chart(hourly_events), hourly_events, "Timeline", period)
    table_files = exports.table_downloads(awkward_table, "IAM changes", period)
    assert [d.label for d in chart_files] == ["PNG", "SVG", "CSV"]
    assert [d.file_name for d in table_files] == [
        "trailstream_iam-changes_2026-11-20_to_2026-11-21.csv",
        "trailstream_iam-changes_2026-11-20_to_2026-11-21.json",
        "trailstream_iam-changes_2026-11-20_to_2026-11-21.parquet",
    ]
    assert chart_files[0].build().startswith(PNG_SIGNATURE) and chart_files[0].mime == "image/png"
    assert pl.read_csv(io.BytesIO(chart_files[2].build()))["events"].sum() == hourly_events["events"].sum()
    assert pl.read_parquet(io.BytesIO(table_files[2].build())).equals(awkward_table)
