"""Alert rules over the cache, evaluated after every sync, delivered by email (immediately or as a digest).

Delivery is at-least-once: a fired alert is committed as 'pending' (with its events and the rule's new watermark)
before anything is sent, and marked 'sent' only after the mail server accepted it. A crash in between sends the
alert again on the next run: a duplicate, never a loss. Each event alerts at most once per rule.
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlite_utils

from trailstream import catalog
from trailstream.notify import mailer
from trailstream.cache import store
from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc
from trailstream.timefmt import parse_iso_utc, utc_now

RULE_KINDS = {
    "finding": "Security finding",
    "events": "Events",
    "search": "Search filter",
    "sql": "SQL query",
}
CUSTOM_KINDS = ("search", "sql")
DELIVERIES = ("immediate", "digest")
DEFAULT_BASE_URL = "http://localhost:8501"
DEFAULT_MAX_AGE = "7d"
DEFAULT_DIGEST_EVERY = "24h"
ALERTS_KEYS = ("base_url", "max_age", "digest_every")
MAIL_EVENT_LIMIT = 50
# How much history before the oldest candidate event the detections see (bursts, travel, first-seen).
DETECTION_CONTEXT = timedelta(days=1)
# --- Rules -------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinRule:
    """A rule that ships with TrailStream: a finding type from the detections, or a list of event names."""

    key: str
    kind: str
    name: str
    severity: str
    query: str = ""  # the finding type, for kind 'finding'
    event_names: tuple[str, ...] = ()
    condition: str = ""  # extra SQL over alias e, for kind 'events'
    description: str = ""


@dataclass(frozen=True)
class AlertRule:
    """A rule as stored: what it matches (kind + query), and how and to whom it alerts."""

    id: int | None
    kind: str
    name: str
    key: str | None = None
    enabled: bool = True
    severity: str = "medium"
    recipients: tuple[str, ...] = ()
    delivery: str = "immediate"
    query: str = ""
    threshold: int = 1
    window_minutes: int = 60

    @property
    def builtin(self) -> BuiltinRule | None:
        return BUILTIN_RULES.get(self.key) if self.key else None

    @property
    def custom(self) -> bool:
        return self.kind in CUSTOM_KINDS

    def describe(self) -> str:
        """What the rule matches, in one line for the page and the mail."""
        if self.builtin:
            return self.builtin.description
        if self.kind == "search":
            from trailstream.analytics.queries import SearchQuery

            search = SearchQuery.from_dict(json.loads(self.query or "{}")).to_dict()
            matched = "events matching " + (", ".join(f"{k} = {v!r}" for k, v in search.items()) or "any search")
        else:
            matched = f"events returned by SQL: {self.query.strip()}"
        if self.threshold > 1:
            return f"{self.threshold} or more {matched} within {self.window_minutes} minute(s)"
        return matched


# An error code is "rare" while the cache holds that one event with it: seen for the first time, and only once.
RARE_ERROR_CONDITION = (
    "COALESCE(e.error_code, '') != '' AND NOT EXISTS "
    "(SELECT 1 FROM events o WHERE o.error_code = e.error_code AND o.event_id != e.event_id)"
)


def _builtin_rules() -> dict[str, BuiltinRule]:
    """One rule per finding type in the catalog, then the use-case and rare-error rules."""
    rules = [
        BuiltinRule(f"finding:{kind}", "finding", title, catalog.FINDING_SEVERITY.get(kind, "medium"), query=kind,
                    description=f"Security finding: {title[0].lower()}{title[1:]}")
        for kind, title in catalog.FINDING_TYPES.items()
    ]
    rules += [
        BuiltinRule(
            "iam_user_or_key_created", "events", "IAM user or access key created", "medium",
            event_names=catalog.USER_CREATION_EVENTS + catalog.ACCESS_KEY_CREATION_EVENTS,
            condition="e.error_code IS NULL",
            description="A new IAM user or access key",
        ),
        BuiltinRule(
            "rare_error", "events", "Rare error seen for the first time", "low", condition=RARE_ERROR_CONDITION,
            description="A call failed with an error code the cache has never seen before",
        ),
        BuiltinRule(
            "instance_terminated", "events", "EC2 instances terminated", "low",
            event_names=catalog.INSTANCE_TERMINATION_EVENTS, condition="e.error_code IS NULL",
            description="EC2 instances terminated",
        ),
        BuiltinRule(
            "elastic_ip_released", "events", "Elastic IP released", "low",
            event_names=catalog.ELASTIC_IP_RELEASE_EVENTS, condition="e.error_code IS NULL",
            description="An Elastic IP address released (the address may be gone for good)",
        ),
    ]
    return {rule.key: rule for rule in rules}


BUILTIN_RULES: dict[str, BuiltinRule] = _builtin_rules()


def ensure_builtin_rules(db: sqlite_utils.Database) -> None:
    """Add any built-in rule the cache lacks (enabled, default settings); the tables come from store's migrations."""
    now = utc_now()
    with db.atomic():
        db.conn.executemany(
            "INSERT OR IGNORE INTO alert_rules (key, kind, name, severity, query, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(rule.key, rule.kind, rule.name, rule.severity, rule.query, now, now) for rule in BUILTIN_RULES.values()],
        )


