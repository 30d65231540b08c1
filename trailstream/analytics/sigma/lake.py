"""Sigma findings on the lake: the lake is asked only for the period's candidate rows (sigma_queries'
`sigma_candidates`), which are loaded into an in-memory SQLite `events` table of the cache's shape where the rules'
own converted SQL runs, as on the cache. A rule needing a field the lake does not keep is skipped with a sentence,
never answered wrongly."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field

import orjson

from trailstream.analytics.detections.common import Finding
from trailstream.analytics.sigma.evaluation import rules_findings
from trailstream.analytics.sigma.functions import register_functions
from trailstream.analytics.sigma_queries import LakeRules, fields_outside_lake
from trailstream.cache.rows import STORED_COLUMNS
from trailstream.filters import EventFilter


@dataclass
class LakeSigma:
    """A lake run's findings, and a sentence for each rule skipped because the lake does not keep a field it reads."""

    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _correlation_sql(rule: dict) -> list[str]:
    """A correlation's group-by and value expressions (SQL over `events`)."""
    spec = orjson.loads(rule["query"])
    return [sql for sql in [*spec["group_by"], spec["value"]] if sql]


def _needs(rule: dict) -> list[str]:
    """The fields outside the lake a rule reads (a correlation: its group-by and value expressions)."""
    if rule["kind"] != "correlation":
        return fields_outside_lake(rule["query"])
    return [name for sql in _correlation_sql(rule) for name in fields_outside_lake(sql)]


def lake_reasons(rules: list[dict]) -> dict[str, str]:
    """Why the lake cannot answer a rule, by rule ID (the rules it can answer are absent): a field it does not keep,
    or, for a correlation, a rule it correlates that the lake cannot answer."""
    reasons: dict[str, str] = {}
    for rule in sorted(rules, key=lambda item: item["kind"] != "rule"):  # rules first: correlations refer to them
        needs = _needs(rule)
        referred = [] if rule["kind"] == "rule" else [rule_id for rule_id in orjson.loads(rule["query"])["rule_ids"]
                                                      if rule_id in reasons]
        if needs:
            reasons[rule["rule_id"]] = f"needs field {needs[0]}, which the lake does not keep"
        elif referred:
            reasons[rule["rule_id"]] = f"correlates rule {referred[0]}, which the lake cannot answer"
    return reasons


def answerable(rules: list[dict]) -> tuple[list[dict], list[str]]:
    """The rules the lake can answer (each to run afresh: nothing is stored for the lake's rows), and a sentence per
    one it cannot."""
    reasons = lake_reasons(rules)
    kept = [{**rule, "last_rowid": 0} for rule in rules if rule["rule_id"] not in reasons]
    return kept, [f'rule "{rule["title"]}" {reasons[rule["rule_id"]]}' for rule in rules if rule["rule_id"] in reasons]


def _memory_events(frame) -> sqlite3.Connection:
    """The candidate rows as an in-memory `events` table of the cache's columns (absent ones NULL)."""
    conn = sqlite3.connect(":memory:")
    columns = ", ".join(f"{name} INTEGER" if name in ("read_only", "raw_codec") else name for name in STORED_COLUMNS)
    conn.execute(f"CREATE TABLE events ({columns})")
    conn.execute("CREATE TABLE codecs (id INTEGER PRIMARY KEY, dictionary BLOB)")  # what register_functions reads
    conn.executemany(f"INSERT INTO events ({', '.join(frame.columns)}) VALUES ({', '.join('?' * frame.width)})",
                     frame.iter_rows())
    return register_functions(conn)


def detect_lake_sigma(source, lake_rules: LakeRules, event_filter: EventFilter | None = None) -> LakeSigma:
    """The period's Sigma findings from the lake (`source` answers sigma_candidates), with the skipped rules."""
    rules, skipped = answerable(lake_rules.catalog())
    plain = tuple(rule["query"] for rule in rules if rule["kind"] == "rule")
    if not plain:
        return LakeSigma([], skipped)
    event_filter = event_filter or EventFilter()
    reads = tuple(sql for rule in rules if rule["kind"] == "correlation" for sql in _correlation_sql(rule))
    candidates = source.query("sigma_candidates", event_filter, rules=plain, reads=reads)
    with closing(_memory_events(candidates)) as conn:
        return LakeSigma(rules_findings(conn, rules, lake_rules.exceptions_by_rule(), event_filter), skipped)
