"""Typed polars frames from cache SQL: the one place cache time text and 0/1 flags become columns."""

from __future__ import annotations

import sqlite3

import polars as pl

from trailstream.timefmt import TIME_FORMAT

UTC_TIME = pl.Datetime("us", "UTC")
CHUNK_ROWS = 50_000  # rows turned into a frame at a time


def read_frame(conn: sqlite3.Connection, sql: str, params, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Run SQL and build a frame with exactly `schema`: times arrive as cache text, flags as 0/1."""
    cursor = conn.cursor()
    cursor.row_factory = None
    cursor.execute(sql, list(params))
    wire = {
        name: pl.String if dtype == UTC_TIME else pl.Int64 if dtype == pl.Boolean else dtype
        for name, dtype in schema.items()
    }
    parts = [pl.DataFrame(schema=wire)]  # built a slice at a time: a million Python row tuples would take ~1 GB
    while rows := cursor.fetchmany(CHUNK_ROWS):
        parts.append(pl.DataFrame(rows, schema=wire, orient="row"))
    frame = pl.concat(parts, how="vertical", rechunk=len(parts) > 2)
    return frame.with_columns(
        [
            pl.col(name).str.to_datetime(TIME_FORMAT, time_zone="UTC", strict=False)
            if dtype == UTC_TIME
            else pl.col(name).cast(dtype)
            for name, dtype in schema.items()
            if wire[name] != dtype
        ]
    )


def placeholders(values) -> str:
    """'?, ?, ?' for an IN list of these values."""
    return ", ".join("?" for _ in values)
