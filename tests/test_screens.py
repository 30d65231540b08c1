"""Screens that answer at a glance (issue 18's leftovers): Sync history's delivery lag and quiet pairs, Alerts' readable
history, and the standing notes kept out of the way of every page title."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from tests.conftest import open_page
from trailstream import config, jobs
from trailstream.analytics import queries, transforms
from trailstream.cache import bookkeeping
from trailstream.filters import EventFilter
from trailstream.ingest import sync

DEMO_END = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)  # a fixed end: the demo's rhythm, not the wall clock
DEMO_WINDOW = timedelta(minutes=5)  # the demo delivers a file per account and region every five minutes


def table_with(at, column: str) -> pd.DataFrame:
    """The page's dataframe that has `column`."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def health_of(path, now: datetime = DEMO_END + timedelta(hours=1)) -> object:
    with sqlite3.connect(path) as conn:
        return transforms.ingestion_health(bookkeeping.query_delivery_health(conn),
                                           queries.query_account_region_counts(conn, EventFilter(), True), now=now)


def test_sync_history_delivery_lag_is_the_wait_for_delivery_not_the_silence(app_demo_cache):
    at = open_page("pages/sync_history.py")
    health = table_with(at, "delivery_lag")
    assert (health["delivery_lag"] <= DEMO_WINDOW).all() and (health["delivery_lag_p95"] <= DEMO_WINDOW).all()
    assert (health["silent_for"] > DEMO_WINDOW).any()  # sparse pairs are silent for days, yet delivered in minutes
    assert not (health["account_id"] == "unknown").any()


def test_the_demo_flags_only_truly_quiet_pairs_and_every_busy_one_once_its_trail_stops(tmp_path):
    sync.import_demo(tmp_path / "demo.db", 3000, seed=11, end=DEMO_END, workers=1)
    health = health_of(tmp_path / "demo.db")
    assert health.height == 12 and health["quiet"].sum() <= 2  # not 8 of 12 quiet an hour after the last event
    busiest = health.sort("events", descending=True).head(3)
    assert not busiest["quiet"].any() and (busiest["delivery_lag"] <= DEMO_WINDOW).all()
    a_week_later = health_of(tmp_path / "demo.db", now=DEMO_END + timedelta(days=7))
    assert a_week_later.sort("events", descending=True).head(3)["quiet"].all()


def test_real_samples_list_each_account_and_region_and_judge_none_quiet_without_trail_files(corpus, tmp_path):
    sync.import_paths(tmp_path / "corpus.db", [corpus / "events"], workers=1)
    health = health_of(tmp_path / "corpus.db")
    with sqlite3.connect(tmp_path / "corpus.db") as conn:
        pairs = conn.execute("SELECT count(*) FROM (SELECT DISTINCT account_id, aws_region FROM events)").fetchone()[0]
    assert health.height == pairs and "unknown" not in health["account_id"].to_list()
    assert health["quiet"].null_count() == health.height  # no file named by a trail: no rhythm to judge


def test_sync_history_on_real_samples_shows_no_column_that_is_empty_on_every_row(corpus, tmp_path, monkeypatch):
    from tests.conftest import point_app_at

    sync.import_paths(tmp_path / "corpus.db", [corpus / "events"], workers=1)
    point_app_at(monkeypatch, tmp_path / "corpus.db", tmp_path / "trailstream.toml")
    health = table_with(open_page("pages/sync_history.py", range="all"), "silent_for")
    assert "unknown" not in set(health["account_id"]) and not [c for c in health if health[c].isna().all()]


SHOWN_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$")  # widgets.time_label, as every page shows times


def headers_and_rows(frame) -> tuple[list[str], object]:
    """The headers a dataframe shows for its ordered columns (raw names when no label), and its rows."""
    labels = json.loads(frame.proto.columns or "{}")
    shown = list(frame.proto.column_order) or list(frame.value.columns)
    return [labels.get(column, {}).get("label", column) for column in shown], frame.value


