"""First successful sign-ins of a principal from a country it never signed in from: one finding per principal and
day, however many countries a roaming person adds."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from trailstream.analytics.detections.common import MAX_LISTED, Finding, duration, iso, listing, make_finding, text
from trailstream.analytics.detections.events import episode
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.analytics.detections.sign_ins import SIGN_IN_KEYS, query_sign_ins
from trailstream.filters import EventFilter

FINDING_TYPE = "new_country_sign_in"
SETTINGS = ()  # history is the whole cache; new countries less than INCIDENT_GAP apart are one finding
INCIDENT_GAP = timedelta(hours=24)


def _incidents(sign_ins: pl.DataFrame) -> pl.DataFrame:
    """The new-country sign-ins of each principal, in runs less than INCIDENT_GAP apart, one row per run."""
    where = pl.coalesce("place", "country_code", "source_ip")
    return (
        sign_ins.lazy()
        .filter(pl.col("new_country"))
        .sort([*SIGN_IN_KEYS, "event_time"])
        .with_columns(incident=episode(SIGN_IN_KEYS, INCIDENT_GAP))
        .group_by([*SIGN_IN_KEYS, "incident"])
        .agg(first_time=pl.col("event_time").min(), last_time=pl.col("event_time").max(), sign_ins=pl.len(),
             event_ids=pl.col("event_id"), countries=pl.col("country_code").drop_nulls().unique(maintain_order=True),
             places=where.drop_nulls().unique(maintain_order=True).head(MAX_LISTED),
             ips=pl.col("source_ip").drop_nulls().unique(maintain_order=True).head(MAX_LISTED),
             asn=pl.col("asn").first(), place=pl.col("place").first())
        .sort("last_time", descending=True)
        .collect()
    )


def _summary(run: dict) -> str:
    who = text(run["principal"], "Someone")
    if run["sign_ins"] == 1:
        return (f"{who} signed in from {listing(run['places']) or 'a new country'} for the first time "
                f"({listing(run['ips']) or 'unknown address'}).")
    return (f"{who} signed in from {len(run['countries']):,} new countries within "
            f"{duration(run['last_time'] - run['first_time'])} ({listing(run['places'])}; "
            f"{listing(run['ips']) or 'unknown addresses'}).")


def detect_new_country_sign_ins(conn, event_filter: EventFilter | None = None,
                                settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per principal and run of first sign-ins from new countries (a roaming person is one, not many)."""
    runs = _incidents(query_sign_ins(conn, event_filter, settings))
    return [
        make_finding(FINDING_TYPE, run["last_time"], run, _summary(run), run["event_ids"],
                     {"events": run["sign_ins"], "first_time": iso(run["first_time"]), "ips": run["ips"],
                      "countries": run["countries"], "places": run["places"], "place": run["place"],
                      "asn": run["asn"]})
        for run in runs.iter_rows(named=True)
    ]
