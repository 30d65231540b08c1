"""SQL functions the converted rules call: REGEXP for `|re` (RE2, as pySigma's own regex policy: linear time, so a
hostile pattern cannot stall every rule), sigma_path for json_tree keys, sigma_values (and sigma_record, for
correlation keys) for the fields kept only in the compressed record."""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache

import orjson
import re2

from trailstream.cache import codec

_POSITIONS = re.compile(r'\[\d+\]|"')


@lru_cache(maxsize=512)
def _pattern(expression: str):
    return re2.compile(expression)


@lru_cache(maxsize=1 << 16)
def _regexp(expression: str | None, value) -> bool | None:
    """`value REGEXP expression` (SQLite passes the pattern first); NULL for an absent field. Remembered per value:
    a column such as the principal ARN repeats a few thousand values over millions of rows."""
    if expression is None or value is None:
        return None
    return _pattern(expression).search(str(value)) is not None


@lru_cache(maxsize=4096)
def sigma_path(fullkey: str | None) -> str | None:
    """json_tree's fullkey as a Sigma field path: `$.a[2]."b-c"` becomes `$.a.b-c` (any array element matches)."""
    return None if fullkey is None else _POSITIONS.sub("", fullkey)


@lru_cache(maxsize=256)
def _quoted_keys(path: str) -> tuple[bytes, ...]:
    """`$.a.b` -> (b'"a"', b'"b"'): keys as they appear in the record's JSON text."""
    return tuple(orjson.dumps(segment) for segment in path[2:].split("."))


def _leaves(value, into: list) -> list:
    if isinstance(value, list):
        for item in value:
            _leaves(item, into)
    elif isinstance(value, dict):
        into.append(orjson.dumps(value).decode())
    elif isinstance(value, bool):
        into.append("true" if value else "false")
    else:
        into.append(value)
    return into


def record_values(record: dict, path: str) -> list:
    """Every value at a Sigma path ($.a.b) of a record as json_tree would give it (array elements one by one,
    objects as JSON text, booleans as words): one decompression and one parse per row, however deep the path."""
    nodes = [record]
    for segment in path[2:].split("."):
        nodes = [item[segment] for node in nodes for item in (node if isinstance(node, list) else [node])
                 if isinstance(item, dict) and segment in item]
    return _leaves(nodes, [])


def register_functions(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Make a connection able to run converted rules (read-only connections included); returns it."""
    dictionaries = {codec.NO_DICTIONARY: None}
    dictionaries.update(conn.execute("SELECT id, dictionary FROM codecs").fetchall())

    last: list = [None, b"", None]  # the previous blob, its JSON and its parse: a rule may read two record fields

    def record_text(blob: bytes | None, codec_id: int | None) -> bytes:
        if blob is None or codec_id not in dictionaries:
            return b""
        if blob != last[0]:
            last[:] = [blob, codec.decompress(blob, dictionaries[codec_id]), None]
        return last[1]

    def record(blob: bytes | None, codec_id: int | None) -> dict | None:
        text = record_text(blob, codec_id)
        if text and last[2] is None:
            last[2] = orjson.loads(text)
        return last[2] if text else None

    def sigma_record(blob: bytes | None, codec_id: int | None) -> str | None:
        restored = record(blob, codec_id)
        return None if restored is None else orjson.dumps(restored).decode()

    def sigma_values(blob: bytes | None, codec_id: int | None, path: str) -> str:
        """The leaves at `path`; a record whose text lacks one of the path's keys is not parsed at all."""
        text = record_text(blob, codec_id)
        if not text or any(key not in text for key in _quoted_keys(path)):
            return "[]"
        return orjson.dumps(record_values(record(blob, codec_id), path)).decode()

    conn.create_function("regexp", 2, _regexp, deterministic=True)
    conn.create_function("sigma_path", 1, sigma_path, deterministic=True)
    conn.create_function("sigma_record", 2, sigma_record, deterministic=True)
    conn.create_function("sigma_values", 3, sigma_values, deterministic=True)
    return conn
