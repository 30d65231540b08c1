"""Alert delivery, exactly: the mail and channel messages, the channel URL checks, secrets filled in and redacted.
Written to kill mutmut's mutants (README, "Mutation testing"); webhooks go to a real receiver on 127.0.0.1."""

import hashlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.test_channels import WebhookReceiver
from trailstream.notify.alerts import channels, mail
from trailstream.notify.alerts.fired import FiredAlert

BASE = "https://ts.example/"
LINES = [{"time": "2026-11-01T09:00:00Z", "principal": "<img src=x>", "action": "iam:CreateUser", "resource": "",
          "source_ip": "203.0.113.9", "account": "1", "region": "us-east-1"},
         {"time": "t2", "principal": "bob & co", "action": "a", "resource": "r", "source_ip": "ip", "account": "2",
          "region": "eu"}]
SECTION_TEXT = ("Root use (high): 2 calls <b>by</b> mallory\nFired at 2026-11-01T10:00:00Z; 5 event(s):\n"
                "  - 2026-11-01T09:00:00Z | <img src=x> | iam:CreateUser | - | 203.0.113.9 | 1 | us-east-1\n"
                "  - t2 | bob & co | a | r | ip | 2 | eu\n  ... and 3 more on the Alerts page\n"
                "Open in TrailStream: https://ts.example/admin-alerts?alert=7\n")


def fired(alert_id=7, severity="high", name="Root use", events=5, summary="2 calls <b>by</b> mallory") -> FiredAlert:
    return FiredAlert(alert_id, 1, name, severity, "immediate", ("a@example.com",), summary, events,
                      "2026-11-01T10:00:00Z", "pending")


def html_row(cells, tag="td") -> str:
    return "<tr>" + "".join(f'<{tag} style="text-align:left;padding:2px 6px">{cell}</{tag}>' for cell in cells) + "</tr>"


def test_one_alert_mails_exactly_this_subject_text_and_escaped_html():
    subject, text, markup = mail.compose_mail([fired()], {7: LINES}, BASE)
    assert subject == "[TrailStream] HIGH: Root use: 2 calls <b>by</b> mallory"
    assert text == f"TrailStream alert (high)\n\n{SECTION_TEXT}\nAll alerts: https://ts.example/admin-alerts"
    table = ('<table style="border-collapse:collapse;font-size:13px">'
             + html_row(["Time", "Principal", "Action", "Resource", "Source IP", "Account", "Region"], "th")
             + html_row(["2026-11-01T09:00:00Z", "&lt;img src=x&gt;", "iam:CreateUser", "", "203.0.113.9", "1",
                         "us-east-1"])
             + html_row(["t2", "bob &amp; co", "a", "r", "ip", "2", "eu"]) + "</table>")
    assert markup == ('<html><body style="font-family: sans-serif"><h2>TrailStream alert (high)</h2>\n'
                      "<h3>Root use (high)</h3><p>2 calls &lt;b&gt;by&lt;/b&gt; mallory</p>"
                      f"<p>Fired at 2026-11-01T10:00:00Z; 5 event(s).</p>{table}"
                      "<p>... and 3 more on the Alerts page.</p>"
                      '<p><a href="https://ts.example/admin-alerts?alert=7">Open in TrailStream</a></p>\n'
                      '<p><a href="https://ts.example/admin-alerts">All alerts in TrailStream</a></p></body></html>')


def test_hostile_rule_text_is_escaped_in_the_mail_markup():
    _, _, markup = mail.compose_mail([fired(name="<script>x</script>", severity="<i>")], {}, BASE)
    assert "<script>" not in markup and "<i>" not in markup
    assert "<h3>&lt;script&gt;x&lt;/script&gt; (&lt;i&gt;)</h3>" in markup


