"""The Finding every detector returns, and the NULL-safe wording its summaries are written with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta

import orjson

from trailstream import catalog
from trailstream.timefmt import TIME_FORMAT

MAX_EVENT_IDS = 1000  # a finding lists at most this many events; details["events"] has the full count
SIGMA_PREFIX = "sigma:"  # a Sigma rule's findings are of type sigma:<rule id>; importing pySigma to learn it costs 1 s
MAX_LISTED = 20  # addresses, places or sessions a finding's details list at most; counts say how many there were


@dataclass
class Finding:
    """One thing a person should look at: what, how bad, who, when, and the events behind it."""

    type: str
    severity: str
    time: str
    principal: str | None
    account_id: str | None
    summary: str
    event_ids: list[str]
    details: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return catalog.FINDING_TYPES.get(self.type) or self.details.get("title", self.type)  # Sigma titles its own

    @property
    def key(self) -> str:
        """Stable while a finding grows (same type, account, principal and first event): for de-duplicating alerts."""
        first = self.event_ids[0] if self.event_ids else ""
        return f"{self.type}:{self.account_id or ''}:{self.principal or ''}:{first}"

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "title": self.title,
            "severity": self.severity,
            "time": self.time,
            "principal": self.principal,
            "account_id": self.account_id,
            "summary": self.summary,
            "event_ids": list(self.event_ids),
            "details": orjson.loads(orjson.dumps(self.details, default=str)),
        }

    @classmethod
    def from_dict(cls, values: dict) -> "Finding":
        names = {spec.name for spec in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in names})


def iso(moment) -> str | None:
    return moment.strftime(TIME_FORMAT) if moment is not None else None


def text(value, fallback: str) -> str:
    """A value for a sentence: itself, or the fallback when it is missing or empty."""
    return str(value) if value not in (None, "") else fallback


def number(value, unit: str, fallback: str = "") -> str:
    """`1,234 km`, or the fallback when the value is missing (a place without coordinates has no distance)."""
    return f"{value:,.0f} {unit}" if isinstance(value, (int, float)) and value == value else fallback


def plural(count: int | None, noun: str) -> str:
    count = count or 0
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def duration(delta: timedelta | None) -> str:
    if delta is None:
        return "an unknown time"
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return plural(seconds, "second")
    if seconds < 2 * 3600:
        return plural(round(seconds / 60), "minute")
    return f"{seconds / 3600:.1f} hours"


def listing(values, limit: int = 3) -> str:
    values = [str(value) for value in (values or []) if value]
    shown = ", ".join(values[:limit])
    return f"{shown} and {len(values) - limit} more" if len(values) > limit else shown


def severity(finding_type: str, escalate: bool = False) -> str:
    base = catalog.FINDING_SEVERITY[finding_type]
    if not escalate:
        return base
    return catalog.SEVERITIES[min(catalog.SEVERITIES.index(base) + 1, len(catalog.SEVERITIES) - 1)]


def make_finding(finding_type: str, last_time, row: dict, summary: str, event_ids, details: dict,
                 escalate: bool = False) -> Finding:
    """A finding dated by its newest event, for the principal and account of `row`."""
    return Finding(
        type=finding_type,
        severity=severity(finding_type, escalate),
        time=iso(last_time) or "",
        principal=row.get("principal"),
        account_id=row.get("account_id"),
        summary=summary,
        event_ids=[event_id for event_id in (event_ids or []) if event_id is not None][:MAX_EVENT_IDS],
        details=details,
    )
