"""What the lake is asked for Sigma rules (backend.PAGE_QUERIES): the period's candidate rows only. The rules' one
semantics home stays their SQLite conversion (sigma.lake runs it over these rows); here that SQL is read with sqlglot
to learn which columns the rules read, which fields they need that the lake does not keep, and what every match must
have in event_source / event_name (the lake's narrowing).

No pySigma here: the backend imports this module on every page.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import lru_cache

import orjson

import polars as pl
import sqlglot
from sqlglot import exp

from trailstream.analytics.detections.events import SECURITY_SCHEMA
from trailstream.analytics.lake_sql import READ, NamedQuery, events_select, like
from trailstream.cache import sigma_state
from trailstream.cache.frames import read_frame
from trailstream.cache.rows import EVENT_COLUMNS, LOOKUP_COLUMN_FIELDS
from trailstream.filters import EventFilter

# The lake keeps every flat `events` column (ingest.lake.FLAT_COLUMNS), not the record nor the lookup columns.
RECORD_COLUMNS = ("raw", "raw_codec", "record_hash")
LAKE_COLUMNS = tuple(name for name in EVENT_COLUMNS if name not in RECORD_COLUMNS)
_LOOKUP_FIELDS = {column: field for field, column in LOOKUP_COLUMN_FIELDS.items()}
# What findings, exceptions and the period filter read beside the rules' own columns.
BASE_COLUMNS = tuple(dict.fromkeys([*(name for name in SECURITY_SCHEMA if name != "actor"), "principal_arn",
                                    "read_only", "aws_region"]))
NARROWED = ("event_source", "event_name")  # columns whose literals every match needs narrow the lake's rows


@lru_cache(maxsize=1024)
def _parsed(sql: str) -> exp.Expression:
    """A rule's WHERE text (SQLite, as the conversion wrote it) as a sqlglot condition."""
    return sqlglot.parse_one(f"SELECT 1 FROM events AS e WHERE {sql}", read="sqlite").args["where"].this


def _event_columns(condition: exp.Expression) -> set[str]:
    """The `events` columns the SQL reads (json_tree nodes, qualified by their own alias, are not columns)."""
    return {column.name for column in condition.find_all(exp.Column) if column.table in ("", "e")}


def _record_path(call: exp.Expression) -> str | None:
    """The record field a sigma_values(raw, raw_codec, '$.a.b') or json_extract(sigma_record(...), '$."a"') reads."""
    literals = [arg for arg in call.find_all(exp.Literal) if arg.is_string and arg.name.startswith("$")]
    return literals[0].name[2:].replace('"', "") if literals else None


def fields_outside_lake(sql: str) -> list[str]:
    """The Sigma fields a rule's SQL reads that the lake does not keep (the stored record, the lookup columns)."""
    condition = _parsed(sql)
    fields = [_LOOKUP_FIELDS[name] for name in sorted(_event_columns(condition)) if name in _LOOKUP_FIELDS]
    for call in condition.find_all(exp.Anonymous, exp.JSONExtract, exp.JSONExtractScalar):
        if "raw" in {column.name for column in call.find_all(exp.Column)}:
            fields.append(_record_path(call) or "the stored record")
    if not fields and _event_columns(condition) & set(RECORD_COLUMNS):
        fields.append("the stored record")
    return list(dict.fromkeys(fields))


