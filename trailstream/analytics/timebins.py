"""The one time-axis rule: which bin a timeline is drawn in, shared by the SQL that buckets and the charts that draw.

Kept apart from charts so the queries (and every post-sync step reading them) do not load altair.
"""

from __future__ import annotations

from datetime import timedelta

# Bin name -> (polars interval, nominal length). The finest bin drawing at most MAX_BARS over the data's own extent
# wins, so a 14-minute burst in 30 days keeps 10-minute bars and twelve years fold into months.
TIME_BINS: dict[str, tuple[str, timedelta]] = {
    "10min": ("10m", timedelta(minutes=10)), "30min": ("30m", timedelta(minutes=30)),
    "hour": ("1h", timedelta(hours=1)), "3h": ("3h", timedelta(hours=3)), "6h": ("6h", timedelta(hours=6)),
    "day": ("1d", timedelta(days=1)), "week": ("1w", timedelta(days=7)), "month": ("1mo", timedelta(days=30)),
    "year": ("1y", timedelta(days=365)),
}
MAX_BARS = 150


def choose_bin(period: timedelta | None, data: timedelta | None) -> str:
    """The bin for a timeline: the finest with at most MAX_BARS over the data's extent (the period when no data)."""
    extent = data if data is not None else period
    if period is not None and extent is not None:
        extent = min(extent, period)
    if extent is None:
        return "hour"
    return next((name for name, (_, length) in TIME_BINS.items() if extent / length <= MAX_BARS), "year")
