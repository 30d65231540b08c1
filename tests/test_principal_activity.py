"""Principal activity reads a role through one index seek per session and period, counts its origins in one pass,
and reads a tab's breakdown only when that tab is open; every answer is what the range scan it replaced gave."""

from __future__ import annotations

import pytest
from polars.testing import assert_frame_equal

from tests.conftest import metric, open_page
from tests.test_backend import PERIODS, demo_stores  # noqa: F401 (module fixture)
from trailstream.analytics import activity_queries, queries
from trailstream.cache import rollups

CASES = [("principal_activity", {"bucket": "hour"}), ("principal_activity", {"bucket": "day"}),
         ("principal_sessions", {}), ("principal_events", {"limit": None}), ("principal_events", {"limit": 7}),
         *(("principal_origins", {"origin": origin}) for origin in queries.PRINCIPAL_ORIGINS)]


def _role_and_person(cache) -> list[str]:
    """The busiest role (its sessions, one click deeper, are principal_sessions) and the busiest person."""
    listed = cache.query("principals", PERIODS["all"])
    return [listed.filter(user_type="AssumedRole").item(0, "principal"),
            listed.filter(user_type="IAMUser").item(0, "principal")]


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("name, options", CASES, ids=str)
def test_seeking_a_roles_sessions_answers_what_the_range_scan_did(monkeypatch, demo_stores, period, name, options):
    cache, _lake = demo_stores
    for principal in _role_and_person(cache):
        seeking = cache.query(name, PERIODS[period], principal=principal, **options)
        with monkeypatch.context() as before:  # the clause this change replaced: one range over every session
            before.setattr(queries, "actor_seek", lambda conn, alias, actor: rollups.actor_where(alias, actor))
            scanning = cache.query(name, PERIODS[period], principal=principal, **options)
        assert seeking.height > 0 or period != "all", principal
        assert_frame_equal(seeking.select("event_time") if "event_id" in seeking.columns else seeking,
                           scanning.select("event_time") if "event_id" in scanning.columns else scanning)
        if options.get("limit", 0) is None:  # events of one second have no order between them
            assert_frame_equal(seeking.sort("event_id"), scanning.sort("event_id"))


def test_a_roles_events_are_sought_by_session_and_time_not_scanned(demo_stores):
    cache, _lake = demo_stores
    role = _role_and_person(cache)[0]
    where, params = PERIODS["week"].sql("e")
    clause, clause_params = queries.actor_seek(cache.conn, "e", role)
    plan = " ".join(row[3] for row in cache.conn.execute(
        f"EXPLAIN QUERY PLAN SELECT count(*) FROM events e INDEXED BY {queries.PRINCIPAL_INDEX} "
        f"WHERE {where} AND {clause}", [*params, *clause_params]))
    assert f"COVERING INDEX {queries.PRINCIPAL_INDEX} (principal=? AND event_time>? AND event_time<?)" in plan


@pytest.mark.parametrize("period", PERIODS)
def test_origin_counts_are_the_uncapped_breakdowns_rows_on_the_cache_and_the_lake(demo_stores, period):
    cache, lake = demo_stores
    for principal in [*_role_and_person(cache), "nobody-at-all"]:
        counts = cache.query("principal_origin_counts", PERIODS[period], principal=principal)
        assert_frame_equal(counts, lake.query("principal_origin_counts", PERIODS[period], principal=principal))
        for origin in activity_queries.COUNTED_ORIGINS:
            listed = cache.query("principal_origins", PERIODS[period], principal=principal, origin=origin, limit=None)
            assert counts.item(0, origin) == listed.height, (principal, origin)


def test_a_missing_address_or_key_counts_as_one_value_as_its_breakdown_lists_it(demo_stores):
    cache, _lake = demo_stores
    counted = ", ".join(activity_queries._sqlite(activity_queries._distinct(column)) for column in ("x", "y"))
    rows = "SELECT NULL AS x, 'a' AS y UNION ALL SELECT 'b', NULL UNION ALL SELECT 'b', 'a' UNION ALL SELECT 'b', 'a'"
    assert tuple(cache.conn.execute(f"SELECT {counted} FROM ({rows})").fetchone()) == (2, 2)


def test_only_the_open_tab_reads_its_breakdown_and_the_events_say_newest_n_of_m(app_demo_cache, monkeypatch):
    from trailstream.app import widgets

    monkeypatch.setattr(widgets, "TABLE_LIMIT", 5)
    role = open_page("pages/principal.py", range="all").dataframe[0].value.iloc[0]["principal"]
    first = open_page("pages/principal.py", range="all", principal=role)
    breakdowns = {frame.value.columns[0] for frame in first.dataframe if frame.key is None}  # tables led by their key
    assert breakdowns == {"event_name"}
    agents = open_page("pages/principal.py", range="all", principal=role, breakdown="User agents")
    assert {frame.value.columns[0] for frame in agents.dataframe if frame.key is None} == {"user_agent"}
    assert metric(agents, "Source IPs") == metric(first, "Source IPs") > 0
    [events] = [frame.value for frame in first.dataframe if frame.key == "principal-events"]
    assert len(events) == 5 and f"The newest 5 of {metric(first, 'Events'):,} events." in [c.value for c in first.caption]