def _literal_like(column: str, node: exp.Expression) -> exp.Expression | None:
    """`column` compared as this node of the rule compares it, as a LIKE pattern (NOCASE equality is a LIKE with
    its wildcards escaped), or None when the node does not constrain `column` alone."""
    if isinstance(node, exp.Escape) and isinstance(node.this, exp.Like):
        node, escape = node.this, node.expression.name
        if escape != "\\":
            return None
        pattern = node.expression
    elif isinstance(node, exp.EQ) and isinstance(node.this, exp.Collate):
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            return None
        pattern = exp.Literal.string(pattern.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
        node = exp.Like(this=node.this.this, expression=pattern)
    else:
        return None
    target = node.this
    if not (isinstance(target, exp.Column) and target.name == column and isinstance(pattern, exp.Literal)):
        return None
    return exp.Literal.string(pattern.name)


def necessary(node: exp.Expression) -> list[tuple[str, str]] | None:
    """What every row the rule matches has, as alternatives of (column, LIKE pattern) over NARROWED columns, or None
    when nothing narrows it. Only ORs of such comparisons narrow; an AND takes its first narrowing part."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return necessary(node.this) or necessary(node.expression)
    if isinstance(node, exp.Or):
        left, right = necessary(node.this), necessary(node.expression)
        return left + right if left is not None and right is not None else None
    for column in NARROWED:
        pattern = _literal_like(column, node)
        if pattern is not None:
            return [(column, pattern.name)]
    return None


def candidate_condition(rules: tuple[str, ...], matches) -> exp.Expression:
    """Rows some rule may match: each rule's necessary comparisons through `matches(column, pattern)` (the engine's
    SQLite-like LIKE), OR-ed; every row when a rule has none."""
    alternatives = []
    for sql in rules:
        found = necessary(_parsed(sql))
        if found is None:
            return exp.true()
        alternatives += found
    unique = list(dict.fromkeys(alternatives))
    return exp.or_(*(matches(column, pattern) for column, pattern in unique)) if unique else exp.false()


def candidate_columns(rules: tuple[str, ...]) -> tuple[str, ...]:
    """The lake columns the rules, their findings and exceptions read, in `events` order."""
    wanted = set(BASE_COLUMNS).union(*(_event_columns(_parsed(sql)) for sql in rules))
    return tuple(name for name in LAKE_COLUMNS if name in wanted)


def candidates_sql(table: exp.Table, event_filter: EventFilter, rules=(), **options) -> exp.Select:
    """The period's rows some of `rules` (their SQLite WHERE texts) may match, with the columns they read."""
    columns = candidate_columns(tuple(rules))
    query = events_select(table, event_filter, *columns).where(candidate_condition(tuple(rules), like))
    return query.order_by("event_time_ms", "event_id", dialect=READ)


def _sqlite_like(column: str, pattern: str) -> exp.Expression:
    return exp.Escape(this=exp.Like(this=exp.column(column), expression=exp.Literal.string(pattern)),
                      expression=exp.Literal.string("\\"))


def query_candidates(conn: sqlite3.Connection, event_filter: EventFilter, rules=(), **options) -> pl.DataFrame:
    """candidates_sql on the cache (SQLite's LIKE folds ASCII case as the lake's like() does): for comparison."""
    columns = candidate_columns(tuple(rules))
    where, params = event_filter.sql("e")
    narrowing = candidate_condition(tuple(rules), _sqlite_like).sql(dialect="sqlite")
    sql = (f"SELECT {', '.join(f'e.{name}' for name in columns)} FROM events e WHERE {where} AND ({narrowing}) "
           "ORDER BY e.event_time, e.event_id")
    return read_frame(conn, sql, params, candidate_schema(tuple(rules)))


def candidate_schema(rules: tuple[str, ...]) -> dict[str, pl.DataType]:
    return {name: pl.Int64 if name == "read_only" else pl.String for name in candidate_columns(rules)}


def shape_candidates(frame: pl.DataFrame, rules=(), **options) -> pl.DataFrame:
    """The lake's rows as the cache's: text columns, read_only a whole number, event time kept as stored text."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in candidate_schema(tuple(rules)).items()])


@dataclass(frozen=True)
class LakeRules:
    """The cache's enabled, converted rules and their exceptions, as one hashable value (pages cache on it): the
    catalog is the app's own state, kept in the local cache whichever store holds the events."""

    rules: tuple[bytes, ...] = ()  # each catalog row as JSON
    exceptions: tuple[bytes, ...] = ()

    def catalog(self) -> list[dict]:
        return [orjson.loads(rule) for rule in self.rules]

    def exceptions_by_rule(self) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for item in map(orjson.loads, self.exceptions):
            grouped.setdefault(item["rule_id"], []).append(item)
        return grouped


def query_lake_rules(conn: sqlite3.Connection) -> LakeRules:
    """The rules the lake's Sigma findings run, read from the cache."""
    rules = sigma_state.query_catalog(conn, runnable_only=True)
    exceptions = sigma_state.query_exceptions(conn)
    return LakeRules(tuple(map(orjson.dumps, rules)), tuple(map(orjson.dumps, exceptions)))


QUERIES: dict[str, NamedQuery] = {
    "sigma_candidates": NamedQuery(query_candidates, candidates_sql, shape_candidates),
}
