"""Alert channels through apprise, against a real webhook receiver on 127.0.0.1 (apprise's json:// URLs)."""

from __future__ import annotations

import base64
import json
import threading
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.test_alerts import END, import_records, only_rules, record, release_address, rules_by_key
from trailstream.cache import store
from trailstream.notify import alerts
from trailstream.notify.alerts import fired as alert_records


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 keeping every JSON POST; it can be started late on the same port.

    Its socket is bound to port 0 at once (the OS picks a port and keeps it for it), and listens only from start():
    until then a connection is refused, and no other server can take the port in between."""

    def __init__(self):
        received = self.received = []  # {"path", "auth", "body"}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self.serving = False

    def url(self, path: str = "hook", query: str = "") -> str:
        return f"json://127.0.0.1:{self.port}/{path}" + (f"?{query}" if query else "")

    def start(self) -> "WebhookReceiver":
        self.server.server_activate()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.serving = True
        return self

    def stop(self) -> None:
        if self.serving:
            self.server.shutdown()
            self.serving = False
        self.server.server_close()

    def messages(self, path: str = "/hook") -> list[str]:
        return [item["body"]["message"] for item in self.received if item["path"] == path]


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def released(db_path, tmp_path):
    """A cache holding one Elastic IP release an hour before END, with only that rule enabled."""
    import_records(db_path, tmp_path / "logs", [release_address(END - timedelta(hours=1))])
    only_rules(db_path, "elastic_ip_released")
    return db_path


def channel_settings(*urls: str) -> dict:
    return {"alerts": {"base_url": "https://trailstream.example.com", "channels": list(urls)}}


def set_rule(db_path, key: str, **change) -> None:
    db = store.open_cache(db_path)
    alerts.save_rule(db, replace(rules_by_key(db_path)[key], **change))
    db.close()


def deliveries(db_path) -> list[alerts.ChannelDelivery]:
    with closing(store.open_cache_readonly(db_path)) as conn:
        return alerts.query_channel_deliveries(conn)


def test_a_webhook_channel_gets_the_alert_once_and_email_is_not_required(released, receiver):
    first = alerts.run_alerts(released, channel_settings(receiver.url()), now=END)
    assert (first.fired, first.channel_sent, first.failed) == (1, 1, 0) and first.succeeded
    [message] = receiver.messages()
    assert "Elastic IP released" in message and "198.51.100.7" in message
    assert "https://trailstream.example.com/admin-alerts?alert=" in message
    again = alerts.run_alerts(released, channel_settings(receiver.url()), now=END + timedelta(minutes=5))
    assert (again.fired, again.channel_sent) == (0, 0) and len(receiver.received) == 1
    assert [item.status for item in deliveries(released)] == ["sent"]


def test_a_channel_down_then_up_delivers_each_alert_exactly_once(released, tmp_path):
    hook = WebhookReceiver()  # not started: nothing listens on its port
    down = alerts.run_alerts(released, channel_settings(hook.url()), now=END)
    assert (down.fired, down.channel_sent, down.channel_failed) == (1, 0, 1) and not down.succeeded
    assert any("did not take the alert" in error for error in down.errors)
    assert [item.status for item in deliveries(released)] == ["failed"]
    import_records(released, tmp_path / "logs", [release_address(END, user="carol")], "more")
    still = alerts.run_alerts(released, channel_settings(hook.url()), now=END + timedelta(minutes=1))
    assert (still.fired, still.channel_failed) == (1, 2)
    hook.start()
    try:
        up = alerts.run_alerts(released, channel_settings(hook.url()), now=END + timedelta(minutes=5))
        assert (up.fired, up.channel_sent, up.channel_failed) == (0, 2, 0) and up.succeeded
        again = alerts.run_alerts(released, channel_settings(hook.url()), now=END + timedelta(minutes=10))
        assert again.channel_sent == 0
    finally:
        hook.stop()
    assert len(hook.received) == 2 and sum("carol" in message for message in hook.messages()) == 1
    assert {item.status for item in deliveries(released)} == {"sent"}


def test_a_crash_after_the_channel_took_the_alert_posts_it_again_rather_than_losing_it(released, receiver,
                                                                                        monkeypatch):
    recorded = alert_records.mark_deliveries

    def crash_after_post(db, ids, channel, status, when, error=None):
        if status == "sent":
            raise KeyboardInterrupt("killed right after the channel accepted the message")
        recorded(db, ids, channel, status, when, error)

    monkeypatch.setattr(alert_records, "mark_deliveries", crash_after_post)
    with pytest.raises(KeyboardInterrupt):
        alerts.run_alerts(released, channel_settings(receiver.url()), now=END)
    assert len(receiver.received) == 1 and [item.status for item in deliveries(released)] == ["pending"]
    monkeypatch.setattr(alert_records, "mark_deliveries", recorded)
    after = alerts.run_alerts(released, channel_settings(receiver.url()), now=END)
    assert (after.fired, after.channel_sent) == (0, 1)
    assert len(receiver.received) == 2  # a duplicate, never a loss
    assert [item.status for item in deliveries(released)] == ["sent"]


def test_each_event_alerts_once_per_rule_and_channel(released, receiver, tmp_path):
    db = store.open_cache(released)
    alerts.save_rule(db, alerts.AlertRule(None, "search", "Any release", query=json.dumps({"event_name": "ReleaseAddress"})))
    db.close()
    settings = channel_settings(receiver.url("a"), receiver.url("b"))
    first = alerts.run_alerts(released, settings, now=END)
    assert (first.fired, first.channel_sent) == (2, 4)
    for path in ("/a", "/b"):
        assert sorted(message.splitlines()[2].split(" (")[0] for message in receiver.messages(path)) == [
            "Any release", "Elastic IP released"]
    import_records(released, tmp_path / "logs", [release_address(END, user="dave")], "more")
    second = alerts.run_alerts(released, settings, now=END + timedelta(minutes=5))
    assert (second.fired, second.channel_sent) == (2, 4)
    for path in ("/a", "/b"):
        newest = receiver.messages(path)[2:]
        assert len(newest) == 2 and all("dave" in message and "alice" not in message for message in newest)


def test_a_rule_with_its_own_channels_goes_only_there(released, receiver):
    set_rule(released, "elastic_ip_released", channels=(receiver.url("oncall"),))
    result = alerts.run_alerts(released, channel_settings(receiver.url("team")), now=END)
    assert result.channel_sent == 1
    assert len(receiver.messages("/oncall")) == 1 and receiver.messages("/team") == []


HOSTILE_USER = "[click](https://evil.example) <img src=x onerror=alert(1)> <!channel>"


def test_hostile_event_text_arrives_inert_in_each_format(db_path, tmp_path, receiver):
    import_records(db_path, tmp_path / "logs", [release_address(END - timedelta(hours=1), user=HOSTILE_USER)])
    only_rules(db_path, "elastic_ip_released")
    urls = [receiver.url("text"), receiver.url("markdown", "format=markdown"), receiver.url("html", "format=html")]
    assert alerts.run_alerts(db_path, channel_settings(*urls), now=END).channel_sent == 3
    [text], [markdown], [markup] = (receiver.messages(f"/{path}") for path in ("text", "markdown", "html"))
    assert HOSTILE_USER in text  # a JSON string: nothing interprets it
    assert r"\[click\]\(https://evil\.example\)" in markdown and "[click](" not in markdown
    assert "&lt;img" in markup and "<img" not in markup and "&lt;!channel&gt;" in markup
    assert all("evil" not in item["body"]["title"] for item in receiver.received)


@pytest.mark.parametrize("where", ["environment", "secrets.toml"])
def test_channel_secrets_come_from_the_environment_or_secrets_toml_and_are_never_stored(
        where, released, receiver, tmp_path, monkeypatch):
    url = f"json://trailstream:${{HOOK_PASSWORD}}@127.0.0.1:{receiver.port}/hook"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HOOK_PASSWORD", raising=False)
    missing = alerts.run_alerts(released, channel_settings(url), now=END)
    assert any("HOOK_PASSWORD not set" in error and "secrets.toml" in error for error in missing.errors)
    if where == "environment":
        monkeypatch.setenv("HOOK_PASSWORD", "kept-secret-value")
    else:
        (tmp_path / ".streamlit").mkdir()
        (tmp_path / ".streamlit" / "secrets.toml").write_text('HOOK_PASSWORD = "kept-secret-value"\n')
    assert alerts.run_alerts(released, channel_settings(url), now=END).channel_sent == 1
    assert base64.b64decode(receiver.received[0]["auth"].split()[1]) == b"trailstream:kept-secret-value"
    stored = b"".join(path.read_bytes() for path in tmp_path.glob(f"{released.name}*"))
    assert b"kept-secret-value" not in stored and b"HOOK_PASSWORD" in stored


@pytest.mark.parametrize("url, problem", [
    ("json://trailstream:hunter2@hooks.example.com/x", "write each secret as ${NAME}"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "write each secret as ${NAME}"),
    ("nonsense://hooks.example.com", "not a URL apprise knows"),
    ("slack://", "cannot be read as a Slack URL"),
])
def test_a_channel_url_with_a_literal_secret_or_unknown_service_is_refused(url, problem, released):
    rule = rules_by_key(released)["elastic_ip_released"]
    assert any(problem in text for text in alerts.check_rule(replace(rule, channels=(url,))))
    result = alerts.run_alerts(released, channel_settings(url), now=END)
    assert any(problem in error for error in result.errors) and result.channel_sent == 0
    assert "hunter2" not in " ".join(result.errors) and deliveries(released) == []


def test_secret_references_pass_the_check():
    assert alerts.check_channel("slack://${SLACK_A}/${SLACK_B}/${SLACK_C}/#alerts") is None
    assert alerts.check_channel("json://trailstream:${HOOK_PASSWORD}@hooks.example.com/x") is None


def test_a_telegram_bot_token_written_as_one_reference_passes_and_a_literal_one_is_refused():
    """apprise reads a bot token only as digits:word, so a plain stand-in for ${BOT} made the URL unreadable."""
    assert alerts.check_channel("tgram://${TELEGRAM_BOT}/${TELEGRAM_CHAT}") is None
    assert alerts.check_channel("tgram://${TELEGRAM_BOT}/-100123456") is None
    assert "holds its bot_token in the URL itself" in alerts.check_channel("tgram://123456:AAHdqTcvCH1v/${CHAT}")
    assert "cannot be read as a Telegram URL" in alerts.check_channel("tgram://not-a-token/${CHAT}")