def test_alerts_say_a_missing_email_once_with_readable_headers_and_times(app_demo_cache, tmp_path):
    (tmp_path / "trailstream.toml").write_text("")
    jobs.after_sync(str(app_demo_cache), config.load_settings(tmp_path / "trailstream.toml"))
    at = open_page("pages/alerts.py", alert="1")  # a linked alert opens its events too
    said = [element.value.replace("\\", "").lower() for element in (*at.warning, *at.text, *at.caption, *at.info)]
    assert sum("email is not configured" in value for value in said) == 1
    frames = [headers_and_rows(frame) for frame in at.dataframe]
    assert len(frames) >= 3  # history, the linked alert's events, the rules
    for headers, rows in frames:
        assert not [h for h in headers if "_" in h or h != h.strip() or h[:1].islower()], headers
    history = next(rows for headers, rows in frames if "Fired" in headers)
    events = next(rows for headers, rows in frames if "Action" in headers)
    assert history["fired_at"].str.match(SHOWN_TIME.pattern).all() and events["time"].str.match(SHOWN_TIME.pattern).all()
    assert not history["error"].fillna("").str.contains("smtp").any()  # the sentence is said once, at the top


@pytest.mark.parametrize("page", ["pages/elastic_ips.py", "pages/network.py", "pages/instances.py", "pages/iam.py",
                                  "pages/access_denied.py"])
def test_change_tables_name_their_columns_in_words_with_ip_and_id_spelled_out(app_demo_cache, page):
    at = open_page(page, range="all")
    headers = [header for frame in at.dataframe for header in headers_and_rows(frame)[0]]
    raw = [h for h in headers if "_" in h or re.search(r"\b([Ii]ps?|[Ii]ds?|[Aa]rn|[Aa]pi)\b", h)]  # "Api", "Group id"
    assert headers and not raw, raw


def test_the_account_region_heatmap_stays_readable_on_many_accounts_and_keeps_every_event():
    import polars as pl

    from trailstream.analytics import charts

    many = pl.DataFrame({"account_id": [f"{n:012d}" for n in range(45)], "aws_region": [f"r-{n % 38}" for n in range(45)],
                         "events": list(range(1, 46)), "failed": [0] * 45})
    [rows] = charts.account_region_chart(many).to_dict()["datasets"].values()
    accounts, regions = {row["account_id"] for row in rows}, {row["aws_region"] for row in rows}
    assert len(accounts) == charts.HEATMAP_ACCOUNTS + 1 and len(regions) == charts.HEATMAP_REGIONS + 1
    assert "other" in accounts and sum(row["events"] for row in rows) == sum(range(1, 46))


def test_integrity_on_samples_without_digests_says_why_nothing_can_be_checked(corpus, tmp_path, monkeypatch):
    from tests.conftest import point_app_at

    sync.import_paths(tmp_path / "corpus.db", [corpus / "events"], workers=1)
    point_app_at(monkeypatch, tmp_path / "corpus.db", tmp_path / "trailstream.toml")
    at = open_page("pages/integrity.py", range="all")
    said = " ".join(info.value for info in at.info)
    assert "No CloudTrail digest covers this period" in said and "log file validation" in said
    assert "No digests or log files" not in said  # 133 events from 16 files are there: only their digests are not


def test_who_did_it_gets_a_wide_column_so_role_sessions_are_not_cut(app_demo_cache):
    at = open_page("pages/instances.py", range="all")
    changes = next(frame for frame in at.dataframe if "principal" in frame.value.columns)
    assert json.loads(changes.proto.columns)["principal"]["width"] == "large"


def test_refused_calls_are_drawn_in_the_failure_red_every_page_uses(app_demo_cache):
    from trailstream.analytics import charts

    at = open_page("pages/access_denied.py", range="all")
    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    [by_principal] = [spec for spec in specs if spec.get("title") == "Refused calls by principal"]
    assert by_principal["mark"]["color"] == charts.FAILURE_RED
