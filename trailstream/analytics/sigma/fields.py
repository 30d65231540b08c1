"""Field mapping: where a Sigma field name (CloudTrail's dotted JSON name) lives in the cache, checked so that rule
text reaches SQL only as a validated path or a known column."""

from __future__ import annotations

import re
from dataclasses import dataclass

from trailstream.cache.rows import IDENTITY_COLUMN_FIELDS, JSON_COLUMN_FIELDS, LOOKUP_COLUMN_FIELDS, TEXT_COLUMN_FIELDS

# Sigma names whose `events` column holds the record's value unchanged (the others are read from the record):
# the same columns the cache keeps those fields in.
COLUMNS = {
    **TEXT_COLUMN_FIELDS,
    **{f"userIdentity.{name}": column for name, column in IDENTITY_COLUMN_FIELDS.items()},
    **LOOKUP_COLUMN_FIELDS,  # copied from the record at import, so rules read them without decompressing it
    # The cache keeps readOnly as 0/1; Sigma compares JSON booleans as the words true and false.
    "readOnly": "CASE read_only WHEN 1 THEN 'true' WHEN 0 THEN 'false' END",
}
# The whole JSON-text columns, for rules that search a field's text (`requestParameters|contains: ...`).
COLUMNS.update(JSON_COLUMN_FIELDS)
# Names the backend itself uses for correlation windows and event identity.
INTERNAL = {"event_time": "event_time", "rowid": "rowid"}
# The stored record without its JSON-text columns, rebuilt by the registered function (see functions.py).
RECORD = "sigma_record(raw, raw_codec)"
SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class UnsafeFieldName(ValueError):
    """A rule names a field that cannot be a CloudTrail path; the rule is refused with this reason."""


@dataclass(frozen=True)
class JsonPath:
    """A field read from a JSON document (a JSON-text column or the restored record) by validated segments."""

    document: str
    segments: tuple[str, ...]

    @property
    def root(self) -> str:
        """The JSON path of the first segment: json_tree walks only what lies below it."""
        return f'$."{self.segments[0]}"'

    @property
    def canonical(self) -> str:
        """The path with array positions and key quotes removed, as sigma_path() spells json_tree's fullkey."""
        return "$." + ".".join(self.segments)

    @property
    def scalar(self) -> str:
        """One value for grouping (correlations): the first match of the path, booleans as words."""
        path = "$" + "".join(f'."{segment}"' for segment in self.segments)
        return (f"CASE json_type({self.document}, '{path}') WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"ELSE json_extract({self.document}, '{path}') END")


def parse_field(name: str) -> str | JsonPath:
    """A column expression or a JsonPath for a Sigma field name; UnsafeFieldName when a segment is not a key."""
    if name in COLUMNS:
        return COLUMNS[name]
    segments = tuple(name.split("."))
    bad = [segment for segment in segments if not SEGMENT.match(segment)]
    if not name or bad:
        raise UnsafeFieldName(f"field name {name[:80]!r} is not a CloudTrail field path "
                              "(letters, digits, _ and - between dots)")
    if segments[0] in JSON_COLUMN_FIELDS:
        return JsonPath(JSON_COLUMN_FIELDS[segments[0]], segments[1:])
    return JsonPath(RECORD, segments)


def scalar_expression(name: str) -> str:
    """SQL for a field where one value is needed (backend internals, correlation group-by)."""
    if name in INTERNAL:
        return INTERNAL[name]
    target = parse_field(name)
    return target.scalar if isinstance(target, JsonPath) else target
