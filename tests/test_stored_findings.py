"""Findings stored by the post-sync step: equal to computing them now, recomputed (saying why) when stale, shown on
the Security overview as inert text, and the type filter offering the Sigma rules' types."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from benchmarks import shapes
from tests.conftest import open_page
from tests.test_sigma import record, rule_yaml, write_events
from trailstream import jobs
from trailstream.analytics import detections
from trailstream.app.signin import escape_markdown
from trailstream.cache import bookkeeping, store
from trailstream.filters import EventFilter
from trailstream.ingest import sync

ROAMING_END = datetime(2026, 11, 1, tzinfo=timezone.utc)  # midnight: the roaming day is one UTC day


@pytest.fixture(scope="module")
def roaming_cache_file(tmp_path_factory) -> Path:
    """A few thousand roaming-shaped events (every call from a random public address) through the real import."""
    root = tmp_path_factory.mktemp("roaming")
    shapes.write_shape("roaming", root / "logs", 4000, seed=5, end=ROAMING_END)
    sync.import_paths(root / "roaming.db", [root / "logs"])
    return root / "roaming.db"


@pytest.fixture(params=["demo", "roaming"])
def stored_cache(request, tmp_path) -> Path:
    """A private copy of a demo or roaming cache whose findings the post-sync step stored."""
    source = request.getfixturevalue("demo_cache_file" if request.param == "demo" else "roaming_cache_file")
    path = tmp_path / "cache.db"
    shutil.copy(source, path)
    assert jobs.store_findings(path, {})[0].startswith("findings: ")
    return path


def as_dicts(findings) -> list[dict]:
    return [finding.to_dict() for finding in findings]


def first_event_time(path: Path) -> str:
    with closing(store.open_cache_readonly(path)) as conn:
        return conn.execute("SELECT min(event_time) FROM events").fetchone()[0]


def test_stored_findings_equal_the_freshly_computed_ones(stored_cache):
    periods = [EventFilter(), EventFilter(start=first_event_time(stored_cache))]
    with closing(store.open_cache_readonly(stored_cache)) as conn:
        accounts = [row[0] for row in conn.execute("SELECT DISTINCT account_id FROM events LIMIT 1")]
        periods.append(EventFilter(accounts=tuple(accounts)))
        for period in periods:
            stored = detections.query_period_findings(conn, period)
            assert stored.note == ""  # read from the store, not computed
            assert stored.findings and as_dicts(stored.findings) == as_dicts(detections.detect_findings(conn, period))


def test_stored_travel_routes_add_up_to_the_freshly_computed_ones(stored_cache):
    with closing(store.open_cache_readonly(stored_cache)) as conn:
        travel, routes, note = detections.query_period_travel(conn, EventFilter())
        fresh_travel, fresh_routes = detections.query_travel(conn, EventFilter())
    assert note == "" and as_dicts(travel) == as_dicts(fresh_travel)
    assert travel, "the shapes hold impossible travel"
    key = ["from_place", "to_place"]
    hops = routes.select(*key, "hops").sort(key)
    assert hops.equals(fresh_routes.select(*key, "hops").sort(key))


def test_a_stale_store_is_recomputed_and_says_why(demo_cache_file, tmp_path):
    path = tmp_path / "cache.db"
    shutil.copy(demo_cache_file, path)
    with closing(store.open_cache_readonly(path)) as conn:
        assert "no findings are stored" in detections.query_period_findings(conn).note
        located_now = detections.query_sign_ins(conn)
    jobs.store_findings(path, {})
    with closing(store.open_cache_readonly(path)) as conn:
        assert conn.execute("SELECT count(*) FROM stored_places").fetchone()[0] > 0
        assert detections.query_sign_ins(conn).equals(located_now)  # stored places, no geolocation data loaded
    stricter = detections.DetectionSettings(unauthorized_threshold=500, root_session_gap_minutes=1)
    with closing(store.open_cache_readonly(path)) as conn:
        changed = detections.query_period_findings(conn, EventFilter(), stricter)
        assert "settings" in changed.note
        assert as_dicts(changed.findings) == as_dicts(detections.detect_findings(conn, EventFilter(), stricter))
        assert as_dicts(changed.findings) != as_dicts(detections.query_period_findings(conn).findings)
    hostile = "**mallory** <b>"
    refused = [record(f"late-{index}", minutes_ago=3, errorCode="AccessDenied",
                      userIdentity={"type": "IAMUser", "userName": hostile, "accountId": "111122223333",
                                    "arn": "arn:aws:iam::111122223333:user/mallory"}) for index in range(30)]
    sync.import_paths(path, [write_events(tmp_path / "late", refused)])
    with closing(store.open_cache_readonly(path)) as conn:
        late = detections.query_period_findings(conn)
        assert "cache changed" in late.note
        assert any(finding.principal == hostile for finding in late.findings)
        assert as_dicts(late.findings) == as_dicts(detections.detect_findings(conn))
    assert jobs.store_findings(path, {}) != ["findings: the stored findings are current"]
    with closing(store.open_cache_readonly(path)) as conn:
        again = detections.query_period_findings(conn)
        assert again.note == "" and as_dicts(again.findings) == as_dicts(late.findings)


def test_after_new_days_only_their_reach_is_recomputed_and_the_store_equals_a_whole_computation(tmp_path):
    path = tmp_path / "cache.db"
    shapes.write_shape("roaming", tmp_path / "first", 2000, seed=7, end=ROAMING_END)
    shapes.write_shape("roaming", tmp_path / "later", 2000, seed=8, end=ROAMING_END + timedelta(days=9))
    sync.import_paths(path, [tmp_path / "first"])
    assert "over the whole cache" in jobs.store_findings(path, {})[0]
    sync.import_paths(path, [tmp_path / "later"])
    line = jobs.store_findings(path, {})[0]  # windowed detectors: twice their reach before the new events
    assert "windowed ones from 2026-11-08T22:00 on; travel extended, and recomputed from a midnight for 0 principals" in line
    with closing(store.open_cache_readonly(path)) as conn:
        stored = detections.query_period_findings(conn)
        fresh = detections.detect_findings(conn)
        _travel, routes, _note = detections.query_period_travel(conn)
        fresh_routes = detections.query_travel(conn)[1]
    assert stored.note == "" and as_dicts(stored.findings) == as_dicts(fresh)
    assert {finding.time[:10] for finding in stored.findings} == {"2026-10-31", "2026-11-09"}
    assert routes.get_column("hops").sum() == fresh_routes.get_column("hops").sum()
    with closing(store.open_cache(path)) as db:
        bookkeeping.bump_generation(db)  # a sync that stored nothing
    assert jobs.store_findings(path, {}) == ["findings: no new events; the stored findings are current"]
    with closing(store.open_cache_readonly(path)) as conn:
        assert detections.query_period_findings(conn).note == ""


def test_a_cache_from_before_stored_findings_computes_them(demo_cache_file, tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(demo_cache_file, path)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP TABLE findings_state")
    with closing(store.open_cache_readonly(path)) as conn:
        old = detections.query_period_findings(conn)
        assert "no findings are stored" in old.note
        assert as_dicts(old.findings) == as_dicts(detections.detect_findings(conn))


def test_the_security_overview_shows_stored_findings_as_inert_text(app_demo_cache):
    hostile = "**boom** [click](http://evil.example) <img src=x onerror=alert(1)> =HYPERLINK(\"x\")"
    jobs.store_findings(app_demo_cache, {})
    with closing(sqlite3.connect(app_demo_cache)) as conn, conn:  # what a hostile principal name would leave
        conn.execute("UPDATE stored_findings SET principal = ?, summary = ? WHERE type = 'root_activity'",
                     [hostile, f"{hostile} used root."])
    at = open_page("pages/security_overview.py", range="all")
    at.multiselect(key="finding_type").set_value(["root_activity"]).run()
    assert not any("Computed now" in caption.value for caption in at.caption)
    labels = [expander.label for expander in at.expander if " · " in expander.label]
    assert labels and all(escape_markdown(hostile) in label for label in labels)
    finding = next(item for item in detections.query_period_findings(store.open_cache_readonly(app_demo_cache))
                   .findings if item.type == "root_activity")
    at.session_state[f"finding-{finding.key}"] = True
    at.run()
    assert not at.exception
    assert any(block.value == f"HIGH: {hostile} used root." or hostile in block.value for block in at.text)
    assert all(hostile not in block.value for block in at.markdown)


def test_the_type_filter_offers_each_sigma_rule_by_title(app_demo_cache, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_id = "dddddddd-0000-4000-8000-000000000001"
    (rules / "login.yml").write_text(rule_yaml(rule_id, "  sel:\n    eventName: ConsoleLogin\n  condition: sel\n"))
    (tmp_path / "trailstream.toml").write_text(f'[sigma]\nrule_paths = ["{rules}"]\n')
    jobs.after_sync(app_demo_cache, {"sigma": {"rule_paths": [str(rules)]}})
    at = open_page("pages/security_overview.py", range="all")
    types = at.multiselect(key="finding_type")
    assert "Feature dddddddd" in types.options  # shown by the rule's title
    types.set_value([f"sigma:{rule_id}"]).run()
    labels = [expander.label for expander in at.expander if " · " in expander.label]
    assert labels and all("Feature dddddddd" in label for label in labels)
