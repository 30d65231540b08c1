"""What the lake is asked for Sigma rules (backend.PAGE_QUERIES): the period's candidate rows only. The rules' one
semantics home stays their SQLite conversion (sigma.lake runs it over these rows); here that SQL is read with sqlglot
to learn which columns the rules read, which fields they need that the lake does not keep, and what every match must
have in a column (its service and API, say: the lake's narrowing).

No pySigma here: the backend imports this module on every page.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import lru_cache

import orjson
import polars as pl
import sqlglot
from sqlglot import exp

from trailstream.analytics.detections.events import SECURITY_SCHEMA
from trailstream.analytics.lake_sql import ASCII_LOWER, READ, NamedQuery, events_select, fold, like
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
# Text columns a rule compares with a literal (NOCASE equality or LIKE): what every match needs narrows the lake's rows.
NARROWED = tuple(name for name in LAKE_COLUMNS if name != "read_only")
PREFERRED = ("event_name", "event_source", "error_code", "user_type")  # the columns that narrow a rule most


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
        node, pattern = node.this.this, _escaped(node.expression, "")
    elif _is_instr(node):  # the backend's instr() before REGEXP: case-sensitive, so a case-folding LIKE finds more
        node, pattern = node.this.this, _escaped(node.this.args.get("substr"), "%")
    else:
        return None
    target = node.this if isinstance(node, exp.Like) else node
    if pattern is None or not (isinstance(target, exp.Column) and target.name == column and target.table in ("", "e")
            and isinstance(pattern, exp.Literal)):
        return None
    return exp.Literal.string(pattern.name)


def _escaped(literal, around: str) -> exp.Literal | None:
    """A text literal as a LIKE pattern matching it exactly (`around` = '%': anywhere in the text)."""
    if not (isinstance(literal, exp.Literal) and literal.is_string):
        return None
    text = literal.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return exp.Literal.string(f"{around}{text}{around}")


def _is_instr(node: exp.Expression) -> bool:
    """`instr(column, 'text') > 0`."""
    return (isinstance(node, exp.GT) and isinstance(node.this, exp.StrPosition) and isinstance(node.expression,
            exp.Literal) and node.expression.name == "0" and not node.expression.is_string)


def implied(node: exp.Expression) -> dict[str, frozenset[str]] | None:
    """What every row the rule matches has: per NARROWED column, LIKE patterns one of which the column matches; None
    when no column is so bound (an AND binds what either side binds, an OR what both sides bind)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, (exp.And, exp.Or)):
        left, right = implied(node.this) or {}, implied(node.expression) or {}
        if isinstance(node, exp.Or):
            both = {column: left[column] | right[column] for column in left.keys() & right.keys()}
            return both if left and right and both else None
        return {column: min((left.get(column), right.get(column)), key=lambda found: len(found) if found else 1e9)
                for column in left.keys() | right.keys()} or None
    for column in NARROWED:
        pattern = _literal_like(column, node)
        if pattern is not None:
            return {column: frozenset([pattern.name])}
    return None


def _exact(pattern: str) -> str | None:
    """The one text a LIKE pattern without wildcards matches (ASCII case folded), else None."""
    if re.search(r"(?<!\\)(?:\\\\)*[%_]", pattern):
        return None
    return re.sub(r"\\(.)", r"\1", pattern).translate(ASCII_LOWER)


def _column_conditions(rules: tuple[str, ...]) -> dict[str, set[str]] | None:
    """Per column, the patterns some rule needs (each rule by its most telling column); None: a rule needs none."""
    wanted: dict[str, set[str]] = {}
    for sql in rules:
        found = implied(_parsed(sql))
        if found is None:
            return None
        column = min(found, key=lambda name: (PREFERRED.index(name) if name in PREFERRED else 9, len(found[name])))
        wanted.setdefault(column, set()).update(found[column])
    return wanted


