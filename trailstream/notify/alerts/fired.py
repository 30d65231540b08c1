"""Fired-alert records: the alerts, the events behind each, per-channel deliveries, watermarks and run state.

Delivery is at-least-once: a fired alert is committed as 'pending' (with its events, one delivery row per channel
and the rule's new watermark) before anything is sent, and marked 'sent' only after the mail server or the channel
accepted it. A crash in between sends it again on the next run: a duplicate, never a loss.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import sqlite_utils

from trailstream.notify.alerts.channels import Channel
from trailstream.notify.alerts.evaluate import Evaluation
from trailstream.notify.alerts.rules import configured_channels


@dataclass(frozen=True)
class FiredAlert:
    """A fired alert as recorded: 'pending' until the mail server accepts it, 'failed' (retried) or 'sent'."""

    id: int
    rule_id: int | None
    rule_name: str
    severity: str
    delivery: str
    recipients: tuple[str, ...]
    summary: str
    events: int
    fired_at: str
    status: str
    attempts: int = 0
    last_attempt_at: str | None = None
    sent_at: str | None = None
    error: str | None = None


_ALERT_COLUMNS = ("id, rule_id, rule_name, severity, delivery, recipients, summary, events, fired_at, status, "
                  "attempts, last_attempt_at, sent_at, error")


def _alert_from_row(row) -> FiredAlert:
    values = dict(zip(_ALERT_COLUMNS.split(", "), tuple(row)))
    values["recipients"] = tuple(json.loads(values["recipients"] or "[]"))
    return FiredAlert(**values)


def save_evaluation(db: sqlite_utils.Database, evaluation: Evaluation, fired_at: str,
                    channels: tuple[str, ...] = ()) -> list[int]:
    """Record the drafts as 'pending' alerts with their events and one pending delivery per channel (the rule's
    own, else `channels`), and move the watermarks, in one transaction."""
    ids = []
    with db.atomic():
        for draft in evaluation.drafts:
            rule = draft.rule
            alert_id = db.execute(
                "INSERT INTO fired_alerts (rule_id, rule_name, severity, delivery, recipients, summary, events, "
                "fired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [rule.id, rule.name, rule.severity, rule.delivery, json.dumps(list(rule.recipients)), draft.summary,
                 len(draft.event_ids), fired_at],
            ).lastrowid
            db.conn.executemany(
                "INSERT OR IGNORE INTO fired_alert_events (alert_id, rule_id, event_id) VALUES (?, ?, ?)",
                [(alert_id, rule.id, event_id) for event_id in draft.event_ids],
            )
            db.conn.executemany(
                "INSERT OR IGNORE INTO alert_channel_deliveries (alert_id, channel, label) VALUES (?, ?, ?)",
                [(alert_id, channel.id, channel.label) for channel in map(Channel, rule.channels or channels)],
            )
            ids.append(alert_id)
        db.conn.executemany(
            "INSERT INTO alert_watermarks (rule_id, last_rowid, evaluated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (rule_id) DO UPDATE SET last_rowid = excluded.last_rowid, "
            "evaluated_at = excluded.evaluated_at",
            [(rule_id, top, fired_at) for rule_id, top in evaluation.watermarks.items()],
        )
    return ids


def query_fired_alerts(conn: sqlite3.Connection, limit: int = 200, unsent_only: bool = False) -> list[FiredAlert]:
    """The newest fired alerts (or every one not yet sent, oldest first); empty before the alert tables exist."""
    where, order = ("WHERE status != 'sent'", "id") if unsent_only else ("", "id DESC")
    try:
        rows = conn.execute(f"SELECT {_ALERT_COLUMNS} FROM fired_alerts {where} ORDER BY {order} LIMIT ?", [limit])
        return [_alert_from_row(row) for row in rows.fetchall()]
    except sqlite3.OperationalError:
        return []


def query_alert_events(conn: sqlite3.Connection, alert_id: int, limit: int | None = None) -> list[dict]:
    """The events behind one alert, oldest first, as the mail and the Alerts page list them."""
    rows = conn.execute(
        "SELECT e.event_id, e.event_time, e.principal, e.event_source, e.event_name, e.error_code, e.resources, "
        "e.request_parameters, e.source_ip, e.account_id, e.aws_region FROM fired_alert_events f "
        "JOIN events e ON e.event_id = f.event_id WHERE f.alert_id = ? ORDER BY e.event_time, e.event_id LIMIT ?",
        [alert_id, -1 if limit is None else limit],
    ).fetchall()
    return [event_line(dict(zip(
        ("event_id", "event_time", "principal", "event_source", "event_name", "error_code", "resources",
         "request_parameters", "source_ip", "account_id", "aws_region"), tuple(row)
    ))) for row in rows]


def query_alert_event_ids(conn: sqlite3.Connection, alert_id: int) -> list[str]:
    """Every event ID an alert names, the cache holding the event or not (an alert fired on the lake)."""
    return [row[0] for row in conn.execute("SELECT event_id FROM fired_alert_events WHERE alert_id = ? "
                                           "ORDER BY event_id", [alert_id])]


def event_line(row: dict) -> dict:
    """The fields an alert shows for one event: time, principal, action, resource, source IP, account, region."""
    service = (row.get("event_source") or "").split(".")[0]
    action = f"{service}:{row.get('event_name')}" if service else str(row.get("event_name") or "")
    if row.get("error_code"):
        action += f" (failed: {row['error_code']})"
    return {
        "time": row.get("event_time") or "",
        "principal": row.get("principal") or "",
        "action": action,
        "resource": resource_label(row.get("resources"), row.get("request_parameters")),
        "source_ip": row.get("source_ip") or "",
        "account": row.get("account_id") or "",
        "region": row.get("aws_region") or "",
        "event_id": row.get("event_id") or "",
    }


RESOURCE_PARAMETER_KEYS = (
    "groupId", "groupName", "instanceId", "allocationId", "publicIp", "userName", "roleName", "policyArn",
    "bucketName", "trailName", "name", "keyId", "functionName", "dBInstanceIdentifier",
)


def resource_label(resources: str | None, request_parameters: str | None) -> str:
    """What an event acted on: the ARNs CloudTrail lists, else the usual identifier in the request."""
    arns = [item.get("ARN") or item.get("arn") for item in _json_list(resources) if isinstance(item, dict)]
    arns = [arn for arn in arns if arn]
    if arns:
        return ", ".join(arns[:3]) + (f" and {len(arns) - 3} more" if len(arns) > 3 else "")
    params = _json_object(request_parameters)
    instances = params.get("instancesSet")
    instances = instances.get("items") if isinstance(instances, dict) else None
    if isinstance(instances, list):
        ids = [item.get("instanceId") for item in instances if isinstance(item, dict) and item.get("instanceId")]
        if ids:
            return ", ".join(ids)
    return next((str(params[key]) for key in RESOURCE_PARAMETER_KEYS if isinstance(params.get(key), (str, int))), "")


def _json_list(text) -> list:
    try:
        value = json.loads(text) if text else []
    except (TypeError, ValueError):
        return []
    return value if isinstance(value, list) else []


def _json_object(text) -> dict:
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def mark_alerts(db: sqlite_utils.Database, alert_ids: list[int], status: str, when: str,
                error: str | None = None) -> None:
    """Record a delivery attempt: 'sent' (done) or 'failed' with the reason (retried on the next run)."""
    with db.atomic():
        db.conn.executemany(
            "UPDATE fired_alerts SET status = ?, attempts = attempts + 1, last_attempt_at = ?, "
            "sent_at = CASE WHEN ? = 'sent' THEN ? END, error = ? WHERE id = ?",
            [(status, when, status, when, error, alert_id) for alert_id in alert_ids],
        )


def query_state(conn: sqlite3.Connection, key: str) -> str | None:
    """A value the alert runs keep between runs (when each digest last went out)."""
    row = conn.execute("SELECT value FROM alert_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def save_state(db: sqlite_utils.Database, key: str, value: str) -> None:
    """Keep a value for the next runs."""
    with db.atomic():
        db.execute("INSERT INTO alert_state (key, value) VALUES (?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])


@dataclass(frozen=True)
class ChannelDelivery:
    """One fired alert due on one channel: 'pending' until the channel accepts it, 'failed' (retried) or 'sent'."""

    alert_id: int
    channel: str  # Channel.id
    label: str
    status: str
    attempts: int = 0
    last_attempt_at: str | None = None
    sent_at: str | None = None
    error: str | None = None


_DELIVERY_COLUMNS = "alert_id, channel, label, status, attempts, last_attempt_at, sent_at, error"


def query_channel_deliveries(conn: sqlite3.Connection, alert_id: int | None = None,
                             unsent_only: bool = False) -> list[ChannelDelivery]:
    """One alert's channel deliveries (or every unsent one, oldest first); empty before the tables exist."""
    where = ["status != 'sent'"] if unsent_only else []
    where += ["alert_id = ?"] if alert_id is not None else []
    sql = (f"SELECT {_DELIVERY_COLUMNS} FROM alert_channel_deliveries "
           f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY alert_id, label")
    try:
        rows = conn.execute(sql, [] if alert_id is None else [alert_id]).fetchall()
    except sqlite3.OperationalError:
        return []
    return [ChannelDelivery(*tuple(row)) for row in rows]


def query_channel_status(conn: sqlite3.Connection, defaults: tuple[str, ...] = ()) -> list[dict]:
    """Per channel in use (the [alerts] channels, then the rules' own): who uses it, deliveries sent and waiting,
    the last attempt and the latest problem; then channels no longer configured that still hold deliveries."""
    try:
        rows = conn.execute(
            "SELECT channel, label, sum(status = 'sent'), sum(status != 'sent'), max(last_attempt_at), "
            "(SELECT error FROM alert_channel_deliveries w WHERE w.channel = d.channel AND w.status != 'sent' "
            " ORDER BY w.last_attempt_at DESC LIMIT 1) "
            "FROM alert_channel_deliveries d GROUP BY channel ORDER BY label"
        ).fetchall()
    except sqlite3.OperationalError:
        rows = []
    counts = {row[0]: row[1:] for row in rows}  # channel id -> label, sent, waiting, last attempt, problem
    listed = [(Channel(url), ", ".join(users)) for url, users in configured_channels(conn, defaults).items()]
    known = {channel.id for channel, _ in listed}
    status = [(channel.label, users, counts.get(channel.id, (None, 0, 0, None, None))[1:]) for channel, users in listed]
    status += [(values[0], "no longer configured", values[1:]) for key, values in counts.items() if key not in known]
    return [{"channel": label, "used_by": users, "delivered": sent, "waiting": waiting, "last_attempt_at": last,
             "problem": problem} for label, users, (sent, waiting, last, problem) in status]


def query_alerts_by_id(conn: sqlite3.Connection, alert_ids) -> dict[int, FiredAlert]:
    """These fired alerts by id (the ones a channel still owes), without reading the whole history."""
    ids = sorted(set(alert_ids))
    rows = conn.execute(
        f"SELECT {_ALERT_COLUMNS} FROM fired_alerts WHERE id IN ({', '.join('?' for _ in ids)})", ids
    ).fetchall()
    return {alert.id: alert for alert in map(_alert_from_row, rows)}


def query_alerts_with_channels(conn: sqlite3.Connection, alert_ids: list[int]) -> set[int]:
    """Which of these alerts go to at least one channel."""
    rows = conn.execute(
        f"SELECT DISTINCT alert_id FROM alert_channel_deliveries WHERE alert_id IN ({', '.join('?' for _ in alert_ids)})",
        alert_ids,
    ).fetchall()
    return {row[0] for row in rows}


def mark_deliveries(db: sqlite_utils.Database, alert_ids: list[int], channel: str, status: str, when: str,
                    error: str | None = None) -> None:
    """Record an attempt on one channel: 'sent' (done) or 'failed' with the reason (retried on the next run)."""
    with db.atomic():
        db.conn.executemany(
            "UPDATE alert_channel_deliveries SET status = ?, attempts = attempts + 1, last_attempt_at = ?, "
            "sent_at = CASE WHEN ? = 'sent' THEN ? END, error = ? WHERE alert_id = ? AND channel = ?",
            [(status, when, status, when, error, alert_id, channel) for alert_id in alert_ids],
        )
