"""Evaluation: the converted rules run as SQL over `events`, over a period (findings, on demand) or over the events
stored since each rule's watermark (after every sync); correlation rules window their rules' matches in polars."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
import polars as pl
import sqlite_utils

from trailstream.analytics.detections.common import (MAX_EVENT_IDS, SIGMA_PREFIX, Finding, iso, listing, plural,
                                                     text)
from trailstream.analytics.detections.events import (ACTOR_KEYS, SECURITY_SCHEMA, episode, episode_summary,
                                                     security_rows)
from trailstream.analytics.sigma.functions import register_functions
from trailstream.analytics.sigma.loading import RuleSet
from trailstream.analytics.sigma.settings import LEVEL_SEVERITY, SigmaSettings
from trailstream.cache import rollups, sigma_state
from trailstream.cache.frames import read_frame
from trailstream.filters import EventFilter
from trailstream.timefmt import parse_iso_utc

FINDING_PREFIX = SIGMA_PREFIX  # spelled once, in detections.common, which the pages read without pySigma
LICENSE = "Detection Rule License (DRL) 1.1"
EPISODE_GAP = timedelta(hours=1)  # matches of one rule by one actor closer than this are one finding


def catalog_rows(ruleset: RuleSet, sigma: SigmaSettings) -> list[dict]:
    """The loaded rules as the cache keeps them (sigma_state.CATALOG_COLUMNS), with the SQL or correlation to run."""
    rows = []
    for rule in ruleset.rules:
        query = rule.where if rule.correlation is None else orjson.dumps(rule.correlation.__dict__).decode()
        rows.append({**{name: getattr(rule, name) for name in ("rule_id", "title", "path", "status", "reason",
                                                                 "level", "author", "link", "description", "kind")},
                     "query": query, "alert": int(sigma.alerts_for(rule.level))})
    return rows


def _exception_columns() -> dict[str, tuple[str, ...]]:
    """What each kind of exception is compared with: a principal by its name, its role (every session) or ARN."""
    return {"principal": ("e.principal", rollups.actor_sql("e"), "e.principal_arn"), "account_id": ("e.account_id",),
            "event_id": ("e.event_id",)}


def _exceptions_sql(exceptions: list[dict]) -> tuple[str, list]:
    """`NOT (...)` over a rule's exceptions (principal, account, event ID), or '1' without any."""
    if not exceptions:
        return "1", []
    columns = _exception_columns()
    terms, params = [], []
    for item in exceptions:
        compared = columns[item["field"]]
        terms.append("(" + " OR ".join(f"COALESCE({column}, '') = ?" for column in compared) + ")")
        params += [item["value"]] * len(compared)
    return f"NOT ({' OR '.join(terms)})", params


def _rule_condition(rule: dict, exceptions: list[dict]) -> tuple[str, list]:
    excluded, params = _exceptions_sql(exceptions)
    return f"({rule['query']}) AND {excluded}", params


def _match_condition(rule: dict, exceptions: list[dict], top: int) -> tuple[str, list]:
    """SQL saying "this rule matches e": its stored matches up to its watermark, the rule itself beyond it (all of
    it for a rule never run), always minus its exceptions."""
    if rule["last_rowid"] <= 0:
        return _rule_condition(rule, exceptions)
    excluded, params = _exceptions_sql(exceptions)
    stored = "e.rowid IN (SELECT event_rowid FROM sigma_matches WHERE rule_id = ?)"
    if rule["last_rowid"] >= top:
        return f"{stored} AND {excluded}", [rule["rule_id"], *params]
    return (f"({stored} OR (e.rowid > ? AND ({rule['query']}))) AND {excluded}",
            [rule["rule_id"], rule["last_rowid"], *params])


def _top(conn) -> int:
    return conn.execute("SELECT COALESCE(max(rowid), 0) FROM events").fetchone()[0]