def default_rules() -> list[AlertRule]:
    """The built-in rules as a fresh cache holds them (shown before the alert tables exist)."""
    return [AlertRule(None, rule.kind, rule.name, key=rule.key, severity=rule.severity, query=rule.query)
            for rule in BUILTIN_RULES.values()]


_RULE_COLUMNS = "id, kind, name, key, enabled, severity, recipients, delivery, query, threshold, window_minutes"


def _rule_from_row(row) -> AlertRule:
    values = dict(zip(_RULE_COLUMNS.split(", "), tuple(row)))
    values["enabled"] = bool(values["enabled"])
    values["recipients"] = tuple(json.loads(values["recipients"] or "[]"))
    return AlertRule(**values)


def query_rules(conn: sqlite3.Connection) -> list[AlertRule]:
    """Every rule, built-in first; built-in rules not stored yet (a cache no alerts run has touched) as defaults."""
    try:
        rows = conn.execute(
            f"SELECT {_RULE_COLUMNS} FROM alert_rules ORDER BY key IS NULL, id"
        ).fetchall()
    except sqlite3.OperationalError:
        return default_rules()
    stored = [_rule_from_row(row) for row in rows if row[3] is None or row[3] in BUILTIN_RULES]
    present = {rule.key for rule in stored}
    missing = [rule for rule in default_rules() if rule.key not in present]
    builtin = [rule for rule in stored if rule.key] + missing
    return builtin + [rule for rule in stored if not rule.key]


def check_rule(rule: AlertRule) -> list[str]:
    """What is wrong with a rule's settings, as sentences (empty when it can be saved)."""
    problems = []
    if not rule.name.strip():
        problems.append("give the rule a name")
    if rule.severity not in catalog.SEVERITIES:
        problems.append(f"severity must be one of {', '.join(catalog.SEVERITIES)}")
    if rule.delivery not in DELIVERIES:
        problems.append(f"delivery must be {' or '.join(DELIVERIES)}")
    problems.extend(f'"{item}" is not an email address' for item in rule.recipients if not mailer.parse_addresses(item))
    if rule.threshold < 1 or rule.window_minutes < 1:
        problems.append("the threshold and the window must be at least 1")
    if rule.key is None and rule.kind not in CUSTOM_KINDS:
        problems.append(f"a custom rule is a {' or '.join(RULE_KINDS[k] for k in CUSTOM_KINDS)}")
    if rule.kind == "search":
        from trailstream.analytics.queries import SearchQuery

        try:
            search = SearchQuery.from_dict(json.loads(rule.query or "{}"))
        except (ValueError, TypeError):
            search = None
        if search is None or search.is_empty():
            problems.append("fill at least one search field, or the rule would match every event")
    if rule.kind == "sql" and not rule.query.strip():
        problems.append("write the SQL query; it must return an event_id column")
    return problems


