"""Email out of TrailStream: the [smtp] settings, the password lookup, and sending.

The password never lives in the settings file, the cache or a log: it is read at send time from the environment
variable TRAILSTREAM_SMTP_PASSWORD, else from `[smtp] password` in .streamlit/secrets.toml (read, never written).
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tomllib
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from pathlib import Path
from typing import NamedTuple

PASSWORD_ENV = "TRAILSTREAM_SMTP_PASSWORD"
SECURITY_MODES = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
SMTP_KEYS = ("host", "port", "security", "username", "sender", "recipients", "timeout")
DEFAULT_TIMEOUT = 30.0


class MailSettingsError(ValueError):
    """The [smtp] section cannot be used; `problems` lists each thing to fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("[smtp] settings: " + "; ".join(problems))


class MailError(RuntimeError):
    """A message could not be delivered to the mail server; the text says why and what to check."""


class MailServerUnreachable(MailError):
    """No conversation with the mail server at all (down, refusing, TLS failed): later sends would fail too."""


class Attachment(NamedTuple):
    filename: str
    data: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class SmtpSettings:
    """Where mail goes and who it comes from; the password is deliberately not a field."""

    host: str
    sender: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    recipients: tuple[str, ...] = field(default_factory=tuple)
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"


def smtp_settings_from(section: dict | None) -> SmtpSettings | None:
    """The raw [smtp] table -> SmtpSettings; None when mail is not configured (no host). Raises MailSettingsError."""
    section = dict(section or {})
    if not section.get("host"):
        return None
    problems = []
    if "password" in section:
        problems.append("remove the password from the settings file: put it in the environment variable "
                        f"{PASSWORD_ENV} or as [smtp] password in .streamlit/secrets.toml")
    problems.extend(f'unknown setting "{key}" (known: {", ".join(SMTP_KEYS)})'
                    for key in section if key not in SMTP_KEYS and key != "password")
    security = section.get("security", "starttls")
    if security not in SECURITY_MODES:
        problems.append(f'security = "{security}" is not one of {", ".join(SECURITY_MODES)}')
        security = "starttls"
    port = section.get("port", DEFAULT_PORTS[security])
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append(f"port = {port!r} must be a whole number between 1 and 65535, like port = 587")
    sender = section.get("sender", "")
    if not isinstance(sender, str) or not parse_addresses(sender):
        problems.append('sender must be an email address, like sender = "TrailStream <trailstream@example.com>"')
    recipients = section.get("recipients", [])
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not all(isinstance(item, str) for item in recipients):
        problems.append('recipients must be a list of addresses, like recipients = ["secops@example.com"]')
        recipients = []
    bad = [item for item in recipients if not parse_addresses(item)]
    problems.extend(f'recipient "{item}" is not an email address' for item in bad)
    timeout = section.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        problems.append(f"timeout = {timeout!r} must be a number of seconds, like timeout = 30")
    if problems:
        raise MailSettingsError(problems)
    return SmtpSettings(
        host=str(section["host"]).strip(),
        sender=sender.strip(),
        port=port,
        security=security,
        username=str(section.get("username", "")).strip(),
        recipients=tuple(item.strip() for item in recipients),
        timeout=float(timeout),
    )


def parse_addresses(text: str) -> list[str]:
    """The bare addresses in 'Name <a@b>, c@d' (empty when none looks like an address)."""
    return [address for _, address in getaddresses([text]) if "@" in address and " " not in address]


def secrets_paths() -> list[Path]:
    """Where Streamlit looks for secrets.toml: the working folder first, then the home folder."""
    return [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def smtp_password(paths: list[Path] | None = None) -> str | None:
    """The SMTP password from TRAILSTREAM_SMTP_PASSWORD, else [smtp] password in secrets.toml; None if neither."""
    return os.environ.get(PASSWORD_ENV) or read_secret("password", "smtp", paths)


def read_secret(name: str, section: str | None = None, paths: list[Path] | None = None) -> str | None:
    """A text value from .streamlit/secrets.toml (top level, or in [section]); read only, never written."""
    for path in paths if paths is not None else secrets_paths():
        try:
            with path.open("rb") as handle:
                secrets = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError):
            continue
        table = secrets.get(section) if section else secrets
        value = table.get(name) if isinstance(table, dict) else None
        if isinstance(value, str) and value:
            return value
    return None


def build_message(smtp: SmtpSettings, recipients, subject: str, text: str, html: str | None,
                  attachments=()) -> EmailMessage:
    """A multipart message: plain text, then HTML as the alternative, then any attachments."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = smtp.sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = make_msgid(domain=_sender_domain(smtp.sender))
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        attachment = Attachment(*item)
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=attachment.filename)
    return message


def _sender_domain(sender: str) -> str | None:
    addresses = parse_addresses(sender)
    return Address(addr_spec=addresses[0]).domain if addresses else None


def send_mail(smtp: SmtpSettings, recipients, subject: str, text: str, html: str | None = None,
              attachments=()) -> dict[str, tuple[int, bytes]]:
    """Deliver one message to the mail server; returns the recipients it refused. Raises MailError for people."""
    recipients = [address for item in recipients for address in parse_addresses(item)]
    if not recipients:
        raise MailError("no recipients: add addresses to [smtp] recipients (or to the alert rule or report)")
    message = build_message(smtp, recipients, subject, text, html, attachments)
    where = smtp.describe()
    try:
        with _connect(smtp) as client:
            if smtp.username:
                password = smtp_password()
                if password is None:
                    raise MailError(f"[smtp] username is {smtp.username!r} but no password was found: set "
                                    f"{PASSWORD_ENV} or [smtp] password in .streamlit/secrets.toml")
                client.login(smtp.username, password)
            return client.send_message(message, from_addr=parse_addresses(smtp.sender)[0], to_addrs=recipients)
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"{where} refused the sign-in as {smtp.username!r} ({_reply(exc)}); check [smtp] username "
                        f"and the password in {PASSWORD_ENV} or .streamlit/secrets.toml") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(f"{where} does not support what was asked ({exc}); try security = \"tls\" or \"none\", "
                        "or remove username if the server takes mail without sign-in") from None
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(f"{address} ({_reply(reply)})" for address, reply in exc.recipients.items())
        raise MailError(f"{where} refused every recipient: {refused}; check the addresses") from None
    except smtplib.SMTPSenderRefused as exc:
        raise MailError(f"{where} refused the sender {smtp.sender!r} ({_reply(exc)}); check [smtp] sender") from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"{where} refused the message ({_reply(exc)}); check the server's limits and its log") from None
    except ssl.SSLError as exc:
        raise MailServerUnreachable(f"TLS with {where} failed ({exc.reason or exc}); check [smtp] security and "
                                    "port (starttls is usually 587, tls 465)") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise MailServerUnreachable(f"cannot reach the mail server {where}: {reason}; check [smtp] host and port "
                                    "and that the server is up") from None


def _connect(smtp: SmtpSettings) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if smtp.security == "tls":
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    if smtp.security == "starttls":
        try:
            client.starttls(context=context)
        except BaseException:
            client.close()
            raise
    return client


def _reply(exc) -> str:
    """'550 mailbox unavailable' from an SMTP exception or a (code, message) reply."""
    code, message = (exc.smtp_code, exc.smtp_error) if hasattr(exc, "smtp_code") else exc
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()
