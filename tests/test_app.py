"""The app through Streamlit's AppTest: every page renders on a demo cache and on an empty one, with the numbers
the cache holds; first run, Sync, the URL filters, the raw-event viewer and the error states."""

from __future__ import annotations

import ast
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import tomlkit
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, metric, open_page, page_specs, point_app_at
from tests.test_derived import with_role_grain
from trailstream import catalog, config
from trailstream.cache import store
from trailstream.ingest import sync
from trailstream.notify import saved

PAGES = [path for _section, path, _title in page_specs()]
ADMIN_PAGES = {path for section, path, _title in page_specs() if section == "Admin"}


ROLE_GRAIN = "role_grain(principal, user_type)"  # principals as people think of them: a role's sessions are the role


def sql(cache: Path, query: str, *params):
    with sqlite3.connect(cache) as conn:
        return with_role_grain(conn).execute(query, params).fetchone()[0]


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def chart_data(at: AppTest, title: str) -> pl.DataFrame:
    """The rows a chart was given, found by its title (Streamlit ships them as Arrow beside the spec)."""
    chart = next(chart for chart in charts(at) if json.loads(chart.proto.spec).get("title") == title)
    [dataset] = chart.proto.datasets
    return pl.from_arrow(pa.ipc.open_stream(dataset.data.data).read_all())


FAILED = "error_code IS NOT NULL AND error_code != ''"
PAIRS = "SELECT count(*) FROM (SELECT DISTINCT account_id, aws_region FROM events)"


def in_names(names) -> str:
    return f"event_name IN ({', '.join(repr(name) for name in names)})"


def expected_numbers(page: str, cache: Path) -> dict[str, int]:
    """Headline numbers each page must show on the demo cache with the period 'all', counted directly in SQL."""
    if page == "pages/overview.py":
        return {"Events": sql(cache, "SELECT count(*) FROM events"),
                "Failed calls": sql(cache, f"SELECT count(*) FROM events WHERE {FAILED}"),
                "Principals": sql(cache, f"SELECT count(DISTINCT {ROLE_GRAIN}) FROM events"),
                "Accounts": sql(cache, "SELECT count(DISTINCT account_id) FROM events")}
    use_case = {"pages/network.py": "network", "pages/instances.py": "instances",
                "pages/elastic_ips.py": "elastic_ips", "pages/iam.py": "iam"}.get(page)
    if use_case:
        names = in_names(catalog.USE_CASES[use_case].event_names)
        return {"Events": sql(cache, f"SELECT count(*) FROM events WHERE {names}"),
                "Failed calls": sql(cache, f"SELECT count(*) FROM events WHERE {names} AND {FAILED}"),
                "Principals": sql(cache, f"SELECT count(DISTINCT principal) FROM events WHERE {names}")}
    if page == "pages/rare_errors.py":
        return {"Failed calls": sql(cache, f"SELECT count(*) FROM events WHERE {FAILED}"),
                "Distinct errors": sql(cache, "SELECT count(*) FROM (SELECT DISTINCT event_source, event_name, "
                                              f"error_code FROM events WHERE {FAILED})")}
    if page == "pages/sync_history.py":
        return {"Events": sql(cache, "SELECT count(*) FROM events"),
                "Sync runs": sql(cache, "SELECT count(*) FROM sync_runs")}
    return {}


def page_query(page: str, cache: Path) -> dict:
    """What an investigate page needs in its URL to show something: a busy principal, an event name, a resource."""
    if page == "pages/principal.py":
        return {"principal": sql(cache, f"SELECT {ROLE_GRAIN} FROM events GROUP BY 1 ORDER BY count(*) DESC")}
    if page == "pages/search.py":
        return {"event": "RunInstances"}
    if page == "pages/resource.py":
        return {"resource_id": sql(cache, "SELECT json_extract(request_parameters, '$.groupId') FROM events "
                                          "WHERE event_name = 'AuthorizeSecurityGroupIngress' LIMIT 1")}
    return {}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_the_demo_cache(page, app_demo_cache):
    query = page_query(page, app_demo_cache)
    at = open_page(page, range="all", **query)

    expected = expected_numbers(page, app_demo_cache)
    if expected.get("Events", expected.get("Failed calls")) == 0:  # nothing of this kind in the demo data
        assert any("match the filters" in info.value for info in at.info)
        return
    for label, value in expected.items():
        assert metric(at, label) == value, label
    if page in ("pages/overview.py", "pages/network.py", "pages/instances.py", "pages/elastic_ips.py",
                "pages/iam.py", "pages/rare_errors.py", "pages/principal.py", "pages/resource.py"):
        assert charts(at), "a timeline chart"
        assert at.dataframe, "a table"
    if page == "pages/principal.py":
        assert metric(at, "Events") == sql(app_demo_cache, f"SELECT count(*) FROM events WHERE {ROLE_GRAIN} = ?",
                                           query["principal"])
    if page == "pages/search.py":
        assert metric(at, "Events") == sql(app_demo_cache,
                                           "SELECT count(*) FROM events WHERE event_name = 'RunInstances'")
    if page == "pages/resource.py":
        assert metric(at, "Events") == sql(
            app_demo_cache, "SELECT count(*) FROM events WHERE instr(resources, ?1) OR instr(request_parameters, ?1) "
                        "OR instr(response_elements, ?1)", query["resource_id"])
    assert any("Demo data" in info.value for info in at.info), "the demo banner"


