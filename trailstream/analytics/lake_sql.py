"""The lake's SQL primitives, written once in Trino as sqlglot expressions and rendered per engine (Athena, DuckDB):
the global filter, top lists, event rows and search, with SQLite's rules kept where dialects differ."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import sqlglot
from sqlglot import exp

from trailstream import catalog
from trailstream.analytics import queries
from trailstream.cache import wordindex
from trailstream.cache.frames import UTC_TIME
from trailstream.filters import EventFilter
from trailstream.timefmt import TIME_FORMAT, parse_iso_utc

READ = "trino"  # the dialect every lake query is written in
_FOLD = f"translate({{}}, '{string.ascii_uppercase}', '{string.ascii_lowercase}')"  # SQLite's lower(): ASCII only
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # the same fold of a Python text
ACTOR = ("CASE WHEN user_type = 'AssumedRole' AND strpos(principal, '/') > 0 "
         "THEN substr(principal, 1, strpos(principal, '/') - 1) ELSE principal END")
MEASURES = ("count(*) AS events", "count(nullif(error_code, '')) AS failed")
_WORD = re.compile(r"[A-Za-z0-9]")
# The lake keeps times as the cache's ISO text; these columns of an answer become the cache's UTC datetimes.
TIME_COLUMNS = ("event_time", "first_event", "last_event", "first_seen", "last_seen", "first_seen_ever", "day",
                "last_changed")


@dataclass(frozen=True)
class NamedQuery:
    """A page's query kept in its own module (backend.PAGE_QUERIES): how the cache answers it, the lake's SQL for it
    (lake_sql primitives), and how an engine's rows become the cache's frame."""

    cache: Callable[..., pl.DataFrame]  # (conn, event_filter, **options)
    lake: Callable[..., exp.Select]  # (table, event_filter, **options)
    shape: Callable[..., pl.DataFrame] = lambda frame, **options: frame  # (frame, **options)


class UnsupportedSearch(ValueError):
    """A search field the lake cannot answer yet; the message says which, for a person."""


def filter_condition(event_filter: EventFilter) -> exp.Expression:
    """The global filter over the lake's columns, with the `date` partition bounds Athena prunes by."""
    parts: list[exp.Expression] = []
    for bound, op in ((event_filter.start, exp.GTE), (event_filter.end, exp.LT)):
        if bound:
            millis = int(parse_iso_utc(bound).timestamp() * 1000)
            parts.append(op(this=exp.column("event_time_ms"), expression=exp.Literal.number(millis)))
    if event_filter.start:
        parts.append(exp.column("date").__ge__(exp.Literal.string(event_filter.start[:10])))
    if event_filter.end:
        parts.append(exp.column("date").__le__(exp.Literal.string(event_filter.end[:10])))
    for column, values in (("account_id", event_filter.accounts), ("aws_region", event_filter.regions)):
        if values:
            parts.append(exp.column(column).isin(*map(exp.Literal.string, values)))
    if not event_filter.include_read_only:
        parts.append(sqlglot.condition("coalesce(read_only, 0) = 0", dialect=READ))
    return exp.and_(*parts) if parts else exp.true()


def events_select(table: exp.Table, event_filter: EventFilter, *columns: str) -> exp.Select:
    return sqlglot.select(*columns, dialect=READ).from_(table.copy()).where(filter_condition(event_filter))


def top_sql(table: exp.Table, event_filter: EventFilter, columns: dict[str, str], limit: int | None) -> exp.Select:
    """Events and failed calls per value of `columns` (name -> expression), largest first."""
    picked = [f"{sql} AS {name}" for name, sql in columns.items()]
    query = events_select(table, event_filter, *picked, *MEASURES).group_by(*map(str, range(1, len(picked) + 1)))
    query = query.order_by("events DESC", *(f"{name} NULLS FIRST" for name in columns), dialect=READ)
    return query.limit(limit) if limit else query


def only_named(query: exp.Select, event_names) -> exp.Select:
    """Only the named events (all of them when none are named)."""
    return query.where(exp.column("event_name").isin(*map(exp.Literal.string, event_names))) if event_names else query


