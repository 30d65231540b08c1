"""Overview and Search on the lake ([backend] kind = "athena" with the lake in a local folder, read by DuckDB): the
same numbers, charts, tables and searches as on the cache built from the same files; failures and pages not on the
lake yet say so in a sentence."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from tests.conftest import cache_and_lake, metric, open_page, point_app_at_lake, write_demo_logs
from trailstream.filters import EventFilter


END = datetime(2026, 3, 2, tzinfo=timezone.utc)
HOSTILE = "[click](https://evil.example) <img src=x onerror=alert(1)> =HYPERLINK(\"x\")"
LAKE_FAILED = "The lake could not answer this page's queries; what went wrong, and what to do:"
HEADLINES = ("Events", "Failed calls", "Principals", "Accounts", "Regions")


def _hostile_log(folder: Path) -> None:
    """One event whose user name, agent and error are markup: it must stay text on a lake page."""
    record = {"eventID": "hostile-1", "eventTime": "2026-03-01T12:00:00Z", "eventName": "PutObject",
              "eventSource": "s3.amazonaws.com", "awsRegion": "eu-west-1", "recipientAccountId": "111122223333",
              "userIdentity": {"type": "IAMUser", "userName": HOSTILE}, "userAgent": HOSTILE, "errorCode": HOSTILE,
              "sourceIPAddress": "203.0.113.9"}
    (folder / "hostile.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [record]}).encode()))


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path]:
    """A cache and a lake written by the compactor, from the same demo log files."""
    logs = tmp_path_factory.mktemp("logs")
    write_demo_logs(logs, 3000, 5, END)
    _hostile_log(logs)
    return cache_and_lake(tmp_path_factory.mktemp("stores"), logs)


def _use(monkeypatch, tmp_path, stores, lake_folder: Path | None) -> Path:
    return point_app_at_lake(monkeypatch, tmp_path, stores[0], lake_folder)


def _shown(at) -> dict:
    """Everything a page showed that carries numbers: metrics, tables (sorted: ties have no order) and chart data."""
    tables = {frame.key: pl.from_pandas(frame.value) for frame in at.dataframe}
    charts = [pl.from_arrow(pa.ipc.open_stream(dataset.data.data).read_all())
              for chart in at.get("vega_lite_chart") for dataset in chart.proto.datasets]
    return {"metrics": {m.label: m.value for m in at.metric},
            "tables": {key: frame.sort(frame.columns, nulls_last=False) for key, frame in tables.items()},
            "charts": [frame.sort(frame.columns, nulls_last=False) for frame in charts]}


def _on_both(monkeypatch, tmp_path, stores, page: str, **query) -> tuple:
    _use(monkeypatch, tmp_path, stores, None)
    on_cache = open_page(page, **query)
    _use(monkeypatch, tmp_path, stores, stores[1])
    on_lake = open_page(page, **query)
    return on_cache, on_lake


def _same(on_cache, on_lake) -> None:
    cache, lake_shown = _shown(on_cache), _shown(on_lake)
    assert cache["metrics"] == lake_shown["metrics"]
    assert cache["tables"].keys() == lake_shown["tables"].keys()
    for key, frame in cache["tables"].items():
        assert frame.equals(lake_shown["tables"][key]), key
    assert len(cache["charts"]) == len(lake_shown["charts"])
    assert all(a.equals(b) for a, b in zip(cache["charts"], lake_shown["charts"]))


def _notes(at) -> str:
    return "\n".join(element.value for element in (*at.caption, *at.text))


def test_overview_on_the_lake_shows_the_caches_numbers_charts_and_tables(monkeypatch, tmp_path, stores):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/overview.py", range="all")
    assert metric(on_lake, "Events") == 3001 and all(metric(on_lake, label) > 0 for label in HEADLINES)
    _same(on_cache, on_lake)
    assert "with DuckDB" in _notes(on_lake) and "with DuckDB" not in _notes(on_cache)


@pytest.mark.parametrize("page", ["pages/network.py", "pages/instances.py", "pages/elastic_ips.py", "pages/iam.py",
                                  "pages/rare_errors.py"])
def test_use_case_and_rare_error_pages_on_the_lake_show_the_caches_events_and_timelines(monkeypatch, tmp_path, stores, page):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, page, range="all")
    assert metric(on_lake, "Failed calls" if "rare" in page else "Events") > 0 and on_lake.get("vega_lite_chart")
    _same(on_cache, on_lake)
    assert "with DuckDB" in _notes(on_lake) and not any("local cache" in info.value for info in on_lake.info)


def test_the_calls_behind_a_rare_error_come_from_the_lake(monkeypatch, tmp_path, stores):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/rare_errors.py", range="all")
    for at in (on_cache, on_lake):
        at.session_state["rare-errors-table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
        at.run()
    assert any(frame.key == "rare-error-calls" and frame.value.shape[0] for frame in on_lake.dataframe)
    _same(on_cache, on_lake)


def test_overview_on_the_lake_follows_the_account_and_read_only_filters(monkeypatch, tmp_path, stores):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/overview.py", range="all",
                                 account=["111122223333"], read_only="false")
    assert 0 < metric(on_lake, "Events") < 3001
    _same(on_cache, on_lake)


@pytest.mark.parametrize("query", [{}, {"q": "ACCESSDENIED"}, {"user": "WEB-APP"}, {"event": "ConsoleLogin"},
                                   {"q": "amazonaws"}], ids=json.dumps)
def test_search_on_the_lake_finds_what_the_cache_finds(monkeypatch, tmp_path, stores, query):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/search.py", range="all", **query)
    assert sum(frame.value.shape[0] for frame in on_lake.dataframe) > 0
    _same(on_cache, on_lake)


def test_hostile_text_found_on_the_lake_stays_text(monkeypatch, tmp_path, stores):
    _use(monkeypatch, tmp_path, stores, stores[1])
    at = open_page("pages/search.py", range="all", ip="203.0.113.9")
    [results] = [frame.value for frame in at.dataframe if frame.key == "search-results"]
    assert results["principal"].tolist() == [HOSTILE] and results["error_code"].tolist() == [HOSTILE]
    shown = [element.value for element in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.toast)]
    assert not any("evil.example" in str(value) for value in shown)


def test_a_page_not_on_the_lake_yet_says_it_reads_the_cache(monkeypatch, tmp_path, stores):
    _use(monkeypatch, tmp_path, stores, stores[1])
    notices = [info.value for info in open_page("pages/integrity.py", range="all").info]
    assert any(notice.startswith("Integrity & coverage checks the digests and log files this machine synced")
               for notice in notices), notices
    assert not any("local cache" in info.value for info in open_page("pages/overview.py", range="all").info)


def test_a_lake_with_no_parquet_yet_is_a_sentence_on_the_page(monkeypatch, tmp_path, stores):
    _use(monkeypatch, tmp_path, stores, tmp_path / "empty-lake")
    at = open_page("pages/overview.py", range="all")
    assert [error.value for error in at.error] == [LAKE_FAILED]
    [said] = [text.value for text in at.text]
    assert said.startswith(f"the lake at {tmp_path / 'empty-lake'} has no Parquet files")
    assert said.endswith(f"run `python -m trailstream compact --to {tmp_path / 'empty-lake'}` first")


def test_a_search_the_lake_cannot_answer_yet_is_a_sentence(monkeypatch, tmp_path, stores):
    _use(monkeypatch, tmp_path, stores, stores[1])
    at = open_page("pages/search.py", range="all", resource_type="AWS::EC2::Instance")
    assert [error.value for error in at.error] == [LAKE_FAILED]
    assert [text.value for text in at.text] == [
        "searching by resource type is not available on the lake yet: use the text field"]


@pytest.mark.parametrize("period, on_the_lake", [
    (EventFilter(start="2026-02-22T12:07:31Z"), EventFilter(start="2026-02-22T12:05:00Z", end="2026-03-01T12:10:00Z")),
    (EventFilter(), EventFilter(end="2026-03-01T12:10:00Z")),
    (EventFilter(start="2026-02-22T00:00:00Z", end="2026-02-23T00:00:00Z"),
     EventFilter(start="2026-02-22T00:00:00Z", end="2026-02-23T00:00:00Z")),
])
def test_an_open_period_asks_the_lake_in_whole_five_minute_marks(period, on_the_lake):
    from trailstream.app import state

    assert state._lake_period(period, now=datetime(2026, 3, 1, 12, 7, 31, tzinfo=timezone.utc)) == on_the_lake
