"""Alert rules: the built-in ones (data, in one list), custom search and SQL rules, and their storage."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass

import sqlite_utils

from trailstream import catalog
from trailstream.notify import mailer
from trailstream.notify.alerts import channels as alert_channels
from trailstream.timefmt import utc_now

RULE_KINDS = {
    "finding": "Security finding",
    "events": "Events",
    "search": "Search filter",
    "sql": "SQL query",
}
CUSTOM_KINDS = ("search", "sql")
DELIVERIES = ("immediate", "digest")


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
    """A rule as stored: what it matches (kind + query), and how and to whom (mail, channels) it alerts."""

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
    channels: tuple[str, ...] = ()  # apprise URLs; empty means the [alerts] channels

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

# Every built-in rule beside the one per finding type: add new ones here (a unique key, kind 'events').
EVENT_RULES: tuple[BuiltinRule, ...] = (
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
)


# Every Sigma finding (type "sigma:<rule id>") whose rule's level is at or above [sigma] alert_level.
SIGMA_RULE = BuiltinRule("finding:sigma", "finding", "Community (Sigma) rule matched", "high", query="sigma",
                         description="A Sigma rule at or above [sigma] alert_level matched; each alert names the rule, "
                                     "its author, ID and link")


# Log integrity findings (notify.alerts.integrity checks them, not the detections): query names the problem class.
INTEGRITY_RULES: tuple[BuiltinRule, ...] = (
    BuiltinRule("integrity_modified", "finding", "Log file modified or injected", "high", query="integrity:modified",
                description="A log file differs from its signed digest, has appended data, or no digest lists it"),
    BuiltinRule("integrity_missing", "finding", "Log file or digest missing", "high", query="integrity:missing",
                description="A log file a digest lists, or an hourly digest, is missing"),
    BuiltinRule("integrity_chain", "finding", "Digest chain broken or signature invalid", "high", query="integrity:chain",
                description="A digest's signature does not verify, it was moved, or it cannot be read"),
    BuiltinRule("integrity_stopped", "finding", "Digests stopped arriving", "medium", query="integrity:stopped",
                description="An account and region whose hourly digests stopped (log file validation or logging off)"),
)


def _builtin_rules() -> dict[str, BuiltinRule]:
    """One rule per finding type in the catalog, then the event rules above."""
    findings = [
        BuiltinRule(f"finding:{kind}", "finding", title, catalog.FINDING_SEVERITY.get(kind, "medium"), query=kind,
                    description=f"Security finding: {title[0].lower()}{title[1:]}")
        for kind, title in catalog.FINDING_TYPES.items()
    ]
    return {rule.key: rule for rule in [*findings, SIGMA_RULE, *EVENT_RULES, *INTEGRITY_RULES]}


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


_RULE_COLUMNS = ("id, kind, name, key, enabled, severity, recipients, delivery, query, threshold, window_minutes, "
                 "channels")


def _rule_from_row(row) -> AlertRule:
    values = dict(zip(_RULE_COLUMNS.split(", "), tuple(row)))
    values["enabled"] = bool(values["enabled"])
    values["recipients"] = tuple(json.loads(values["recipients"] or "[]"))
    values["channels"] = tuple(json.loads(values["channels"] or "[]"))
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


def configured_channels(conn: sqlite3.Connection, defaults: tuple[str, ...]) -> dict[str, list[str]]:
    """Every channel URL in use -> who uses it: "every rule without its own" (the [alerts] channels) or rule names."""
    used: dict[str, list[str]] = {url: ["every rule without its own"] for url in defaults}
    for rule in query_rules(conn):
        for url in rule.channels:
            used.setdefault(url, []).append(rule.name)
    return used


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
    problems.extend(problem for problem in map(alert_channels.check_channel, rule.channels) if problem)
    if rule.threshold < 1 or rule.window_minutes < 1:
        problems.append("the threshold and the window must be at least 1")
    if rule.key is None and rule.kind not in CUSTOM_KINDS:
        problems.append(f"a custom rule is a {' or '.join(RULE_KINDS[k] for k in CUSTOM_KINDS)}")
    if rule.kind == "search":
        from trailstream.analytics.queries import SearchQuery

        try:
            search = SearchQuery.from_dict(json.loads(rule.query or "{}"))
        except (ValueError, TypeError) as exc:
            problems.append(f"the search fields cannot be read: {exc}")
        else:
            if search.is_empty():
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
        "channels": json.dumps(list(rule.channels)),
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