def _attribution(rule: dict) -> dict:
    """What the DRL asks every message based on a match to carry: the rule's author, its ID and where it lives."""
    return {"rule_id": rule["rule_id"], "rule_title": rule["title"], "title": f"Sigma: {rule['title']}",
            "author": rule["author"], "link": rule["link"], "level": rule["level"], "license": LICENSE,
            "alert": bool(rule["alert"])}


def _credit(rule: dict) -> str:
    return f"Sigma rule {rule['rule_id']} by {rule['author']} ({rule['link']}, {LICENSE})."


def _rule_findings(rule: dict, matches: pl.DataFrame) -> list[Finding]:
    """One finding per actor and run of matches (gaps under EPISODE_GAP), newest first."""
    episodes = (
        matches.lazy()
        .drop_nulls("event_time")
        .sort([*ACTOR_KEYS, "event_time", "event_id"])  # one second's events in one order on every store
        .with_columns(run=episode(ACTOR_KEYS, EPISODE_GAP))
        .group_by([*ACTOR_KEYS, "run"])
        .agg(*episode_summary(matches))
        .sort("last_time", descending=True)
        .collect()
    )
    return [
        Finding(
            type=FINDING_PREFIX + rule["rule_id"], severity=LEVEL_SEVERITY.get(rule["level"], "medium"),
            time=iso(run["last_time"]), principal=run["actor"], account_id=run["account_id"],
            summary=(f"{rule['title']}: {plural(run['events'], 'matching event')} ({listing(run['event_names'])}) "
                     f"by {text(run['actor'], 'an unknown principal')} from "
                     f"{listing(run['source_ips']) or 'an unknown address'}. {_credit(rule)}"),
            event_ids=run["event_ids"][:MAX_EVENT_IDS],
            details={**_attribution(rule), "events": run["events"], "first_time": iso(run["first_time"]),
                     "event_names": run["event_names"], "ips": run["source_ips"]},
        )
        for run in episodes.iter_rows(named=True)
    ]


def detect_sigma_findings(conn, event_filter: EventFilter | None = None, settings=None) -> list[Finding]:
    """Every enabled, converted Sigma rule over the period as findings of type sigma:<rule id>; a rule whose SQL
    fails is skipped (the post-sync run reports it)."""
    conn = getattr(conn, "conn", conn)
    rules = sigma_state.query_catalog(conn, runnable_only=True)
    if not rules:
        return []
    register_functions(conn)
    return rules_findings(conn, rules, exceptions_by_rule(conn), event_filter)


def rules_findings(conn, rules: list[dict], exceptions: dict, event_filter) -> list[Finding]:
    """The findings of catalog `rules` over the events of `conn` in the period (a rule never run is evaluated
    here; sigma.lake passes every rule so, over the lake's rows in memory)."""
    by_id = {rule["rule_id"]: rule for rule in rules}
    findings = []
    for rule_id, matches in _rule_matches(conn, [r for r in rules if r["kind"] == "rule"], exceptions,
                                          event_filter).items():
        findings += _rule_findings(by_id[rule_id], matches)
    for rule in (rule for rule in rules if rule["kind"] == "correlation"):
        try:
            findings += _correlation_findings(conn, rule, by_id, event_filter, exceptions)
        except sqlite3.Error:
            continue
    return findings


def _rule_matches(conn, rules: list[dict], exceptions: dict, event_filter) -> dict[str, pl.DataFrame]:
    """The matching events of each rule (SECURITY_SCHEMA), for the rules with any: from the stored matches, except
    rules never run, which are evaluated here (in one shared pass for those no index serves)."""
    top = _top(conn)
    scanned = [rule for rule in rules if rule["last_rowid"] <= 0 and not _seeks(conn, rule, exceptions)]
    found = {}
    for rule in (rule for rule in rules if rule not in scanned):
        condition, params = _match_condition(rule, exceptions.get(rule["rule_id"], []), top)
        with contextlib.suppress(sqlite3.Error):
            found[rule["rule_id"]] = security_rows(conn, event_filter, condition, params)
    if scanned:
        with contextlib.suppress(sqlite3.Error):
            found |= _scan_matches(conn, scanned, exceptions, event_filter)
    return {rule_id: frame for rule_id, frame in found.items() if not frame.is_empty()}