def test_a_digest_counts_its_alerts_per_severity_most_severe_first():
    alerts = [fired(7, "low", "A", 2), fired(8, "high", "B", 0), fired(9, "low", "C", 1)]
    subject, text, markup = mail.compose_mail(alerts, {7: LINES}, BASE)
    assert subject == "[TrailStream] Digest: 3 alerts (1 high, 2 low)"
    assert text.startswith("TrailStream digest: 3 alerts (1 high, 2 low)\n\nA (low): ")
    assert "Fired at 2026-11-01T10:00:00Z; 0 event(s):\nOpen in TrailStream: https://ts.example/admin-alerts?alert=8" in text
    assert "  ... and 1 more on the Alerts page\nOpen in TrailStream: https://ts.example/admin-alerts?alert=9" in text
    assert "more on the Alerts page\nOpen in TrailStream: https://ts.example/admin-alerts?alert=7" not in text
    assert markup.count("more on the Alerts page.") == 1
    assert markup.startswith('<html><body style="font-family: sans-serif"><h2>TrailStream digest: 3 alerts (1 high, 2 low)</h2>')


def test_a_channel_message_has_the_admins_words_in_the_title_and_the_events_in_the_body():
    title, body = mail.compose_channel_message([fired()], {7: LINES}, BASE)
    assert title == "[TrailStream] HIGH: Root use"
    assert body == f"TrailStream alert (high)\n\n{SECTION_TEXT}\nAll alerts: https://ts.example/admin-alerts"
    title, body = mail.compose_channel_message([fired(7, "high", "A", 2), fired(8, "low", "B", 0)], {}, BASE)
    assert title == "[TrailStream] Digest: 2 alerts"
    assert body.startswith("TrailStream digest: 2 alerts (1 high, 1 low)\n\nA (high)")


def test_subjects_are_one_line_of_at_most_200_characters():
    subject, _, _ = mail.compose_mail([fired(summary="line\none\t" + "x" * 300)], {}, BASE)
    assert subject == ("[TrailStream] HIGH: Root use: line one " + "x" * 300)[:199] + "…" and len(subject) == 200
    fits = "y" * (200 - len("[TrailStream] HIGH: Root use: "))
    assert mail.compose_mail([fired(summary=fits)], {}, BASE)[0] == "[TrailStream] HIGH: Root use: " + fits


def test_links_point_at_the_alerts_page_and_at_one_alert():
    assert mail.alert_link("https://ts.example//") == "https://ts.example/admin-alerts"
    assert mail.alert_link("https://ts.example", 0) == "https://ts.example/admin-alerts?alert=0"


@pytest.mark.parametrize(("url", "problem"), [
    (None, "channel None must be an apprise URL, like \"json://hooks.example.com/trailstream\""),
    ("  ", "channel '  ' must be an apprise URL, like \"json://hooks.example.com/trailstream\""),
    ("json", 'channel "json" is not a URL apprise knows; write one like "json://hooks.example.com/path" or '
             '"slack://${SLACK_TOKENS}/#alerts" (see the apprise wiki for each service)'),
    ("JSON://hooks.example.com:notaport/x", 'channel "JSON://hooks.example.com:notaport/x" cannot be read as a JSON '
                                           'URL; check it against the apprise wiki'),
    ("json://user:${A}x@hooks.example.com/x", 'channel "JSON" holds its password in the URL itself; write each secret '
                                              'as ${NAME} and set NAME in the environment or in .streamlit/secrets.toml'),
])
def test_each_bad_channel_url_is_refused_with_its_sentence(url, problem):
    assert channels.check_channel(url) == problem


def test_secrets_written_as_references_pass_even_several_in_one_field():
    assert channels.check_channel("json://user:${A}${B}@hooks.example.com/x") is None
    assert channels.check_channel("JSON://hooks.example.com/x") is None


def test_channel_lists_from_settings_or_a_form():
    good = "json://hooks.example.com/a"
    assert channels.parse_channels(None) == ((), [])
    assert channels.parse_channels("") == ((), [])
    assert channels.parse_channels(f"{good}, json://hooks.example.com/b\n") == (
        (good, "json://hooks.example.com/b"), [])
    assert channels.parse_channels(7) == (
        (), ['channels must be a list of apprise URLs, like channels = ["json://hooks.example.com/path"]'])
    usable, problems = channels.parse_channels([good + " ", "nonsense://x"])
    assert usable == (good,) and len(problems) == 1 and problems[0].startswith('channel "nonsense://x" is not')
    assert channels.split_channels(None) == () and channels.split_channels(" a,,b\n\tc ") == ("a", "b", "c")


