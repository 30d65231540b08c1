"""The [alerts] settings (app address, max age, digest pace, channels), intervals, and where mail goes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from trailstream.notify import mailer
from trailstream.notify.alerts import channels as alert_channels

DEFAULT_BASE_URL = "http://localhost:8501"
DEFAULT_MAX_AGE = "7d"
DEFAULT_DIGEST_EVERY = "24h"
ALERTS_KEYS = ("base_url", "max_age", "digest_every", "channels")
NOT_CONFIGURED = "email is not configured"


@dataclass(frozen=True)
class AlertSettings:
    """The [alerts] section: the app's address for links, how old an event may be to alert, the digest pace, and
    the channels every rule without its own sends to."""

    base_url: str = DEFAULT_BASE_URL
    max_age: timedelta = timedelta(days=7)
    digest_every: timedelta = timedelta(hours=24)
    channels: tuple[str, ...] = ()


def section(settings, name: str) -> dict:
    """One section of the settings file, from a config.Settings or a plain dict (tests, scripts)."""
    if settings is None:
        return {}
    if hasattr(settings, "section"):
        return settings.section(name)
    return dict(settings.get(name) or {})


def alert_settings_from(values: dict | None) -> tuple[AlertSettings, list[str]]:
    """The raw [alerts] table -> AlertSettings (defaults where a value is bad) and a sentence per thing to fix."""
    values = dict(values or {})
    problems = [f'unknown setting "{key}" in [alerts] (known: {", ".join(ALERTS_KEYS)})'
                for key in values if key not in ALERTS_KEYS]
    intervals = {}
    for key, default in (("max_age", DEFAULT_MAX_AGE), ("digest_every", DEFAULT_DIGEST_EVERY)):
        try:
            intervals[key] = parse_interval(str(values.get(key, default)))
        except ValueError as exc:
            problems.append(f"[alerts] {key}: {exc}")
            intervals[key] = parse_interval(default)
    base_url = str(values.get("base_url", DEFAULT_BASE_URL)).strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", base_url):
        problems.append(f'[alerts] base_url = "{base_url}" must be the app\'s address, '
                        'like "https://trailstream.example.com"')
        base_url = DEFAULT_BASE_URL
    channels, channel_problems = alert_channels.parse_channels(values.get("channels"))
    problems.extend(f"[alerts] {problem}" for problem in channel_problems)
    return AlertSettings(base_url=base_url, channels=channels, **intervals), problems


_INTERVAL = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_interval(text: str) -> timedelta:
    """'30s', '5m', '1h', '7d' or a sum like '1h30m' -> timedelta; ValueError saying how to write it."""
    compact = text.strip().lower().replace(" ", "")
    parts = _INTERVAL.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not an interval; write a number and a unit (s, m, h or d), "
                         "like 30s, 5m, 1h or 7d")
    interval = sum((timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta())
    if interval <= timedelta(0):
        raise ValueError(f"{text!r} is zero; give an interval longer than that, like 5m")
    return interval


DEFAULT_EARLY_GRACE = "2h"


def early_grace(settings) -> tuple[timedelta, str | None]:
    """[eventbridge] grace: how long an early (EventBridge) event may wait for its log file before Sync history
    lists it; the default and a sentence when the value is bad."""
    try:
        value = section(settings, "eventbridge").get("grace", DEFAULT_EARLY_GRACE)
    except Exception as exc:  # a broken settings file: the default, and why
        return parse_interval(DEFAULT_EARLY_GRACE), str(exc)
    try:
        return parse_interval(str(value)), None
    except ValueError as exc:
        return parse_interval(DEFAULT_EARLY_GRACE), f"[eventbridge] grace: {exc}; using {DEFAULT_EARLY_GRACE}"


def smtp_from(settings) -> tuple[mailer.SmtpSettings | None, str | None]:
    """The mail settings, or None and a sentence saying what to fix."""
    from trailstream import config

    try:
        smtp = mailer.smtp_settings_from(section(settings, "smtp"))
    except (mailer.MailSettingsError, config.SettingsError) as exc:
        return None, f"{exc}; alerts stay unsent until it is fixed"
    if smtp is None:
        return None, (f"{NOT_CONFIGURED}: add an [smtp] section with host, sender and recipients to the "
                      "settings file; alerts wait on the Alerts page until then")
    return smtp, None


def mail_status(settings) -> tuple[bool, str]:
    """Whether alerts can be mailed, and a sentence saying where they go or what to fix."""
    smtp, problem = smtp_from(settings)
    if smtp is None:
        return False, problem[0].upper() + problem[1:] + "."
    to = ", ".join(smtp.recipients) or "only the recipients set on each rule"
    return True, f"Alerts are mailed from {smtp.sender} through {smtp.describe()} to {to}."


def channel_settings(settings) -> tuple[tuple[str, ...], list[str]]:
    """The [alerts] channels and a sentence per problem in them, for the Alerts page."""
    from trailstream import config

    try:
        alert_settings, problems = alert_settings_from(section(settings, "alerts"))
    except config.SettingsError as exc:
        return (), [str(exc)]
    return alert_settings.channels, [problem for problem in problems if "channel" in problem]


def detection_settings(settings):
    """The [detections] section as the detections read it."""
    from trailstream.analytics import detections

    if hasattr(settings, "section"):
        return detections.detection_settings(settings)
    return detections.DetectionSettings.from_dict(section(settings, "detections"))