def _scan_matches(conn, rules: list[dict], exceptions: dict, event_filter) -> dict[str, pl.DataFrame]:
    """One pass over the period for rules no index serves; each row's conditions are evaluated once."""
    flags, params = [], []
    for index, rule in enumerate(rules):
        condition, condition_params = _rule_condition(rule, exceptions.get(rule["rule_id"], []))
        flags.append(f"CASE WHEN {condition} THEN 1 ELSE 0 END AS m{index}")
        params += condition_params
    where, filter_params = (event_filter or EventFilter()).sql("e")
    columns = ", ".join(rollups.actor_sql("e") if name == "actor" else f"e.{name}" for name in SECURITY_SCHEMA)
    marks = [f"m{index}" for index in range(len(rules))]
    sql = (f"SELECT * FROM (SELECT {columns}, {', '.join(flags)} FROM events e WHERE {where} LIMIT -1) "
           f"WHERE {' + '.join(marks)} > 0")
    frame = read_frame(conn, sql, [*params, *filter_params], SECURITY_SCHEMA | {mark: pl.Int64 for mark in marks})
    return {rule["rule_id"]: frame.filter(pl.col(mark) == 1).drop(marks) for rule, mark in zip(rules, marks)}


def exceptions_by_rule(conn) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for item in sigma_state.query_exceptions(conn):
        grouped.setdefault(item["rule_id"], []).append(item)
    return grouped


# --- Correlations --------------------------------------------------------------------------

_OPERATORS = {"gte": "__ge__", "gt": "__gt__", "lte": "__le__", "lt": "__lt__", "eq": "__eq__", "neq": "__ne__"}


def _correlation_events(conn, spec: dict, by_id: dict, event_filter, exceptions) -> pl.DataFrame:
    """The matches of every rule a correlation refers to, with its group keys (g0..) and value (v) and slot."""
    groups = ", ".join(f"{expression} AS g{index}" for index, expression in enumerate(spec["group_by"]))
    top = _top(conn)
    frames = []
    for slot, rule_id in enumerate(spec["rule_ids"]):
        rule = by_id.get(rule_id)
        if rule is None:  # a referenced rule that is disabled makes its correlation silent too
            return pl.DataFrame()
        condition, params = _match_condition(rule, exceptions.get(rule_id, []), top)
        extra = f", {slot} AS slot, {spec['value'] or 'NULL'} AS v" + (f", {groups}" if groups else "")
        schema = {"slot": pl.Int64, "v": pl.String} | {f"g{index}": pl.String for index in range(len(spec["group_by"]))}
        frame = security_rows(conn, event_filter, condition, params, extra_sql=extra,
                              schema=SECURITY_SCHEMA | schema)
        frames.append(frame)
    return pl.concat(frames) if frames else pl.DataFrame()