def save_rule(db: sqlite_utils.Database, rule: AlertRule) -> int:
    """Insert or update a rule (built-ins keep what they match; only how they alert changes). Returns its id."""
    problems = check_rule(rule)
    if problems:
        raise ValueError("; ".join(problems))
    ensure_builtin_rules(db)
    now = utc_now()
    values = {
        "name": rule.name.strip(),
        "enabled": int(rule.enabled),
        "severity": rule.severity,
        "recipients": json.dumps(list(rule.recipients)),
        "delivery": rule.delivery,
        "threshold": rule.threshold,
        "window_minutes": rule.window_minutes,
        "updated_at": now,
    }
    rule_id = rule.id
    if rule_id is None and rule.key:  # a built-in shown from the defaults, before its row was read
        rule_id = db.execute("SELECT id FROM alert_rules WHERE key = ?", [rule.key]).fetchone()[0]
    with db.atomic():
        if rule_id is None:
            values |= {"kind": rule.kind, "query": rule.query, "created_at": now}
            return db.execute(
                f"INSERT INTO alert_rules ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
                list(values.values()),
            ).lastrowid
        if rule.custom:
            values["query"] = rule.query
        db.execute(
            f"UPDATE alert_rules SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
            [*values.values(), rule_id],
        )
        return rule_id


def parse_recipients(text: str) -> tuple[str, ...]:
    """'a@example.com, b@example.com' (commas, semicolons or spaces) -> the addresses, as typed."""
    return tuple(item for item in re.split(r"[,;\s]+", text or "") if item)


def delete_rule(db: sqlite_utils.Database, rule_id: int) -> None:
    """Delete a custom rule (its fired alerts stay in the history); built-in rules can only be disabled."""
    ensure_builtin_rules(db)
    with db.atomic():
        db.execute("DELETE FROM alert_rules WHERE id = ? AND key IS NULL", [rule_id])


# --- Settings ------------------------------------------------------------------


@dataclass(frozen=True)
class AlertSettings:
    """The [alerts] section: the app's address for links, how old an event may be to alert, the digest pace."""

    base_url: str = DEFAULT_BASE_URL
    max_age: timedelta = timedelta(days=7)
    digest_every: timedelta = timedelta(hours=24)


def section(settings, name: str) -> dict:
    """One section of the settings file, from a config.Settings or a plain dict (tests, scripts)."""
    if settings is None:
        return {}
    if hasattr(settings, "section"):
        return settings.section(name)
    return dict(settings.get(name) or {})


def alert_settings_from(values: dict | None) -> AlertSettings:
    """The raw [alerts] table -> AlertSettings; raises ValueError naming each thing to fix."""
    values = dict(values or {})
    problems = [f'unknown setting "{key}" in [alerts] (known: {", ".join(ALERTS_KEYS)})'
                for key in values if key not in ALERTS_KEYS]
    intervals = {}
    for key, default in (("max_age", DEFAULT_MAX_AGE), ("digest_every", DEFAULT_DIGEST_EVERY)):
        try:
            intervals[key] = parse_interval(str(values.get(key, default)))
        except ValueError as exc:
            problems.append(f"[alerts] {key}: {exc}")
    base_url = str(values.get("base_url", DEFAULT_BASE_URL)).strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", base_url):
        problems.append(f'[alerts] base_url = "{base_url}" must be the app\'s address, '
                        'like "https://trailstream.example.com"')
    if problems:
        raise ValueError("; ".join(problems))
    return AlertSettings(base_url=base_url, **intervals)


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


# --- Evaluation -----------------------------------------------------------------


@dataclass
class AlertDraft:
    """An alert found by evaluation, not yet recorded: the rule, a one-line summary and the events behind it."""

    rule: AlertRule
    summary: str
    event_ids: list[str]


@dataclass
class Evaluation:
    drafts: list[AlertDraft] = field(default_factory=list)
    watermarks: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    """A matching event: its insertion order (rowid), id and time."""

    rowid: int
    event_id: str
    event_time: str


