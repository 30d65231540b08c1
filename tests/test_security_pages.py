"""The security pages through AppTest on a demo cache (its planted findings), and the security charts as specs."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
import tomlkit

from trailstream import catalog, charts, demo, detections, store, sync
from trailstream.auth_ui import escape_markdown
from trailstream.filters import EventFilter
from tests.test_app import open_page, point_app_at

END = datetime.now(timezone.utc).replace(second=0, microsecond=0)  # planted cases sit in the last 7 days


@pytest.fixture(scope="module")
def security_cache_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("security") / "demo.db"
    sync.import_demo(path, events=3000, seed=5, end=END, workers=1)
    return path


@pytest.fixture
def security_cache(security_cache_file, tmp_path, monkeypatch) -> Path:
    path = tmp_path / "demo.db"
    shutil.copy(security_cache_file, path)
    point_app_at(monkeypatch, path, tmp_path / "trailstream.toml")
    return path


def planted(kind: str) -> list[dict]:
    return [case for case in demo.PLANTED[kind] if case["expected"]]


def metric(at, label: str) -> int:
    return int(next(m.value for m in at.metric if m.label == label).replace(",", ""))


def test_security_overview_lists_the_planted_findings(security_cache):
    at = open_page("pages/security_overview.py", range="7d")
    findings = detections.detect_findings(store.open_cache_readonly(security_cache))
    assert metric(at, "Findings") == len(findings)
    assert metric(at, "Critical") == sum(finding.severity == "critical" for finding in findings)
    labels = [expander.label for expander in at.expander if " · " in expander.label]
    assert len(labels) == len(findings)
    for title in catalog.FINDING_TYPES.values():
        assert any(escape_markdown(title) in label for label in labels), title
    assert at.get("vega_lite_chart"), "findings charts"


def test_a_severity_filter_from_the_url_narrows_the_list(security_cache):
    at = open_page("pages/security_overview.py", range="7d", severity="critical")
    expected = sum(finding.severity == "critical"
                   for finding in detections.detect_findings(store.open_cache_readonly(security_cache)))
    assert len([expander for expander in at.expander if " · " in expander.label]) == expected


def test_opening_a_finding_shows_the_events_behind_it(security_cache):
    at = open_page("pages/security_overview.py", range="7d", severity="critical")
    finding = next(finding for finding in detections.detect_findings(store.open_cache_readonly(security_cache))
                   if finding.severity == "critical")
    at.session_state[f"finding-{finding.key}"] = True
    at.run()
    assert not at.exception
    table = next(frame for frame in at.dataframe if frame.key == f"events-{finding.key}")
    assert list(table.value["event_name"]) == [finding.details["event_name"]]


def test_sign_ins_show_outcomes_and_the_travel_map(security_cache):
    at = open_page("pages/sign_ins.py", range="7d")
    conn = sqlite3.connect(security_cache)
    start = (END - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert metric(at, "Sign-ins") == conn.execute(
        "SELECT count(*) FROM events WHERE event_name = 'ConsoleLogin' AND event_time >= ?", [start]).fetchone()[0]
    assert metric(at, "Failed") >= len(planted("console_login_failure_burst")[0]["event_ids"])
    assert metric(at, "New country") == 1
    travel = next(frame for frame in at.dataframe if "distance_km" in frame.value.columns)
    assert set(travel.value["principal"]) == {case["principal"] for case in planted("impossible_travel")}
    specs = [chart.spec for chart in at.get("vega_lite_chart")]
    assert any('"equalEarth"' in spec for spec in specs), "the travel map"


def test_access_denied_counts_the_refused_calls_and_the_burst(security_cache):
    at = open_page("pages/access_denied.py", range="7d")
    calls = detections.query_unauthorized_calls(
        store.open_cache_readonly(security_cache),
        EventFilter(start=(END - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert metric(at, "Refused calls") == calls.height
    assert metric(at, "Bursts") == 1
    bursts = next(frame for frame in at.dataframe if "summary" in frame.value.columns)
    assert list(bursts.value["principal"]) == [planted("unauthorized_burst")[0]["principal"]]


def test_an_admin_saves_detection_settings_to_the_settings_file(security_cache, tmp_path):
    at = open_page("pages/security_overview.py", range="7d")
    at.number_input(key="setting-unauthorized_threshold").set_value(500)
    next(button for button in at.button if button.label == "Save settings").click()
    at.run()
    assert not at.exception
    written = tomlkit.parse((tmp_path / "trailstream.toml").read_text())["detections"]
    assert written["unauthorized_threshold"] == 500
    assert metric(at, "Findings") == len(detections.detect_findings(
        store.open_cache_readonly(security_cache), EventFilter.from_preset("7d"),
        detections.DetectionSettings(unauthorized_threshold=500)))


def test_broken_detection_settings_are_explained_and_defaults_used(security_cache, tmp_path):
    (tmp_path / "trailstream.toml").write_text('[detections]\nunauthorized_threshold = "lots"\n')
    at = open_page("pages/access_denied.py", range="7d")
    assert any("threshold must be a whole number above 0" in warning.value for warning in at.warning)
    assert metric(at, "Bursts") == 1


# --- Charts ---------------------------------------------------------------------------------


def test_travel_map_joins_the_two_places_with_a_line_on_an_offline_globe(security_cache_file):
    pairs = detections.query_travel_pairs(store.open_cache_readonly(security_cache_file))
    spec = charts.travel_map_chart(pairs, "mercator").to_dict()
    assert spec["projection"]["type"] == "mercator"
    layers = spec["layer"]
    assert layers[0]["data"] == {"sphere": True} and "graticule" in layers[1]["data"]
    [line] = layers[3]["data"]["values"]
    pair = pairs.row(0, named=True)
    assert line["geometry"]["coordinates"] == [[pair["from_longitude"], pair["from_latitude"]],
                                               [pair["to_longitude"], pair["to_latitude"]]]
    assert all("url" not in layer.get("data", {}) for layer in layers), "nothing is fetched at run time"
    with pytest.raises(ValueError, match="unknown projection"):
        charts.travel_map_chart(pairs, "globe")


def test_findings_charts_colour_by_severity():
    frame = pl.DataFrame({"time": [datetime(2026, 1, 1, tzinfo=timezone.utc)] * 2, "severity": ["high", "critical"],
                          "title": ["Root account used", "Root account used"]})
    over_time = detections.count_over_time(frame, timedelta(days=1), "severity", time_column="time", value="findings")
    spec = charts.findings_timeline_chart(over_time).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == list(charts.SEVERITY_COLORS)
    by_type = detections.findings_by_type(frame.with_columns(pl.lit("x").alias("type")))
    assert charts.findings_by_type_chart(by_type).to_dict()["encoding"]["y"]["field"] == "title"
