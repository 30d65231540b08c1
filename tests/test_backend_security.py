"""Security on the lake: the detectors' slices of events answer the same on the cache and on DuckDB over the
compactor's Parquet, so the findings do too (every planted demo positive on both, and the real corpus); the Athena
renderings parse back as Trino and are snapshot; the Security overview, Sign-ins and `findings` read the lake."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
import sqlglot
from polars.testing import assert_frame_equal
from sqlglot import exp

from tests.conftest import cache_and_lake, metric, open_page, point_app_at_lake, write_demo_logs
from tests.test_backend import PERIODS, _both
from trailstream import catalog
from trailstream.analytics import backend, security_queries
from trailstream.analytics.detections import events as detection_events
from trailstream.analytics.detections import findings as detection_findings
from trailstream.filters import EventFilter
from trailstream.ingest import demo

SNAPSHOTS = Path(__file__).parent / "data" / "athena_security_queries.json"
END = datetime(2026, 3, 2, tzinfo=timezone.utc)
HOSTILE = "[click](https://evil.example) <img src=x onerror=alert(1)> =HYPERLINK(\"x\")"
SLICES = [(name, {}) for name in security_queries.QUERIES if name not in ("security_successful_calls",
                                                                          "security_finding_events")]
SLICES += [("security_successful_calls", {"event_names": list(detection_events.SINGLE_EVENT_NAMES)})]
CACHE_ONLY = {detection_findings.detect_sigma_findings}  # compared on both stores by test_backend_sigma.py
SEVERITY_LABELS = ["Findings", *(severity.title() for severity in catalog.SEVERITIES)]
SIGN_IN_LABELS = ["Sign-ins", "Failed", "Without MFA", "Root", "New country"]


def _hostile_log(folder: Path) -> None:
    """An access key made for a user whose name is markup: the finding's summary quotes it."""
    record = {"eventID": "hostile-key-1", "eventTime": "2026-03-01T12:00:00Z", "eventName": "CreateAccessKey",
              "eventSource": "iam.amazonaws.com", "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
              "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "111122223333"},
              "requestParameters": {"userName": HOSTILE}, "sourceIPAddress": "203.0.113.9"}
    (folder / "hostile.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [record]}).encode()))


def _demo_logs(folder: Path, events: int, seed: int) -> Path:
    write_demo_logs(folder, events, seed, END)
    _hostile_log(folder)
    return folder


@pytest.fixture(scope="module")
def demo_stores(tmp_path_factory):
    return _both(tmp_path_factory, _demo_logs(tmp_path_factory.mktemp("demo_logs"), 4000, 3))


@pytest.fixture(scope="module")
def corpus_stores(tmp_path_factory, corpus):
    return _both(tmp_path_factory, corpus / "events")


def _comparable(findings) -> list[dict]:
    """Findings as plain dicts in a fixed order (findings of one second have no order between detectors' rows)."""
    return sorted((finding.to_dict() for finding in findings), key=lambda f: orjson.dumps(f, option=orjson.OPT_SORT_KEYS))


def _cache_findings(cache: backend.CacheBackend, event_filter: EventFilter) -> list:
    detectors = [detect for detect in detection_findings.DETECTORS if detect not in CACHE_ONLY]
    return detection_findings.detect_findings(cache.conn, event_filter, None, detectors)


@pytest.mark.parametrize("stores", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("name, options", SLICES, ids=lambda value: json.dumps(value)[:60])
def test_each_detection_slice_answers_the_same_on_the_cache_and_on_the_lake(request, stores, period, name, options):
    cache, lake_backend = request.getfixturevalue(stores)
    expected = cache.query(name, PERIODS[period], **options)
    got = lake_backend.query(name, PERIODS[period], **options)
    assert_frame_equal(expected.sort(expected.columns, nulls_last=False), got.sort(got.columns, nulls_last=False))


@pytest.mark.parametrize("stores", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("period", PERIODS)
def test_findings_on_the_lake_equal_the_findings_on_the_cache(request, stores, period):
    cache, lake_backend = request.getfixturevalue(stores)
    on_cache = _cache_findings(cache, PERIODS[period])
    assert on_cache or stores == "corpus_stores" or period != "all"
    assert _comparable(detection_findings.detect_findings(lake_backend, PERIODS[period])) == _comparable(on_cache)


def test_every_planted_demo_positive_is_found_on_the_lake_and_on_the_cache(demo_stores):
    cache, lake_backend = demo_stores
    planted = [(kind, case) for kind, cases in demo.PLANTED.items() if kind in catalog.FINDING_TYPES
               for case in cases if case["expected"]]
    assert len(planted) == 16
    for found in (_cache_findings(cache, EventFilter()), detection_findings.detect_findings(lake_backend, EventFilter())):
        missed = [(kind, case["principal"]) for kind, case in planted
                  if not any(f.type == kind and set(f.event_ids) & set(case["event_ids"]) for f in found)]
        assert missed == []


def test_the_events_behind_every_finding_come_from_the_lake_within_its_span(demo_stores):
    cache, lake_backend = demo_stores
    found = detection_findings.detect_findings(lake_backend, EventFilter())
    for finding in found:
        options = {"event_ids": tuple(finding.event_ids)}
        on_lake = lake_backend.query("security_finding_events", security_queries.finding_span(finding), **options)
        on_cache = cache.query("security_finding_events", EventFilter(), **options)
        assert on_lake.height == len(set(finding.event_ids)), finding.type
        assert_frame_equal(on_lake.sort("event_id"), on_cache.sort("event_id"))


def test_travel_on_the_lake_draws_the_caches_routes(demo_stores):
    cache, lake_backend = demo_stores
    from trailstream.analytics.detections import impossible_travel

    travel, routes = detection_findings.detect_travel_on_source(lake_backend, EventFilter())
    cached_travel, cached_routes = impossible_travel.query_travel(cache.conn, EventFilter())
    assert travel and _comparable(travel) == _comparable(cached_travel)
    assert_frame_equal(routes, cached_routes)


def _athena_renderings() -> dict[str, str]:
    athena = backend.LakeBackend(exp.to_table('"trailstream"."events"', dialect="trino"), "athena", lambda sql: None)
    rendered = {f"{name} {json.dumps(options)} {period}": athena.render(name, PERIODS[period], **options)
                for name, options in SLICES for period in PERIODS}
    span = EventFilter(start="2026-03-01T11:58:00Z", end="2026-03-01T12:00:01Z")
    return rendered | {"security_finding_events": athena.render("security_finding_events", span,
                                                                event_ids=("hostile-key-1", "x' OR '1'='1"))}


def test_every_athena_security_query_parses_back_as_trino_and_matches_its_snapshot():
    rendered = _athena_renderings()
    for sql in rendered.values():
        assert isinstance(sqlglot.parse_one(sql, read="trino"), exp.Select)
    assert rendered == json.loads(SNAPSHOTS.read_text())


def test_hostile_event_ids_are_literals_on_the_lake(demo_stores):
    _, lake_backend = demo_stores
    hostile = ("x') OR 1=1 --", "' OR '1'='1")
    assert lake_backend.query("security_finding_events", EventFilter(), event_ids=hostile).height == 0


# --- Pages and the CLI on a DuckDB lake ---------------------------------------------------------------


@pytest.fixture(scope="module")
def page_stores(tmp_path_factory) -> tuple[Path, Path]:
    """A cache and a lake written by the compactor, from the same demo log files (and the hostile one)."""
    logs = _demo_logs(tmp_path_factory.mktemp("page_logs"), 3000, 5)
    return cache_and_lake(tmp_path_factory.mktemp("page_stores"), logs)


def _use(monkeypatch, tmp_path, stores, lake_folder: Path | None) -> Path:
    return point_app_at_lake(monkeypatch, tmp_path, stores[0], lake_folder)


def _on_both(monkeypatch, tmp_path, stores, page: str, **query) -> tuple:
    _use(monkeypatch, tmp_path, stores, None)
    on_cache = open_page(page, **query)
    _use(monkeypatch, tmp_path, stores, stores[1])
    return on_cache, open_page(page, **query)


def _notes(at) -> str:
    """Captions and text as a person reads them (captions are markdown-escaped)."""
    return "\n".join(str(element.value) for element in (*at.caption, *at.text)).replace("\\", "")


def test_security_overview_on_the_lake_shows_the_caches_finding_counts(monkeypatch, tmp_path, page_stores):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, page_stores, "pages/security_overview.py", range="all")
    assert metric(on_lake, "Findings") >= 16
    assert {label: metric(on_lake, label) for label in SEVERITY_LABELS} == {
        label: metric(on_cache, label) for label in SEVERITY_LABELS}
    assert "with DuckDB" in _notes(on_lake) and "from the lake's events" in _notes(on_lake)
    assert not any("local cache" in info.value for info in on_lake.info)


def test_sign_ins_on_the_lake_show_the_caches_sign_ins_and_travel(monkeypatch, tmp_path, page_stores):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, page_stores, "pages/sign_ins.py", range="all")
    assert metric(on_lake, "Sign-ins") > 0 and metric(on_lake, "New country") > 0
    assert {label: metric(on_lake, label) for label in SIGN_IN_LABELS} == {
        label: metric(on_cache, label) for label in SIGN_IN_LABELS}
    tables = [{frame.key: frame.value.sort_values(list(frame.value.columns)).reset_index(drop=True)
               for frame in at.dataframe} for at in (on_cache, on_lake)]
    assert tables[0].keys() == tables[1].keys() and len(tables[1]) == 2  # the sign-ins and the travel findings
    for key, frame in tables[0].items():
        assert frame.equals(tables[1][key]), key
    assert "with DuckDB" in _notes(on_lake)


def test_a_hostile_value_in_a_finding_from_the_lake_is_shown_inert(monkeypatch, tmp_path, page_stores):
    _use(monkeypatch, tmp_path, page_stores, page_stores[1])
    at = open_page("pages/security_overview.py", range="all", finding_type="access_key_for_other_user")
    key = "access_key_for_other_user:111122223333:alice:hostile-key-1"
    at.session_state[f"finding-{key}"] = True  # the finding opened: its events come from the lake
    at.run()
    at.session_state[f"events-{key}"] = {"selection": {"rows": [0], "columns": [], "cells": []}}  # and one selected
    at.run()
    assert not at.exception
    [events] = [frame.value for frame in at.dataframe if frame.key == f"events-{key}"]
    assert events["event_name"].tolist() == ["CreateAccessKey"]
    assert any(HOSTILE in text.value for text in at.text)  # the summary, as plain text
    as_json = json.dumps(HOSTILE)[1:-1]
    assert sum(as_json in shown.value for shown in at.get("json")) == 2  # the details and the selected record, as data
    shown = [element.value for element in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error)]
    assert not any("evil.example" in str(value) for value in shown)


def test_findings_command_reads_the_lake_when_it_is_live(monkeypatch, tmp_path, page_stores, capsys):
    from trailstream import cli

    settings = _use(monkeypatch, tmp_path, page_stores, page_stores[1])
    found = {}
    for kind in ("cache", "lake"):
        if kind == "cache":
            settings.write_text("")
        else:
            settings.write_text(f'[backend]\nkind = "athena"\nlake = "{page_stores[1]}"\n')
        assert cli.main(["--db", str(page_stores[0]), "--config", str(settings), "findings", "--format", "json"]) == 0
        out = capsys.readouterr()
        found[kind] = {(f["type"], f["time"], f["principal"]) for f in json.loads(out.out)}
        assert ("from the lake's events" in out.err) == (kind == "lake")
    assert found["lake"] and found["lake"] == {key for key in found["cache"] if not key[0].startswith("sigma:")}
