"""Saved searches and reports: stored by name, run for their period, written as files that open, emailed on schedule."""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from tests.conftest import MailServer
from trailstream import cli
from trailstream.notify import mailer, reports, saved
from trailstream.analytics import sqlguard
from trailstream.cache import store
from trailstream.ingest import sync
from trailstream.timefmt import iso_utc
from trailstream.analytics.queries import SearchQuery
from trailstream.notify.saved import SavedSearch, SavedSearchError

HOSTILE_IP = "203.0.113.66"
ERRORS_SQL = ("SELECT event_source, error_code, count(*) AS calls FROM events "
              "WHERE error_code IS NOT NULL AND event_time >= :start AND event_time < :end GROUP BY 1, 2")


@pytest.fixture(scope="module")
def report_cache(demo_cache, tmp_path_factory):  # noqa: F811
    """The demo cache plus one event whose every text field is hostile markup, imported from a log file."""
    folder = tmp_path_factory.mktemp("hostile-logs")
    record = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": "<script>alert('user')</script>",
                         "arn": "arn:aws:iam::123456789012:user/evil", "accountId": "123456789012"},
        "eventTime": iso_utc(datetime.now(timezone.utc) - timedelta(hours=1)),
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser",
        "awsRegion": "us-east-1",
        "sourceIPAddress": HOSTILE_IP,
        "userAgent": "<img src=x onerror=alert('agent')>",
        "requestParameters": {"userName": "</td></tr><script>alert('cell')</script>"},
        "responseElements": None,
        "eventID": str(uuid.uuid4()),
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012",
    }
    (folder / "hostile.json").write_text(json.dumps({"Records": [record]}))
    result = sync.import_paths(demo_cache, [folder])
    assert result.new_events == 1
    return demo_cache


def test_saved_searches_round_trip_by_name(db_path):
    search = SavedSearch("  Console sign-ins ", "search", search=SearchQuery(event_name="ConsoleLogin", read_only=False),
                         event_filter=saved.filter_from_dict({"accounts": ["123456789012"], "include_read_only": False}),
                         period="24h", format="parquet", schedule="weekly", recipients=("secops@example.com",))
    query = SavedSearch("Errors", "sql", sql=ERRORS_SQL, chart={"x": "event_source", "y": "calls", "color": None,
                                                               "kind": "bar"})
    saved.save_search(db_path, search)
    saved.save_search(db_path, query)
    assert saved.load_saved_searches(db_path) == [replace(search, name="Console sign-ins"), query]


def test_saving_under_an_existing_name_replaces_it(db_path):
    saved.save_search(db_path, SavedSearch("mine", "sql", sql="SELECT 1"))
    saved.save_search(db_path, SavedSearch("mine", "sql", sql="SELECT 2", format="csv"))
    (only,) = saved.load_saved_searches(db_path)
    assert only.sql == "SELECT 2" and only.is_report


@pytest.mark.parametrize("bad, reason", [
    (SavedSearch(" ", "sql", sql="SELECT 1"), "name"),
    (SavedSearch("x" * 101, "sql", sql="SELECT 1"), "shorten"),
    (SavedSearch("empty", "sql", sql="  "), "empty"),
    (SavedSearch("period", "sql", sql="SELECT 1", period="fortnight"), "period"),
    (SavedSearch("format", "sql", sql="SELECT 1", format="xlsx"), "format"),
    (SavedSearch("schedule", "sql", sql="SELECT 1", schedule="daily"), "only a report"),
    (SavedSearch("mail", "sql", sql="SELECT 1", format="csv", schedule="daily", recipients=("nobody",)), "email"),
])
def test_saved_searches_that_cannot_work_are_refused(db_path, bad, reason):
    with pytest.raises(SavedSearchError, match=reason):
        saved.save_search(db_path, bad)
    assert not db_path.exists() or saved.load_saved_searches(db_path) == []


