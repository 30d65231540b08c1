"""The Alerts page through AppTest: Check now mails what fired, rules are edited, added and deleted, links open."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_alerts import fired
from tests.test_alerts import rules_by_key as rules
from tests.conftest import MailServer
from trailstream.notify import alerts
from trailstream.ingest import sync

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/alerts.py"
TIMEOUT = 120


@pytest.fixture(scope="session")
def recent_demo_file(tmp_path_factory) -> Path:
    """A demo cache ending an hour ago, so its planted cases are young enough to alert."""
    path = tmp_path_factory.mktemp("alerts-page") / "demo.db"
    sync.import_demo(path, events=2000, seed=3, end=datetime.now(timezone.utc) - timedelta(hours=1), workers=1)
    return path


@pytest.fixture
def demo_cache(recent_demo_file, tmp_path, monkeypatch) -> Path:
    path = tmp_path / "demo.db"
    with sqlite3.connect(recent_demo_file) as source, sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    target.close()
    monkeypatch.setenv("TRAILSTREAM_DB", str(path))
    monkeypatch.setenv("TRAILSTREAM_CONFIG", str(tmp_path / "trailstream.toml"))
    monkeypatch.chdir(ROOT)
    return path


def configure_mail(server: MailServer) -> None:
    """Write the [smtp] section the page reads (TRAILSTREAM_CONFIG points at it)."""
    import os

    Path(os.environ["TRAILSTREAM_CONFIG"]).write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\ntimeout = 10\n'
        'sender = "TrailStream <trailstream@example.com>"\nrecipients = ["secops@example.com"]\n'
    )


def open_alerts(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [exception.value for exception in at.exception]
    return at


def table(at: AppTest, column: str):
    """The first table on the page with that column (plain tables carry no key in AppTest)."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def button(at: AppTest, label: str):
    return next(item for item in at.button if item.label == label)


def test_the_page_shows_the_builtin_rules_before_anything_fired(demo_cache):
    at = open_alerts()
    assert [title.value for title in at.title] == ["Alerts"]
    assert any("Email is not configured" in warning.value for warning in at.warning)
    assert any("No alert has fired yet" in info.value for info in at.info)
    shown = table(at, "matches")
    assert set(shown["name"]) == {rule.name for rule in alerts.default_rules()}
    assert shown["enabled"].all()


def test_check_now_mails_what_fired_and_lists_it(demo_cache, mail_server):
    configure_mail(mail_server)
    at = open_alerts()
    button(at, "Check now").click().run()
    assert not at.exception
    assert any(success.value == "Checked: everything due was sent." for success in at.success)
    sent = fired(demo_cache)
    assert sent and {alert.status for alert in sent} == {"sent"}
    assert len(mail_server.inbox.envelopes) == len(sent)
    assert list(table(at, "rule_name")["id"]) == [alert.id for alert in sent]


def test_check_now_with_the_mail_server_down_shows_the_alerts_as_unsent(demo_cache):
    configure_mail(MailServer())  # nothing listens there
    at = open_alerts()
    button(at, "Check now").click().run()
    assert any("Checked, with problems" in error.value for error in at.error)
    assert any("cannot reach the mail server" in text.value for text in at.text)
    assert any("not sent yet" in warning.value for warning in at.warning)
    assert {alert.status for alert in fired(demo_cache)} == {"failed"}


def test_a_link_from_a_mail_opens_the_alert_with_its_events(demo_cache):
    alerts.run_alerts(demo_cache, {})
    alert = next(item for item in fired(demo_cache) if item.rule_name == "Elastic IP released")
    at = open_alerts(alert=str(alert.id))
    assert any(header.value == f"Events of alert {alert.id}" for header in at.subheader)
    events = table(at, "action")
    assert len(events) == alert.events and set(events["action"]) == {"ec2:ReleaseAddress"}


def test_a_builtin_rule_is_disabled_and_retargeted(demo_cache):
    at = open_alerts()
    at.selectbox(key="rule").set_value("elastic_ip_released").run()
    at.toggle(key="elastic_ip_released-enabled").set_value(False)
    at.text_input(key="elastic_ip_released-recipients").set_value("netops@example.com, oncall@example.com")
    at.selectbox(key="elastic_ip_released-severity").set_value("high")
    next(item for item in at.button if item.label == "Save rule").click().run()
    assert not at.exception
    assert any('Rule "Elastic IP released" saved.' in success.value for success in at.success)
    rule = rules(demo_cache)["elastic_ip_released"]
    assert (rule.enabled, rule.severity) == (False, "high")
    assert rule.recipients == ("netops@example.com", "oncall@example.com")