@pytest.mark.parametrize("page", PAGES)
def test_pages_are_widgets_and_calls_without_sql_polars_or_aws(page):
    tree = ast.parse((ROOT / page).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"sqlite3", "sqlite_utils", "polars", "boto3", "botocore"}, page
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) in ("execute", "executemany", "open_cache", "open_cache_readonly")]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_explains_an_empty_cache(page, app_empty_cache):
    at = open_page(page, range="all")
    assert at.title, "the page still has its title"
    if page not in ADMIN_PAGES:  # admin pages work on an empty cache; the others say how to fill it
        assert any("no events yet" in info.value for info in at.info), [info.value for info in at.info]
    assert not any("Demo data" in info.value for info in at.info)


def test_overview_shows_the_share_of_failed_calls_and_events_by_account_and_region(app_demo_cache):
    at = open_page(PAGES[0], range="all")
    share = chart_data(at, "Failed calls")
    assert dict(share.iter_rows()) == {
        "succeeded": sql(app_demo_cache, f"SELECT count(*) FROM events WHERE NOT ({FAILED})"),
        "failed": sql(app_demo_cache, f"SELECT count(*) FROM events WHERE {FAILED}")}
    places = chart_data(at, "Events by account and region")
    assert places.height == sql(app_demo_cache, PAIRS)
    assert places["events"].sum() == sql(app_demo_cache, "SELECT count(*) FROM events")


def test_a_chart_with_too_many_rows_draws_the_busiest_and_says_so(app_demo_cache, monkeypatch):
    monkeypatch.setattr("trailstream.app.widgets.CHART_LIMIT", 2)
    pairs = sql(app_demo_cache, PAIRS)
    at = open_page(PAGES[0], range="all")
    busiest = sql(app_demo_cache, "SELECT count(*) FROM events GROUP BY account_id, aws_region ORDER BY 1 DESC")
    places = chart_data(at, "Events by account and region")
    assert places.height == 2 and places["events"].max() == busiest
    assert any(f"busiest 2 of {pairs:,} account and region pairs" in caption.value for caption in at.caption)


def test_a_long_table_shows_its_first_rows_says_so_and_offers_the_whole(app_demo_cache, monkeypatch):
    monkeypatch.setattr("trailstream.app.widgets.TABLE_LIMIT", 50)
    at = open_page(PAGES[0], range="all")
    table = next(frame for frame in at.dataframe if frame.key == "overview-events")
    assert table.value.shape[0] == 50
    assert any("Showing the first 50 of 1,000 rows" in caption.value for caption in at.caption)
    assert {button.key for button in at.get("download_button")} >= {
        "table-overview-events-CSV", "table-overview-events-JSON", "table-overview-events-PARQUET"}


def test_a_use_case_page_with_more_events_than_it_reads_says_how_many_there_are(app_demo_cache, monkeypatch):
    monkeypatch.setattr("trailstream.app.widgets.USE_CASE_LIMIT", 5)
    at = open_page("pages/network.py", range="all")
    names = in_names(catalog.USE_CASES["network"].event_names)
    total = sql(app_demo_cache, f"SELECT count(*) FROM events WHERE {names}")
    assert total > 5
    assert any(f"The newest 5 of {total:,} Network" in caption.value for caption in at.caption), \
        [caption.value for caption in at.caption]
    assert metric(at, "Events") == 5