def test_a_channel_is_known_by_a_digest_of_its_url_and_labelled_by_it_up_to_160_characters():
    assert channels.Channel("json://x").id == hashlib.sha256(b"json://x").hexdigest()[:16]
    assert channels.Channel("json://x").id != channels.Channel("json://y").id
    long = "json://h/" + "p" * 200
    assert channels.Channel(long).label == long[:159] + "…"
    fits = "json://h/" + "p" * 151
    assert channels.Channel(fits).label == fits


def test_missing_secrets_are_named_and_present_ones_filled_in(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("TS_A", "TS_B", "TS_C"):
        monkeypatch.delenv(name, raising=False)
    url = "json://u:${TS_A}@h/${TS_B}/${TS_C}"
    with pytest.raises(channels.ChannelError) as missing:
        channels.resolve_channel(url)
    assert str(missing.value) == ("TS_A, TS_B, TS_C not set: put it in the environment or in .streamlit/secrets.toml "
                                  f"(channel {url})")
    monkeypatch.setenv("TS_A", "pw")
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('TS_B = "from-file"\nTS_C = "c"\n')
    monkeypatch.setenv("TS_C", "env-wins")
    assert channels.resolve_channel(url) == "json://u:pw@h/from-file/env-wins"


def test_a_secret_is_put_back_as_its_reference_in_any_reason_kept(monkeypatch):
    monkeypatch.setenv("TS_PW", "p w/1")
    monkeypatch.delenv("TS_UNSET", raising=False)
    text = channels._redact("sent p w/1 and p%20w%2F1 to h", "json://u:${TS_PW}@h/${TS_UNSET}")
    assert text == "sent ${TS_PW} and ${TS_PW} to h"


def test_a_channel_gets_the_title_and_body_as_plain_text():
    receiver = WebhookReceiver().start()
    try:
        channels.send_to_channel(channels.Channel(receiver.url()), "T <b>", "body *x*")
        (item,) = receiver.received
        assert (item["body"]["title"], item["body"]["message"], item["body"]["type"]) == ("T <b>", "body *x*", "info")
    finally:
        receiver.stop()


def test_a_channel_that_refuses_says_which_and_keeps_its_secret_out(monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: a connection is refused
        port = closed.getsockname()[1]
        monkeypatch.setenv("TS_HOOK_PW", "hunter2-secret")
        channel = channels.Channel(f"json://u:${{TS_HOOK_PW}}@127.0.0.1:{port}/hook")
        with pytest.raises(channels.ChannelError) as refused:
            channels.send_to_channel(channel, "t", "b")
    message = str(refused.value)
    assert message.startswith(f"channel {channel.label} did not take the alert (")
    assert message.endswith("); it is retried on the next run") and "hunter2-secret" not in message
    assert "Connection error" in message  # apprise's own reason, not "no reason given"


def test_a_channel_url_apprise_cannot_set_up_says_so(monkeypatch):
    monkeypatch.setenv("TS_BAD", "/")  # "json:///": no host
    channel = channels.Channel("json://${TS_BAD}")
    with pytest.raises(channels.ChannelError) as refused:
        channels.send_to_channel(channel, "t", "b")
    assert str(refused.value) == ("channel json://${TS_BAD} could not be set up from its URL; check it against the "
                                  "apprise documentation for that service")


def test_only_slashes_are_trimmed_from_the_app_address():
    assert mail.alert_link("https://ts.example/APPX/", 3) == "https://ts.example/APPX/admin-alerts?alert=3"


def test_a_long_rule_name_gives_a_channel_title_of_200_characters():
    title, _ = mail.compose_channel_message([fired(name="r" * 300)], {}, BASE)
    assert title == ("[TrailStream] HIGH: " + "r" * 300)[:199] + "…"


def test_an_alert_whose_events_are_all_listed_says_nothing_more():
    _, text, markup = mail.compose_mail([fired(events=2)], {7: LINES}, BASE)
    assert "more on the Alerts page" not in text
    assert '</table><p><a href="https://ts.example/admin-alerts?alert=7">Open in TrailStream</a></p>' in markup


def test_channel_checks_read_the_scheme_before_the_first_separator_and_keep_references_in_place():
    assert channels.check_channel("json://hooks.example.com/x?next=a://b") is None
    assert channels.check_channel("slack://${SLACK_A}/${SLACK_B}/${SLACK_C}/#alerts") is None
    assert channels.check_channel("json://u:${A}@hooks.example.com:notaport/x") == (
        'channel "json://u:${A}@hooks.example.com:notaport/x" cannot be read as a JSON URL; check it against the '
        "apprise wiki")


def test_literal_secrets_are_named_field_by_field_and_an_unreadable_url_without_references_is_refused():
    assert channels.check_channel("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ") == (
        'channel "Slack" holds its token_a, token_b, token_c in the URL itself; write each secret as ${NAME} and set '
        "NAME in the environment or in .streamlit/secrets.toml")
    assert channels.check_channel("slack://") == (
        'channel "slack://" cannot be read as a Slack URL; check it against the apprise wiki')


def test_the_body_is_sent_as_text_so_a_markup_channel_escapes_it():
    receiver = WebhookReceiver().start()
    try:
        channels.send_to_channel(channels.Channel(receiver.url("html", "format=html")), "t", "<img src=x> & co")
        (item,) = receiver.received
        assert item["body"]["message"] == "&lt;img&nbsp;src=x&gt;&nbsp;&amp;&nbsp;co"
    finally:
        receiver.stop()


def test_a_literal_secret_is_found_under_the_name_apprise_stores_it_and_a_reference_may_stand_for_the_host():
    assert channels.check_channel("clicksend://user:literalkey@5551234567") == (
        'channel "ClickSend" holds its apikey in the URL itself; write each secret as ${NAME} and set NAME in the '
        "environment or in .streamlit/secrets.toml")
    assert channels.check_channel("clicksend://user:${CS_KEY}@5551234567") is None
    assert channels.check_channel("json://${HOOK_HOST}/x") is None


def test_literal_secrets_after_a_reference_are_named_by_their_own_fields():
    """The reference keeps its place while apprise parses, so the literal tokens after it are not shifted onto the
    field before them."""
    assert channels.check_channel("slack://${SLACK_A}/B1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts") == (
        'channel "Slack" holds its token_b, token_c in the URL itself; write each secret as ${NAME} and set NAME in '
        "the environment or in .streamlit/secrets.toml")


@pytest.fixture
def refusing_receiver():
    """A real HTTP server on 127.0.0.1 that answers every POST with 500."""
    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_every_reason_apprise_logs_for_a_refusal_is_kept_in_order(refusing_receiver):
    channel = channels.Channel(f"json://127.0.0.1:{refusing_receiver}/hook?retry=1&wait=0")
    with pytest.raises(channels.ChannelError) as refused:
        channels.send_to_channel(channel, "t", "b")
    failed = "Failed to send JSON POST notification: Internal server error., error=500."
    assert str(refused.value) == (f"channel {channel.label} did not take the alert ({failed}; Attempt 1/2 for 'JSON' "
                                  f"failed; trying again.; {failed}); it is retried on the next run")


@pytest.fixture
def quiet_apprise():
    """apprise's logger turned down, as a host's logging set-up may do: a refusal then carries no reason at all."""
    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def test_a_refusal_without_any_reason_says_none_was_given(refusing_receiver, quiet_apprise):
    channel = channels.Channel(f"json://127.0.0.1:{refusing_receiver}/hook")
    with pytest.raises(channels.ChannelError) as refused:
        channels.send_to_channel(channel, "t", "b")
    assert str(refused.value) == (f"channel {channel.label} did not take the alert (no reason given); it is retried "
                                  "on the next run")
