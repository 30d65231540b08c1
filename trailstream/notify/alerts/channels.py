"""Alert channels beside email: apprise URLs (Slack, Teams, PagerDuty, JSON webhooks, ...) and sending to them.

A channel URL keeps its secrets out of every file we write: they are written as ${NAME} and read at send time from
the environment variable NAME, else from NAME in .streamlit/secrets.toml. The cache knows a channel only by a digest
of its URL and that URL as written (secrets still as ${NAME}), so the Alerts page can show it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from urllib.parse import quote

from trailstream.notify import mailer

# apprise is imported where a channel is checked or sent to: loading it is a tenth of a second of every post-sync
# step, most of which have no channel.

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What stands for the Nth ${NAME} while apprise checks the URL's shape: a word, else a bot token's digits:word
# (Telegram's whole bot token written as one ${NAME} must look like one for apprise to read the URL).
_STAND_INS = ("TRAILSTREAMREF{0}X", "9{0}:TRAILSTREAMREF{0}X")
LABEL_LIMIT = 160


class ChannelError(RuntimeError):
    """A channel could not be reached or refused the message; the text says why and what to check."""


@dataclass(frozen=True)
class Channel:
    """One configured channel: its URL as written (secrets as ${NAME}), known in the cache by its digest."""

    url: str

    @property
    def id(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return self.url if len(self.url) <= LABEL_LIMIT else self.url[: LABEL_LIMIT - 1] + "…"


def _plugin_class(url: str):
    """The apprise service class for the URL's scheme, or None when apprise knows no such service."""
    import apprise

    schema = url.partition("://")[0].lower()
    manager = apprise.NotificationManager()
    return manager[schema] if "://" in url and schema in manager.schemas() else None


def check_channel(url) -> str | None:
    """What is wrong with a channel URL as a sentence, or None: an apprise URL with every secret as ${NAME}."""
    if not isinstance(url, str) or not url.strip():
        return f"channel {url!r} must be an apprise URL, like \"json://hooks.example.com/trailstream\""
    plugin = _plugin_class(url)
    if plugin is None:
        return (f'channel "{url}" is not a URL apprise knows; write one like "json://hooks.example.com/path" or '
                '"slack://${SLACK_TOKENS}/#alerts" (see the apprise wiki for each service)')
    import apprise

    names = REFERENCE.findall(url)
    parsed = _parse_with_stand_ins(plugin, url, names)
    if not parsed or (not names and apprise.Apprise.instantiate(url) is None):
        return f'channel "{url}" cannot be read as a {plugin.service_name} URL; check it against the apprise wiki'
    tokens = {**plugin.template_tokens, **plugin.template_args}
    literal = [name for name, spec in tokens.items() if spec.get("private")
               and _literal(parsed.get(spec.get("map_to", name)), len(names))]
    if literal:
        return (f'channel "{plugin.service_name}" holds its {", ".join(sorted(set(literal)))} in the URL itself; '
                "write each secret as ${NAME} and set NAME in the environment or in .streamlit/secrets.toml")
    return None


def _parse_with_stand_ins(plugin, url: str, names: list[str]) -> dict | None:
    """apprise's reading of the URL with each ${NAME} replaced by the first stand-in shape it accepts, or None."""
    for stand_in in _STAND_INS if names else _STAND_INS[:1]:
        masked = REFERENCE.sub(lambda match: stand_in.format(names.index(match.group(1))), url)
        parsed = plugin.parse_url(masked)
        if parsed:
            return parsed
    return None


def _literal(value, references: int) -> bool:
    """True when a secret field holds text other than the ${NAME} stand-ins."""
    if not value:
        return False
    value = str(value)
    for index in range(references):
        for stand_in in _STAND_INS[::-1]:  # the longer shape first: it contains the shorter one
            value = value.replace(stand_in.format(index), "")
    return bool(value.strip())


def parse_channels(values) -> tuple[tuple[str, ...], list[str]]:
    """A list of channel URLs from settings or a form -> the usable ones and a sentence per bad one."""
    if values in (None, ""):
        return (), []
    if isinstance(values, str):
        values = split_channels(values)
    if not isinstance(values, (list, tuple)):
        return (), ['channels must be a list of apprise URLs, like channels = ["json://hooks.example.com/path"]']
    problems = [check_channel(url) for url in values]
    return (tuple(url.strip() for url, problem in zip(values, problems) if problem is None),
            [problem for problem in problems if problem])


def split_channels(text: str) -> tuple[str, ...]:
    """Channel URLs typed in one box, separated by commas, spaces or new lines."""
    return tuple(item for item in re.split(r"[\s,]+", text or "") if item)


def resolve_channel(url: str) -> str:
    """The URL with each ${NAME} filled in from the environment or secrets.toml; ChannelError names what is missing."""
    missing = [name for name in REFERENCE.findall(url) if _secret(name) is None]
    if missing:
        raise ChannelError(f"{', '.join(missing)} not set: put it in the environment or in .streamlit/secrets.toml "
                           f"(channel {url})")
    return REFERENCE.sub(lambda match: _secret(match.group(1)), url)


def _secret(name: str) -> str | None:
    return os.environ.get(name) or mailer.read_secret(name)


def send_to_channel(channel: Channel, title: str, body: str) -> None:
    """Post one message as plain text: apprise escapes it for each service (Slack mrkdwn, Markdown, HTML)."""
    import apprise

    target = apprise.Apprise()
    if not target.add(resolve_channel(channel.url)):
        raise ChannelError(f"channel {channel.label} could not be set up from its URL; check it against the apprise "
                           "documentation for that service")
    outcome = target.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
    if not outcome:
        reasons = "; ".join(entry.message for entry in outcome.logs() if entry.message) or "no reason given"
        raise ChannelError(f"channel {channel.label} did not take the alert ({_redact(reasons, channel.url)}); it is "
                           "retried on the next run")


def _redact(text: str, url: str) -> str:
    """The text with every secret the URL refers to put back as ${NAME}, so no message or record carries it."""
    for name in REFERENCE.findall(url):
        value = _secret(name)
        if value:
            text = text.replace(value, f"${{{name}}}").replace(quote(value, safe=""), f"${{{name}}}")
    return text
