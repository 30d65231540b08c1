"""Write transactions that take the cache's write lock first, for blocks that read before they write."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils


@contextmanager
def write_transaction(db: sqlite_utils.Database, savepoint: bool = True) -> Iterator[sqlite_utils.Database]:
    """db.atomic() begun IMMEDIATE: a deferred block that reads, then writes after another writer's commit, fails
    with "database is locked" (WAL cannot upgrade a stale read; busy_timeout never helps), this one waits at BEGIN.
    Inside the caller's transaction, savepoint=False is for a caller that rolls all of it back if the block fails."""
    if db.conn.in_transaction:  # inside the caller's transaction: its lock, and a savepoint of its own if asked
        if not savepoint:
            yield db
            return
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:  # an error may have ended the transaction already
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
