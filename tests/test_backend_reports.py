"""Reports on the lake: a saved Search or SQL query run as a report reads the lake when [backend] kind = "athena"
(page, `report` command, scheduled emails) and gives the same tables and files as on the cache built from the same
log files; the sidebar's account and region choices come from the lake too."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlglot
from polars.testing import assert_frame_equal
from sqlglot import exp

from tests.conftest import MailServer, write_demo_logs
from trailstream import cli
from trailstream.analytics import backend
from trailstream.analytics.queries import SearchQuery
from trailstream.cache import store
from trailstream.filters import EventFilter
from trailstream.ingest import lake, sync
from trailstream.notify import mailer, reports, saved
from trailstream.notify.saved import SavedSearch

END = datetime(2026, 3, 2, tzinfo=timezone.utc)
NOW = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
PERIOD = EventFilter(start="2026-02-20T00:00:00Z", end="2026-03-03T00:00:00Z")
SNAPSHOTS = Path(__file__).parent / "data" / "athena_choice_queries.json"
ERRORS_SQL = ("SELECT event_source, error_code, count(*) AS calls FROM events WHERE event_time >= :start "
              "AND error_code <> '' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2")
LONE_ACCOUNT = "444455556666"


def _lone_log(folder: Path) -> Path:
    """One event in an account the demo does not have: a lake holding only it shows which store a report read."""
    record = {"eventID": "lone-1", "eventTime": "2026-03-01T12:00:00Z", "eventName": "PutObject",
              "eventSource": "s3.amazonaws.com", "awsRegion": "sa-east-1", "recipientAccountId": LONE_ACCOUNT,
              "userIdentity": {"type": "IAMUser", "userName": "lone"}, "errorCode": "AccessDenied"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lone.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [record]}).encode()))
    return folder


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, backend.LakeBackend, Path, Path]:
    """A cache and a lake compacted from the same demo files; and a second lake holding one other event."""
    logs, folder = tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("stores")
    write_demo_logs(logs, 3000, 6, END)
    sync.import_paths(folder / "cache.db", [logs], workers=1)
    lake.compact_paths(folder / "lake", [logs], workers=1)
    lake.compact_paths(folder / "lone-lake", [_lone_log(folder / "lone-logs")], workers=1)
    return folder / "cache.db", backend.duckdb_backend(str(folder / "lake")), folder / "lake", folder / "lone-lake"


def _settings(lake_folder: Path) -> dict:
    return {"backend": {"kind": "athena", "lake": str(lake_folder)}}


SAVED = [
    SavedSearch("denied", "search", search=SearchQuery(text="ACCESSDENIED"), event_filter=PERIOD, format="csv"),
    SavedSearch("sign-ins", "search", search=SearchQuery(event_name="ConsoleLogin"), event_filter=PERIOD, format="csv"),
    SavedSearch("errors", "sql", sql=ERRORS_SQL, event_filter=PERIOD, format="csv"),
]


@pytest.mark.parametrize("chosen", SAVED, ids=lambda s: s.name)
def test_a_reports_table_from_the_lake_is_the_caches(stores, chosen):
    cache_path, duck, *_ = stores
    on_cache = reports.run_saved(cache_path, chosen, NOW)
    on_lake = reports.run_saved(cache_path, chosen, NOW, lake=duck)
    assert on_lake.frame.height > 0 and on_lake.truncated is on_cache.truncated is False
    if chosen.kind == "search":  # events of one second have no order between them
        on_cache, on_lake = on_cache.frame.sort("event_id"), on_lake.frame.sort("event_id")
    else:
        on_cache, on_lake = on_cache.frame, on_lake.frame
    assert_frame_equal(on_cache, on_lake)


@pytest.mark.parametrize("fmt", ["csv", "html"])
def test_a_report_file_from_the_lake_is_the_caches(stores, fmt):
    cache_path, duck, *_ = stores
    chosen = SAVED[2]
    on_cache = reports.render_report(cache_path, chosen, NOW, fmt)
    on_lake = reports.render_report(cache_path, chosen, NOW, fmt, lake=duck)
    assert on_lake.data == on_cache.data and on_lake.file_name == on_cache.file_name


def test_the_report_command_reads_the_lake_its_settings_name(stores, tmp_path, capsys):
    cache_path, _, _, lone_lake = stores
    saved.save_search(cache_path, SavedSearch("lake errors", "sql", sql=ERRORS_SQL, event_filter=PERIOD,
                                              format="csv"))
    config_file = tmp_path / "trailstream.toml"
    config_file.write_text(f'[backend]\nkind = "athena"\nlake = "{lone_lake}"\n')
    target = tmp_path / "errors.csv"
    argv = ["--db", str(cache_path), "--config", str(config_file), "report", "lake errors", "--output", str(target)]
    assert cli.main(argv) == 0
    assert target.read_text().splitlines() == ["event_source,error_code,calls", "s3.amazonaws.com,AccessDenied,1"]


def test_scheduled_reports_are_emailed_from_the_lake(stores, mail_server):
    cache_path, _, _, lone_lake = stores
    saved.save_search(cache_path, SavedSearch("lake weekly", "sql", sql=ERRORS_SQL, event_filter=PERIOD,
                                              format="csv", schedule="weekly", recipients=("boss@example.com",)))
    smtp = mailer.smtp_settings_from(mail_server.smtp_section())
    deliveries = {d.name: d for d in reports.send_scheduled_reports(cache_path, smtp, NOW, _settings(lone_lake))}
    assert deliveries["lake weekly"].sent
    (message,) = [m for m in mail_server.inbox.messages if "lake weekly" in m["Subject"]]
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content().splitlines()[1:] == ["s3.amazonaws.com,AccessDenied,1"]


def test_a_lake_that_cannot_be_read_leaves_each_due_report_unsent_with_a_sentence(stores, tmp_path):
    cache_path = stores[0]
    saved.save_search(cache_path, SavedSearch("no lake daily", "sql", sql=ERRORS_SQL, format="csv", schedule="daily"))
    smtp = mailer.smtp_settings_from(MailServer().smtp_section())  # never reached: the lake fails first
    deliveries = {d.name: d for d in reports.send_scheduled_reports(cache_path, smtp, NOW,
                                                                     _settings(tmp_path / "no-lake"))}
    assert deliveries["no lake daily"].sent is False
    assert deliveries["no lake daily"].message.startswith("the lake cannot be read for reports: the lake at ")
    with store.open_cache_readonly(cache_path) as conn:
        assert "no lake daily" in [report.name for report in saved.due_reports(conn, NOW)]


def test_the_sidebar_choices_are_the_same_on_the_cache_and_on_the_lake(stores):
    cache_path, duck, *_ = stores
    with store.open_cache_readonly(cache_path) as conn:
        on_cache = backend.CacheBackend(conn).query("filter_choices", EventFilter())
    on_lake = duck.query("filter_choices", PERIOD)  # the choices never depend on the period
    assert set(on_lake["kind"]) == {"account", "region"}
    assert_frame_equal(on_cache, on_lake)


def test_the_choices_query_on_athena_parses_back_as_trino_and_matches_its_snapshot():
    athena = backend.LakeBackend(exp.to_table('"trailstream"."events"', dialect="trino"), "athena", lambda sql: None)
    rendered = {"filter_choices": athena.render("filter_choices", PERIOD)}
    assert isinstance(sqlglot.parse_one(rendered["filter_choices"], read="trino"), exp.Select)
    assert rendered == json.loads(SNAPSHOTS.read_text())
