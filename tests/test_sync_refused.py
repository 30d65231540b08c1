"""A Sync pressed while another sync holds the cache is refused at once with its sentence: it leaves the post-sync
step (alert rules, reports) to the running sync, whose open write transaction would only lock it out."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing, contextmanager
from datetime import timedelta

from tests.conftest import HOME_PAGE, open_page
from trailstream import config, jobs
from trailstream.cache import store


@contextmanager
def another_sync_writing(db_path):
    """What a running sync holds: the sync lock, and (an import commits in batches) an open write transaction."""
    with store.sync_lock(db_path), closing(sqlite3.connect(db_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("COMMIT")


def configure_a_folder(tmp_path) -> config.Settings:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.json").write_text(json.dumps({"Records": []}))
    settings = config.load_settings()
    settings.sources = [config.LocalSource(name="exported logs", path=str(logs))]
    config.save_settings(settings)
    return settings


def test_a_sync_refused_while_another_writes_says_so_and_leaves_the_alert_check_to_it(app_empty_cache, tmp_path):
    configure_a_folder(tmp_path)
    at = open_page(HOME_PAGE, range="all")
    with another_sync_writing(app_empty_cache):
        next(button for button in at.button if button.label == "Sync").click().run()

    assert not at.exception, [exception.value for exception in at.exception]
    assert any("1 failure(s)" in box.value for box in at.error)
    assert any("a sync is already running" in text.value for text in at.text)
    assert not any("Alerts and reports checked" in box.value for box in [*at.success, *at.warning])


def test_only_a_source_refused_for_a_running_sync_counts_as_refused(db_path, tmp_path):
    source = config.LocalSource(name="exported logs", path=str(tmp_path / "missing"))
    assert not jobs.refused([jobs.run_source(source, db_path)])  # a failure of its own: the post-sync step runs
    with store.sync_lock(db_path):
        assert jobs.refused([jobs.run_source(source, db_path)])


def test_watch_beside_a_running_sync_leaves_the_alert_check_to_it(app_empty_cache, tmp_path):
    settings = configure_a_folder(tmp_path)
    lines = []
    with another_sync_writing(app_empty_cache):
        assert jobs.watch(app_empty_cache, settings, timedelta(minutes=5), iterations=1, report=lines.append) is None
    assert any(line.startswith("exported logs:") and "1 failure(s)" in line for line in lines)
    assert any(line.startswith("alerts: left to the sync that holds the cache") for line in lines)
