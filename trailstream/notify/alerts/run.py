"""One alerts pass: evaluate the rules, record what fired, then deliver by email and to every channel.

Called after every sync (jobs.after_sync), by `python -m trailstream alerts run` and by `watch`. A mail server or
channel that is down leaves its alerts unsent, retried on the next run; each alert reaches each channel once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial

import sqlite_utils

from trailstream import config
from trailstream.cache import store
from trailstream.notify import mailer
from trailstream.notify.alerts import channels as alert_channels
from trailstream.notify.alerts import fired as records
from trailstream.notify.alerts.evaluate import Evaluation, evaluate_rules, evaluate_rules_on_lake
from trailstream.notify.alerts.fired import FiredAlert
from trailstream.notify.alerts.mail import (CHANNEL_EVENT_LIMIT, MAIL_EVENT_LIMIT, compose_channel_message,
                                            compose_mail)
from trailstream.notify.alerts.rules import configured_channels, ensure_builtin_rules, query_rules
from trailstream.notify.alerts.settings import (NOT_CONFIGURED, AlertSettings, alert_settings_from, detection_settings,
                                                section, smtp_from)
from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc, parse_iso_utc


@dataclass
class AlertRunResult:
    """What one pass did: alerts fired, mailed, not mailed (kept for the next run), retried, waiting, and the
    deliveries to channels sent and not sent."""

    fired: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    waiting: int = 0
    channel_sent: int = 0
    channel_failed: int = 0
    errors: list[str] = field(default_factory=list)
    busy: bool = False

    @property
    def succeeded(self) -> bool:
        """True when everything due was sent and every rule could be evaluated."""
        return self.failed == 0 and self.channel_failed == 0 and not self.errors

    def summary(self) -> str:
        if self.busy:
            return "alerts: another alerts run is in progress on this cache; nothing done (try again shortly)"
        parts = [f"{self.fired} fired", f"{self.sent} sent", f"{self.failed} not sent"]
        if self.retried:
            parts.append(f"{self.retried} retried from earlier runs")
        if self.waiting:
            parts.append(f"{self.waiting} waiting for the digest")
        if self.channel_sent or self.channel_failed:
            parts.append(f"channels: {self.channel_sent} delivered, {self.channel_failed} not delivered")
        return "\n".join(["alerts: " + ", ".join(parts), *(f"problem: {error}" for error in self.errors)])


def run_alerts(db_path, settings=None, now: datetime | None = None) -> AlertRunResult:
    """One pass: evaluate the enabled rules, record what fired as pending, then send everything due.

    Never raises for a rule, the settings, the mail server or a channel: each problem becomes a sentence in the
    result's errors.
    """
    now = now or datetime.now(timezone.utc)
    result = AlertRunResult()
    if not os.path.exists(db_path):
        result.errors.append(f"no cache at {os.fspath(db_path)}: run `python -m trailstream sync` (or `demo`) first")
        return result
    alert_settings, detections, smtp, smtp_problem = _read_settings(settings, result)
    mail_configured = smtp is not None or not smtp_problem.startswith(NOT_CONFIGURED)
    with store.file_lock(db_path, "alerts") as acquired:  # one alerts run at a time per cache
        if not acquired:
            result.busy = True
            return result
        db = store.open_cache(db_path)
        try:
            ensure_builtin_rules(db)
            lake, lake_problem = _open_lake(db_path, settings)
            conn = store.open_cache_readonly(db_path)
            try:
                conn.execute("BEGIN")  # one snapshot for every rule, however long a sync runs beside us
                evaluation = (Evaluation(errors=[lake_problem]) if lake_problem else
                              _evaluate(conn, db_path, lake, now, alert_settings, detections))
                conn.execute("COMMIT")
            finally:
                conn.close()
            result.errors.extend(evaluation.errors)
            result.fired = len(records.save_evaluation(db, evaluation, iso_utc(now), alert_settings.channels))
            lines = partial(query_alert_event_lines, db.conn, source=lake, max_age=alert_settings.max_age)
            deliver_alerts(db, smtp, smtp_problem, alert_settings, now, result, mail_configured, lines)
            deliver_to_channels(db, alert_settings, now, result, lines)
        finally:
            db.close()
    return result


def _open_lake(db_path, settings):
    """The lake the rules read while [backend] kind = "athena" (None: the cache), or a sentence saying why not; the
    reports module opens it, loaded only then (with the query backends, a tenth of a second of every alert run)."""
    if config.BackendSettings.from_section(section(settings, "backend")).kind != "athena":
        return None, None
    from trailstream.notify import reports

    try:
        return reports.open_lake(db_path, settings), None
    except reports.ReportError as exc:
        return None, (f"the alert rules were not checked ({exc}); fix [backend] in the settings file and they are "
                      "checked on the next run")


def _evaluate(conn, db_path, lake, now: datetime, alert_settings: AlertSettings, detections) -> Evaluation:
    """The rules over the cache's new events, or over the lake's (the rules, their state and what fired stay in the
    cache: the app's own state)."""
    if lake is None:
        return evaluate_rules(conn, db_path, query_rules(conn), now, alert_settings, detections)
    return evaluate_rules_on_lake(conn, lake, query_rules(conn), now, alert_settings, detections)


# How far before [alerts] max_age an alert's events may lie: a finding's day of context, a threshold's window.
EVENTS_REACH = timedelta(days=2)


def query_alert_event_lines(conn, alert: FiredAlert, limit: int | None = None, source=None,
                            max_age: timedelta = AlertSettings().max_age) -> list[dict]:
    """The events behind an alert as mail, channels and the Alerts page list them: the cache's, and those it lacks
    from `source` (the lake, or a page's backend) within the days the alert's events can lie in."""
    lines = records.query_alert_events(conn, alert.id, limit)
    wanted = alert.events if limit is None else min(alert.events, limit)
    if source is None or len(lines) >= wanted:
        return lines
    held = {line["event_id"] for line in lines}
    missing = tuple(event_id for event_id in records.query_alert_event_ids(conn, alert.id) if event_id not in held)
    fired = parse_iso_utc(alert.fired_at)
    period = EventFilter(start=iso_utc(fired - max_age - EVENTS_REACH), end=iso_utc(fired + timedelta(seconds=1)))
    found = source.query("security_finding_events", period, event_ids=missing[:wanted])
    lines += [records.event_line(row | {"event_time": iso_utc(row["event_time"])})
              for row in found.iter_rows(named=True)]
    return sorted(lines, key=lambda line: (line["time"], line["event_id"]))[:wanted]


def _read_settings(settings, result: AlertRunResult):
    """The [alerts], [detections] and [smtp] sections; problems go into the result and defaults are used."""
    from trailstream import config

    try:
        alert_settings, problems = alert_settings_from(section(settings, "alerts"))
        result.errors.extend(problems)
    except config.SettingsError as exc:
        result.errors.append(str(exc))
        alert_settings = AlertSettings()
    try:
        detections = detection_settings(settings)
    except (ValueError, config.SettingsError) as exc:
        result.errors.append(str(exc))
        detections = None
    smtp, smtp_problem = smtp_from(settings)
    return alert_settings, detections, smtp, smtp_problem


def _batches(db, alerts: list[FiredAlert], every, now: datetime, state_key: str, attempted: bool):
    """Immediate alerts one by one, and the digest alerts together when the digest is due; and how many wait."""
    immediate = [[alert] for alert in alerts if alert.delivery == "immediate"]
    digest = [alert for alert in alerts if alert.delivery == "digest"]
    last_digest = records.query_state(db.conn, state_key)
    due = digest and (last_digest is None or attempted or now - parse_iso_utc(last_digest) >= every)
    return immediate + ([digest] if due else []), (0 if due else len(digest))


def deliver_alerts(db: sqlite_utils.Database, smtp: mailer.SmtpSettings | None, smtp_problem: str | None,
                   alert_settings: AlertSettings, now: datetime, result: AlertRunResult,
                   mail_configured: bool = True, lines=None) -> None:
    """Mail every unsent immediate alert, and the digest when due; failures stay unsent for the next run. `lines`
    (alert, limit) gives an alert's event lines (the cache's by default)."""
    lines = lines or partial(query_alert_event_lines, db.conn)
    unsent = records.query_fired_alerts(db.conn, limit=-1, unsent_only=True)
    attempted = any(alert.attempts for alert in unsent if alert.delivery == "digest")
    batches, result.waiting = _batches(db, unsent, alert_settings.digest_every, now, "last_digest_at", attempted)
    batches = [part for batch in batches for part in
               (_group_by_recipients(batch) if batch[0].delivery == "digest" else [batch])]
    if not batches:
        return
    when = iso_utc(now)
    if smtp is None:
        due = [alert.id for batch in batches for alert in batch]
        if not mail_configured:  # no [smtp] at all: alerts bound for a channel do not wait on email
            by_channel = records.query_alerts_with_channels(db.conn, due)
            due = [alert_id for alert_id in due if alert_id not in by_channel]
        if not due:
            return
        records.mark_alerts(db, due, "failed", when, smtp_problem)
        result.failed += len(due)
        result.errors.append(smtp_problem)
        return
    unreachable = None
    for batch in batches:
        ids = [alert.id for alert in batch]
        result.retried += sum(1 for alert in batch if alert.attempts)
        if unreachable is None:
            try:
                _send_batch(smtp, batch, alert_settings.base_url, lines)
            except mailer.MailServerUnreachable as exc:
                unreachable = str(exc)
            except mailer.MailError as exc:
                records.mark_alerts(db, ids, "failed", when, str(exc))
                result.failed += len(ids)
                result.errors.append(f"{_batch_name(batch)}: {exc}")
                continue
            else:
                records.mark_alerts(db, ids, "sent", when)
                result.sent += len(ids)
                if batch[0].delivery == "digest":
                    records.save_state(db, "last_digest_at", when)
                continue
        records.mark_alerts(db, ids, "failed", when, unreachable)
        result.failed += len(ids)
    if unreachable:
        result.errors.append(unreachable)


def deliver_to_channels(db: sqlite_utils.Database, alert_settings: AlertSettings, now: datetime,
                        result: AlertRunResult, lines=None) -> None:
    """Post each channel its unsent alerts (the digest when due), once each; a channel that fails waits for the
    next run. Deliveries to a channel no longer in the settings or on a rule wait until it comes back."""
    in_use = configured_channels(db.conn, alert_settings.channels)
    known = {channel.id: channel for channel in map(alert_channels.Channel, in_use)}
    pending = [item for item in records.query_channel_deliveries(db.conn, unsent_only=True) if item.channel in known]
    if not pending:
        return
    alerts = records.query_alerts_by_id(db.conn, [item.alert_id for item in pending])
    when = iso_utc(now)
    for channel_id, channel in known.items():
        mine = [item for item in pending if item.channel == channel_id and item.alert_id in alerts]
        attempted = any(item.attempts for item in mine if alerts[item.alert_id].delivery == "digest")
        batches, waiting = _batches(db, [alerts[item.alert_id] for item in mine], alert_settings.digest_every, now,
                                    f"last_digest_at:{channel_id}", attempted)
        result.waiting = max(result.waiting, waiting)
        _post_batches(db, channel, batches, alert_settings.base_url, when, result,
                      lines or partial(query_alert_event_lines, db.conn))


def _post_batches(db, channel: alert_channels.Channel, batches: list[list[FiredAlert]], base_url: str, when: str,
                  result: AlertRunResult, lines) -> None:
    """Post the batches to one channel in order; once it fails, the rest are marked failed with the same reason."""
    down = None
    for batch in batches:
        ids = [alert.id for alert in batch]
        if down is None:
            events = {alert.id: lines(alert, CHANNEL_EVENT_LIMIT) for alert in batch}
            try:
                alert_channels.send_to_channel(channel, *compose_channel_message(batch, events, base_url))
            except alert_channels.ChannelError as exc:
                down = str(exc)
            else:
                records.mark_deliveries(db, ids, channel.id, "sent", when)
                result.channel_sent += len(ids)
                if batch[0].delivery == "digest":
                    records.save_state(db, f"last_digest_at:{channel.id}", when)
                continue
        records.mark_deliveries(db, ids, channel.id, "failed", when, down)
        result.channel_failed += len(ids)
    if down:
        result.errors.append(down)


def _group_by_recipients(alerts: list[FiredAlert]) -> list[list[FiredAlert]]:
    groups: dict[tuple[str, ...], list[FiredAlert]] = {}
    for alert in alerts:
        groups.setdefault(tuple(sorted(alert.recipients)), []).append(alert)
    return list(groups.values())


def _batch_name(batch: list[FiredAlert]) -> str:
    return f'alert "{batch[0].rule_name}"' if len(batch) == 1 else f"digest of {len(batch)} alerts"


def _send_batch(smtp: mailer.SmtpSettings, batch: list[FiredAlert], base_url: str, lines) -> None:
    events = {alert.id: lines(alert, MAIL_EVENT_LIMIT) for alert in batch}
    subject, text, markup = compose_mail(batch, events, base_url)
    mailer.send_mail(smtp, batch[0].recipients or smtp.recipients, subject, text, markup)
