"""Downloads: real PNG and SVG images, tables that read back the same, file names that say what and when."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone
from pathlib import Path

import altair as alt
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
    before = timefmt.utc_now()[:10]
    name = exports.export_file_name("Overview", EventFilter(start="2026-11-20T00:00:00Z"), "svg")
    days = {before, timefmt.utc_now()[:10]}  # the day before and after the call: passes across midnight UTC too
    assert name in {f"trailstream_overview_2026-11-20_to_{day}.svg" for day in days}


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


# --- Formula-safe CSV: event text is attacker-controlled ---------------------------------------------------------

LIVE_FORMULA = re.compile(r"^[=+\-@\t\r]")  # OWASP: what a spreadsheet would run
FORMULAS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "\t=1", "\r=1", "-2+3"]
FORMULA_SQL = ("SELECT user_agent, -count(*) AS negative_calls, -1.5 * count(*) AS negative_share FROM events "
               "WHERE user_agent IN ({}) GROUP BY user_agent ORDER BY user_agent").format(
    ", ".join("'" + f.replace("'", "''") + "'" for f in FORMULAS))


@pytest.fixture(scope="module")
def formula_cache(tmp_path_factory) -> Path:
    """A cache holding one event per formula, each formula in the user agent and in a request parameter."""
    from trailstream.ingest import sync

    folder = tmp_path_factory.mktemp("formula-logs")
    moment = timefmt.iso_utc(datetime.now(timezone.utc) - timedelta(hours=1))
    records = [{"eventVersion": "1.08", "eventTime": moment, "eventSource": "iam.amazonaws.com",
                "eventName": "CreateUser", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9",
                "userIdentity": {"type": "IAMUser", "userName": "mallory", "accountId": "123456789012"},
                "userAgent": formula, "requestParameters": {"userName": formula}, "eventID": str(uuid.uuid4()),
                "eventType": "AwsApiCall", "recipientAccountId": "123456789012"} for formula in FORMULAS]
    (folder / "formulas.json").write_text(json.dumps({"Records": records}))
    path = tmp_path_factory.mktemp("formula-cache") / "formulas.db"
    assert sync.import_paths(path, [folder]).new_events == len(FORMULAS)
    return path


def formula_frame() -> pl.DataFrame:
    """Hostile text beside real negative numbers, as a page table holds them."""
    return pl.DataFrame({"user_agent": FORMULAS, "calls": [-n for n in range(1, len(FORMULAS) + 1)],
                         "share": [-0.5] * len(FORMULAS), "peers": [[f] for f in FORMULAS]})


def assert_formula_safe(text: str, columns: dict[str, str]) -> None:
    """Every text cell (and header) that would run as a formula starts with a quote; numeric cells stay numbers."""
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    header, body = rows[0], rows[1:]
    assert all(not LIVE_FORMULA.match(cell) for row in rows for i, cell in enumerate(row)
               if columns.get(header[i]) != "number"), rows
    for name, kind in columns.items():
        cells = [row[header.index(name)] for row in body]
        if kind == "formula":
            assert sorted(cells) == sorted("'" + f for f in FORMULAS)
        else:
            assert all(float(cell) < 0 for cell in cells) and all(cell.startswith("-") for cell in cells)


def test_the_one_csv_writer_neutralises_formulas_and_keeps_numbers_numeric():
    assert_formula_safe(exports.table_csv(formula_frame()).decode(),
                        {"user_agent": "formula", "calls": "number", "share": "number"})
    header = exports.table_csv(pl.DataFrame({"=cmd()": [1], "@x": ["a"], "plain": ["=1"]})).decode().splitlines()[0]
    assert header == "'=cmd(),'@x,plain"


def test_categorical_text_is_neutralised_and_nested_values_stay_json():
    frame = pl.DataFrame({"note": [{"text": "=1+1"}], "tags": [["@a"]],
                          "user_agent": pl.Series(["+x"]).cast(pl.Categorical)})
    rows = list(csv.DictReader(io.StringIO(exports.table_csv(frame).decode())))
    assert rows[0]["user_agent"] == "'+x" and json.loads(rows[0]["note"]) == {"text": "=1+1"}


def test_table_and_chart_downloads_are_formula_safe_while_json_and_parquet_keep_exact_values():
    frame = formula_frame()
    csv_file, json_file, parquet_file = exports.table_downloads(frame, "Formulas", None)
    assert_formula_safe(csv_file.build().decode(), {"user_agent": "formula", "calls": "number", "share": "number"})
    assert [row["user_agent"] for row in json.loads(json_file.build())] == FORMULAS
    assert pl.read_parquet(io.BytesIO(parquet_file.build())).equals(frame)
    chart = alt.Chart(frame.select("user_agent", "calls")).mark_bar().encode(x="calls:Q", y="user_agent:N")
    chart_csv = exports.chart_downloads(chart, frame.select("user_agent", "calls"), "Formulas", None)[2].build()
    assert_formula_safe(chart_csv.decode(), {"user_agent": "formula", "calls": "number"})


def test_csv_reports_are_formula_safe_and_parquet_reports_exact(formula_cache, tmp_path):
    from trailstream.notify import reports, saved

    saved.save_search(formula_cache, saved.SavedSearch("formulas", "sql", sql=FORMULA_SQL, period="all", format="csv"))
    path = reports.write_report(formula_cache, "formulas", tmp_path / "formulas.csv")
    assert_formula_safe(path.read_bytes().decode(), {"user_agent": "formula", "negative_calls": "number",
                                           "negative_share": "number"})
    parquet = reports.write_report(formula_cache, "formulas", tmp_path / "formulas.parquet")
    assert sorted(pl.read_parquet(parquet)["user_agent"]) == sorted(FORMULAS)


def test_mailed_csv_reports_are_formula_safe(formula_cache, mail_server):
    from trailstream.notify import mailer, reports, saved

    saved.save_search(formula_cache, saved.SavedSearch("daily formulas", "sql", sql=FORMULA_SQL, period="all",
                                                       format="csv", schedule="daily"))
    settings = mailer.smtp_settings_from(mail_server.smtp_section())
    sent = {d.name: d for d in reports.send_scheduled_reports(formula_cache, settings, datetime.now(timezone.utc))}
    assert sent["daily formulas"].sent
    (message,) = [m for m in mail_server.inbox.messages if "daily formulas" in m["Subject"]]
    (attachment,) = list(message.iter_attachments())
    assert_formula_safe(attachment.get_content(), {"user_agent": "formula", "negative_calls": "number",
                                                   "negative_share": "number"})


def test_cli_query_csv_is_formula_safe_and_json_exact(formula_cache, capsys):
    from trailstream import cli

    assert cli.main(["--db", str(formula_cache), "query", FORMULA_SQL, "--format", "csv"]) == 0
    assert_formula_safe(capsys.readouterr().out, {"user_agent": "formula", "negative_calls": "number",
                                                  "negative_share": "number"})
    assert cli.main(["--db", str(formula_cache), "query", FORMULA_SQL, "--format", "json"]) == 0
    assert sorted(row["user_agent"] for row in json.loads(capsys.readouterr().out)) == sorted(FORMULAS)


def test_every_csv_is_written_by_the_one_formula_safe_writer():
    package = Path(exports.__file__).resolve().parents[1]
    sources = [*package.rglob("*.py"), *(package.parent / "pages").glob("*.py"), package.parent / "app.py"]
    writers = {path for path in sources if re.search(r"\.write_csv\(|csv\.(writer|DictWriter)\(|\.to_csv\(",
                                                     path.read_text())}
    assert writers == {Path(exports.__file__).resolve()}
