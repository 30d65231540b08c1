"""Built-in integrity alerts: a modified or injected log file, a missing one, a broken chain or invalid signature,
and an account/region whose digests stopped arriving. One alert per rule and set of problems, never repeated."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import polars as pl

from trailstream.analytics import integrity
from trailstream.timefmt import iso_utc

# rule query -> the problem states it alerts on ("integrity:stopped" is computed from the newest digest instead)
PROBLEM_CLASSES = {
    "integrity:modified": ("modified", "trailing data", "unreferenced"),
    "integrity:missing": ("missing", "unreadable"),
    "integrity:chain": ("signature invalid", "moved", "malformed"),  # an unknown key is unchecked, not evidence
}
STOPPED_AFTER = timedelta(hours=3)  # an hourly digest this late is not coming
SHOWN = 5


class IntegrityCheck:
    """Verifies once per alert run (lazily, only if an integrity rule is due) and drafts each rule's alert."""

    def __init__(self, conn: sqlite3.Connection, now: datetime, max_age: timedelta):
        self.conn, self.now, self.max_age = conn, now, max_age
        self._report: integrity.IntegrityReport | None = None

    @property
    def report(self) -> integrity.IntegrityReport:
        """The report over [alerts] max_age, computed on first use."""
        if self._report is None:
            since = (self.now - self.max_age).date()
            self._report = integrity.verify_integrity(self.conn, since=since, now=self.now)
        return self._report

    def handles(self, rule) -> bool:
        """Integrity rules are finding rules the detections know nothing about."""
        return rule.kind == "finding" and rule.query.startswith("integrity:")

    def summary(self, rule) -> str | None:
        """The alert's one line for this rule, or None when there is nothing new to say."""
        lines = self._stopped() if rule.query == "integrity:stopped" else self._problems(PROBLEM_CLASSES.get(rule.query, ()))
        if not lines:
            return None
        more = f"; and {len(lines) - SHOWN} more (see Integrity & coverage)" if len(lines) > SHOWN else ""
        summary = f"{len(lines)} integrity problem(s): " + "; ".join(lines[:SHOWN]) + more
        seen = self.conn.execute("SELECT 1 FROM fired_alerts WHERE rule_id = ? AND summary = ? LIMIT 1",
                                 [rule.id, summary]).fetchone()
        return None if seen else summary

    def _problems(self, states: tuple[str, ...]) -> list[str]:
        rows = self.report.problems().filter(pl.col("state").is_in(states))
        return [f"{row['state']} {row['kind']} {row['account_id']} {row['region']} {iso_utc(row['hour'])} "
                f"{row['key'].rsplit('/', 1)[-1] or '(no key)'}" for row in rows.iter_rows(named=True)]

    def _stopped(self) -> list[str]:
        arrived = self.report.digests.filter(~pl.col("state").is_in(("missing", "gap")))
        newest = arrived.group_by("account_id", "region").agg(pl.col("hour").max()).sort("account_id", "region")
        late = newest.filter(pl.col("hour") + timedelta(hours=1) + STOPPED_AFTER < self.now)
        return [f"no digest from {row['account_id']} {row['region']} since {iso_utc(row['hour'] + timedelta(hours=1))}"
                for row in late.iter_rows(named=True)]
