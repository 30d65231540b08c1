"""How far Event history (LookupEvents) has been read, per account, region and category, so a lookup resumes.

A watermark is the contiguous span of event time read so far (`covered_from`..`covered_to`) and, while a read is
unfinished, the part of it still unread (`gap_from`..`gap_to`). Read functions take `conn`, writes take `db`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass

import sqlite_utils

from trailstream.timefmt import utc_now

SCHEMA_SQL = """
CREATE TABLE lookup_watermarks (
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    category TEXT NOT NULL,
    covered_from TEXT,
    covered_to TEXT,
    gap_from TEXT,
    gap_to TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, region, category)
)
"""


@dataclass(frozen=True)
class Watermark:
    """Times are cache time text ('YYYY-MM-DDTHH:MM:SSZ'); None where nothing was read yet or no gap is open."""

    account_id: str
    region: str
    category: str
    covered_from: str | None = None
    covered_to: str | None = None
    gap_from: str | None = None
    gap_to: str | None = None


def query_watermark(conn: sqlite3.Connection, account_id: str, region: str, category: str) -> Watermark:
    """The stored watermark, or an empty one when this account, region and category were never read."""
    row = conn.execute(
        "SELECT covered_from, covered_to, gap_from, gap_to FROM lookup_watermarks "
        "WHERE account_id = ? AND region = ? AND category = ?", [account_id, region, category]).fetchone()
    return Watermark(account_id, region, category, *(tuple(row) if row else ()))


def save_watermark(db: sqlite_utils.Database, mark: Watermark) -> None:
    """Record how far a lookup got; durable on return, after the events it covers were committed."""
    row = asdict(mark) | {"updated_at": utc_now()}
    with db.atomic():
        db.execute(
            f"INSERT OR REPLACE INTO lookup_watermarks ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()))