def _correlation_findings(conn, rule: dict, by_id: dict, event_filter, exceptions) -> list[Finding]:
    """Windows of `timespan` per group where the correlation's condition holds, one finding per run of them."""
    spec = orjson.loads(rule["query"])
    events = _correlation_events(conn, spec, by_id, event_filter, exceptions)
    if events.is_empty():
        return []
    keys = [f"g{index}" for index in range(len(spec["group_by"]))]
    span = timedelta(seconds=spec["seconds"])
    metric = {"event_count": pl.len(), "value_count": pl.col("v").drop_nulls().n_unique(),
              "temporal": pl.col("slot").n_unique()}[spec["type"]]
    compare = getattr(pl.col("metric"), _OPERATORS[spec["op"]])(spec["count"])
    events = events.drop_nulls(["event_time", *keys]).sort([*keys, "event_time", "event_id"])
    windows = (
        events.rolling("event_time", period=span, group_by=keys or None)
        .agg(metric.alias("metric"))
        .filter(compare)
        .sort([*keys, "event_time"])
        .with_columns(run=episode(keys, span) if keys else (pl.col("event_time").diff() > span).fill_null(True)
                      .cum_sum())
        .group_by([*keys, "run"])
        .agg(start=pl.col("event_time").min() - span, end=pl.col("event_time").max(), peak=pl.col("metric").max())
    )
    if windows.is_empty():
        return []
    joined = (events.join(windows, on=keys, how="inner") if keys else events.join(windows, how="cross"))
    runs = (
        joined.filter(pl.col("event_time").is_between(pl.col("start"), pl.col("end")))
        .sort("event_time", "event_id")
        .group_by([*keys, "run"])
        .agg(*episode_summary(joined), pl.col("peak").first(), pl.col("actor").mode().first().alias("actor"),
             pl.col("account_id").mode().first().alias("account_id"))
        .sort("last_time", descending=True)
    )
    return [_correlation_finding(rule, spec, run, keys) for run in runs.iter_rows(named=True)]


def _correlation_finding(rule: dict, spec: dict, run: dict, keys: list[str]) -> Finding:
    group = {name: run[key] for name, key in zip(spec["group_fields"], keys)}
    described = ", ".join(f"{name} = {value}" for name, value in group.items()) or "all events"
    measure = {"event_count": "events", "value_count": "distinct values", "temporal": "of its rules"}[spec["type"]]
    return Finding(
        type=FINDING_PREFIX + rule["rule_id"], severity=LEVEL_SEVERITY.get(rule["level"], "medium"),
        time=iso(run["last_time"]), principal=run["actor"], account_id=run["account_id"],
        summary=(f"{rule['title']}: {run['peak']:,} {measure} within {spec['seconds']:,} s for {described} "
                 f"({plural(run['events'], 'event')}). {_credit(rule)}"),
        event_ids=run["event_ids"][:MAX_EVENT_IDS],
        details={**_attribution(rule), "events": run["events"], "first_time": iso(run["first_time"]),
                 "group": group, "peak": run["peak"], "correlation": spec["type"]},
    )


# --- After each sync -----------------------------------------------------------------------


@dataclass
class SigmaRun:
    """What one incremental run did: rules evaluated, new matches, and rules that failed with the reason."""

    rules: int = 0
    new_events: int = 0
    matches: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        done = (f"sigma: {plural(self.rules, 'rule')} over {plural(self.new_events, 'new event')}, "
                f"{self.matches:,} new match{'' if self.matches == 1 else 'es'}")
        return done + "".join(f"; {problem}" for problem in self.problems)


def save_rules(db: sqlite_utils.Database, ruleset: RuleSet, sigma: SigmaSettings) -> None:
    """Keep the loaded catalog in the cache, where findings, the rules page and alerts read it."""
    sigma_state.save_catalog(db, catalog_rows(ruleset, sigma))


def evaluate_new_events(db: sqlite_utils.Database) -> SigmaRun:
    """Run each enabled rule over the events stored since its watermark and keep what it matched; matches, counts
    and watermarks move in one commit (the rows matched stay in SQLite: a noisy rule may match most events)."""
    conn = register_functions(db.conn)
    top = _top(conn)
    runnable = sigma_state.query_catalog(conn, runnable_only=True)
    rules = [rule for rule in runnable if rule["last_rowid"] < top]
    exceptions = exceptions_by_rule(conn)
    run, staged, counts = SigmaRun(rules=len(rules)), {}, {}
    for mark in sorted({rule["last_rowid"] for rule in rules}):
        group = [rule for rule in rules if rule["last_rowid"] == mark]
        run.new_events = max(run.new_events, top - mark)
        staged |= _match_rules(db, [rule for rule in group if rule["kind"] == "rule"], exceptions, mark, top, run)
        for rule in (rule for rule in group if rule["kind"] == "correlation"):
            try:
                counts[rule["rule_id"]] = _count_new_correlation(conn, rule, {r["rule_id"]: r for r in runnable},
                                                                 exceptions, mark, top)
            except (sqlite3.Error, pl.exceptions.PolarsError) as exc:
                run.problems.append(f'rule "{rule["title"]}" could not run ({exc}); it is tried again next time')
    counts |= sigma_state.save_staged_matches(db, staged, counts, top)
    run.matches = sum(count for count, _ in counts.values())
    return run


