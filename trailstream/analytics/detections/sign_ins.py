"""Console sign-ins as the Sign-ins page and the sign-in detectors read them: outcome, MFA, place, new or not."""

from __future__ import annotations

import dataclasses

import polars as pl

from trailstream import catalog
from trailstream.analytics import geo
from trailstream.analytics.detections.common import text
from trailstream.analytics.detections.events import (SECURITY_SCHEMA, from_source, locate, names_condition, on_cache,
                                                     security_rows)
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.cache import findings_store
from trailstream.filters import EventFilter
from trailstream.timefmt import TIME_FORMAT

SIGN_IN_SUCCESS = "Success"
SIGN_IN_SCHEMA = SECURITY_SCHEMA | {
    "outcome": pl.String,
    "mfa_used": pl.String,
    "error_message": pl.String,
    "user_agent": pl.String,
}
_OUTCOME_SQL = (
    ", json_extract(e.response_elements, '$.ConsoleLogin'), json_extract(e.additional_event_data, '$.MFAUsed'), "
    "e.error_message, e.user_agent"
)
SUCCESS = pl.col("outcome") == SIGN_IN_SUCCESS
SIGN_IN_KEYS = ["account_id", "principal"]  # a federated session name is the person: sign-ins stay per principal


def _first_success_by(column: str) -> pl.Expr:
    """True for a principal's first successful sign-in with this value of `column`, unless it is its very first."""
    earlier = pl.when(SUCCESS & pl.col(column).is_not_null()).then(pl.col("event_time"))
    return (SUCCESS & (pl.col("event_time") == earlier.min().over([*SIGN_IN_KEYS, column])) & (
        pl.col("event_time") > pl.when(SUCCESS).then(pl.col("event_time")).min().over(SIGN_IN_KEYS))).fill_null(False)


def sign_in_places(conn, source_ips: pl.Series, settings: DetectionSettings) -> pl.DataFrame:
    """Where the sign-in addresses are (geo.PLACE_SCHEMA): as the post-sync step stored them, the others looked up
    now (so geolocation data loads only when an address is new)."""
    addresses = source_ips.drop_nulls().unique()
    stored = pl.DataFrame(findings_store.query_places(conn, addresses.to_list(), settings.city_database),
                          schema=geo.PLACE_SCHEMA, orient="row")
    unplaced = addresses.to_frame().join(stored, on="source_ip", how="anti").get_column("source_ip")
    return pl.concat([stored, locate(unplaced, settings)])


def query_sign_in_rows(conn, event_filter: EventFilter | None = None) -> pl.DataFrame:
    """The cache's console sign-ins (SIGN_IN_SCHEMA) as stored: outcome and MFA as the record says them."""
    condition, params = names_condition((catalog.CONSOLE_LOGIN_EVENT,))
    return security_rows(conn, event_filter, condition, params, SIGN_IN_SCHEMA, _OUTCOME_SQL)


def query_sign_ins(conn, event_filter: EventFilter | None = None,
                   settings: DetectionSettings | None = None) -> pl.DataFrame:
    """Console sign-ins with outcome, MFA, place and whether the country or IP is new for the principal, newest first.

    "New" compares with the principal's earlier successful sign-ins in the whole cache, not only the period; a
    principal's very first sign-in is not new (there is nothing to compare with). `conn` may be an events source
    (the lake): its addresses are then all placed now.
    """
    settings = settings or DetectionSettings()
    event_filter = event_filter or EventFilter()
    history = dataclasses.replace(event_filter, start=None)
    sign_ins = from_source(conn, "security_sign_ins", query_sign_in_rows, history).drop_nulls("event_time")
    addresses = sign_ins.get_column("source_ip")
    places = sign_in_places(conn, addresses, settings) if on_cache(conn) else locate(addresses.unique(), settings)
    start = pl.lit(event_filter.start).str.to_datetime(TIME_FORMAT, time_zone="UTC") if event_filter.start else None
    return (
        sign_ins.lazy()
        .with_columns(
            outcome=pl.when(pl.col("outcome").is_null() & pl.col("error_message").is_not_null())
            .then(pl.lit("Failure"))
            .otherwise(pl.col("outcome")),
            mfa_used=(pl.col("mfa_used") == "Yes").fill_null(False),
            is_root=(pl.col("user_type") == "Root").fill_null(False),
        )
        .join(places.lazy(), on="source_ip", how="left")
        .sort("event_time")
        .with_columns(new_country=_first_success_by("country_code"), new_ip=_first_success_by("source_ip"))
        .filter(pl.col("event_time") >= start if start is not None else pl.lit(True))
        .sort("event_time", descending=True)
        .select(
            "event_time", "principal", "account_id", "user_type", "outcome", "mfa_used", "is_root", "source_ip",
            "country_code", "place", "asn", "latitude", "longitude", "new_country", "new_ip", "error_message",
            "user_agent", "event_id",
        )
        .collect()
    )


def sign_in_counts(sign_ins: pl.DataFrame) -> dict[str, int]:
    """Headline numbers of the sign-in table."""
    counts = sign_ins.select(
        pl.len().alias("Sign-ins"),
        (pl.col("outcome") != SIGN_IN_SUCCESS).fill_null(True).sum().alias("Failed"),
        (SUCCESS & ~pl.col("mfa_used")).fill_null(False).sum().alias("Without MFA"),
        pl.col("is_root").sum().alias("Root"),
        pl.col("new_country").sum().alias("New country"),
    )
    return {name: int(value or 0) for name, value in counts.row(0, named=True).items()}


def where_from(row: dict) -> str:
    """'1.2.3.4 (Paris, France)', or as much of it as is known."""
    place = row.get("place")
    address = text(row.get("source_ip"), "an unknown address")
    return f"{address} ({place})" if place else address