def evaluate_rules(conn: sqlite3.Connection, db_path, rules: list[AlertRule], now: datetime,
                   alert_settings: AlertSettings, detection_settings=None) -> Evaluation:
    """Find what each enabled rule has to say about events stored since its watermark; reads only.

    An event counts as new for a rule when it was stored after the rule's watermark (insertion order, so
    late-delivered logs still alert) and is younger than [alerts] max_age (old backfills do not flood the inbox).
    """
    evaluation = Evaluation()
    top = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
    since = iso_utc(now - alert_settings.max_age)
    marks = dict(conn.execute("SELECT rule_id, last_rowid FROM alert_watermarks").fetchall())
    due = [rule for rule in rules if rule.enabled and marks.get(rule.id, 0) < top]
    findings = []
    if any(rule.kind == "finding" for rule in due):
        try:
            findings = _detect(conn, since, detection_settings)
        except Exception as exc:  # the other rules still run; these wait for the next run
            evaluation.errors.append(f"the security detections failed ({_reason(exc)}); the finding rules are "
                                     "checked again on the next run")
            due = [rule for rule in due if rule.kind != "finding"]
    for rule in due:
        mark = marks.get(rule.id, 0)
        try:
            if rule.kind == "finding":
                drafts = _finding_drafts(conn, rule, findings, mark, top, since)
            else:
                candidates = _matching_events(conn, db_path, rule, mark, top, since, iso_utc(now))
                drafts = _threshold_drafts(conn, rule, candidates, mark, since)
        except Exception as exc:  # one broken rule must not silence the others
            evaluation.errors.append(f'rule "{rule.name}" could not be evaluated ({_reason(exc)}); '
                                     "fix or disable it on the Alerts page")
            continue
        evaluation.drafts.extend(drafts)
        evaluation.watermarks[rule.id] = top
    return evaluation


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _detect(conn, since: str, detection_settings) -> list:
    """Every finding around the candidate period (with a day of context before it for bursts and travel)."""
    from trailstream.analytics import detections

    start = iso_utc(parse_iso_utc(since) - DETECTION_CONTEXT)
    return detections.detect_findings(conn, EventFilter(start=start), detection_settings)


