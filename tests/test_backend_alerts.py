"""Alert rules on the lake: with [backend] kind = "athena", `alerts run` evaluates every rule kind on the lake's
events (findings and Sigma findings since the last check, events and search rules through the lake's filter and
search, SQL rules through the lake's guard) and fires the same alerts as on a cache built from the same files; a
second run fires nothing again; what fired is recorded in the local cache."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tests.conftest import cache_and_lake, open_page, point_app_at_lake, write_demo_logs
from trailstream.analytics import alert_queries, backend, sigma
from trailstream.analytics.sigma.settings import SigmaSettings
from trailstream.cache import store
from trailstream.filters import EventFilter

from trailstream.notify import alerts
from trailstream.notify.alerts.rules import RARE_ERROR_CONDITION

END = datetime(2026, 3, 2, tzinfo=timezone.utc)
SNAPSHOTS = Path(__file__).parent / "data" / "athena_alert_queries.json"
SIGMA_RULE = """title: Access key made by an IAM user
id: 6a1e5f0c-0000-4000-8000-000000000001
author: TrailStream tests
level: high
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventSource: iam.amazonaws.com
    eventName: CreateAccessKey
  condition: sel
"""
CUSTOM_RULES = [
    alerts.AlertRule(None, "search", "Refusals", query=json.dumps({"error_code": "AccessDenied"})),
    alerts.AlertRule(None, "search", "Refusal storms", threshold=3, window_minutes=10,
                     query=json.dumps({"text": "accessdenied"})),
    alerts.AlertRule(None, "sql", "Deleted things",
                     query="SELECT event_id FROM events WHERE event_name LIKE 'Delete%' AND error_code IS NULL"),
]


def _with_rules(tmp_path_factory, logs: Path) -> tuple[Path, Path]:
    """A cache and a lake from the same files; the cache holds the rules (built-in, custom, Sigma)."""
    cache, lake_folder = cache_and_lake(tmp_path_factory.mktemp("stores"), logs)
    rules = tmp_path_factory.mktemp("rules")
    (rules / "own.yml").write_text(SIGMA_RULE)
    with closing(store.open_cache(cache)) as db:
        sigma.save_rules(db, sigma.load_rules([rules]), SigmaSettings())
        sigma.evaluate_new_events(db)
        alerts.ensure_builtin_rules(db)
        for rule in CUSTOM_RULES:
            alerts.save_rule(db, rule)
    return cache, lake_folder


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    write_demo_logs(logs, 3000, 7, END)
    return _with_rules(tmp_path_factory, logs)


@pytest.fixture(scope="module")
def corpus_stores(tmp_path_factory, corpus):
    return _with_rules(tmp_path_factory, corpus / "events")


def _copy(stores, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.db"
    shutil.copyfile(stores[0], path)
    return path


def _fired(db_path: Path) -> list[tuple]:
    """What fired: each alert's rule, summary and events (the events' IDs, in order)."""
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute("SELECT a.rule_name, a.summary, group_concat(f.event_id, ' ') FROM fired_alerts a "
                            "JOIN fired_alert_events f ON f.alert_id = a.id GROUP BY a.id").fetchall()
    return sorted((name, summary, " ".join(sorted(events.split()))) for name, summary, events in rows)


def _lake_settings(lake_folder: Path, **sections) -> dict:
    return {"backend": {"kind": "athena", "lake": str(lake_folder)}, **sections}


@pytest.mark.parametrize("name, now, sections, fired_rules", [
    ("stores", END, {}, {"Refusals", "Refusal storms", "Deleted things", "Community (Sigma) rule matched"}),
    # the corpus's events are years old: [alerts] max_age reaches them
    ("corpus_stores", datetime(2026, 1, 1, tzinfo=timezone.utc), {"alerts": {"max_age": "4000d"}},
     {"Refusals", "Community (Sigma) rule matched"}),
], ids=["demo", "corpus"])
def test_the_alert_rules_fire_the_same_alerts_on_the_lake_as_on_the_cache(request, tmp_path, name, now, sections,
                                                                          fired_rules):
    stores = request.getfixturevalue(name)
    on_cache, on_lake = _copy(stores, tmp_path, "cache"), _copy(stores, tmp_path, "lake")
    cache_run = alerts.run_alerts(on_cache, sections, now)
    lake_run = alerts.run_alerts(on_lake, _lake_settings(stores[1], **sections), now)
    assert [error for error in lake_run.errors if "smtp" not in error.lower()] == [
        error for error in cache_run.errors if "smtp" not in error.lower()]
    fired = _fired(on_lake)
    assert fired == _fired(on_cache) and lake_run.fired == cache_run.fired
    names = {name for name, _, _ in fired}
    assert fired_rules <= names and len(names) >= 4  # built-in finding and event rules too: not vacuous


def test_a_second_run_on_the_lake_fires_nothing_again(stores, tmp_path):
    on_lake = _copy(stores, tmp_path, "lake")
    first = alerts.run_alerts(on_lake, _lake_settings(stores[1]), END)
    again = alerts.run_alerts(on_lake, _lake_settings(stores[1]), END)
    assert first.fired > 0 and again.fired == 0


def test_a_sql_rule_the_lake_cannot_read_is_a_sentence_and_the_others_still_fire(stores, tmp_path):
    on_lake = _copy(stores, tmp_path, "lake")
    with closing(store.open_cache(on_lake)) as db:
        alerts.save_rule(db, alerts.AlertRule(None, "sql", "SQLite only", query="SELECT event_id FROM events INDEXED BY "
                                              "events_time WHERE event_name = 'StopLogging'"))
    run = alerts.run_alerts(on_lake, _lake_settings(stores[1]), END)
    assert run.fired > 0
    assert any(error.startswith('rule "SQLite only" could not be evaluated on the lake (the query is not SQL the '
                                "lake understands") for error in run.errors)


def test_a_lake_that_cannot_be_read_is_a_sentence(stores, tmp_path):
    on_lake = _copy(stores, tmp_path, "lake")
    run = alerts.run_alerts(on_lake, _lake_settings(tmp_path / "no-lake"), END)
    assert run.fired == 0 and any(error.startswith("the alert rules were not checked (") for error in run.errors)


@pytest.mark.parametrize("options", [
    {"event_names": ("CreateUser", "CreateAccessKey"), "condition": "e.error_code IS NULL"},
    {"condition": RARE_ERROR_CONDITION},
    {"once": True},
    {"search": json.dumps({"text": "ACCESSDENIED"})},
    {"search": json.dumps({"user_name": "alice", "read_only": False})},
], ids=["names", "rare error", "once", "text", "user"])
def test_each_alert_query_answers_the_same_on_the_cache_and_on_the_lake(stores, options):
    with closing(store.open_cache_readonly(stores[0])) as conn:
        on_cache = backend.CacheBackend(conn).query("alert_events", EventFilter(), **options)
    on_lake = backend.duckdb_backend(str(stores[1])).query("alert_events", EventFilter(), **options)
    assert on_lake.equals(on_cache)


def test_the_rare_error_rule_counts_each_code_once_on_the_lake_as_its_condition_says_on_the_cache(stores):
    with closing(store.open_cache_readonly(stores[0])) as conn:
        cache = backend.CacheBackend(conn)
        as_written = cache.query("alert_events", EventFilter(), condition=RARE_ERROR_CONDITION)
        assert as_written.height > 0 and as_written.equals(cache.query("alert_events", EventFilter(), once=True))


def _athena_renderings() -> dict[str, str]:
    table = backend.athena_table(type("S", (), {"database": "trailstream", "table": "events"})())
    period = EventFilter(start="2026-02-01T00:00:00Z", end="2026-03-01T00:00:00Z")
    cases = {"names": {"event_names": ("CreateUser",), "condition": "e.error_code IS NULL"},
             "rare error": {"once": True},
             "search": {"search": json.dumps({"text": "AccessDenied", "event_name": "it's"})}}
    return {name: alert_queries.alert_events_sql(table, period, **options).sql(dialect="athena")
            for name, options in cases.items()}


def test_every_athena_alert_query_parses_back_as_trino_and_matches_its_snapshot():
    rendered = _athena_renderings()
    for sql in rendered.values():
        assert isinstance(sqlglot.parse_one(sql, read="trino"), exp.Select)
    assert rendered == json.loads(SNAPSHOTS.read_text())


def test_an_alert_fired_on_the_lake_lists_its_events_from_the_lake_when_the_cache_has_none(stores, tmp_path):
    from trailstream.notify.alerts import fired
    from trailstream.notify.alerts.run import query_alert_event_lines

    empty, full = tmp_path / "empty.db", _copy(stores, tmp_path, "full")
    with closing(store.open_cache(empty)) as db:  # the app's own state only: the events live in the lake
        alerts.ensure_builtin_rules(db)
        for rule in CUSTOM_RULES:
            alerts.save_rule(db, rule)
    assert alerts.run_alerts(empty, _lake_settings(stores[1]), END).fired > 0
    alerts.run_alerts(full, _lake_settings(stores[1]), END)
    lake = backend.duckdb_backend(str(stores[1]))
    with closing(sqlite3.connect(empty)) as bare, closing(sqlite3.connect(full)) as whole:
        expected = {(alert.rule_name, alert.summary): fired.query_alert_events(whole, alert.id)
                    for alert in fired.query_fired_alerts(whole, limit=-1)}
        found = fired.query_fired_alerts(bare, limit=-1)
        assert all(fired.query_alert_events(bare, alert.id) == [] for alert in found)
        for alert in found:
            lines = query_alert_event_lines(bare, alert, None, lake)
            assert len(lines) == alert.events and lines == expected[(alert.rule_name, alert.summary)]


def test_the_alerts_page_lists_an_alert_s_events_from_the_lake_when_the_cache_has_none(stores, tmp_path,
                                                                                        monkeypatch):
    from trailstream.notify.alerts import fired

    empty = tmp_path / "empty.db"
    with closing(store.open_cache(empty)) as db:
        alerts.ensure_builtin_rules(db)
        alerts.save_rule(db, CUSTOM_RULES[0])
    alerts.run_alerts(empty, _lake_settings(stores[1]), END)
    with closing(sqlite3.connect(empty)) as conn:
        [alert] = [item for item in fired.query_fired_alerts(conn, limit=-1) if item.rule_name == "Refusals"]
    point_app_at_lake(monkeypatch, tmp_path, empty, stores[1])
    at = open_page("pages/alerts.py", alert=str(alert.id))
    assert not at.exception
    [events] = [frame.value for frame in at.dataframe if "action" in frame.value.columns]
    assert len(events) == alert.events > 0 and set(events["principal"]) - {None}


def _late_refusal(folder: Path, event_id: str, when: datetime) -> Path:
    import gzip

    record = {"eventID": event_id, "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventName": "GetObject",
              "eventSource": "s3.amazonaws.com", "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
              "userIdentity": {"type": "IAMUser", "userName": "late"}, "errorCode": "AccessDenied",
              "sourceIPAddress": "203.0.113.7"}
    path = folder / f"{event_id}.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"Records": [record]}).encode()))
    return path


def test_an_event_reaching_the_lake_within_the_overlap_still_alerts_and_a_later_one_is_missed(stores, tmp_path):
    from datetime import timedelta

    from trailstream.ingest import lake

    lake_folder, on_lake = tmp_path / "lake", _copy(stores, tmp_path, "lake")
    shutil.copytree(stores[1], lake_folder)
    alerts.run_alerts(on_lake, _lake_settings(lake_folder), END)  # every rule checked up to END
    logs = tmp_path / "late"
    logs.mkdir()
    _late_refusal(logs, "late-within", END - timedelta(minutes=50))
    _late_refusal(logs, "late-beyond", END - timedelta(minutes=70))
    lake.compact_paths(lake_folder, [logs], workers=1)
    alerts.run_alerts(on_lake, _lake_settings(lake_folder), END + timedelta(minutes=5))
    with closing(sqlite3.connect(on_lake)) as conn:
        alerted = {row[0] for row in conn.execute(
            "SELECT f.event_id FROM fired_alert_events f JOIN fired_alerts a ON a.id = f.alert_id "
            "WHERE a.rule_name = 'Refusals'")}
    assert "late-within" in alerted and "late-beyond" not in alerted