def test_selecting_a_row_shows_its_raw_record(app_demo_cache):
    at = open_page(PAGES[0], range="all")
    table = next(frame for frame in at.dataframe if frame.key == "overview-events")
    at.session_state["overview-events"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    newest = sql(app_demo_cache, "SELECT event_id FROM events ORDER BY event_time DESC LIMIT 1")
    assert table.value.shape[0] > 0
    assert at.json, "the raw event"
    shown = at.json[0].value
    assert store.load_record(store.open_cache_readonly(app_demo_cache), newest)["eventID"] in shown


def test_filters_come_from_the_url(app_demo_cache):
    account = sql(app_demo_cache, "SELECT account_id FROM events GROUP BY account_id ORDER BY count(*) LIMIT 1")
    at = open_page(PAGES[0], range="all", account=[account], read_only="false")
    assert metric(at, "Events") == sql(
        app_demo_cache, "SELECT count(*) FROM events WHERE account_id = ? AND COALESCE(read_only, 0) = 0", account)
    assert at.multiselect(key="account").value == [account]


def test_a_filter_with_no_match_says_what_to_do(app_demo_cache):
    at = open_page(PAGES[0], **{"range": "custom", "from": "2014-01-01", "to": "2014-01-02"})
    assert at.date_input(key="from").value.isoformat() == "2014-01-01"
    assert metric(at, "Events") == 0
    assert any("No events match the filters" in info.value for info in at.info)


def test_first_run_builds_demo_data_and_says_so(tmp_path, monkeypatch):
    cache = tmp_path / "trailstream.db"
    point_app_at(monkeypatch, cache, tmp_path / "trailstream.toml")
    monkeypatch.setattr("trailstream.app.state.DEMO_EVENTS", 500)
    at = open_page(PAGES[0], range="all")
    assert cache.exists()
    assert metric(at, "Events") == sql(cache, "SELECT count(*) FROM events") > 0
    assert any("Demo data" in info.value for info in at.info)


def press_sync_with(source: config.LocalSource) -> AppTest:
    """Configure one source, open the overview and press the sidebar's Sync."""
    settings = config.load_settings()
    settings.sources = [source]
    config.save_settings(settings)
    at = open_page(PAGES[0], range="all")
    next(button for button in at.button if button.label == "Sync").click().run()
    assert not at.exception
    return at


def test_sync_button_imports_the_configured_folder(app_empty_cache, corpus):
    at = press_sync_with(config.LocalSource(name="exported logs", path=str(corpus / "events")))
    stored = sql(app_empty_cache, "SELECT count(*) FROM events")
    assert stored > 0
    assert any(f"{stored:,} new event(s)" in box.value for box in at.success), [box.value for box in at.success]
    assert metric(at, "Events") == stored


def test_a_failed_sync_shows_the_reason(app_empty_cache, tmp_path):
    at = press_sync_with(config.LocalSource(name="typo", path=str(tmp_path / "no-such-folder")))
    assert any("1 failure(s)" in box.value for box in at.error)
    assert any("no such file or folder" in text.value for text in at.text)


def test_sync_button_runs_the_alert_rules_and_mails_what_fired(app_empty_cache, tmp_path, mail_server):
    logs = tmp_path / "logs"
    logs.mkdir()
    moment = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stop_logging = {
        "eventVersion": "1.08", "eventTime": moment, "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging", "awsRegion": "eu-west-1", "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0", "eventID": "6c1f2d8e-0000-4000-8000-000000000001", "readOnly": False,
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
        "userIdentity": {"type": "IAMUser", "userName": "mallory", "accountId": "123456789012",
                         "arn": "arn:aws:iam::123456789012:user/mallory", "principalId": "AIDAEXAMPLE"},
        "requestParameters": {"name": "arn:aws:cloudtrail:eu-west-1:123456789012:trail/org-trail"},
    }
    (logs / "tampering.json").write_text(json.dumps({"Records": [stop_logging]}))
    config_file = tmp_path / "trailstream.toml"
    config_file.write_text(tomlkit.dumps({"smtp": mail_server.smtp_section()}))

    at = press_sync_with(config.LocalSource(name="exported logs", path=str(logs)))

    assert any("1 new event(s)" in box.value for box in at.success)
    assert any("Alerts and reports checked" in box.value for box in at.success), [box.value for box in at.success]
    mailed = mail_server.inbox.messages
    assert [message["Subject"] for message in mailed] == [
        "[TrailStream] HIGH: CloudTrail logging stopped, deleted or narrowed: mallory called StopLogging on trail "
        "arn:aws:cloudtrail:eu-west-1:123456789012:trail/org-trail."]
    assert mailed[0]["To"] == "secops@example.com"
    assert "mallory | cloudtrail:StopLogging" in mailed[0].get_body(("plain",)).get_content()


def test_an_unreadable_cache_is_explained(tmp_path, monkeypatch):
    cache = tmp_path / "trailstream.db"
    cache.write_bytes(b"this is not a database" * 100)
    point_app_at(monkeypatch, cache, tmp_path / "trailstream.toml")
    at = open_page(PAGES[0])
    assert any("cannot be read" in error.value for error in at.error)


def test_a_broken_settings_file_is_explained_on_sources(app_empty_cache, tmp_path):
    (tmp_path / "trailstream.toml").write_text("[[sources]]\nkind = 'sqs'\nname = 'q'\n")
    at = open_page("pages/sources.py")
    assert any("settings file has problems" in error.value for error in at.error)
    assert any('needs "queue"' in text.value for text in at.text)


def test_adding_a_source_writes_the_settings_file(app_empty_cache, tmp_path):
    at = open_page("pages/sources.py")
    at.button_group(key="new-kind").set_value("local").run()
    at.text_input(key="new-local-name").set_value("exports")
    at.text_input(key="new-local-path").set_value("/var/log/cloudtrail")
    next(button for button in at.button if button.label == "Save source").click().run()
    assert not at.exception
    assert config.load_settings().sources == [config.LocalSource(name="exports", path="/var/log/cloudtrail")]


HOSTILE_NAME = "**bold** [link](http://evil.example) <img src=x onerror=alert(1)>"


def test_event_content_is_shown_as_data_never_as_markup(tmp_path, monkeypatch):
    record = {
        "eventVersion": "1.08", "eventTime": "2026-01-05T10:00:00Z", "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9",
        "userAgent": HOSTILE_NAME, "eventID": "11111111-2222-3333-4444-555555555555", "readOnly": False,
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012", "errorCode": "AccessDenied",
        "errorMessage": HOSTILE_NAME,
        "userIdentity": {"type": "IAMUser", "userName": HOSTILE_NAME, "accountId": "123456789012",
                         "arn": "arn:aws:iam::123456789012:user/x"},
        "requestParameters": {"userName": HOSTILE_NAME},
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "hostile.json").write_text(json.dumps({"Records": [record]}))
    cache = tmp_path / "cache.db"
    sync.import_paths(cache, [logs], workers=1)
    point_app_at(monkeypatch, cache, tmp_path / "trailstream.toml")

    for page, query in (("pages/overview.py", {}), ("pages/principal.py", {"principal": HOSTILE_NAME}),
                        ("pages/rare_errors.py", {}), ("pages/search.py", {"q": "evil.example"})):
        at = open_page(page, range="all", **query)
        rendered_as_markdown = [element.value for element in (*at.markdown, *at.caption, *at.info, *at.warning,
                                                              *at.error, *at.success, *at.subheader, *at.title)]
        assert not any("evil.example" in text for text in rendered_as_markdown), page
        assert at.dataframe, page
        if page in ("pages/principal.py", "pages/search.py"):
            assert metric(at, "Events") == 1, page


def test_test_connection_names_the_missing_queue(app_empty_cache, aws):
    import boto3

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="org-trail")
    settings = config.load_settings()
    settings.sources = [config.SqsSource(name="prod", queue="no-such-queue", buckets=["org-trail"], region="us-east-1")]
    config.save_settings(settings)
    at = open_page("pages/sources.py")
    at.button(key="test-prod").click().run()
    assert not at.exception
    assert any("Connection failed" in error.value for error in at.error)
    assert any("no-such-queue" in text.value and "not found" in text.value for text in at.text), \
        [text.value for text in at.text]

    boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="no-such-queue")
    at.button(key="test-prod").click().run()
    assert any("Connection OK" in box.value for box in at.success)


def test_a_search_saved_on_the_search_page_appears_among_saved_searches(app_demo_cache):
    at = open_page("pages/search.py", **page_query("pages/search.py", app_demo_cache))
    form_name = next(widget for widget in at.text_input if widget.label == "Name")
    form_name.input("Instances launched")
    next(button for button in at.button if button.label == "Save").click().run()
    assert not at.exception and not at.error
    assert saved.query_saved_searches(store.open_cache_readonly(app_demo_cache))[0].name == "Instances launched"
    assert "saved=" in at.code[-1].value
