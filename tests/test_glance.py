"""Pages answer at a glance (issue 18), through AppTest: an empty period says why and offers the wider one, findings
come most severe first with coloured badges, and event text stays inert in the places it is shown."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import metric, open_page, point_app_at
from tests.test_alerts_page import demo_cache, recent_demo_file  # noqa: F401  (the Alerts page's recent demo cache)
from trailstream.ingest import sync
from trailstream.timefmt import iso_utc

HOSTILE_PRINCIPAL = "www.evil.example"


def _record(n: int, when: datetime, name: str = "CreateUser", user: str = "alice", error: str | None = None) -> dict:
    return {
        "eventVersion": "1.08", "eventTime": iso_utc(when), "eventSource": "iam.amazonaws.com",
        "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2",
        "eventID": f"00000000-0000-0000-0000-{n:012d}", "readOnly": False, "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012", "errorCode": error,
        "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "123456789012",
                         "arn": f"arn:aws:iam::123456789012:user/{user}"},
        "requestParameters": {"userName": f"user{n}"},
    }


def _cache_of(tmp_path: Path, monkeypatch, records: list[dict]) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.json").write_text(json.dumps({"Records": records}))
    cache = tmp_path / "cache.db"
    sync.import_paths(cache, [logs], workers=1)
    point_app_at(monkeypatch, cache, tmp_path / "trailstream.toml")
    return cache


@pytest.fixture
def stale_cache(tmp_path, monkeypatch) -> Path:
    """Events all 15 days old, so the default 7-day period is empty while the cache is not."""
    old = datetime.now(timezone.utc) - timedelta(days=15, hours=2)
    return _cache_of(tmp_path, monkeypatch, [_record(n, old + timedelta(minutes=n)) for n in range(5)])


def _infos(at) -> str:
    return " ".join(info.value for info in at.info)


def test_an_empty_period_names_the_newest_events_age_and_widens_on_one_click(stale_cache):
    at = open_page("pages/overview.py")
    assert "the newest event is 15 days old" in _infos(at)
    assert "account and region" not in _infos(at)  # the period emptied the page, not the choices
    [widen] = [button for button in at.button if button.label == "Show 30 days"]
    widen.click().run()
    assert not at.exception and metric(at, "Events") == 5


def test_security_overview_shows_no_all_clear_over_an_empty_period(stale_cache):
    at = open_page("pages/security_overview.py")
    assert not at.success, [s.value for s in at.success]
    assert "the newest event is 15 days old" in _infos(at)


def test_a_search_that_matches_nothing_blames_the_search_not_the_period(stale_cache):
    at = open_page("pages/search.py", range="all", event="NoSuchCall")
    assert "match the search" in _infos(at) and "days old" not in _infos(at)


def test_findings_come_most_severe_first_with_coloured_badges(app_demo_cache):
    at = open_page("pages/security_overview.py", range="all")
    labels = [expander.label for expander in at.expander if "-badge[" in expander.label]
    assert labels, "findings with severity badges"
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    ranks = [next(i for i, word in enumerate(order) if f"-badge[{word}]" in label) for label in labels]
    assert ranks == sorted(ranks) and ":red-badge[CRITICAL]" in labels[0]


def test_change_tables_show_who_did_it_first_and_hide_empty_columns(app_demo_cache):
    at = open_page("pages/elastic_ips.py", range="all")
    changes = at.dataframe(key="eip-changes").value
    assert list(changes.columns[:3]) == ["event_time", "principal", "event_name"]
    assert "private_ip" not in changes.columns  # empty on every demo row
    assert changes["public_ip"].notna().mean() > 0.8  # calls naming only the allocation show its address too
    [history] = [d.value for d in at.dataframe if "history" in d.value.columns]
    assert history["public_ip"].is_unique and "ReleaseAddress" in " ".join(history["history"])


def test_security_group_rules_show_group_direction_protocol_ports_and_peer(app_demo_cache):
    at = open_page("pages/network.py", range="all")
    rules = at.dataframe(key="sg-rules").value
    assert list(rules.columns[:8]) == ["event_time", "principal", "action", "group_id", "direction", "protocol",
                                       "port_range", "peer"]


def test_instances_page_counts_launches_starts_stops_and_terminations(app_demo_cache):
    at = open_page("pages/instances.py", range="all")
    from tests.test_app import sql

    assert metric(at, "Terminated") == sql(app_demo_cache, "SELECT count(*) FROM events WHERE event_name = "
                                                           "'TerminateInstances' AND error_code IS NULL")
    assert metric(at, "Launched") > 0


def test_search_opens_on_the_newest_events(app_demo_cache):
    at = open_page("pages/search.py", range="all")
    recent = at.dataframe(key="recent-events").value
    assert len(recent) == 100 and recent["event_time"].is_monotonic_decreasing


def test_a_capped_search_says_showing_n_of_m_and_counts_them_all(app_demo_cache, monkeypatch):
    from tests.test_app import sql
    from trailstream.app import forms

    monkeypatch.setattr(forms, "SEARCH_LIMIT", 20)
    at = open_page("pages/search.py", range="all", event="GetObject")
    total = sql(app_demo_cache, "SELECT count(*) FROM events WHERE event_name = 'GetObject'")
    assert total > 20 and metric(at, "Events") == total
    assert any(f"Showing the newest 20 of {total:,} matches" in caption.value for caption in at.caption)
    before = len(at.get("download_button"))
    at.toggle(key="search-all").set_value(True).run()
    assert len(at.get("download_button")) > before  # the whole result, downloadable


def test_resource_history_opens_on_recently_changed_resources_and_picks_one(app_demo_cache):
    at = open_page("pages/resource.py", range="all")
    recent = at.dataframe(key="recent-resources").value
    assert {"resource", "last_call", "principal"} <= set(recent.columns) and len(recent) > 5
    assert recent["last_changed"].is_monotonic_decreasing
    assert any(r.startswith("i-") for r in recent["resource"]) and any(r.startswith("sg-") for r in recent["resource"])
    at.session_state["recent-resources"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and recent["resource"][0] in [text.value for text in at.text]
    assert metric(at, "Events") > 0
    assert any("First seen 20" in caption.value for caption in at.caption)  # whole dates, not a cut tile
    spec = json.loads(next(c for c in at.get("vega_lite_chart")
                           if "Calls on this resource" in c.proto.spec).proto.spec)
    assert spec["encoding"]["y"]["field"] == "event_name" and "%Y" in spec["encoding"]["x"]["axis"]["labelExpr"]


def test_fired_alerts_read_as_times_people_read(demo_cache, mail_server):
    from tests.test_alerts_page import button, configure_mail, open_alerts, table

    configure_mail(mail_server)
    at = open_alerts()
    button(at, "Check now").click().run()
    fired_at = table(at, "rule_name")["fired_at"]
    assert len(fired_at) and fired_at.str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").all()  # not ISO
    [history] = [frame for frame in at.dataframe if "rule_name" in frame.value.columns]
    assert '"Rule"' in str(history.proto.columns)  # headers, not column names


def test_sign_ins_shows_no_green_check_over_a_period_without_sign_ins(stale_cache):
    at = open_page("pages/sign_ins.py")
    assert not at.success, [s.value for s in at.success]
    assert "the newest event is 15 days old" in _infos(at)


@pytest.fixture
def hostile_cache(tmp_path, monkeypatch) -> Path:
    """Recent events whose principals are link-like: a host name, a URL and an email address."""
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    users = ("www.evil.example", "http://evil.example/login", "mallory@evil.example")
    return _cache_of(tmp_path, monkeypatch, [_record(n, now + timedelta(minutes=n), user=user, error="AccessDenied")
                                             for n, user in enumerate(users * 4)])


def _markdown_texts(at) -> list[str]:
    """Everything on the page that Streamlit renders as markdown (where a bare host or address would autolink)."""
    elements = [*at.markdown, *at.caption, *at.info, *at.warning, *at.success, *at.error, *at.subheader, *at.title]
    return [element.value for element in elements] + [expander.label for expander in at.expander]


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/access_denied.py", "pages/search.py"])
def test_a_selected_row_with_link_like_text_stays_inert(hostile_cache, page):
    at = open_page(page, range="all")
    [table] = [frame for frame in at.dataframe if "principal" in frame.value.columns and frame.key]
    at.session_state[table.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and at.json, "the selected row's raw record, as JSON"
    assert "evil.example" in at.json[0].value
    assert not [text for text in _markdown_texts(at) if "evil.example" in text or "evil@" in text]
    principal = json.loads(table.proto.columns)["principal"]
    assert principal.get("type_config", {}).get("type") != "link"


def test_a_capped_resource_history_says_showing_n_of_m(app_demo_cache, monkeypatch):
    from tests.test_app import sql
    from trailstream.analytics import queries

    group = sql(app_demo_cache, "SELECT json_extract(request_parameters, '$.groupId') FROM events "
                                "WHERE event_name = 'AuthorizeSecurityGroupIngress' LIMIT 1")
    monkeypatch.setattr(queries, "DEFAULT_ROW_LIMIT", 1)
    monkeypatch.setattr(queries.query_resource_history, "__defaults__", (1,))
    at = open_page("pages/resource.py", range="all", resource_id=group)
    total = metric(at, "Events")
    assert total > 1 and any(f"Showing the newest 1 of {total:,} events" in c.value for c in at.caption)