def test_a_search_runs_for_its_period_from_now(report_cache):
    now = datetime.now(timezone.utc)
    day_ago = iso_utc(now - timedelta(hours=24))
    conn = store.open_cache_readonly(report_cache)
    # the demo ends now, so whichever name is newest has events in the last 24 hours, and maybe older ones too
    (name,) = conn.execute("SELECT event_name FROM events ORDER BY event_time DESC LIMIT 1").fetchone()
    (recent,) = conn.execute("SELECT count(*) FROM events WHERE event_name = ? AND event_time >= ?",
                             [name, day_ago]).fetchone()
    conn.close()
    search = SavedSearch("recent", "search", search=SearchQuery(event_name=name), period="24h")
    frame = reports.run_saved(report_cache, search, now).frame
    assert frame.height == recent > 0
    assert set(frame["event_name"]) == {name}
    assert frame["event_time"].min() >= now - timedelta(hours=24)


def test_sql_reports_get_start_and_end_for_their_period(report_cache):
    week = reports.run_saved(report_cache, SavedSearch("errors", "sql", sql=ERRORS_SQL, period="7d")).frame
    ever = reports.run_saved(report_cache, SavedSearch("errors", "sql", sql=ERRORS_SQL, period="all")).frame
    assert 0 < week["calls"].sum() <= ever["calls"].sum()


def test_csv_report_parses_with_every_row(report_cache, tmp_path):
    saved.save_search(report_cache, SavedSearch("errors csv", "sql", sql=ERRORS_SQL, period="all", format="csv"))
    path = reports.write_report(report_cache, "errors csv", tmp_path / "errors.csv")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    expected = reports.run_saved(report_cache, SavedSearch("errors", "sql", sql=ERRORS_SQL, period="all")).frame
    assert len(rows) == expected.height > 0
    assert sum(int(row["calls"]) for row in rows) == expected["calls"].sum()


def test_parquet_report_reads_back_with_polars(report_cache, tmp_path):
    search = SavedSearch("iam parquet", "search", search=SearchQuery(event_source="iam.amazonaws.com"), period="all",
                         format="parquet")
    saved.save_search(report_cache, search)
    path = reports.write_report(report_cache, "iam parquet", tmp_path)
    assert path.parent == tmp_path and path.suffix == ".parquet"
    frame = pl.read_parquet(path)
    assert frame.equals(reports.run_saved(report_cache, search).frame)


def test_html_report_embeds_the_chart_svg_and_escapes_hostile_content(report_cache, tmp_path):
    sql = f"SELECT principal, user_agent, request_parameters FROM events WHERE source_ip = '{HOSTILE_IP}'"
    name = "<b>evil</b> & <script>alert('name')</script>"
    saved.save_search(report_cache, SavedSearch(name, "sql", sql=sql, period="all", format="html",
                                                chart={"x": "principal", "y": None, "color": "user_agent"}))
    html = reports.write_report(report_cache, name, tmp_path / "report.html").read_text()
    assert "<svg" in html and "</svg>" in html
    assert "<script" not in html.lower() and "<img" not in html.lower() and "<b>evil" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(" in html
    assert "Content-Security-Policy" in html


def test_html_report_of_a_search_charts_events_per_day(report_cache):
    search = SavedSearch("sign-ins", "search", search=SearchQuery(event_name="ConsoleLogin"), period="7d", format="html")
    report = reports.render_report(report_cache, search)
    assert report.mime_type == "text/html" and report.file_name.endswith(".html")
    assert b"<svg" in report.data and b"ConsoleLogin" in report.data


def test_output_suffix_chooses_the_format(report_cache, tmp_path):
    saved.save_search(report_cache, SavedSearch("errors any", "sql", sql=ERRORS_SQL, period="all", format="csv"))
    path = reports.write_report(report_cache, "errors any", tmp_path / "errors.parquet")
    assert pl.read_parquet(path).height > 0


def test_unknown_report_names_list_the_saved_ones(report_cache):
    saved.save_search(report_cache, SavedSearch("known one", "sql", sql="SELECT 1", format="csv"))
    with pytest.raises(reports.ReportError, match="known one"):
        reports.write_report(report_cache, "no such report")


def test_a_refused_saved_query_is_a_report_error(report_cache):
    saved.save_search(report_cache, SavedSearch("sneaky", "sql", sql="DELETE FROM events", format="csv"))
    with pytest.raises(reports.ReportError, match="could not run"):
        reports.write_report(report_cache, "sneaky")


NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)  # a Wednesday


