"""TrailStream's own audit trail: who signed in, synced, changed a setting or a rule, and when."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping

import orjson
import polars as pl
import sqlite_utils

from trailstream.cache.store import open_cache
from trailstream.cache.transaction import write_transaction
from trailstream.timefmt import utc_now

# action -> how the Audit log page names it; callers pass one of these keys.
AUDIT_ACTIONS = {
    "sign_in": "Signed in",
    "sync": "Synced",
    "retry": "Retried failed files",
    "setting_changed": "Changed a setting",
    "rule_changed": "Changed an alert rule",
}
AUDIT_SCHEMA = {"at": pl.String, "actor": pl.String, "action": pl.String, "detail": pl.String}
_SECRET_WORDS = ("password", "secret", "token", "access_key", "credential")


def save_audit(
    db: sqlite_utils.Database, actor: str, action: str, detail: str | Mapping | None = None, *, unique: bool = False
) -> int | None:
    """Append one entry to an open cache (unless `unique` and it is already there); mapping details become JSON
    with secret-looking values hidden."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; use one of {', '.join(AUDIT_ACTIONS)}")
    if isinstance(detail, Mapping):
        detail = orjson.dumps(_without_secrets(detail), default=str, option=orjson.OPT_SORT_KEYS).decode()
    with write_transaction(db):
        if unique and db.execute(
            "SELECT 1 FROM audit_log WHERE actor = ? AND action = ? AND detail IS ?", [actor, action, detail]
        ).fetchone():
            return None
        cursor = db.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)", [utc_now(), actor, action, detail]
        )
    return cursor.lastrowid


def record_audit(
    db_path: str | os.PathLike, actor: str, action: str, detail: str | Mapping | None = None, *, unique: bool = False
) -> int | None:
    """Append one entry to the cache at db_path (created if needed): the call pages make after an action."""
    db = open_cache(db_path)
    try:
        return save_audit(db, actor, action, detail, unique=unique)
    finally:
        db.close()


def query_audit_log(
    conn: sqlite3.Connection, *, limit: int = 1000, actor: str | None = None, action: str | None = None
) -> pl.DataFrame:
    """Newest entries first (action shown by its label), optionally one actor's or one action's; empty if none yet."""
    where, params = [], []
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        where.append("action = ?")
        params.append(action)
    sql = "SELECT at, actor, action, detail FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    try:
        rows = conn.execute(sql + " ORDER BY at DESC, id DESC LIMIT ?", [*params, limit]).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        rows = []
    return pl.DataFrame([tuple(row) for row in rows], schema=AUDIT_SCHEMA, orient="row").with_columns(
        pl.col("action").replace(AUDIT_ACTIONS)
    )


def _without_secrets(detail: Mapping) -> dict:
    """The audit log is readable by every admin: never store a value whose key looks like a credential."""
    return {
        key: ("(hidden)" if any(word in str(key).lower() for word in _SECRET_WORDS) else value)
        for key, value in detail.items()
    }
