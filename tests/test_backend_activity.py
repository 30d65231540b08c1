"""Principal activity, Resource history and Access denied on the lake: every named query of
analytics/activity_queries answers on DuckDB over the compactor's Parquet exactly what the cache answers from the
same files; every Athena rendering parses back as Trino and matches its snapshot; the pages show the cache's numbers
on the lake and hostile text from the lake stays text."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import sqlglot
from polars.testing import assert_frame_equal
from sqlglot import exp

from tests.conftest import metric, open_page
from tests.test_backend import PERIODS, corpus_stores, demo_stores  # noqa: F401 (module fixtures)
from tests.test_backend_pages import HOSTILE, _on_both, _same, _use, stores  # noqa: F401 (module fixture)
from trailstream.analytics import activity_queries, backend, queries

SNAPSHOTS = Path(__file__).parent / "data" / "athena_activity_queries.json"
ORIGINS = [("principal_origins", {"origin": origin}) for origin in queries.PRINCIPAL_ORIGINS]
PRINCIPAL_CASES = [("principal_activity", {"bucket": "hour"}), ("principal_activity", {"bucket": "day"}),
                   ("principal_sessions", {}), ("principal_events", {"limit": None}), ("principal_calls", {}), *ORIGINS]
RESOURCE_CASES = [("resource_history", {"limit": None}), ("resource_history_count", {})]
PERIOD_CASES = [("principals", {}), ("principals", {"limit": 3}), ("recent_resources", {}), ("denied_counts", {}),
                ("denied_timeline", {"bucket": "hour"}), ("denied_timeline", {"bucket": "10min"}),
                ("denied_calls", {"limit": None}), ("denied_calls", {"limit": 5}),
                *(("denied_breakdown", {"by": by}) for by in activity_queries.DENIED_BY)]


def _same_frames(cache: pl.DataFrame, lake_frame: pl.DataFrame) -> None:
    if "event_id" in cache.columns:  # events of one second have no order between them
        cache, lake_frame = cache.sort("event_id"), lake_frame.sort("event_id")
    assert_frame_equal(cache, lake_frame, check_column_order=True)


def _principals(cache) -> list[str]:
    """The busiest principal, the busiest role (its sessions together) and the quietest user of the cache."""
    listed = cache.query("principals", PERIODS["all"])
    roles, users = listed.filter(user_type="AssumedRole"), listed.filter(user_type="IAMUser")
    return [listed.item(0, "principal"), *roles["principal"].head(1), *users["principal"].tail(1)]


@pytest.mark.parametrize("stores_name", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("name, options", PERIOD_CASES, ids=str)
def test_lists_counts_and_refused_calls_are_the_same_on_the_cache_and_on_the_lake(request, stores_name, period, name,
                                                                                  options):
    cache, lake_backend = request.getfixturevalue(stores_name)
    expected = cache.query(name, PERIODS[period], **options)
    assert expected.height > 0 or period != "all"
    _same_frames(expected, lake_backend.query(name, PERIODS[period], **options))


@pytest.mark.parametrize("stores_name", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("name, options", PRINCIPAL_CASES, ids=str)
def test_one_principals_activity_is_the_same_on_the_cache_and_on_the_lake(request, stores_name, period, name, options):
    cache, lake_backend = request.getfixturevalue(stores_name)
    for principal in _principals(cache):
        expected = cache.query(name, PERIODS[period], principal=principal, **options)
        assert expected.height > 0 or period != "all" or name == "principal_calls", principal
        _same_frames(expected, lake_backend.query(name, PERIODS[period], principal=principal, **options))


def test_a_roles_sessions_count_as_the_role_and_are_listed_one_query_deeper(demo_stores):
    cache, lake_backend = demo_stores
    role = cache.query("principals", PERIODS["all"]).filter(user_type="AssumedRole").item(0, "principal")
    for store_backend in (cache, lake_backend):
        sessions = store_backend.query("principal_sessions", PERIODS["all"], principal=role)
        events = store_backend.query("principal_events", PERIODS["all"], principal=role, limit=None)
        assert sessions.height > 1 and all(session.startswith(f"{role}/") for session in sessions["principal"])
        assert sessions["events"].sum() == events.height


@pytest.mark.parametrize("stores_name", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("name, options", RESOURCE_CASES, ids=str)
def test_a_resources_history_is_the_same_on_the_cache_and_on_the_lake(request, stores_name, name, options):
    cache, lake_backend = request.getfixturevalue(stores_name)
    recent = cache.query("recent_resources", PERIODS["all"])["resource"].head(3).to_list()
    for resource_id in [*recent, "i-0", "  sg-", ""]:
        expected = cache.query(name, PERIODS["all"], resource_id=resource_id, **options)
        _same_frames(expected, lake_backend.query(name, PERIODS["all"], resource_id=resource_id, **options))


def test_hostile_names_and_breakdowns_are_literals_not_sql(demo_stores):
    _, lake_backend = demo_stores
    hostile = "x') OR 1=1 --"
    assert lake_backend.query("principal_events", PERIODS["all"], principal=hostile).height == 0
    assert lake_backend.query("resource_history", PERIODS["all"], resource_id=hostile).height == 0
    with pytest.raises(ValueError, match="cannot break a principal down by"):
        lake_backend.render("principal_origins", PERIODS["all"], principal="x", origin="1; DROP TABLE events")
    with pytest.raises(ValueError, match="cannot count refused calls by"):
        lake_backend.render("denied_breakdown", PERIODS["all"], by="event_id) --")


def _athena_renderings() -> dict[str, str]:
    athena = backend.LakeBackend(exp.to_table('"trailstream"."events"', dialect="trino"), "athena", lambda sql: None)
    cases = [*PERIOD_CASES, *((name, {"principal": "web-app", **options}) for name, options in PRINCIPAL_CASES),
             *((name, {"resource_id": "sg-0123", **options}) for name, options in RESOURCE_CASES),
             ("resource_history", {"resource_id": "arn:aws:iam::111122223333:role/Admin"})]
    return {f"{name} {json.dumps(options)} {period}": athena.render(name, PERIODS[period], **options)
            for name, options in cases for period in PERIODS}


def test_every_athena_query_parses_back_as_trino_and_matches_its_snapshot():
    rendered = _athena_renderings()
    for sql in rendered.values():
        assert isinstance(sqlglot.parse_one(sql, read="trino"), exp.Select)
    assert rendered == json.loads(SNAPSHOTS.read_text())


# --- The pages on a DuckDB lake -------------------------------------------------------------


def _select(at, key: str, row: int = 0) -> None:
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()


@pytest.mark.parametrize("query", [{}, {"principal": "web-app"}, {"principal": "build-bot"}], ids=json.dumps)
def test_principal_activity_on_the_lake_shows_the_caches_numbers_charts_and_tables(monkeypatch, tmp_path, stores,
                                                                                   query):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/principal.py", range="all", **query)
    assert not on_lake.exception and on_lake.dataframe
    if query:
        assert metric(on_lake, "Events") > 0 and on_lake.get("vega_lite_chart")
    _same(on_cache, on_lake)
    assert not any("local cache" in info.value for info in on_lake.info)


def test_the_least_privilege_policy_on_the_lake_is_the_caches(monkeypatch, tmp_path, stores):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/principal.py", range="all",
                                 principal="build-bot")
    for at in (on_cache, on_lake):
        at.toggle(key="principal-policy-build").set_value(True).run()
    assert [c.value for c in on_cache.caption] == [c.value for c in on_lake.caption]
    assert on_lake.get("download_button") and any("statement(s)" in c.value for c in on_lake.caption)
    _same(on_cache, on_lake)


@pytest.mark.parametrize("query", [{}, {"resource_id": "i-0"}], ids=json.dumps)
def test_resource_history_on_the_lake_shows_the_caches_history(monkeypatch, tmp_path, stores, query):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/resource.py", range="all", **query)
    if not query:
        for at in (on_cache, on_lake):
            _select(at, "recent-resources")
    assert metric(on_lake, "Events") > 0 and on_lake.get("vega_lite_chart")
    _same(on_cache, on_lake)


def test_a_hostile_principal_and_user_agent_from_the_lake_stay_text(monkeypatch, tmp_path, stores):
    _use(monkeypatch, tmp_path, stores, stores[1])
    at = open_page("pages/principal.py", range="all", principal=HOSTILE, breakdown="User agents")  # the open tab
    _select(at, "principal-events")
    [events] = [frame.value for frame in at.dataframe if frame.key == "principal-events"]
    agents = [frame.value for frame in at.dataframe if list(frame.value.columns[:2]) == ["user_agent", "events"]]
    assert events["principal"].tolist() == [HOSTILE] and agents[0]["user_agent"].tolist() == [HOSTILE]
    assert "Raw event" in [subheader.value for subheader in at.subheader]  # the selected row's record is shown
    shown = [element.value for element in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.subheader)]
    assert not any("evil.example" in str(value) for value in shown)


@pytest.mark.parametrize("by", ["principal", "api"])
def test_access_denied_on_the_lake_shows_the_caches_counts_bursts_and_calls(monkeypatch, tmp_path, stores, by):
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/access_denied.py", range="all", by=by)
    assert metric(on_lake, "Refused calls") > 0 and metric(on_lake, "Bursts") == metric(on_cache, "Bursts") > 0
    for at in (on_cache, on_lake):
        _select(at, "refused-calls")
    _same(on_cache, on_lake)
    assert not any("local cache" in info.value for info in on_lake.info)



def test_a_capped_list_of_refused_calls_says_showing_n_of_m(request, monkeypatch, tmp_path, stores):
    import streamlit

    streamlit.cache_data.clear()  # results of the uncapped page from other tests, and (below) of this one's after it
    request.addfinalizer(streamlit.cache_data.clear)
    for query in (activity_queries._cache_denied_calls, activity_queries._denied_calls_sql):
        monkeypatch.setattr(query, "__defaults__", (3,))
    on_cache, on_lake = _on_both(monkeypatch, tmp_path, stores, "pages/access_denied.py", range="all")
    total = metric(on_lake, "Refused calls")
    for at in (on_cache, on_lake):
        [calls] = [frame.value for frame in at.dataframe if frame.key == "refused-calls"]
        assert len(calls) == 3 and any(f"The newest 3 of {total:,} refused calls" in c.value for c in at.caption)