@pytest.mark.parametrize("schedule, last_sent, due", [
    ("daily", None, True),
    ("daily", "2026-11-24T23:59:00Z", True),
    ("daily", "2026-11-25T00:01:00Z", False),
    ("weekly", "2026-11-23T08:00:00Z", False),  # Monday of the same ISO week
    ("weekly", "2026-11-22T23:00:00Z", True),  # Sunday of the week before
    (None, None, False),
])
def test_scheduled_reports_are_due_once_per_day_or_week(schedule, last_sent, due):
    report = SavedSearch("r", "sql", sql="SELECT 1", format="csv", schedule=schedule, last_sent_at=last_sent)
    assert saved.is_due(report, NOW) is due


def smtp_settings(server: MailServer) -> mailer.SmtpSettings:
    return mailer.smtp_settings_from(server.smtp_section())


def test_due_reports_are_emailed_with_the_file_and_then_not_again(report_cache, mail_server):  # noqa: F811
    saved.save_search(report_cache, SavedSearch("weekly errors", "sql", sql=ERRORS_SQL, period="7d", format="csv",
                                                schedule="weekly", recipients=("boss@example.com",)))
    now = datetime.now(timezone.utc)
    deliveries = [d for d in reports.send_scheduled_reports(report_cache, smtp_settings(mail_server), now)
                  if d.name == "weekly errors"]
    assert [d.sent for d in deliveries] == [True]
    (message,) = [m for m in mail_server.inbox.messages if "weekly errors" in m["Subject"]]
    assert message["To"] == "boss@example.com"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename().endswith(".csv")
    assert "event_source,error_code,calls" in attachment.get_content()
    again = reports.send_scheduled_reports(report_cache, smtp_settings(mail_server), now)
    assert "weekly errors" not in [d.name for d in again]


def test_a_report_that_cannot_be_mailed_stays_due(report_cache):
    saved.save_search(report_cache, SavedSearch("daily errors", "sql", sql=ERRORS_SQL, format="csv", schedule="daily"))
    unreachable = MailServer()  # never started: nothing listens on its port
    deliveries = {d.name: d for d in reports.send_scheduled_reports(report_cache, smtp_settings(unreachable))}
    assert deliveries["daily errors"].sent is False
    assert "cannot reach the mail server" in deliveries["daily errors"].message
    conn = store.open_cache_readonly(report_cache)
    try:
        assert "daily errors" in [report.name for report in saved.due_reports(conn)]
    finally:
        conn.close()


def test_cli_report_writes_the_file(report_cache, tmp_path, capsys):
    saved.save_search(report_cache, SavedSearch("cli report", "sql", sql=ERRORS_SQL, period="all", format="html"))
    target = tmp_path / "cli.html"
    assert cli.main(["--db", str(report_cache), "report", "cli report", "--output", str(target)]) == 0
    assert "<svg" in target.read_text()
    assert str(target) in capsys.readouterr().out


def test_cli_query_prints_csv_and_refuses_writes(report_cache, capsys):
    assert cli.main(["--db", str(report_cache), "query", "SELECT count(*) AS n FROM events", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "n" and int(out.splitlines()[1]) > 0
    count = sqlguard.run_query(report_cache, "SELECT count(*) FROM events").frame.item()
    assert cli.main(["--db", str(report_cache), "query", "DELETE FROM events"]) != 0
    captured = capsys.readouterr()
    assert "refused" in captured.err and "Traceback" not in captured.err
    assert sqlguard.run_query(report_cache, "SELECT count(*) FROM events").frame.item() == count


def test_description_says_period_format_and_schedule():
    report = SavedSearch("Root use", "sql", sql="SELECT 1", period="7d", format="html", schedule="daily")
    assert report.describe() == "SQL query, last 7d, HTML, daily to the [smtp] recipients"


def test_a_missing_cache_is_a_report_error_and_is_not_created(tmp_path):
    missing = tmp_path / "nothing.db"
    with pytest.raises(reports.ReportError, match="no cache"):
        reports.write_report(missing, "anything")
    assert not missing.exists()
