"""The slices of events the security detectors read, as named queries (backend.PAGE_QUERIES) on either store: each
is one query per slice with only the columns its detectors read, so the same detector code runs on cache frames and
on lake frames, and findings on the lake are computed for the page's period from these few slices.

The lake SQL keeps the cache's rules (lake_sql): SQLite's case-folding LIKE, the role `actor`, NULLs as SQLite
compares them; the cache side is each detector's own query, so the cache's answers are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import polars as pl
import sqlglot
from sqlglot import exp

from trailstream import catalog
from trailstream.analytics import queries
from trailstream.analytics.detections import events, privilege_sprees, root_activity, sign_ins, stored, unauthorized
from trailstream.analytics.detections.findings import detect_findings, detect_travel_on_source, newest_first
from trailstream.analytics.lake_sql import (ACTOR, READ, NamedQuery, events_select, like, only_named,
                                            parsed_times, refused_as_unauthorized, rows_sql)
from trailstream.analytics.sigma_queries import LakeRules
from trailstream.cache.frames import UTC_TIME, read_frame
from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc, parse_iso_utc

_SECURITY = [f"{ACTOR} AS actor" if name == "actor" else name for name in events.SECURITY_SCHEMA]
_SERVICE_ADDRESS = f"%{catalog.AWS_SERVICE_SOURCE_SUFFIX}"
_OUTCOME = ("json_extract_scalar(response_elements, '$.ConsoleLogin') AS outcome",
            "json_extract_scalar(additional_event_data, '$.MFAUsed') AS mfa_used", "error_message", "user_agent")
_FAILED_SIGN_IN = (f"event_name = '{catalog.CONSOLE_LOGIN_EVENT}' AND (error_message IS NOT NULL "
                   "OR json_extract_scalar(response_elements, '$.ConsoleLogin') = 'Failure')")
SUCCEEDED = "coalesce(error_code, '') = ''"
MOVE_SCHEMA = {"principal": pl.String, "account_id": pl.String, "source_ip": pl.String, "event_time": UTC_TIME,
               "event_id": pl.String}
MOVE_ORDER = ["account_id", "principal", "event_time", "source_ip"]
LAKE_NOTE = ("from the lake's events for this period (without Sigma findings: no cache here holds the Sigma rules)")
LAKE_SIGMA_NOTE = "from the lake's events for this period, the Sigma rules' included"


def _as_schema(schema: dict) -> Callable[..., pl.DataFrame]:
    """An engine's rows as the cache's frame: event times parsed, every column of `schema` in its order and type."""
    def shape(frame: pl.DataFrame, **options) -> pl.DataFrame:
        parsed = parsed_times(frame, [name for name, dtype in schema.items() if dtype == UTC_TIME])
        return parsed.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])
    return shape


def _condition(sql: str) -> exp.Expression:
    return sqlglot.condition(sql, dialect=READ)


def _not_service(column: str) -> exp.Expression:
    """Not an AWS service's own address (`…amazonaws.com`, ASCII case ignored as SQLite's NOT LIKE does)."""
    return exp.not_(like(f"coalesce({column}, '')", _SERVICE_ADDRESS))


def _security_sql(table: exp.Table, event_filter: EventFilter, condition: exp.Expression, *extra: str) -> exp.Select:
    return events_select(table, event_filter, *_SECURITY, *extra).where(condition)


def unauthorized_sql(table: exp.Table, event_filter: EventFilter, **options) -> exp.Select:
    """The refused calls (unauthorized.query_unauthorized_rows): catalog codes, or a pattern as SQLite's LIKE."""
    return _security_sql(table, event_filter, refused_as_unauthorized())


def privilege_changes_sql(table: exp.Table, event_filter: EventFilter, **options) -> exp.Select:
    """The successful privilege changes (privilege_sprees.query_privilege_changes)."""
    query = _security_sql(table, event_filter, _condition(SUCCEEDED))
    return only_named(query, catalog.PRIVILEGE_CHANGE_EVENTS)