def contains(columns: tuple[str, ...], text: str, ignore_case: bool) -> exp.Expression:
    """wordindex.contains_sql's rule: `text` in one of `columns`, not mid-word when it starts with a letter or
    digit; ignore_case folds ASCII letters only."""
    body = "chr(10) || " + " || chr(10) || ".join(f"coalesce({c}, '')" for c in columns)
    if ignore_case:
        body, text = _FOLD.format(body), text.translate(ASCII_LOWER)
    if _WORD.match(text):
        pattern = exp.Literal.string("[^A-Za-z0-9]" + re.escape(text))
        word_start = exp.RegexpLike(this=sqlglot.parse_one(body, read=READ), expression=pattern)
        prefilter = text.isascii() and "\n" not in text  # a line break can only match across two joined columns
        return exp.and_(_any_column_holds(columns, text, ignore_case), word_start) if prefilter else word_start
    return exp.StrPosition(this=sqlglot.parse_one(body, read=READ), substr=exp.Literal.string(text)) > 0


def _any_column_holds(columns: tuple[str, ...], text: str, ignore_case: bool) -> exp.Expression:
    """A cheap first test for ASCII `text` (lower() folds more than ASCII, so it can only find more): a column that
    holds it at all, so the regular expression over the joined columns runs on few rows."""
    wanted = exp.Literal.string(text)
    return exp.or_(*(exp.StrPosition(this=sqlglot.parse_one(f"lower({column})" if ignore_case else column, read=READ),
                                     substr=wanted) > 0 for column in columns))


def fold(column: str) -> exp.Expression:
    """SQLite's lower() of a column, on the lake: ASCII letters only (Trino's lower() folds every letter)."""
    return sqlglot.parse_one(_FOLD.format(column), read=READ)


def like(column: str, pattern: str) -> exp.Expression:
    """SQLite's LIKE: ASCII case folded, `\\` escapes."""
    folded = fold(column)
    folded_pattern = sqlglot.parse_one(_FOLD.format(exp.Literal.string(pattern).sql()), read=READ)
    like = exp.Like(this=folded, expression=folded_pattern)
    return exp.Escape(this=like, expression=exp.Literal.string("\\"))


def search_condition(search: queries.SearchQuery) -> exp.Expression:
    """The search's fields as one condition, the cache's rules kept (see queries.SearchQuery.sql)."""
    if search.resource_type:
        raise UnsupportedSearch("searching by resource type is not available on the lake yet: use the text field")
    parts: list[exp.Expression] = []
    for column in ("event_name", "event_source", "access_key_id", "event_id", "source_ip", "error_code"):
        if getattr(search, column):
            parts.append(exp.column(column).eq(exp.Literal.string(getattr(search, column))))
    if search.user_name:
        name = search.user_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        parts.append(exp.or_(exp.column("principal").eq(exp.Literal.string(search.user_name)),
                             like("principal", f"{name}/%"), like("principal", f"%/{name}")))
    if search.read_only is not None:
        parts.append(sqlglot.condition(f"coalesce(read_only, 0) = {int(search.read_only)}", dialect=READ))
    if search.resource_name:
        parts.append(contains(queries.RESOURCE_COLUMNS, search.resource_name, False))
    if search.text:
        parts.append(contains(wordindex.SEARCH_TEXT_COLUMNS, search.text, True))
    return exp.and_(*parts) if parts else exp.true()


def rows_sql(table: exp.Table, event_filter: EventFilter, condition: exp.Expression | None, limit: int | None,
             event_names: tuple[str, ...] = ()) -> exp.Select:
    """The events matching `condition` (and named, if names are given) in the period, newest first: the columns of
    the cache's event tables."""
    query = events_select(table, event_filter, *queries.EVENT_SCHEMA)
    query = only_named(query.where(condition) if condition is not None else query, event_names)
    query = query.order_by("event_time_ms DESC", "event_id", dialect=READ)
    return query.limit(limit) if limit else query


def refused_as_unauthorized() -> exp.Expression:
    """detections.unauthorized's rule for a call refused as unauthorized: a catalog code, or one containing a
    pattern (ASCII case ignored, as SQLite's LIKE does)."""
    codes = exp.column("error_code").isin(*map(exp.Literal.string, catalog.UNAUTHORIZED_ERROR_CODES))
    patterns = [like("error_code", f"%{pattern}%") for pattern in catalog.UNAUTHORIZED_ERROR_CODE_PATTERNS]
    return exp.and_(sqlglot.condition("error_code IS NOT NULL", dialect=READ), exp.or_(codes, *patterns))


def parsed_times(frame: pl.DataFrame, columns=TIME_COLUMNS) -> pl.DataFrame:
    """An engine's answer with its time text (TIME_FORMAT) in `columns` as the cache's UTC datetimes."""
    present = [column for column in columns if column in frame.columns]
    return frame.with_columns(pl.col(present).cast(pl.String).str.to_datetime(TIME_FORMAT, time_zone="UTC")
                              .cast(UTC_TIME))
