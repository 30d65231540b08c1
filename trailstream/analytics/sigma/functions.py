"""SQL functions the converted rules call: REGEXP for `|re`, sigma_path for json_tree keys, sigma_record for the
fields kept only in the compressed record."""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache

from trailstream.cache import codec

_POSITIONS = re.compile(r'\[\d+\]|"')


@lru_cache(maxsize=512)
def _pattern(expression: str) -> re.Pattern:
    return re.compile(expression)


def _regexp(expression: str | None, value) -> bool | None:
    """`value REGEXP expression` (SQLite passes the pattern first); NULL for an absent field."""
    if expression is None or value is None:
        return None
    return _pattern(expression).search(str(value)) is not None


@lru_cache(maxsize=4096)
def sigma_path(fullkey: str | None) -> str | None:
    """json_tree's fullkey as a Sigma field path: `$.a[2]."b-c"` becomes `$.a.b-c` (any array element matches)."""
    return None if fullkey is None else _POSITIONS.sub("", fullkey)


def register_functions(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Make a connection able to run converted rules (read-only connections included); returns it."""
    dictionaries = {codec.NO_DICTIONARY: None}
    dictionaries.update(conn.execute("SELECT id, dictionary FROM codecs").fetchall())

    def sigma_record(blob: bytes | None, codec_id: int | None) -> str | None:
        if blob is None or codec_id not in dictionaries:
            return None
        return codec.decompress(blob, dictionaries[codec_id]).decode()

    conn.create_function("regexp", 2, _regexp, deterministic=True)
    conn.create_function("sigma_path", 1, sigma_path, deterministic=True)
    conn.create_function("sigma_record", 2, sigma_record, deterministic=True)
    return conn