def root_calls_sql(table: exp.Table, event_filter: EventFilter, **options) -> exp.Select:
    """The root user's own calls, failed root sign-ins excluded (root_activity.query_root_calls)."""
    root = _condition("principal = 'root' AND user_type = 'Root' AND coalesce(event_type, '') <> 'AwsServiceEvent'")
    return _security_sql(table, event_filter, exp.and_(root, _not_service("source_ip"),
                                                       exp.not_(_condition(_FAILED_SIGN_IN))))


def sign_ins_sql(table: exp.Table, event_filter: EventFilter, **options) -> exp.Select:
    """Console sign-ins with outcome and MFA as the record says them (sign_ins.query_sign_in_rows)."""
    query = _security_sql(table, event_filter, exp.true(), *_OUTCOME)
    return only_named(query, (catalog.CONSOLE_LOGIN_EVENT,))


def successful_calls_sql(table: exp.Table, event_filter: EventFilter, event_names=(), **options) -> exp.Select:
    """The successful calls of the named events, every column of the cache's event tables."""
    return rows_sql(table, event_filter, _condition(SUCCEEDED), None, tuple(event_names))


def finding_events_sql(table: exp.Table, event_filter: EventFilter, event_ids=(), **options) -> exp.Select:
    """The events behind a finding, by ID, in the period that spans it (so Athena reads only those days)."""
    wanted = exp.column("event_id").isin(*map(exp.Literal.string, event_ids)) if event_ids else exp.false()
    return rows_sql(table, event_filter, wanted, None)


def query_finding_events(conn, event_filter: EventFilter, event_ids=(), **options) -> pl.DataFrame:
    """The cache's events behind a finding, by ID (the period is the lake's hint only)."""
    return events.query_finding_events(conn, list(event_ids))


# --- Impossible travel's moves ------------------------------------------------------------------------

_OUTSIDE_AWS = (f"source_ip IS NOT NULL AND source_ip NOT IN "
                f"({', '.join(repr(source) for source in catalog.AWS_INTERNAL_SOURCES)}) AND principal IS NOT NULL")
_MOVE_SQL = """SELECT principal, account_id, source_ip, event_time, min(event_id) AS event_id
FROM events e WHERE {where} GROUP BY principal, account_id, source_ip, event_time"""
_ROAMING = "min(source_ip) OVER (PARTITION BY principal) <> max(source_ip) OVER (PARTITION BY principal)"
_IN_ORDER = "OVER (PARTITION BY account_id, principal ORDER BY event_time, source_ip)"
# A move at the start or end of a run at one address: the rows inside a run can be neither end of a hop.
_EDGE = "coalesce(previous_ip <> source_ip, true) OR coalesce(next_ip <> source_ip, true)"


def moves_sql(table: exp.Table, event_filter: EventFilter, **options) -> exp.Select:
    """Each principal's moments outside AWS, one per (principal, account, address, second), only where its address
    changes (a run's first and last) and only of principals seen at two or more addresses: all travel reads."""
    columns = ["principal", "account_id", "source_ip", "event_time", "min(event_id) AS event_id",
               f"CASE WHEN {_ROAMING} THEN 1 ELSE 0 END AS roaming", f"lag(source_ip) {_IN_ORDER} AS previous_ip",
               f"lead(source_ip) {_IN_ORDER} AS next_ip"]
    inner = events_select(table, event_filter, *columns).where(exp.and_(_condition(_OUTSIDE_AWS),
                                                                        _not_service("source_ip")))
    inner = inner.group_by("1", "2", "3", "4")
    moves = sqlglot.select(*MOVE_SCHEMA, dialect=READ).from_(inner.subquery("moves"))
    return moves.where(f"roaming = 1 AND ({_EDGE})", dialect=READ)