def _event_positions(conn, event_ids) -> dict[str, Candidate]:
    found = {}
    ids = sorted(set(event_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = conn.execute(
            f"SELECT rowid, event_id, event_time FROM events WHERE event_id IN ({', '.join('?' for _ in chunk)})", chunk
        ).fetchall()
        found.update((row[1], Candidate(*row)) for row in rows)
    return found


def _already_alerted(conn, rule_id: int, event_ids) -> set[str]:
    ids = sorted(set(event_ids))
    alerted = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        alerted.update(row[0] for row in conn.execute(
            "SELECT event_id FROM fired_alert_events WHERE rule_id = ? "
            f"AND event_id IN ({', '.join('?' for _ in chunk)})",
            [rule_id, *chunk],
        ))
    return alerted


def _finding_drafts(conn, rule: AlertRule, findings, mark: int, top: int, since: str) -> list[AlertDraft]:
    """One alert per finding of the rule's type that involves a new event; only events not alerted before."""
    relevant = [finding for finding in findings if finding.type == rule.query]
    positions = _event_positions(conn, [event_id for finding in relevant for event_id in finding.event_ids])
    taken = _already_alerted(conn, rule.id, positions)
    drafts = []
    for finding in sorted(relevant, key=lambda item: item.time):
        found = [positions[event_id] for event_id in finding.event_ids if event_id in positions]
        if not any(mark < item.rowid <= top and item.event_time >= since for item in found):
            continue
        fresh = [item.event_id for item in found if item.event_id not in taken and item.rowid <= top]
        if fresh:
            taken.update(fresh)
            drafts.append(AlertDraft(rule, finding.summary, fresh))
    return drafts


def _matching_events(conn, db_path, rule: AlertRule, mark: int, top: int, since: str, until: str) -> list[Candidate]:
    """Events the rule matches up to `top`: new ones only, or with a window of history for a threshold."""
    start = since if rule.threshold <= 1 else iso_utc(parse_iso_utc(since) - timedelta(minutes=rule.window_minutes))
    lowest = mark if rule.threshold <= 1 else 0
    if rule.kind == "sql":
        return _sql_rule_events(db_path, rule.query, lowest, top, start, until)
    if rule.kind == "search":
        from trailstream.analytics import queries

        search = queries.SearchQuery.from_dict(json.loads(rule.query or "{}"))
        clauses, params = search.sql("e", lambda text: queries.word_query(conn, text))
    else:
        builtin = rule.builtin
        clauses = [f"e.event_name IN ({', '.join('?' for _ in builtin.event_names)})"] if builtin.event_names else []
        clauses += [builtin.condition] if builtin.condition else []
        params = list(builtin.event_names)
    where = " AND ".join(["e.rowid > ?", "e.rowid <= ?", "e.event_time >= ?", *clauses])
    rows = conn.execute(
        f"SELECT e.rowid, e.event_id, e.event_time FROM events e WHERE {where} ORDER BY e.event_time, e.rowid",
        [lowest, top, start, *params],
    ).fetchall()
    return [Candidate(*row) for row in rows]


SQL_RULE_ROW_CAP = 100_000


def _sql_rule_events(db_path, sql: str, lowest: int, top: int, start: str, until: str) -> list[Candidate]:
    """A custom SQL rule through the guard: its event_id column, joined back to the events table.

    The query may use :start and :end (the period being checked), like queries on the SQL page.
    """
    from trailstream.analytics import sqlguard

    wrapped = (
        "SELECT e.rowid AS position, e.event_id, e.event_time FROM events e "
        f"WHERE e.event_id IN (SELECT event_id FROM ({sql.strip().rstrip(';')})) "
        "AND e.rowid > :alert_lowest AND e.rowid <= :alert_top AND e.event_time >= :start "
        "ORDER BY e.event_time, e.rowid"
    )
    params = {"alert_lowest": lowest, "alert_top": top, "start": start, "end": until}
    try:
        sqlguard.run_query(db_path, f"EXPLAIN {sql}", params, row_cap=1)  # the guard judges the query as written
        result = sqlguard.run_query(db_path, wrapped, params, row_cap=SQL_RULE_ROW_CAP)
    except (sqlguard.QueryRefused, sqlguard.QueryFailed) as exc:
        message = str(exc)
        if "event_id" in message:
            message += "; the query must return an event_id column"
        raise ValueError(message) from None
    if result.truncated:
        raise ValueError(f"the query matches more than {SQL_RULE_ROW_CAP:,} events; narrow it with WHERE")
    return [Candidate(*row) for row in result.frame.iter_rows()]


def _threshold_drafts(conn, rule: AlertRule, candidates: list[Candidate], mark: int, since: str) -> list[AlertDraft]:
    """One alert listing the matching events in windows that reach the threshold and hold a new event."""
    new = [item.rowid > mark and item.event_time >= since for item in candidates]
    chosen = windows_over_threshold([parse_iso_utc(item.event_time) for item in candidates], new, rule.threshold,
                                    timedelta(minutes=rule.window_minutes))
    picked = [item.event_id for item, keep in zip(candidates, chosen) if keep]
    taken = _already_alerted(conn, rule.id, picked)
    fresh = [event_id for event_id in picked if event_id not in taken]
    if not fresh:
        return []
    return [AlertDraft(rule, _events_summary(conn, rule, fresh), fresh)]


def windows_over_threshold(times: list[datetime], new: list[bool], threshold: int, window: timedelta) -> list[bool]:
    """Which events (sorted by time) lie in a window of `window` holding >= threshold events, one of them new."""
    count = len(times)
    new_before = [0]
    for flag in new:
        new_before.append(new_before[-1] + flag)
    covered = [0] * (count + 1)  # +1 at a range start, -1 after its end: a difference array of marked ranges
    left = 0
    for right in range(count):
        while times[right] - times[left] >= window:
            left += 1
        if right - left + 1 >= threshold and new_before[right + 1] > new_before[left]:
            covered[left] += 1
            covered[right + 1] -= 1
    marked, depth = [], 0
    for index in range(count):
        depth += covered[index]
        marked.append(depth > 0)
    return marked


def _events_summary(conn, rule: AlertRule, event_ids: list[str]) -> str:
    """'3 events by alice, bob' for a rule that lists events rather than a finding."""
    positions = ", ".join("?" for _ in event_ids[:500])
    principals = [row[0] for row in conn.execute(
        f"SELECT DISTINCT coalesce(principal, 'unknown') FROM events WHERE event_id IN ({positions}) ORDER BY 1",
        event_ids[:500],
    )]
    shown = ", ".join(principals[:3]) + (f" and {len(principals) - 3} more" if len(principals) > 3 else "")
    return f"{len(event_ids)} event(s) by {shown}"


# --- Recording ------------------------------------------------------------------


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


def save_evaluation(db: sqlite_utils.Database, evaluation: Evaluation, fired_at: str) -> list[int]:
    """Record the drafts as 'pending' alerts with their events, and move the watermarks, in one transaction."""
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


def _state(db, key: str) -> str | None:
    row = db.execute("SELECT value FROM alert_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _set_state(db, key: str, value: str) -> None:
    with db.atomic():
        db.execute("INSERT INTO alert_state (key, value) VALUES (?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])


# --- Messages -------------------------------------------------------------------


MAIL_COLUMNS = (("time", "Time"), ("principal", "Principal"), ("action", "Action"), ("resource", "Resource"),
                ("source_ip", "Source IP"), ("account", "Account"), ("region", "Region"))


ALERTS_PAGE_PATH = "admin-alerts"  # app.py's url_path("Admin", "Alerts")


def alert_link(base_url: str, alert_id: int | None = None) -> str:
    """The Alerts page (on one alert when given) in the app at base_url."""
    return f"{base_url.rstrip('/')}/{ALERTS_PAGE_PATH}" + (f"?alert={alert_id}" if alert_id is not None else "")


def compose_mail(alerts: list[FiredAlert], events: dict[int, list[dict]], base_url: str) -> tuple[str, str, str]:
    """Subject, plain text and HTML for one alert or a digest of several; every event field is HTML-escaped."""
    if len(alerts) == 1:
        alert = alerts[0]
        subject = f"[TrailStream] {alert.severity.upper()}: {alert.rule_name}: {alert.summary}"
        intro = f"TrailStream alert ({alert.severity})"
    else:
        counts = {severity: sum(a.severity == severity for a in alerts) for severity in reversed(catalog.SEVERITIES)}
        spread = ", ".join(f"{n} {severity}" for severity, n in counts.items() if n)
        subject = f"[TrailStream] Digest: {len(alerts)} alerts ({spread})"
        intro = f"TrailStream digest: {len(alerts)} alerts ({spread})"
    texts, htmls = [intro, ""], [f"<h2>{html.escape(intro)}</h2>"]
    for alert in alerts:
        text, markup = _alert_section(alert, events.get(alert.id, []), base_url)
        texts.append(text)
        htmls.append(markup)
    footer = f"All alerts: {alert_link(base_url)}"
    texts.append(footer)
    htmls.append(f'<p><a href="{html.escape(alert_link(base_url))}">All alerts in TrailStream</a></p>')
    body = "<html><body style=\"font-family: sans-serif\">" + "\n".join(htmls) + "</body></html>"
    return _one_line(subject, 200), "\n".join(texts), body


def _alert_section(alert: FiredAlert, lines: list[dict], base_url: str) -> tuple[str, str]:
    link = alert_link(base_url, alert.id)
    more = alert.events - len(lines)
    text = [
        f"{alert.rule_name} ({alert.severity}): {alert.summary}",
        f"Fired at {alert.fired_at}; {alert.events} event(s):",
        *("  - " + " | ".join(line[key] or "-" for key, _ in MAIL_COLUMNS) for line in lines),
    ]
    if more > 0:
        text.append(f"  ... and {more} more on the Alerts page")
    text += [f"Open in TrailStream: {link}", ""]
    cell = 'style="text-align:left;padding:2px 6px"'
    head = "".join(f"<th {cell}>{html.escape(title)}</th>" for _, title in MAIL_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td {cell}>{html.escape(line[key])}</td>" for key, _ in MAIL_COLUMNS) + "</tr>"
        for line in lines
    )
    markup = (
        f"<h3>{html.escape(alert.rule_name)} ({html.escape(alert.severity)})</h3>"
        f"<p>{html.escape(alert.summary)}</p>"
        f"<p>Fired at {html.escape(alert.fired_at)}; {alert.events} event(s).</p>"
        f'<table style="border-collapse:collapse;font-size:13px"><tr>{head}</tr>{body}</table>'
        + (f"<p>... and {more} more on the Alerts page.</p>" if more > 0 else "")
        + f'<p><a href="{html.escape(link)}">Open in TrailStream</a></p>'
    )
    return "\n".join(text), markup


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Running ----------------------------------------------------------------------


@dataclass
class AlertRunResult:
    """What one pass did: alerts fired, sent, failed (kept for the next run), retried from earlier, waiting."""

    fired: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    waiting: int = 0
    errors: list[str] = field(default_factory=list)
    busy: bool = False

    @property
    def succeeded(self) -> bool:
        """True when everything due was sent and every rule could be evaluated."""
        return self.failed == 0 and not self.errors

    def summary(self) -> str:
        if self.busy:
            return "alerts: another alerts run is in progress on this cache; nothing done (try again shortly)"
        parts = [f"{self.fired} fired", f"{self.sent} sent", f"{self.failed} not sent"]
        if self.retried:
            parts.append(f"{self.retried} retried from earlier runs")
        if self.waiting:
            parts.append(f"{self.waiting} waiting for the digest")
        return "\n".join(["alerts: " + ", ".join(parts), *(f"problem: {error}" for error in self.errors)])


def run_alerts(db_path, settings=None, now: datetime | None = None) -> AlertRunResult:
    """One pass: evaluate the enabled rules, record what fired as pending, then send everything due.

    Called after every sync, by `python -m trailstream alerts run` and by `watch`. Never raises for a rule,
    the settings or the mail server: each problem becomes a sentence in the result's errors.
    """
    now = now or datetime.now(timezone.utc)
    result = AlertRunResult()
    if not os.path.exists(db_path):
        result.errors.append(f"no cache at {os.fspath(db_path)}: run `python -m trailstream sync` (or `demo`) first")
        return result
    alert_settings, detection_settings, smtp, smtp_problem = _read_settings(settings, result)
    with store.file_lock(db_path, "alerts") as acquired:  # one alerts run at a time per cache
        if not acquired:
            result.busy = True
            return result
        db = store.open_cache(db_path)
        try:
            ensure_builtin_rules(db)
            conn = store.open_cache_readonly(db_path)
            try:
                conn.execute("BEGIN")  # one snapshot for every rule, however long a sync runs beside us
                evaluation = evaluate_rules(conn, db_path, query_rules(conn), now, alert_settings, detection_settings)
                conn.execute("COMMIT")
            finally:
                conn.close()
            result.errors.extend(evaluation.errors)
            result.fired = len(save_evaluation(db, evaluation, iso_utc(now)))
            deliver_alerts(db, smtp, smtp_problem, alert_settings, now, result)
        finally:
            db.close()
    return result


def _read_settings(settings, result: AlertRunResult):
    """The [alerts], [detections] and [smtp] sections; problems go into the result and defaults are used."""
    from trailstream import config

    try:
        alert_settings = alert_settings_from(section(settings, "alerts"))
    except (ValueError, config.SettingsError) as exc:
        result.errors.append(str(exc))
        alert_settings = AlertSettings()
    try:
        detection_settings = _detection_settings(settings)
    except (ValueError, config.SettingsError) as exc:
        result.errors.append(str(exc))
        detection_settings = None
    smtp, smtp_problem = smtp_from(settings)
    return alert_settings, detection_settings, smtp, smtp_problem


def mail_status(settings) -> tuple[bool, str]:
    """Whether alerts can be mailed, and a sentence saying where they go or what to fix."""
    smtp, problem = smtp_from(settings)
    if smtp is None:
        return False, problem[0].upper() + problem[1:] + "."
    to = ", ".join(smtp.recipients) or "only the recipients set on each rule"
    return True, f"Alerts are mailed from {smtp.sender} through {smtp.describe()} to {to}."


def smtp_from(settings) -> tuple[mailer.SmtpSettings | None, str | None]:
    """The mail settings, or None and a sentence saying what to fix."""
    from trailstream import config

    try:
        smtp = mailer.smtp_settings_from(section(settings, "smtp"))
    except (mailer.MailSettingsError, config.SettingsError) as exc:
        return None, f"{exc}; alerts stay unsent until it is fixed"
    if smtp is None:
        return None, ("email is not configured: add an [smtp] section with host, sender and recipients to the "
                      "settings file; alerts wait on the Alerts page until then")
    return smtp, None


def _detection_settings(settings):
    from trailstream.analytics import detections

    if hasattr(settings, "section"):
        return detections.detection_settings(settings)
    return detections.DetectionSettings.from_dict(section(settings, "detections"))


def deliver_alerts(db: sqlite_utils.Database, smtp: mailer.SmtpSettings | None, smtp_problem: str | None,
                   alert_settings: AlertSettings, now: datetime, result: AlertRunResult) -> None:
    """Send every unsent immediate alert, and the digest when due; failures stay unsent for the next run."""
    unsent = query_fired_alerts(db.conn, limit=-1, unsent_only=True)
    immediate = [[alert] for alert in unsent if alert.delivery == "immediate"]
    digest = [alert for alert in unsent if alert.delivery == "digest"]
    last_digest = _state(db, "last_digest_at")
    digest_due = digest and (
        last_digest is None
        or any(alert.attempts for alert in digest)
        or now - parse_iso_utc(last_digest) >= alert_settings.digest_every
    )
    batches = immediate + (_group_by_recipients(digest) if digest_due else [])
    result.waiting = 0 if digest_due else len(digest)
    if not batches:
        return
    when = iso_utc(now)
    if smtp is None:
        due = [alert.id for batch in batches for alert in batch]
        mark_alerts(db, due, "failed", when, smtp_problem)
        result.failed += len(due)
        result.errors.append(smtp_problem)
        return
    unreachable = None
    for batch in batches:
        ids = [alert.id for alert in batch]
        result.retried += sum(1 for alert in batch if alert.attempts)
        if unreachable is None:
            try:
                _send_batch(db, smtp, batch, alert_settings.base_url)
            except mailer.MailServerUnreachable as exc:
                unreachable = str(exc)
            except mailer.MailError as exc:
                mark_alerts(db, ids, "failed", when, str(exc))
                result.failed += len(ids)
                result.errors.append(f"{_batch_name(batch)}: {exc}")
                continue
            else:
                mark_alerts(db, ids, "sent", when)
                result.sent += len(ids)
                if batch[0].delivery == "digest":
                    _set_state(db, "last_digest_at", when)
                continue
        mark_alerts(db, ids, "failed", when, unreachable)
        result.failed += len(ids)
    if unreachable:
        result.errors.append(unreachable)


def _group_by_recipients(alerts: list[FiredAlert]) -> list[list[FiredAlert]]:
    groups: dict[tuple[str, ...], list[FiredAlert]] = {}
    for alert in alerts:
        groups.setdefault(tuple(sorted(alert.recipients)), []).append(alert)
    return list(groups.values())


def _batch_name(batch: list[FiredAlert]) -> str:
    return f'alert "{batch[0].rule_name}"' if len(batch) == 1 else f"digest of {len(batch)} alerts"


def _send_batch(db, smtp: mailer.SmtpSettings, batch: list[FiredAlert], base_url: str) -> None:
    events = {alert.id: query_alert_events(db.conn, alert.id, MAIL_EVENT_LIMIT) for alert in batch}
    subject, text, markup = compose_mail(batch, events, base_url)
    mailer.send_mail(smtp, batch[0].recipients or smtp.recipients, subject, text, markup)
