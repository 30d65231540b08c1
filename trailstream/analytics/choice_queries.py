"""Store-wide choices as named queries: the sidebar's accounts and regions, and the event names and error codes the
Search form suggests, so a lake backend offers the lake's own (the cache beside it may hold other ones, or none)."""

from __future__ import annotations

import sqlite3

import polars as pl
from sqlglot import exp

from trailstream.analytics import queries
from trailstream.analytics.lake_sql import NamedQuery, events_select
from trailstream.filters import EventFilter

CHOICES_SCHEMA = {"kind": pl.String, "value": pl.String}  # kind: "account", "region", "event_name", "error_code"
SUGGESTED_COLUMNS = ("event_name", "error_code")


def choices_frame(options: queries.FilterOptions) -> pl.DataFrame:
    """FilterOptions as rows (kind, value): accounts then regions, each sorted."""
    return pl.DataFrame({"kind": ["account"] * len(options.accounts) + ["region"] * len(options.regions),
                         "value": [*options.accounts, *options.regions]}, schema=CHOICES_SCHEMA)


def filter_options(frame: pl.DataFrame) -> queries.FilterOptions:
    """The rows of a filter_choices answer as the sidebar's FilterOptions."""
    return queries.FilterOptions(tuple(frame.filter(pl.col("kind") == "account")["value"]),
                                 tuple(frame.filter(pl.col("kind") == "region")["value"]))


def query_filter_choices(conn: sqlite3.Connection, event_filter: EventFilter) -> pl.DataFrame:
    """Every account and region in the cache (the period does not narrow the choices)."""
    return choices_frame(queries.query_filter_options(conn))


def filter_choices_sql(table: exp.Table, event_filter: EventFilter) -> exp.Select:
    """Distinct (account, region) pairs in the whole lake: two small dictionary-encoded columns."""
    return events_select(table, EventFilter(), "account_id", "aws_region").distinct().order_by("1", "2")


def shape_filter_choices(frame: pl.DataFrame) -> pl.DataFrame:
    """Pairs as the cache's choices: blank values left out, each kind sorted and distinct."""
    def values(column: str) -> tuple[str, ...]:
        return tuple(frame.select(pl.col(column).filter(pl.col(column) != "").unique().sort()).to_series())

    return choices_frame(queries.FilterOptions(values("account_id"), values("aws_region")))


def suggestions(frame: pl.DataFrame) -> dict[str, list[str]]:
    """The rows of a search_suggestions answer per search field: event_name and error_code, each sorted."""
    return {column: frame.filter(pl.col("kind") == column)["value"].to_list() for column in SUGGESTED_COLUMNS}


def query_search_suggestions(conn: sqlite3.Connection, event_filter: EventFilter) -> pl.DataFrame:
    """Every event name and error code in the cache (each read from its index; the period does not narrow them)."""
    names, codes = queries.query_event_names(conn), queries.query_error_codes(conn)
    return pl.DataFrame({"kind": ["event_name"] * len(names) + ["error_code"] * len(codes), "value": [*names, *codes]},
                        schema=CHOICES_SCHEMA)


def search_suggestions_sql(table: exp.Table, event_filter: EventFilter) -> exp.Select:
    """Distinct (event name, error code) pairs in the whole lake: two small dictionary-encoded columns."""
    return events_select(table, EventFilter(), *SUGGESTED_COLUMNS).distinct()


def shape_search_suggestions(frame: pl.DataFrame) -> pl.DataFrame:
    """Pairs as the cache's suggestions: each kind's distinct values, sorted, no NULLs."""
    long = frame.unpivot(on=list(SUGGESTED_COLUMNS), variable_name="kind", value_name="value")
    return (long.drop_nulls("value").unique().with_columns(order=pl.col("kind").replace_strict(
        {column: index for index, column in enumerate(SUGGESTED_COLUMNS)}, return_dtype=pl.Int8))
        .sort("order", "value").select(pl.col("kind"), pl.col("value").cast(pl.String)))


QUERIES = {"filter_choices": NamedQuery(query_filter_choices, filter_choices_sql, shape_filter_choices),
           "search_suggestions": NamedQuery(query_search_suggestions, search_suggestions_sql,
                                            shape_search_suggestions)}
