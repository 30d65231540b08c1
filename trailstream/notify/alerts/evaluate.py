"""Rule evaluation: what each enabled rule has to say about the events stored since its watermark (reads only)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from trailstream.filters import EventFilter
from trailstream.notify.alerts.integrity import IntegrityCheck
from trailstream.notify.alerts.rules import RARE_ERROR_CONDITION, AlertRule
from trailstream.notify.alerts.settings import AlertSettings
from trailstream.timefmt import iso_utc, parse_iso_utc

# How much history before the oldest candidate event the detections see (bursts, travel, first-seen).
DETECTION_CONTEXT = timedelta(days=1)
SQL_RULE_ROW_CAP = 100_000


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
    integrity_check = IntegrityCheck(conn, now, alert_settings.max_age)
    findings = []
    if any(rule.kind == "finding" and not integrity_check.handles(rule) for rule in due):
        try:
            findings = _detect(conn, since, detection_settings)
        except Exception as exc:  # the other rules still run; these wait for the next run
            evaluation.errors.append(f"the security detections failed ({_reason(exc)}); the finding rules are "
                                     "checked again on the next run")
            due = [rule for rule in due if rule.kind != "finding" or integrity_check.handles(rule)]
    for rule in due:
        mark = marks.get(rule.id, 0)
        try:
            if integrity_check.handles(rule):
                summary = integrity_check.summary(rule)
                drafts = [AlertDraft(rule, summary, [])] if summary else []
            elif rule.kind == "finding":
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


# --- On the lake ---------------------------------------------------------------------------------------------------

# The lake has no insertion order: a rule checks the events whose time is after its last check less this overlap (an
# event reaching the lake later than that after its own time is missed); fired-alert records keep repeats out.
LAKE_OVERLAP = timedelta(hours=1)


def evaluate_rules_on_lake(conn: sqlite3.Connection, lake, rules: list[AlertRule], now: datetime,
                           alert_settings: AlertSettings, detection_settings=None) -> Evaluation:
    """What each enabled rule has to say about the lake's events since its last check (less LAKE_OVERLAP, within
    [alerts] max_age); the cache (`conn`) gives the rules' state, the Sigma rules and what already fired."""
    evaluation = Evaluation()
    since = iso_utc(now - alert_settings.max_age)
    checked = {rule_id: (mark, at) for rule_id, mark, at in
               conn.execute("SELECT rule_id, last_rowid, evaluated_at FROM alert_watermarks").fetchall()}
    starts = {rule.id: _lake_start(checked.get(rule.id, (0, None))[1], since) for rule in rules if rule.enabled}
    integrity_check = IntegrityCheck(conn, now, alert_settings.max_age)
    finding_rules = [rule for rule in rules if rule.id in starts and rule.kind == "finding"
                     and not integrity_check.handles(rule)]
    findings = []
    if finding_rules:
        try:
            findings = _lake_findings(conn, lake, min(starts[rule.id] for rule in finding_rules), now,
                                      detection_settings)
        except Exception as exc:  # the other rules still run; these wait for the next run
            evaluation.errors.append(f"the security detections on the lake failed ({_reason(exc)}); the finding "
                                     "rules are checked again on the next run")
            starts = {key: value for key, value in starts.items() if key not in {r.id for r in finding_rules}}
    for rule in (rule for rule in rules if rule.id in starts):
        try:
            drafts = _lake_drafts(conn, lake, rule, findings, starts[rule.id], now, integrity_check)
        except Exception as exc:  # one broken rule must not silence the others
            evaluation.errors.append(f'rule "{rule.name}" could not be evaluated on the lake ({_reason(exc)}); '
                                     "fix or disable it on the Alerts page")
            continue
        evaluation.drafts.extend(drafts)
        evaluation.watermarks[rule.id] = checked.get(rule.id, (0, None))[0]  # the cache's order is kept as it was
    return evaluation


def _lake_start(last_check: str | None, since: str) -> str:
    """Where a rule's new events start on the lake: its last check less LAKE_OVERLAP, never before max_age."""
    return max(since, iso_utc(parse_iso_utc(last_check) - LAKE_OVERLAP)) if last_check else since


def _lake_findings(conn, lake, start: str, now: datetime, detection_settings) -> list:
    """Every finding on the lake from a day before `start` (bursts and travel need it), the Sigma rules' included."""
    from trailstream.analytics import security_queries, sigma_queries

    period = EventFilter(start=iso_utc(parse_iso_utc(start) - DETECTION_CONTEXT), end=iso_utc(now))
    rules = sigma_queries.query_lake_rules(conn)
    return security_queries.query_security_findings(lake, period, detection_settings, rules).findings


def _lake_drafts(conn, lake, rule: AlertRule, findings, start: str, now: datetime,
                 integrity_check: IntegrityCheck) -> list[AlertDraft]:
    """One rule's alerts on the lake: its events since `start` (with a threshold's window of history before it)."""
    if integrity_check.handles(rule):
        summary = integrity_check.summary(rule)
        return [AlertDraft(rule, summary, [])] if summary else []
    if rule.kind == "finding":
        return _lake_finding_drafts(conn, rule, findings, start)
    history = start if rule.threshold <= 1 else iso_utc(parse_iso_utc(start) - timedelta(minutes=rule.window_minutes))
    matched = _lake_matching_events(lake, rule, EventFilter(start=history, end=iso_utc(now)))
    candidates = [Candidate(int(row["event_time"] >= start), row["event_id"], row["event_time"])
                  for row in matched.iter_rows(named=True)]
    principals = dict(zip(matched["event_id"], matched["principal"]))
    return _threshold_drafts(conn, rule, candidates, 0, start, principals)


