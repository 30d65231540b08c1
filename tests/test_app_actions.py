"""The app's admin buttons do what they say and leave an audit entry: Sync, Sync history's Retry, Sources' Remove,
a report's schedule, an alert rule's change."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import open_page, page_specs
from trailstream import config
from trailstream.notify import saved

PAGE = {title: path for _section, path, title in page_specs()}
ERRORS_SQL = "SELECT event_source, count(*) AS calls FROM events GROUP BY event_source"


def audit_entries(cache: Path, action: str) -> list[dict]:
    with sqlite3.connect(cache) as conn:
        rows = conn.execute("SELECT detail FROM audit_log WHERE action = ? ORDER BY id", [action]).fetchall()
    return [json.loads(detail) if detail and detail.startswith("{") else detail for (detail,) in rows]


def configure(*sources: config.Source) -> None:
    settings = config.load_settings()
    settings.sources = list(sources)
    config.save_settings(settings)


def button(at, label: str):
    return next(item for item in at.button if item.label == label)


def file_status(cache: Path, name: str) -> str:
    with sqlite3.connect(cache) as conn:
        return conn.execute("SELECT status FROM files WHERE key LIKE ?", [f"%{name}"]).fetchone()[0]


def test_sync_is_audited_with_what_each_source_brought(app_empty_cache, corpus):
    configure(config.LocalSource(name="exported logs", path=str(corpus / "events")))
    at = open_page(PAGE["Overview"], range="all")
    button(at, "Sync").click().run()
    assert not at.exception
    (entry,) = audit_entries(app_empty_cache, "sync")
    assert entry["exported logs"]["new_events"] > 0


def test_retry_on_sync_history_imports_a_repaired_file_and_is_audited(app_empty_cache, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    broken = logs / "broken.json"
    broken.write_text('{"Records": [')
    configure(config.LocalSource(name="logs", path=str(logs)))
    at = open_page(PAGE["Overview"], range="all")
    button(at, "Sync").click().run()
    assert file_status(app_empty_cache, "broken.json") == "failed"
    broken.write_text(json.dumps({"Records": [{"eventVersion": "1.09", "eventID": "repaired-1",
                                               "eventTime": "2026-11-27T10:00:00Z", "eventName": "ListBuckets",
                                               "eventSource": "s3.amazonaws.com", "awsRegion": "us-east-1"}]}))

    at = open_page(PAGE["Sync history"], range="all")
    button(at, "Retry failed files").click().run()

    assert not at.exception
    assert file_status(app_empty_cache, "broken.json") == "ok"
    (entry,) = audit_entries(app_empty_cache, "retry")
    assert entry["files"] == 1 and entry["new_events"] == 1


def test_remove_on_sources_drops_only_that_source_and_is_audited(app_empty_cache, tmp_path):
    configure(config.LocalSource(name="keep me", path=str(tmp_path)), config.LocalSource(name="old", path="/nowhere"))
    at = open_page(PAGE["Sources & settings"])

    next(item for item in at.button if item.key == "remove-old").click().run()

    assert not at.exception
    assert [source.name for source in config.load_settings().sources] == ["keep me"]
    assert audit_entries(app_empty_cache, "setting_changed") == [{"source": "old", "change": "removed"}]


def test_a_report_schedule_saved_on_reports_is_kept_and_audited(app_demo_cache):
    saved.save_search(app_demo_cache, saved.SavedSearch("by source", "sql", sql=ERRORS_SQL))
    at = open_page(PAGE["Reports"])

    [format_box] = [box for box in at.selectbox if box.label == "Format"]
    [schedule_box] = [box for box in at.selectbox if box.label == "Email it"]
    format_box.set_value("csv")
    schedule_box.set_value("weekly")
    next(item for item in at.button if item.label == "Save settings").click().run()

    assert not at.exception
    (kept,) = saved.load_saved_searches(app_demo_cache)
    assert (kept.format, kept.schedule) == ("csv", "weekly")
    (entry,) = audit_entries(app_demo_cache, "setting_changed")
    assert entry["report"] == "by source" and entry["schedule"] == "weekly"


def test_an_alert_rule_switched_off_on_alerts_is_kept_and_audited(app_demo_cache):
    at = open_page(PAGE["Alerts"])
    ident = at.selectbox(key="rule").value
    at.toggle(key=f"{ident}-enabled").set_value(False)
    next(item for item in at.button if item.label == "Save rule").click().run()

    assert not at.exception
    (entry,) = audit_entries(app_demo_cache, "rule_changed")
    assert entry["change"] == "saved"
    with sqlite3.connect(app_demo_cache) as conn:
        (enabled,) = conn.execute("SELECT enabled FROM alert_rules WHERE name = ?", [entry["rule"]]).fetchone()
    assert not enabled
