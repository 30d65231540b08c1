"""The query backend: every lake query, rendered for DuckDB over the compactor's Parquet, answers exactly what the
cache's query answers on the same files; every query rendered for Athena parses back as Trino and is snapshot."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
import sqlglot
from polars.testing import assert_frame_equal
from sqlglot import exp

from tests.conftest import write_demo_logs
from trailstream import catalog
from trailstream.analytics import backend
from trailstream.analytics.queries import SearchQuery
from trailstream.cache import store
from trailstream.filters import EventFilter
from trailstream.ingest import lake, sync

SNAPSHOTS = Path(__file__).parent / "data" / "athena_queries.json"
END = datetime(2026, 3, 2, tzinfo=timezone.utc)
PERIODS = {
    "all": EventFilter(),
    "week": EventFilter(start="2026-02-23T00:00:00Z", end="2026-03-01T06:30:00Z"),
    "writes": EventFilter(start="2026-02-25T00:00:00Z", include_read_only=False),
}
SEARCHES = [
    SearchQuery(text="ACCESSDENIED"),  # free text ignores ASCII case, as the cache's does
    SearchQuery(text="amazonaws"),  # word start: no match inside "s3.amazonaws.com"'s middle
    SearchQuery(text=".amazonaws.com"),
    SearchQuery(user_name="ADMIN"),  # the cache's LIKE ignores ASCII case for a role's sessions
    SearchQuery(event_name="ConsoleLogin", read_only=False),
    SearchQuery(resource_name="i-0"),
]
CASES = [
    ("totals", {}), ("top_event_names", {"limit": 10}), ("top_principals", {"limit": 10}),
    ("top_services", {"limit": 5}), ("timeline", {"bucket": "hour"}),
    ("timeline", {"bucket": "day", "group_by": "event_source"}), ("timeline", {"bucket": "10min", "group_by": "user_type"}),
    ("account_regions", {}), ("events", {"limit": None}), ("error_counts", {}), ("span", {}), ("error_first_seen", {}),
    ("error_events", {"error_code": "AccessDenied", "limit": None}),
    ("error_events", {"error_code": "Client.UnauthorizedOperation", "event_source": "ec2.amazonaws.com", "limit": None}),
    ("error_events", {"error_code": "AccessDenied", "event_source": "iam.amazonaws.com", "event_name": "ListRoles",
                      "limit": None}),  # the demo's: the corpus has no such call
    ("span", {"event_names": list(catalog.USE_CASES["elastic_ips"].event_names)}),
    ("events", {"limit": None, "event_names": list(catalog.USE_CASES["iam"].event_names)}),  # a use-case page's events
    ("timeline", {"bucket": "hour", "group_by": "event_name", "event_names": list(catalog.USE_CASES["network"].event_names)}),
]


def _both(tmp_path_factory, source: Path) -> tuple[backend.CacheBackend, backend.LakeBackend]:
    folder = tmp_path_factory.mktemp("stores")
    sync.import_paths(folder / "cache.db", [source], workers=1)
    lake.compact_paths(folder / "lake", [source], workers=1)
    return backend.CacheBackend(store.open_cache_readonly(folder / "cache.db")), backend.duckdb_backend(str(folder / "lake"))


@pytest.fixture(scope="module")
def demo_stores(tmp_path_factory):
    logs = tmp_path_factory.mktemp("demo_logs")
    write_demo_logs(logs, 4000, 3, END)
    return _both(tmp_path_factory, logs)


@pytest.fixture(scope="module")
def corpus_stores(tmp_path_factory, corpus):
    return _both(tmp_path_factory, corpus / "events")


def _same(cache: pl.DataFrame, lake_frame: pl.DataFrame, name: str) -> None:
    if name in ("search", "events", "error_events"):  # events of one second have no order between them
        cache, lake_frame = cache.sort("event_id"), lake_frame.sort("event_id")
    assert_frame_equal(cache, lake_frame, check_column_order=True)


@pytest.mark.parametrize("stores", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("name, options", CASES)
def test_each_page_query_answers_the_same_on_the_cache_and_on_the_lake(request, stores, period, name, options):
    cache, lake_backend = request.getfixturevalue(stores)
    expected = cache.query(name, PERIODS[period], **options)
    assert expected.height > 0 or period != "all" or (stores, options.get("event_name")) == ("corpus_stores", "ListRoles")
    _same(expected, lake_backend.query(name, PERIODS[period], **options), name)


@pytest.mark.parametrize("stores", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: json.dumps(s.to_dict()))
def test_searches_find_the_same_events_on_the_cache_and_on_the_lake(request, stores, search):
    cache, lake_backend = request.getfixturevalue(stores)
    _same(cache.query("search", EventFilter(), search=search), lake_backend.query("search", EventFilter(), search=search),
          "search")
    assert_frame_equal(cache.query("search_count", EventFilter(), search=search),
                       lake_backend.query("search_count", EventFilter(), search=search))


def test_case_rules_are_the_caches_not_the_engines(demo_stores):
    cache, lake_backend = demo_stores
    folded = lake_backend.query("search", EventFilter(), search=SearchQuery(text="CONSOLELOGIN"))
    assert folded.height > 0 and folded.height == cache.query("search", EventFilter(),
                                                              search=SearchQuery(text="consolelogin")).height


def test_hostile_search_text_is_a_literal_not_sql(demo_stores):
    _, lake_backend = demo_stores
    hostile = SearchQuery(text="x') OR 1=1 --", user_name="a' OR '1'='1")
    assert lake_backend.query("search", EventFilter(), search=hostile).height == 0


def _athena_renderings() -> dict[str, str]:
    athena = backend.LakeBackend(exp.to_table('"trailstream"."events"', dialect="trino"), "athena", lambda sql: None)
    rendered = {f"{name} {json.dumps(options)} {period}": athena.render(name, PERIODS[period], **options)
                for name, options in CASES for period in PERIODS}
    rendered |= {f"search {json.dumps(s.to_dict())}": athena.render("search", PERIODS["week"], search=s) for s in SEARCHES}
    rendered |= {f"search_count {json.dumps(s.to_dict())}": athena.render("search_count", PERIODS["week"], search=s)
                 for s in SEARCHES}
    return rendered


def test_every_athena_query_parses_back_as_trino_and_matches_its_snapshot():
    rendered = _athena_renderings()
    for sql in rendered.values():
        assert isinstance(sqlglot.parse_one(sql, read="trino"), exp.Select)
    assert rendered == json.loads(SNAPSHOTS.read_text())


def test_the_newest_events_come_from_the_newest_buckets_only(demo_stores):
    cache, lake_backend = demo_stores
    timeline = cache.query("timeline", EventFilter(), bucket="hour")
    narrowed = backend.newest_period(EventFilter(), timeline, 500)
    assert narrowed.start and narrowed.start > timeline["bucket"].min().isoformat()  # fewer days for the lake to read
    for store_backend in (cache, lake_backend):
        everything = store_backend.query("events", EventFilter(), limit=None).head(500)
        assert store_backend.query("events", narrowed, limit=500)["event_time"].to_list() == \
            everything["event_time"].to_list()  # times, not IDs: events of one second have no order between them
    assert backend.newest_period(EventFilter(), timeline, 10**9) == EventFilter()  # all of it needed: unchanged