def query_moves(conn, event_filter: EventFilter, **options) -> pl.DataFrame:
    """moves_sql over the cache (the cache's own travel reads its covering index instead: this is for comparison)."""
    where, params = queries._where(event_filter, events.OUTSIDE_AWS, "e.principal IS NOT NULL")
    moves = read_frame(conn, _MOVE_SQL.format(where=where), params, MOVE_SCHEMA).sort(MOVE_ORDER)
    roaming = pl.col("source_ip").min().over("principal") != pl.col("source_ip").max().over("principal")
    keys = MOVE_ORDER[:2]
    edge = [pl.col("source_ip").shift(step).over(keys).ne_missing(pl.col("source_ip")) for step in (1, -1)]
    return moves.filter(roaming & pl.any_horizontal(edge))


def shape_moves(frame: pl.DataFrame, **options) -> pl.DataFrame:
    return _as_schema(MOVE_SCHEMA)(frame).sort(MOVE_ORDER)


QUERIES: dict[str, NamedQuery] = {
    "security_unauthorized": NamedQuery(unauthorized.query_unauthorized_rows, unauthorized_sql,
                                        _as_schema(events.SECURITY_SCHEMA)),
    "security_privilege_changes": NamedQuery(privilege_sprees.query_privilege_changes, privilege_changes_sql,
                                             _as_schema(events.SECURITY_SCHEMA)),
    "security_root_calls": NamedQuery(root_activity.query_root_calls, root_calls_sql,
                                      _as_schema(events.SECURITY_SCHEMA)),
    "security_sign_ins": NamedQuery(sign_ins.query_sign_in_rows, sign_ins_sql, _as_schema(sign_ins.SIGN_IN_SCHEMA)),
    "security_successful_calls": NamedQuery(events.query_successful_calls, successful_calls_sql,
                                            _as_schema(queries.EVENT_SCHEMA)),
    "security_finding_events": NamedQuery(query_finding_events, finding_events_sql, _as_schema(queries.EVENT_SCHEMA)),
    "security_moves": NamedQuery(query_moves, moves_sql, shape_moves),
}


# --- What the security pages and `findings` call, with a cache connection or an events source -------------------


def query_security_findings(source, event_filter: EventFilter | None = None, settings=None,
                            sigma_rules: LakeRules | None = None) -> stored.PeriodFindings:
    """The period's findings: on the cache its stored ones (stored.query_period_findings, unchanged); on the lake
    computed now from the slices above and, given the cache's `sigma_rules`, the Sigma rules' (sigma.lake)."""
    if events.on_cache(source):
        return stored.query_period_findings(source, event_filter, settings)
    found, note = detect_findings(source, event_filter, settings), LAKE_NOTE
    if sigma_rules is not None:
        from trailstream.analytics.sigma.lake import detect_lake_sigma  # pySigma loads only when rules run

        sigma = detect_lake_sigma(source, sigma_rules, event_filter) if sigma_rules.rules else None
        found = newest_first(found + sigma.findings) if sigma else found
        note = "; ".join([LAKE_SIGMA_NOTE, *(sigma.skipped if sigma else [])])
    return stored.PeriodFindings(found, note)


def query_security_travel(source, event_filter: EventFilter | None = None, settings=None):
    """The period's travel findings, routes and note (stored.query_period_travel's shape) from either store."""
    if events.on_cache(source):
        return stored.query_period_travel(source, event_filter, settings)
    travel, routes = detect_travel_on_source(source, event_filter, settings)
    return travel, routes, "impossible travel from the lake's events for this period"



def finding_span(finding) -> EventFilter:
    """The period a finding's events lie in (its first event to its last, whole seconds): the lake reads those days."""
    last = parse_iso_utc(finding.time) + timedelta(seconds=1) if finding.time else None
    return EventFilter(start=finding.details.get("first_time") or finding.time or None,
                       end=iso_utc(last) if last else None)
