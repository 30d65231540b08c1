"""The sidebar's account and region choices as a named query, so a lake backend offers the lake's own accounts and
regions (the cache beside it may hold other ones, or none)."""

from __future__ import annotations

import sqlite3

import polars as pl
from sqlglot import exp

from trailstream.analytics import queries
from trailstream.analytics.lake_sql import NamedQuery, events_select
from trailstream.filters import EventFilter

CHOICES_SCHEMA = {"kind": pl.String, "value": pl.String}  # kind: "account" or "region"


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


QUERIES = {"filter_choices": NamedQuery(query_filter_choices, filter_choices_sql, shape_filter_choices)}
