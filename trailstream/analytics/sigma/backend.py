"""Conversion: pySigma's SQLite backend, taught where CloudTrail fields live in `events` and how Sigma compares.

Three departures from the stock backend, each a fact of this cache: string equality is collated NOCASE on the
left operand (SQLite 3.40's planner drops matches when the collation sits on the right of OR-ed terms on an
indexed column); fields inside JSON are matched through json_tree, so a value below an array of objects matches
when any element does and JSON booleans compare as the words true/false; and every field name is validated.
"""

from __future__ import annotations

import itertools
import re

from sigma.backends.sqlite import sqliteBackend
from sigma.types import SigmaExists, SigmaFieldReference, SigmaNull, SigmaRegularExpressionFlag

from trailstream.analytics.sigma.fields import RECORD, JsonPath, parse_field, scalar_expression

TABLE = "events"
_regex_parser = getattr(re, "_parser", None)  # Python's own regex parser: which characters every match contains


def _leaf(alias: str) -> str:
    """A json_tree node's value as Sigma sees it: scalars as themselves, booleans as words, objects as JSON text."""
    return (f"(CASE {alias}.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            f"WHEN 'object' THEN {alias}.value ELSE {alias}.atom END)")


def _nodes(path: JsonPath, alias: str) -> tuple[str, str]:
    """FROM item and WHERE terms selecting the nodes at `path` (array elements included, arrays themselves not)."""
    if path.document == RECORD:  # decompressed and walked in Python once per row: sigma_values lists the leaves
        return f"json_each(sigma_values(raw, raw_codec, '{path.canonical}')) AS {alias}", "1"
    return (f"json_tree({path.document}, '{path.root}') AS {alias}",
            f"{alias}.type != 'array' AND ({alias}.fullkey = '{path.canonical}' OR (instr({alias}.fullkey, '[') "
            f"+ instr({alias}.fullkey, '\"') > 0 AND sigma_path({alias}.fullkey) = '{path.canonical}'))")


def required_text(regex: str) -> str:
    """The longest run of literal characters every match of a case-sensitive `regex` contains ('' when unknown):
    SQL checks it with instr() before calling REGEXP, which is costly in Python for patterns such as `.+:x/.+`."""
    try:
        parsed = _regex_parser.parse(regex)
    except (re.error, AttributeError, RecursionError):  # AttributeError: a Python without re._parser
        return ""
    if parsed.state.flags & re.IGNORECASE:
        return ""
    runs, run = [], ""
    for op, argument in parsed:
        if op is _regex_parser.LITERAL:
            run += chr(argument)
        else:
            runs.append(run)
            run = ""
    return max([*runs, run], key=len)


class CloudTrailBackend(sqliteBackend):
    """Rules to SQL over the `events` table (one WHERE clause per rule, evaluated by evaluation.py)."""

    eq_expression = "{field} COLLATE NOCASE = {value}"
    field_equals_field_expression = "{field1} COLLATE NOCASE = {field2}"

    def __init__(self):
        super().__init__(table=TABLE, timestamp_field="event_time", event_id_field="rowid", collate_nocase=False)
        self._bound: dict[str, str] = {}
        self._aliases = itertools.count(1)

    def resolve_table(self, state=None) -> str:
        return TABLE

    def escape_and_quote_field(self, field: str) -> str:
        return self._bound.get(field) or scalar_expression(field)

    def convert_condition_field_eq_val_re(self, cond, state):
        """REGEXP behind a cheap instr() test of the text every match must contain (same result, far fewer calls)."""
        converted = super().convert_condition_field_eq_val_re(cond, state)
        cased = SigmaRegularExpressionFlag.IGNORECASE not in cond.value.flags
        literal = required_text(str(cond.value.regexp)) if cased else ""
        if not literal or "\0" in literal:
            return converted
        quoted = literal.replace("'", "''")
        return f"(instr({self.escape_and_quote_field(cond.field)}, '{quoted}') > 0 AND {converted})"

    def convert_condition_field_eq_val(self, cond, state):
        """Column fields convert as the stock backend does; JSON fields become EXISTS over their json_tree nodes."""
        names = [cond.field] + ([cond.value.field] if isinstance(cond.value, SigmaFieldReference) else [])
        paths = {name: target for name in names if isinstance(target := parse_field(name), JsonPath)}
        if not paths:
            return super().convert_condition_field_eq_val(cond, state)
        aliases = {name: f"sigma_j{next(self._aliases)}" for name in paths}
        sources = [_nodes(path, aliases[name]) for name, path in paths.items()]
        tables = ", ".join(source for source, _ in sources)
        where = " AND ".join(terms for _, terms in sources)
        if isinstance(cond.value, (SigmaNull, SigmaExists)):
            present = f"EXISTS (SELECT 1 FROM {tables} WHERE {where} AND {aliases[cond.field]}.type != 'null')"
            wants_present = isinstance(cond.value, SigmaExists) and cond.value.exists
            return present if wants_present else f"NOT {present}"
        self._bound = {name: _leaf(alias) for name, alias in aliases.items()}
        try:
            predicate = super().convert_condition_field_eq_val(cond, state)
        finally:
            self._bound = {}
        return f"EXISTS (SELECT 1 FROM {tables} WHERE {where} AND ({predicate}))"