def test_bad_recipients_are_refused_with_the_reason(demo_cache):
    at = open_alerts()
    at.selectbox(key="rule").set_value("instance_terminated").run()
    at.text_input(key="instance_terminated-recipients").set_value("netops")
    next(item for item in at.button if item.label == "Save rule").click().run()
    assert any("Not saved" in error.value for error in at.error)
    assert any('"netops" is not an email address' in text.value for text in at.text)
    assert rules(demo_cache)["instance_terminated"].recipients == ()


def test_a_custom_search_rule_is_added_then_deleted(demo_cache):
    at = open_alerts()
    at.text_input(key="new-name").set_value("Refusal storm")
    at.text_input(key="new-error_code").set_value("AccessDenied")
    at.number_input(key="new-threshold").set_value(5)
    at.number_input(key="new-window").set_value(15)
    next(item for item in at.button if item.label == "Add rule").click().run()
    assert not at.exception
    added = rules(demo_cache)["Refusal storm"]
    assert (added.kind, json.loads(added.query), added.threshold, added.window_minutes) == (
        "search", {"error_code": "AccessDenied"}, 5, 15)
    at.selectbox(key="rule").set_value(f"custom-{added.id}").run()
    button(at, "Delete this rule").click().run()
    assert not at.exception
    assert "Refusal storm" not in rules(demo_cache)


def configure_channels(*urls: str) -> None:
    """Write an [alerts] section with channels (and no [smtp]) where the page reads its settings."""
    import os

    Path(os.environ["TRAILSTREAM_CONFIG"]).write_text(f"[alerts]\nchannels = {json.dumps(list(urls))}\n")


def test_the_channels_tab_shows_a_channel_down_then_delivered(demo_cache):
    from tests.test_channels import WebhookReceiver

    hook = WebhookReceiver()  # nothing listens yet
    configure_channels(hook.url())
    at = open_alerts()
    button(at, "Check now").click().run()
    assert any("Checked, with problems" in error.value for error in at.error)
    [row] = table(at, "used_by").to_dict("records")
    assert (row["channel"], row["used_by"], row["delivered"]) == (hook.url(), "every rule without its own", 0)
    assert row["waiting"] == len(fired(demo_cache)) > 0 and "did not take the alert" in row["problem"]
    hook.start()
    try:
        button(at, "Check now").click().run()
    finally:
        hook.stop()
    assert any(success.value == "Checked: everything due was sent." for success in at.success)
    [row] = table(at, "used_by").to_dict("records")
    assert (row["delivered"], row["waiting"]) == (len(fired(demo_cache)), 0)
    assert len(hook.received) == len(fired(demo_cache))


def test_a_rule_gets_its_own_channel_and_a_literal_secret_is_refused(demo_cache):
    at = open_alerts()
    at.selectbox(key="rule").set_value("elastic_ip_released").run()
    at.text_input(key="elastic_ip_released-channels").set_value("json://ops:hunter2@hooks.example.com/alerts")
    button(at, "Save rule").click().run()
    assert any("Not saved" in error.value for error in at.error)
    assert any("write each secret as ${NAME}" in text.value for text in at.text)
    assert rules(demo_cache)["elastic_ip_released"].channels == ()
    at.text_input(key="elastic_ip_released-channels").set_value("json://ops:${OPS_HOOK_PASSWORD}@hooks.example.com/a")
    button(at, "Save rule").click().run()
    assert rules(demo_cache)["elastic_ip_released"].channels == ("json://ops:${OPS_HOOK_PASSWORD}@hooks.example.com/a",)
    used = table(at, "used_by")
    assert list(used["used_by"]) == ["Elastic IP released"]


def test_without_smtp_alerts_posted_to_a_channel_are_not_shown_as_waiting_for_mail(demo_cache):
    from tests.test_channels import WebhookReceiver

    hook = WebhookReceiver().start()
    try:
        configure_channels(hook.url())
        at = open_alerts()
        button(at, "Check now").click().run()
    finally:
        hook.stop()
    assert any(success.value == "Checked: everything due was sent." for success in at.success)
    assert not any("not sent yet" in warning.value for warning in at.warning)
    assert len(hook.received) == len(fired(demo_cache)) > 0
