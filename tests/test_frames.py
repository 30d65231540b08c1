"""Typed frames from cache SQL: read a slice at a time, whole and in order."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import polars as pl

from trailstream.cache import frames

SCHEMA = {"n": pl.Int64, "name": pl.String, "at": frames.UTC_TIME, "flag": pl.Boolean}


def numbered_rows(count: int) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (n INTEGER, name TEXT, at TEXT, flag INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)",
                     [(n, f"row {n}" if n % 3 else None, f"2026-11-0{1 + n % 9}T10:00:0{n % 10}Z", n % 2)
                      for n in range(count)])
    return conn


def test_a_result_larger_than_a_slice_arrives_whole_in_order_and_typed(monkeypatch):
    monkeypatch.setattr(frames, "CHUNK_ROWS", 4)  # eleven rows: three slices, the last one short
    frame = frames.read_frame(numbered_rows(11), "SELECT n, name, at, flag FROM t ORDER BY n", [], SCHEMA)

    assert frame.schema == pl.Schema(SCHEMA)
    assert frame.get_column("n").to_list() == list(range(11))
    assert frame.get_column("name").null_count() == 4  # 0, 3, 6, 9
    assert frame.row(10) == (10, "row 10", datetime(2026, 11, 2, 10, 0, 0, tzinfo=timezone.utc), False)


def test_an_empty_result_is_an_empty_frame_with_the_schema():
    frame = frames.read_frame(numbered_rows(3), "SELECT n, name, at, flag FROM t WHERE n > ?", [99], SCHEMA)
    assert frame.is_empty() and frame.schema == pl.Schema(SCHEMA)
