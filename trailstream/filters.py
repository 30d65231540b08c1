"""The global filters every page shares (period, accounts, regions, read-only), turned into SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from trailstream.timefmt import iso_utc

# Preset name -> how far back from now; None means no lower bound.
TIME_PRESETS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_PRESET = "7d"


@dataclass(frozen=True)
class EventFilter:
    """A period [start, end) in cache time format (None = open) and the account, region and read-only choices."""

    start: str | None = None
    end: str | None = None
    accounts: tuple[str, ...] = field(default_factory=tuple)
    regions: tuple[str, ...] = field(default_factory=tuple)
    include_read_only: bool = True

    @classmethod
    def from_preset(cls, preset: str, now: datetime | None = None, **choices) -> "EventFilter":
        if preset not in TIME_PRESETS:
            raise ValueError(f"unknown time range {preset!r}; choose one of {', '.join(TIME_PRESETS)}")
        span = TIME_PRESETS[preset]
        now = now or datetime.now(timezone.utc)
        start = iso_utc(now - span) if span is not None else None
        return cls(start=start, end=None, **choices)

    def sql(self, alias: str = "") -> tuple[str, list]:
        """A WHERE fragment (never empty: '1' when nothing filters) and its parameters."""
        prefix = f"{alias}." if alias else ""
        clauses, params = [], []
        if self.start:
            clauses.append(f"{prefix}event_time >= ?")
            params.append(self.start)
        if self.end:
            clauses.append(f"{prefix}event_time < ?")
            params.append(self.end)
        if self.accounts:
            clauses.append(f"{prefix}account_id IN ({', '.join('?' for _ in self.accounts)})")
            params.extend(self.accounts)
        if self.regions:
            clauses.append(f"{prefix}aws_region IN ({', '.join('?' for _ in self.regions)})")
            params.extend(self.regions)
        if not self.include_read_only:
            clauses.append(f"COALESCE({prefix}read_only, 0) = 0")
        return (" AND ".join(clauses) or "1"), params

    def describe(self) -> str:
        """A short label for file names and headings, e.g. '2026-11-20_to_now'."""
        start = (self.start or "beginning")[:10]
        end = (self.end or "now")[:10]
        return f"{start}_to_{end}"