def _match_rules(db, rules: list[dict], exceptions: dict, mark: int, top: int, run: SigmaRun) -> dict:
    """Stage each rule's matches among rowids (mark, top] (sigma_state.stage_matches): rules an index serves seek one
    by one (the NOCASE event-name index ends in the rowid, so a seek reads only new rows), the others share one
    pass; returns {staged table: its rule IDs}."""
    together = [rule for rule in rules if not _seeks(db.conn, rule, exceptions)]
    staged = {}
    try:
        staged |= _match_together(db, together, mark, top)
    except sqlite3.Error:  # one rule's SQL fails: run them one by one to find it
        alone = together
    else:
        alone = []
    for rule in [rule for rule in rules if rule not in together] + alone:
        try:
            staged |= _match_together(db, [rule], mark, top)
        except sqlite3.Error as exc:
            run.problems.append(f'rule "{rule["title"]}" could not run ({exc}); it is tried again next time')
    return staged


def _seeks(conn, rule: dict, exceptions: dict) -> bool:
    """Whether SQLite reads this rule's events through an index rather than scanning the table."""
    condition, params = _rule_condition(rule, exceptions.get(rule["rule_id"], []))
    plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT 1 FROM events e WHERE {condition}", params).fetchall()
    return not any(row[3] == "SCAN e" or row[3].startswith("SCAN e ") for row in plan)


def _match_together(db, rules: list[dict], mark: int, top: int) -> dict[str, list[str]]:
    """Stage the (rowid, event time) matches of rules over rowids (mark, top], exceptions not applied (they apply
    when matches are read); several rules share one pass, each row's conditions evaluated once."""
    if not rules:
        return {}
    if len(rules) == 1:
        sql = (f"SELECT e.rowid AS event_rowid, e.event_time, 1 AS m0 FROM events e WHERE e.rowid > ? "
               f"AND e.rowid <= ? AND ({rules[0]['query']})")
    else:
        flags = [f"CASE WHEN {rule['query']} THEN 1 ELSE 0 END AS m{index}" for index, rule in enumerate(rules)]
        sql = (f"SELECT * FROM (SELECT e.rowid AS event_rowid, e.event_time, {', '.join(flags)} FROM events e "
               f"NOT INDEXED WHERE e.rowid > ? AND e.rowid <= ? LIMIT -1) "
               f"WHERE {' + '.join(f'm{index}' for index in range(len(rules)))} > 0")
    return {sigma_state.stage_matches(db, sql, [mark, top]): [rule["rule_id"] for rule in rules]}


def _count_new_correlation(conn, rule, by_id, exceptions, mark: int, top: int) -> tuple[int, str | None]:
    """Correlation windows that end on one of the new events (the window reaches back over older ones)."""
    oldest = conn.execute("SELECT min(event_time) FROM events WHERE rowid > ? AND rowid <= ?",
                          [mark, top]).fetchone()[0]
    if oldest is None:
        return 0, None
    seconds = orjson.loads(rule["query"])["seconds"]
    since = iso(parse_iso_utc(oldest) - timedelta(seconds=seconds))
    found = [finding for finding in _correlation_findings(conn, rule, by_id, EventFilter(start=since), exceptions)
             if finding.time >= oldest]
    return len(found), max((finding.time for finding in found), default=None)
