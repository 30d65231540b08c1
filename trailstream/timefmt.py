"""The cache's one spelling of time: UTC text 'YYYY-MM-DDTHH:MM:SSZ', which sorts as it reads."""

from __future__ import annotations

from datetime import datetime, timezone

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(moment: datetime) -> str:
    """A moment as cache time text; a naive moment is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def parse_iso_utc(text: str) -> datetime:
    """Cache time text back to an aware UTC datetime; ValueError for anything else."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


def utc_now() -> str:
    """Now, as cache time text: when a row was written."""
    return iso_utc(datetime.now(timezone.utc))
