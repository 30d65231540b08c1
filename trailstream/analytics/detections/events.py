"""What the detectors read and how they group it: SQL narrows the cache to the events that matter, polars finds runs.

Assumed roles are grouped by the role where each call may bring its own session (`actor`); `principal` stays as stored,
so a finding's events still show each session.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import orjson
import polars as pl

from trailstream import catalog
from trailstream.analytics import geo, queries, transforms
from trailstream.analytics.detections.common import MAX_EVENT_IDS, MAX_LISTED, Finding, iso, make_finding
from trailstream.cache import rollups
from trailstream.cache.frames import UTC_TIME, placeholders, read_frame
from trailstream.filters import EventFilter


SECURITY_SCHEMA = {
    "event_id": pl.String,
    "event_time": UTC_TIME,
    "account_id": pl.String,
    "principal": pl.String,
    "actor": pl.String,
    "user_type": pl.String,
    "source_ip": pl.String,
    "event_source": pl.String,
    "event_name": pl.String,
    "error_code": pl.String,
}
_SECURITY_COLUMNS = ", ".join(rollups.actor_sql("e") if name == "actor" else f"e.{name}" for name in SECURITY_SCHEMA)
OUTSIDE_AWS = (
    "e.source_ip IS NOT NULL AND e.source_ip NOT IN ({}) AND e.source_ip NOT LIKE '%{}'".format(
        ", ".join(f"'{source}'" for source in catalog.AWS_INTERNAL_SOURCES), catalog.AWS_SERVICE_SOURCE_SUFFIX
    )
)
SUCCEEDED = "COALESCE(e.error_code, '') = ''"
ACTOR_KEYS = ["account_id", "actor"]


def security_rows(conn, event_filter: EventFilter | None, condition: str, params: list, schema=SECURITY_SCHEMA,
                  extra_sql: str = "", table: str = "events e") -> pl.DataFrame:
    """The security columns (and `extra_sql`'s, named by `schema`) of the events meeting `condition`."""
    where, filter_params = queries._where(event_filter, f"({condition})")
    columns = _SECURITY_COLUMNS + extra_sql
    return read_frame(conn, f"SELECT {columns} FROM {table} WHERE {where}", filter_params + params, schema)


def from_source(source, name: str, cache_query, event_filter: EventFilter | None, **options) -> pl.DataFrame:
    """A detector's slice of events, the same frame from either store: `cache_query` on a cache connection, else the
    named query (analytics.security_queries) of an events source such as a lake backend."""
    if isinstance(source, sqlite3.Connection):
        return cache_query(source, event_filter, **options)
    return source.query(name, event_filter or EventFilter(), **options)


def on_cache(source) -> bool:
    """True for a cache connection; False for an events source (the lake), which has no stored rows or places."""
    return isinstance(source, sqlite3.Connection)


def names_condition(names) -> tuple[str, list]:
    return f"e.event_name IN ({placeholders(names)})", list(names)


def query_finding_events(conn, event_ids: list[str]) -> pl.DataFrame:
    """The stored events behind a finding (queries.EVENT_SCHEMA), newest first."""
    columns = ", ".join(f"e.{name}" for name in queries.EVENT_SCHEMA)
    sql = (
        f"SELECT {columns} FROM events e WHERE e.event_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY e.event_time DESC"
    )
    return read_frame(conn, sql, [orjson.dumps(list(event_ids)).decode()], queries.EVENT_SCHEMA)


def locate(source_ips: pl.Series, settings, asn: bool = True) -> pl.DataFrame:
    """Where the distinct addresses are (geo.PLACE_SCHEMA), with the city database of the settings when set."""
    return geo.locate_ips(source_ips, settings.city_database or None, asn)


# --- Reusable frame steps ------------------------------------------------------------------


def count_over_time(frame: pl.DataFrame, every: timedelta, by: str, time_column: str = "event_time",
                    value: str = "events") -> pl.DataFrame:
    """Rows per time bucket and `by` value (bucket, bucket_end, by, value), the shape charts.timeline_chart draws."""
    return (
        frame.lazy()
        .drop_nulls(time_column)
        .sort(time_column)
        .group_by_dynamic(time_column, every=every, group_by=by)
        .agg(pl.len().cast(pl.Int64).alias(value))
        .rename({time_column: "bucket"})
        .with_columns(bucket_end=pl.col("bucket") + every)
        .select("bucket", "bucket_end", by, value)
        .collect()
    )


def breakdown(events: pl.DataFrame, by: str, limit: int = 15, column: str | None = None) -> pl.DataFrame:
    """Events counted by one column (principal, source_ip, api, error_code, place...), largest first; `column` counts
    by another column under the name `by` (principals by their `actor`, say)."""
    return (
        events.lazy()
        .group_by(pl.col(column or by).alias(by))
        .agg(events=pl.len(), first_seen=pl.col("event_time").min(), last_seen=pl.col("event_time").max())
        .sort(["events", by], descending=[True, False], nulls_last=True)
        .head(limit)
        .collect()
    )


def episode(keys: list[str], gap: timedelta, time_column: str = "event_time") -> pl.Expr:
    """Number runs of events (frame sorted by keys, time) whose gaps stay within `gap`: one id per run."""
    new_key = pl.any_horizontal([pl.col(key).ne_missing(pl.col(key).shift(1)) for key in keys])
    return ((pl.col(time_column).diff() > gap).fill_null(True) | new_key.fill_null(True)).cum_sum()


def episode_summary(events: pl.DataFrame) -> list[pl.Expr]:
    """What a burst or session reports: its span, size, events, addresses, calls and the sessions behind it."""
    names = pl.col("event_name").unique(maintain_order=True) if "event_name" in events.columns else pl.lit([])
    return [
        pl.col("event_time").min().alias("first_time"),
        pl.col("event_time").max().alias("last_time"),
        pl.len().alias("events"),
        pl.col("event_id").head(MAX_EVENT_IDS).alias("event_ids"),
        pl.col("source_ip").drop_nulls().unique(maintain_order=True).head(MAX_LISTED).alias("source_ips"),
        names.alias("event_names"),
        pl.col("principal").drop_nulls().unique(maintain_order=True).head(MAX_LISTED).alias("sessions"),
        pl.col("principal").n_unique().alias("session_count"),
    ]


def find_bursts(events: pl.DataFrame, keys: list[str], threshold: int, window: timedelta) -> pl.DataFrame:
    """Events that sit in some window-long span holding >= threshold events of the same keys, one row per burst."""
    position = pl.int_range(pl.len()).over(keys)
    window_start = pl.col("event_time").search_sorted(pl.col("event_time") - window, side="left").over(keys)
    full_window_start = pl.when(pl.col("in_window") >= threshold).then(pl.col("window_start"))
    return (
        events.lazy()
        .drop_nulls("event_time")
        .sort([*keys, "event_time", "event_id"])  # ties in event ID order: the same burst whatever the input order
        .with_columns(position=position, window_start=window_start.cast(pl.Int64))
        .with_columns(in_window=pl.col("position") - pl.col("window_start") + 1)
        .with_columns(next_full_start=full_window_start.backward_fill().over(keys))
        .filter(pl.col("next_full_start") <= pl.col("position"))
        .with_columns(burst=episode(keys, window))
        .group_by([*keys, "burst"])
        .agg(*episode_summary(events), peak=pl.col("in_window").max())
        .sort("last_time", descending=True)
        .collect()
    )


def burst_findings(bursts: pl.DataFrame, finding_type: str, threshold: int, describe,
                   who: str = "actor") -> list[Finding]:
    """One finding per burst (escalated at five times the threshold), named for `who` (the role for role sessions)."""
    findings = []
    for burst in bursts.iter_rows(named=True):
        span = burst["last_time"] - burst["first_time"]
        burst["principal"] = burst.get(who)
        details = {
            "events": burst["events"],
            "peak_in_window": burst["peak"],
            "threshold": threshold,
            "first_time": iso(burst["first_time"]),
            "minutes": round(span.total_seconds() / 60, 1),
            "ips": burst["source_ips"],
            "event_names": burst["event_names"],
        }
        if burst["sessions"] != [burst["principal"]]:
            details |= {"sessions": burst["sessions"], "session_count": burst["session_count"]}
        findings.append(make_finding(finding_type, burst["last_time"], burst, describe(burst, span),
                                     burst["event_ids"], details, escalate=burst["peak"] >= 5 * threshold))
    return findings


# --- Single events -------------------------------------------------------------------------


def request_text(path: str) -> pl.Expr:
    return transforms.request(path)


def who() -> pl.Expr:
    return pl.col("principal").fill_null("someone")


def query_successful_calls(conn, event_filter: EventFilter | None, event_names=()) -> pl.DataFrame:
    """The successful calls of the named events in the period (queries.EVENT_SCHEMA), from the cache."""
    events = queries.query_events(conn, event_filter or EventFilter(), tuple(event_names), limit=None)
    return events.filter(transforms.FAILED.not_())


# Every name a single-event detector reads: an events source is asked once for all of them (its answer is kept).
SINGLE_EVENT_NAMES = tuple(sorted({*catalog.TRAIL_TAMPERING_EVENTS, *catalog.DETECTOR_DISABLING_EVENTS,
                                   *catalog.POLICY_ATTACH_EVENTS, *catalog.POLICY_DOCUMENT_EVENTS,
                                   *catalog.ACCESS_KEY_CREATION_EVENTS, *catalog.SECURITY_GROUP_RULE_EVENTS}))


def successful_calls(source, event_filter: EventFilter | None, names) -> pl.DataFrame:
    """The successful calls of the named events in the period (queries.EVENT_SCHEMA), from the cache or the lake."""
    if on_cache(source) or not set(names) <= set(SINGLE_EVENT_NAMES):
        return from_source(source, "security_successful_calls", query_successful_calls, event_filter,
                           event_names=tuple(names))
    every = from_source(source, "security_successful_calls", query_successful_calls, event_filter,
                        event_names=SINGLE_EVENT_NAMES)
    return every.filter(pl.col("event_name").is_in(list(names)))


def single_event_findings(events: pl.DataFrame, finding_type: str, summary: pl.Expr, severity=None,
                          details: dict[str, pl.Expr] | None = None) -> list[Finding]:
    """One finding per event, its summary and extra details computed as polars expressions."""
    severity = severity if severity is not None else pl.lit(catalog.FINDING_SEVERITY[finding_type])
    rows = events.with_columns(summary=summary.fill_null(pl.format("{} called {}.", who(), pl.col("event_name"))),
                               severity=severity, **(details or {}))
    return [
        Finding(
            type=finding_type,
            severity=row["severity"],
            time=iso(row["event_time"]) or "",
            principal=row["principal"],
            account_id=row["account_id"],
            summary=row["summary"],
            event_ids=[row["event_id"]],
            details={"event_name": row["event_name"], "ip": row["source_ip"],
                     **{name: row[name] for name in (details or {})}},
        )
        for row in rows.iter_rows(named=True)
    ]