def _lower_is_enough(pattern: str) -> bool:
    """lower() finds every row SQLite's ASCII folding matches for an ASCII pattern without `_` (lower() may change a
    non-ASCII character's length, which only `_` counts), and costs a tenth of translate() in DuckDB."""
    return pattern.isascii() and re.search(r"(?<!\\)(?:\\\\)*_", pattern) is None


def candidate_condition(rules: tuple[str, ...], fold, matches) -> exp.Expression:
    """Rows some rule may match: per column, lower() IN the exact ASCII texts rules need (`fold(column)` IN the
    others) and LIKE their wildcard patterns (`matches(column, pattern)`, the engine's SQLite LIKE, where lower() is
    not enough), OR-ed; every row when a rule binds none. A folding LIKE per rule cost 126 s on a 10M-event lake's
    month in DuckDB."""
    wanted = _column_conditions(rules)
    if wanted is None:
        return exp.true()
    parts = []
    for column, patterns in sorted(wanted.items()):
        lowered = exp.Lower(this=exp.column(column))
        exact = {text for text in map(_exact, patterns) if text is not None}
        for texts, folded in (([t for t in exact if t.isascii()], lowered), ([t for t in exact if not t.isascii()],
                                                                              fold(column))):
            parts += [folded.copy().isin(*map(exp.Literal.string, sorted(texts)))] if texts else []
        for pattern in sorted(pattern for pattern in patterns if _exact(pattern) is None):
            parts.append(exp.Escape(this=exp.Like(this=lowered.copy(), expression=exp.Literal.string(
                pattern.translate(ASCII_LOWER))), expression=exp.Literal.string("\\"))
                if _lower_is_enough(pattern) else matches(column, pattern))
    return exp.or_(*parts) if parts else exp.false()


def candidate_columns(rules: tuple[str, ...], reads: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The lake columns the rules, `reads` (correlations' group-by and value SQL), findings and exceptions read, in
    `events` order."""
    wanted = set(BASE_COLUMNS).union(*(_event_columns(_parsed(sql)) for sql in (*rules, *reads)))
    return tuple(name for name in LAKE_COLUMNS if name in wanted)


def candidates_sql(table: exp.Table, event_filter: EventFilter, rules=(), reads=(), **options) -> exp.Select:
    """The period's rows some of `rules` (their SQLite WHERE texts) may match, with the columns they and `reads`
    read."""
    columns = candidate_columns(tuple(rules), tuple(reads))
    query = events_select(table, event_filter, *columns).where(candidate_condition(tuple(rules), fold, like))
    return query.order_by("event_time_ms", "event_id", dialect=READ)


def _sqlite_like(column: str, pattern: str) -> exp.Expression:
    return exp.Escape(this=exp.Like(this=exp.column(column), expression=exp.Literal.string(pattern)),
                      expression=exp.Literal.string("\\"))


def query_candidates(conn: sqlite3.Connection, event_filter: EventFilter, rules=(), reads=(),
                     **options) -> pl.DataFrame:
    """candidates_sql on the cache (SQLite's LIKE folds ASCII case as the lake's like() does): for comparison."""
    columns = candidate_columns(tuple(rules), tuple(reads))
    where, params = event_filter.sql("e")
    narrowing = candidate_condition(tuple(rules), lambda column: exp.func("lower", exp.column(column)),
                                   _sqlite_like).sql(dialect="sqlite")
    sql = (f"SELECT {', '.join(f'e.{name}' for name in columns)} FROM events e WHERE {where} AND ({narrowing}) "
           "ORDER BY e.event_time, e.event_id")
    return read_frame(conn, sql, params, candidate_schema(tuple(rules), tuple(reads)))


def candidate_schema(rules: tuple[str, ...], reads: tuple[str, ...] = ()) -> dict[str, pl.DataType]:
    return {name: pl.Int64 if name == "read_only" else pl.String for name in candidate_columns(rules, reads)}


def shape_candidates(frame: pl.DataFrame, rules=(), reads=(), **options) -> pl.DataFrame:
    """The lake's rows as the cache's: text columns, read_only a whole number, event time kept as stored text."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in candidate_schema(tuple(rules), tuple(reads)).items()])


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