def _lake_finding_drafts(conn, rule: AlertRule, findings, start: str) -> list[AlertDraft]:
    """One alert per finding of the rule's type ending after `start`; only its events not alerted before."""
    relevant = [finding for finding in _relevant(rule, findings) if finding.time and finding.time >= start]
    taken = _already_alerted(conn, rule.id, [event_id for finding in relevant for event_id in finding.event_ids])
    drafts = []
    for finding in sorted(relevant, key=lambda item: item.time):
        fresh = [event_id for event_id in finding.event_ids if event_id not in taken]
        if fresh:
            taken.update(fresh)
            drafts.append(AlertDraft(rule, finding.summary, fresh))
    return drafts


def _lake_matching_events(lake, rule: AlertRule, period: EventFilter):
    """The period's events a rule matches on the lake (event_id, event_time, principal; oldest first)."""
    if rule.kind == "sql":
        return _lake_sql_rule_events(lake, rule.query, period)
    if rule.kind == "search":
        search = json.dumps(json.loads(rule.query or "{}"))
        return lake.query("alert_events", period, search=search)
    builtin = rule.builtin
    if builtin.condition == RARE_ERROR_CONDITION:  # a subquery per event over the whole lake: counted once instead
        return lake.query("alert_events", period, event_names=tuple(builtin.event_names), once=True)
    return lake.query("alert_events", period, event_names=tuple(builtin.event_names), condition=builtin.condition)


def _lake_sql_rule_events(lake, sql: str, period: EventFilter):
    """A custom SQL rule (Trino, as the lake's SQL page takes it) through the lake's guard: its event_id column,
    joined back to the lake's events of the period."""
    from trailstream.analytics import lake_sqlguard, sqlguard

    wrapped = (f"SELECT event_id, event_time, principal FROM events WHERE event_id IN (SELECT event_id FROM "
               f"({sql.strip().rstrip(';')}) AS alert_rule) AND event_time >= :start AND date >= :start_day "
               "ORDER BY event_time, event_id")
    params = {"start": period.start, "end": period.end, "start_day": period.start[:10]}
    try:
        lake_sqlguard.parse_lake_sql(sql)  # the guard judges the query as written
        result = lake_sqlguard.run_lake_query(lake.run, lake.table, lake.dialect, wrapped, params, SQL_RULE_ROW_CAP,
                                              getattr(lake, "interrupt", None))  # DuckDB's time limit
    except (sqlguard.QueryRefused, sqlguard.QueryFailed) as exc:
        message = str(exc) + ("; the query must return an event_id column" if "event_id" in str(exc) else "")
        raise ValueError(f"{message} (on the lake a SQL rule is Trino SQL, as the SQL page takes it)") from None
    if result.truncated:
        raise ValueError(f"the query matches more than {SQL_RULE_ROW_CAP:,} events; narrow it with WHERE")
    return result.frame


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _detect(conn, since: str, detection_settings) -> list:
    """Every finding around the candidate period (with a day of context before it for bursts and travel): the ones
    the post-sync step stored when they are current."""
    from trailstream.analytics import detections

    start = iso_utc(parse_iso_utc(since) - DETECTION_CONTEXT)
    return detections.query_period_findings(conn, EventFilter(start=start), detection_settings).findings


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


def _relevant(rule: AlertRule, findings) -> list:
    """The findings of the rule's type (a Sigma rule's when its level alerts)."""
    return [finding for finding in findings if finding.type == rule.query
            or (finding.type.startswith(f"{rule.query}:") and finding.details.get("alert"))]  # Sigma's


def _finding_drafts(conn, rule: AlertRule, findings, mark: int, top: int, since: str) -> list[AlertDraft]:
    """One alert per finding of the rule's type that involves a new event; only events not alerted before."""
    relevant = _relevant(rule, findings)
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


def _threshold_drafts(conn, rule: AlertRule, candidates: list[Candidate], mark: int, since: str,
                      principals: dict[str, str | None] | None = None) -> list[AlertDraft]:
    """One alert listing the matching events in windows that reach the threshold and hold a new event (`principals`
    by event ID: the lake's, where the cache may not hold the events)."""
    new = [item.rowid > mark and item.event_time >= since for item in candidates]
    chosen = windows_over_threshold([parse_iso_utc(item.event_time) for item in candidates], new, rule.threshold,
                                    timedelta(minutes=rule.window_minutes))
    picked = [item.event_id for item, keep in zip(candidates, chosen) if keep]
    taken = _already_alerted(conn, rule.id, picked)
    fresh = [event_id for event_id in picked if event_id not in taken]
    if not fresh:
        return []
    if principals is not None:
        return [AlertDraft(rule, events_summary(len(fresh), {principals[event_id] for event_id in fresh}), fresh)]
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
    return events_summary(len(event_ids), principals)


def events_summary(count: int, principals) -> str:
    """'3 events by alice, bob': the first three principals by name, 'unknown' for none."""
    names = sorted({principal or "unknown" for principal in principals})
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{count} event(s) by {shown}"
