"""The SQL page's time limit on DuckDB: a query running past the cache's limit is interrupted (DuckDB's
connection.interrupt()) and ends with the cache's sentence, and the same connection answers the next query."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from tests.conftest import cache_and_lake, open_page, point_app_at_lake, write_demo_logs
from trailstream.analytics import backend, lake_sqlguard, sqlguard


END = datetime(2026, 3, 2, tzinfo=timezone.utc)
# Billions of joined rows: minutes on any machine, so only the limit ends it.
SLOW_SQL = "SELECT count(*) AS pairs FROM events a, events b, events c WHERE a.event_id <> c.event_id"
QUICK_SQL = "SELECT count(*) AS events FROM events"


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path]:
    """A cache and a lake compacted from the same 2,000 demo events."""
    logs, folder = tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("stores")
    write_demo_logs(logs, 2000, 5, END)
    return cache_and_lake(folder, logs)


def _run(duck: backend.LakeBackend, sql: str, time_limit: float) -> sqlguard.QueryResult:
    return lake_sqlguard.run_lake_query(duck.run, duck.table, duck.dialect, sql, {}, interrupt=duck.interrupt,
                                        time_limit=time_limit)


def test_a_query_past_the_time_limit_is_stopped_with_the_caches_sentence_and_the_connection_answers_the_next(stores):
    duck = backend.duckdb_backend(str(stores[1]))
    with pytest.raises(sqlguard.QueryFailed) as stopped:
        _run(duck, SLOW_SQL, 0.5)
    assert str(stopped.value) == str(sqlguard.over_time_limit(0.5))
    assert "ran longer than the 0.5-second limit and was stopped" in str(stopped.value)
    assert _run(duck, QUICK_SQL, 60).frame.item() == 2000


def test_a_query_within_the_limit_is_never_interrupted(stores):
    duck, interrupted = backend.duckdb_backend(str(stores[1])), []
    result = lake_sqlguard.run_lake_query(duck.run, duck.table, duck.dialect, QUICK_SQL, {},
                                          interrupt=lambda: interrupted.append(True), time_limit=60)
    assert result.frame.item() == 2000 and not interrupted
    assert duck.run(QUICK_SQL).item() == 2000


def test_an_engine_error_inside_the_limit_stays_the_engines_sentence(stores):
    duck = backend.duckdb_backend(str(stores[1]))
    with pytest.raises(backend.LakeUnavailable, match="no_such_column"):
        _run(duck, "SELECT no_such_column FROM events", 5)


def test_the_sql_page_on_a_duckdb_lake_stops_a_slow_query_with_the_sentence(stores, tmp_path, monkeypatch):
    monkeypatch.setattr(sqlguard, "DEFAULT_TIME_LIMIT", 0.5)
    point_app_at_lake(monkeypatch, tmp_path, stores[0], stores[1])
    at = open_page("pages/sql.py").text_area(key="sql").set_value(SLOW_SQL).run()
    assert not at.exception, [exception.value for exception in at.exception]
    shown = " ".join(str(element.value) for element in (*at.error, *at.text, *at.code, *at.markdown))
    assert "ran longer than the 0.5-second limit and was stopped" in shown
    monkeypatch.setattr(sqlguard, "DEFAULT_TIME_LIMIT", 60.0)  # the next query, on the same page, under any load
    at = at.text_area(key="sql").set_value(QUICK_SQL).run()
    assert at.dataframe[-1].value.iloc[0, 0] == 2000


def test_a_saved_sql_report_on_a_duckdb_lake_is_stopped_at_the_limit_too(stores, monkeypatch):
    from trailstream.notify import reports
    from trailstream.notify.saved import SavedSearch

    monkeypatch.setattr(sqlguard, "DEFAULT_TIME_LIMIT", 0.5)
    duck = backend.duckdb_backend(str(stores[1]))
    with pytest.raises(sqlguard.QueryFailed, match="ran longer than the 0.5-second limit"):
        reports.run_saved(stores[0], SavedSearch("slow", "sql", sql=SLOW_SQL), lake=duck)
