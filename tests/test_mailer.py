"""Email out: the [smtp] settings, the password lookup and delivery to a real SMTP server on loopback."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import MailServer, free_port
from trailstream.notify import mailer

PASSWORD = "s3cret-for-tests"
# The sign-in tests use plain-text AUTH: acceptable on loopback only, which is all tests talk to.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def accept_only_test_password(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"trailstream",
                                                                                              PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


@pytest.fixture
def auth_mail_server():
    """An SMTP server that requires sign-in as trailstream / PASSWORD (plain-text AUTH allowed on loopback)."""
    server = MailServer(authenticator=accept_only_test_password, auth_required=True, auth_require_tls=False).start()
    yield server
    server.stop()


@pytest.fixture
def no_password(monkeypatch, tmp_path):
    """Neither the environment nor a secrets.toml holds a password."""
    monkeypatch.delenv(mailer.PASSWORD_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_the_documented_smtp_section_is_read():
    smtp = mailer.smtp_settings_from({
        "host": "smtp.example.com", "port": 587, "security": "starttls", "username": "trailstream",
        "sender": "TrailStream <trailstream@example.com>", "recipients": ["secops@example.com"],
    })
    assert smtp == mailer.SmtpSettings(host="smtp.example.com", sender="TrailStream <trailstream@example.com>",
                                       port=587, security="starttls", username="trailstream",
                                       recipients=("secops@example.com",))


def test_no_host_means_mail_is_not_configured():
    assert mailer.smtp_settings_from({}) is None
    assert mailer.smtp_settings_from(None) is None


@pytest.mark.parametrize(
    "section, problem",
    [
        ({"password": "hunter2"}, "remove the password from the settings file"),
        ({"security": "ssl"}, 'security = "ssl" is not one of'),
        ({"port": "587"}, "port = '587' must be a whole number"),
        ({"sender": "nobody"}, "sender must be an email address"),
        ({"recipients": ["secops at example"]}, 'recipient "secops at example" is not an email address'),
        ({"hostname": "x"}, 'unknown setting "hostname"'),
    ],
)
def test_bad_smtp_settings_are_explained(section, problem):
    with pytest.raises(mailer.MailSettingsError) as refused:
        mailer.smtp_settings_from({"host": "smtp.example.com", "sender": "a@example.com"} | section)
    assert problem in str(refused.value)
    assert "hunter2" not in str(refused.value)  # a password written in the file is never echoed


def test_security_picks_the_usual_port():
    assert mailer.smtp_settings_from({"host": "h", "sender": "a@example.com", "security": "tls"}).port == 465
    assert mailer.smtp_settings_from({"host": "h", "sender": "a@example.com", "security": "none"}).port == 25


def test_a_message_reaches_the_server_with_text_html_and_attachment(mail_server):
    smtp = mailer.smtp_settings_from(mail_server.smtp_section())
    refused = mailer.send_mail(
        smtp, ["secops@example.com", "Oncall <oncall@example.com>"], "Weekly report", "plain body", "<p>html body</p>",
        attachments=[("report.csv", b"a,b\n1,2\n", "text/csv")],
    )
    assert refused == {}
    [envelope] = mail_server.inbox.envelopes
    assert envelope.mail_from == "trailstream@example.com"
    assert envelope.rcpt_tos == ["secops@example.com", "oncall@example.com"]
    [message] = mail_server.inbox.messages
    assert message["Subject"] == "Weekly report"
    assert message.get_body(("plain",)).get_content().strip() == "plain body"
    assert message.get_body(("html",)).get_content().strip() == "<p>html body</p>"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_content() == "a,b\n1,2\n"


def test_the_password_comes_from_the_environment(auth_mail_server, no_password, monkeypatch):
    monkeypatch.setenv(mailer.PASSWORD_ENV, PASSWORD)
    smtp = mailer.smtp_settings_from(auth_mail_server.smtp_section(username="trailstream"))
    mailer.send_mail(smtp, ["secops@example.com"], "signed in", "text", None)
    assert len(auth_mail_server.inbox.envelopes) == 1


def test_the_password_comes_from_streamlit_secrets(auth_mail_server, no_password, tmp_path):
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(f'[smtp]\npassword = "{PASSWORD}"\n')
    smtp = mailer.smtp_settings_from(auth_mail_server.smtp_section(username="trailstream"))
    mailer.send_mail(smtp, ["secops@example.com"], "signed in", "text", None)
    assert len(auth_mail_server.inbox.envelopes) == 1


def test_a_missing_password_says_where_to_put_it(auth_mail_server, no_password):
    smtp = mailer.smtp_settings_from(auth_mail_server.smtp_section(username="trailstream"))
    with pytest.raises(mailer.MailError, match=mailer.PASSWORD_ENV):
        mailer.send_mail(smtp, ["secops@example.com"], "s", "t", None)
    assert auth_mail_server.inbox.envelopes == []


def test_a_wrong_password_is_refused_without_being_shown(auth_mail_server, no_password, monkeypatch):
    monkeypatch.setenv(mailer.PASSWORD_ENV, "not-the-password")
    smtp = mailer.smtp_settings_from(auth_mail_server.smtp_section(username="trailstream"))
    with pytest.raises(mailer.MailError) as refused:
        mailer.send_mail(smtp, ["secops@example.com"], "s", "t", None)
    assert "refused the sign-in" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_nothing_listening_is_reported_as_unreachable():
    smtp = mailer.smtp_settings_from({"host": "127.0.0.1", "port": free_port(), "security": "none",
                                      "sender": "a@example.com", "timeout": 5})
    with pytest.raises(mailer.MailServerUnreachable, match=r"cannot reach the mail server 127\.0\.0\.1:\d+"):
        mailer.send_mail(smtp, ["secops@example.com"], "s", "t", None)


def test_starttls_against_a_server_without_it_is_explained(mail_server):
    smtp = mailer.smtp_settings_from(mail_server.smtp_section(security="starttls"))
    with pytest.raises(mailer.MailError, match='security = "tls" or "none"'):
        mailer.send_mail(smtp, ["secops@example.com"], "s", "t", None)


def test_no_recipient_at_all_is_refused_before_connecting():
    smtp = mailer.smtp_settings_from({"host": "127.0.0.1", "port": free_port(), "sender": "a@example.com"})
    with pytest.raises(mailer.MailError, match="no recipients"):
        mailer.send_mail(smtp, [], "s", "t", None)
