"""The security pages through AppTest on the app tests' demo cache (its planted findings), and the security charts."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import polars as pl
import pytest
import tomlkit

from trailstream import catalog
from trailstream.analytics import charts, detections
from trailstream.ingest import demo
from trailstream.cache import store
from trailstream.app.signin import escape_markdown
from trailstream.filters import EventFilter
from tests.conftest import metric, open_page


@pytest.fixture
def demo_cache(app_demo_cache):
    """The app pointed at a private copy of the demo cache, whose planted findings these pages show."""
    return app_demo_cache


ALL = EventFilter()


def findings_in(cache: Path, settings: detections.DetectionSettings | None = None) -> list:
    return detections.detect_findings(store.open_cache_readonly(cache), ALL, settings)


def planted(kind: str) -> list[dict]:
    return [case for case in demo.PLANTED[kind] if case["expected"]]


def test_security_overview_lists_the_planted_findings(demo_cache):
    at = open_page("pages/security_overview.py", range="all")
    findings = findings_in(demo_cache)
    assert metric(at, "Findings") == len(findings)
    assert metric(at, "Critical") == sum(finding.severity == "critical" for finding in findings)
    labels = [expander.label for expander in at.expander if " · " in expander.label]
    assert len(labels) == len(findings)
    for title in catalog.FINDING_TYPES.values():
        assert any(escape_markdown(title) in label for label in labels), title
    assert at.get("vega_lite_chart"), "findings charts"


def test_a_severity_filter_from_the_url_narrows_the_list(demo_cache):
    at = open_page("pages/security_overview.py", range="all", severity="critical")
    expected = sum(finding.severity == "critical" for finding in findings_in(demo_cache))
    assert len([expander for expander in at.expander if " · " in expander.label]) == expected


def test_opening_a_finding_shows_the_events_behind_it(demo_cache):
    at = open_page("pages/security_overview.py", range="all", severity="critical")
    finding = next(finding for finding in findings_in(demo_cache) if finding.severity == "critical")
    at.session_state[f"finding-{finding.key}"] = True
    at.run()
    assert not at.exception
    table = next(frame for frame in at.dataframe if frame.key == f"events-{finding.key}")
    assert list(table.value["event_name"]) == [finding.details["event_name"]]


def test_sign_ins_show_outcomes_and_the_travel_map(demo_cache):
    at = open_page("pages/sign_ins.py", range="all")
    with sqlite3.connect(demo_cache) as conn:
        sign_ins = conn.execute("SELECT count(*) FROM events WHERE event_name = 'ConsoleLogin'").fetchone()[0]
    assert metric(at, "Sign-ins") == sign_ins
    assert metric(at, "Failed") >= len(planted("console_login_failure_burst")[0]["event_ids"])
    assert metric(at, "New country") == 1
    travel = next(frame for frame in at.dataframe if "summary" in frame.value.columns)
    assert list(travel.value["principal"]) == [case["principal"] for case in planted("impossible_travel")]
    specs = [chart.spec for chart in at.get("vega_lite_chart")]
    assert any('"equalEarth"' in spec and "Top 1 of 1 routes" in spec for spec in specs), "the travel map"


def test_sign_ins_say_why_travel_between_places_without_coordinates_cannot_be_mapped(tmp_path, monkeypatch):
    from tests.test_detections import EU_WITHOUT_COORDINATES, US, sign_in
    from tests.conftest import point_app_at
    from trailstream.cache import bookkeeping
    from trailstream.ingest import records

    hostile = "**olga** <img src=x onerror=alert(1)>"
    path = tmp_path / "travel.db"
    parsed = records.parse_log_file(orjson.dumps({"Records": [sign_in(0, hostile, EU_WITHOUT_COORDINATES),
                                                             sign_in(20, hostile, US)]}))
    store.save_parsed_file(store.open_cache(path), bookkeeping.FileRef("local", "", "travel.json"), parsed, None)
    point_app_at(monkeypatch, path, tmp_path / "trailstream.toml")
    at = open_page("pages/sign_ins.py", range="all")
    assert not at.exception
    assert any("The map cannot be drawn" in info.value for info in at.info)
    travel = next(frame for frame in at.dataframe if "summary" in frame.value.columns)
    assert list(travel.value["principal"]) == [hostile]
    assert all(hostile not in block.value for block in at.markdown)


def test_access_denied_counts_the_refused_calls_and_the_burst(demo_cache):
    at = open_page("pages/access_denied.py", range="all")
    calls = detections.query_unauthorized_calls(store.open_cache_readonly(demo_cache), ALL)
    assert metric(at, "Refused calls") == calls.height
    assert metric(at, "Bursts") == 1
    bursts = next(frame for frame in at.dataframe if "summary" in frame.value.columns)
    assert list(bursts.value["principal"]) == [planted("unauthorized_burst")[0]["principal"]]


def test_an_admin_saves_detection_settings_to_the_settings_file(demo_cache, tmp_path):
    at = open_page("pages/security_overview.py", range="all")
    at.number_input(key="setting-unauthorized_threshold").set_value(500)
    next(button for button in at.button if button.label == "Save settings").click()
    at.run()
    assert not at.exception
    written = tomlkit.parse((tmp_path / "trailstream.toml").read_text())["detections"]
    assert written["unauthorized_threshold"] == 500
    assert metric(at, "Findings") == len(findings_in(demo_cache,
                                                     detections.DetectionSettings(unauthorized_threshold=500)))


def test_broken_detection_settings_are_explained_and_defaults_used(demo_cache, tmp_path):
    (tmp_path / "trailstream.toml").write_text('[detections]\nunauthorized_threshold = "lots"\n')
    at = open_page("pages/access_denied.py", range="all")
    assert any("threshold must be a whole number above 0" in warning.value for warning in at.warning)
    assert metric(at, "Bursts") == 1


# --- Charts ---------------------------------------------------------------------------------


def test_travel_map_joins_the_two_places_with_a_line_on_an_offline_globe(demo_cache_file):
    routes = detections.query_travel_routes(store.open_cache_readonly(demo_cache_file))
    spec = charts.travel_map_chart(routes, "mercator").to_dict()
    assert spec["projection"]["type"] == "mercator"
    layers = spec["layer"]
    assert layers[0]["data"] == {"sphere": True} and "graticule" in layers[1]["data"]
    [line] = layers[3]["data"]["values"]
    route = routes.row(0, named=True)
    assert line["geometry"]["coordinates"] == [[route["from_longitude"], route["from_latitude"]],
                                               [route["to_longitude"], route["to_latitude"]]]
    assert all("url" not in layer.get("data", {}) for layer in layers), "nothing is fetched at run time"
    with pytest.raises(ValueError, match="unknown projection"):
        charts.travel_map_chart(routes, "globe")


def test_the_travel_map_draws_only_the_busiest_routes_and_says_how_many_of_all():
    count = charts.MAX_ROUTES * 3
    routes = pl.DataFrame({
        "from_place": [f"from {n}" for n in range(count)], "to_place": [f"to {n}" for n in range(count)],
        "from_latitude": [float(n % 80) for n in range(count)], "from_longitude": [0.0] * count,
        "to_latitude": [None] + [10.0] * (count - 1), "to_longitude": [20.0] * count,
        "hops": list(range(count, 0, -1)), "principals": [1] * count, "fastest_kmh": [None] * count,
        "last_time": [datetime(2026, 1, 1, tzinfo=timezone.utc)] * count,
    }, schema=detections.impossible_travel.ROUTE_SCHEMA)
    spec = charts.travel_map_chart(routes).to_dict()
    lines = spec["layer"][3]["data"]["values"]
    assert len(lines) == charts.MAX_ROUTES
    assert lines[0]["properties"]["hops"] == count - 1  # the busiest route has a place without coordinates
    assert spec["title"]["subtitle"] == (f"Top {charts.MAX_ROUTES} of {count:,} routes by hops; 1 with a place of "
                                         "unknown coordinates cannot be drawn")


def test_findings_charts_colour_by_severity():
    frame = pl.DataFrame({"time": [datetime(2026, 1, 1, tzinfo=timezone.utc)] * 2, "severity": ["high", "critical"],
                          "title": ["Root account used", "Root account used"]})
    over_time = detections.count_over_time(frame, timedelta(days=1), "severity", time_column="time", value="findings")
    spec = charts.findings_timeline_chart(over_time).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == charts.SEVERITY_COLORS  # each severity its one colour
    by_type = detections.findings_by_type(frame.with_columns(pl.lit("x").alias("type")))
    assert charts.findings_by_type_chart(by_type).to_dict()["encoding"]["y"]["field"] == "title"
