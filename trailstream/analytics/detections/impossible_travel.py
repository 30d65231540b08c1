"""Impossible travel: one principal acting from places too far apart for the time between, one finding per
principal and incident (hops less than a day apart), however many hops a roaming principal makes.

With coordinates the test is speed (distance over time above max_travel_speed_kmh, places at least
min_travel_distance_km apart); when a side is known only by its country, two countries within
country_change_window_minutes also count. AWS-internal and private addresses are not places, and a place without
coordinates (geoip2fast's "EU") has no distance: it can only count by country.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

import orjson
import polars as pl

from trailstream.analytics import geo, queries
from trailstream.analytics.detections.common import (MAX_EVENT_IDS, MAX_LISTED, Finding, duration, iso, listing,
                                                     make_finding, number, text)
from trailstream.analytics.detections.events import OUTSIDE_AWS, episode
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.cache.frames import UTC_TIME
from trailstream.filters import EventFilter
from trailstream.timefmt import TIME_FORMAT

FINDING_TYPE = "impossible_travel"
SETTINGS = ("max_travel_speed_kmh", "min_travel_distance_km", "country_change_window_minutes", "city_database")
INCIDENT_GAP = timedelta(hours=24)  # hops of one principal closer than this are one finding
TRAVEL_INDEX = queries.PRINCIPAL_INDEX  # (principal, event_time, source_ip, account_id, ...): read alone
KEYS = ["account_id", "principal"]  # a session name of a person's role is that person: travel stays per principal
_ACTORS = "e.principal IS NOT NULL"  # AWS services acting on their own call from their own domain: not places
PRESENCE_SCHEMA = {"principal": pl.String, "event_time": UTC_TIME, "source_ip": pl.String, "account_id": pl.String,
                   "row": pl.Int64}
# One text per principal holds its moments: a million rows cross from SQLite to polars as a few dozen strings.
_FIELD, _RECORD = "\x1f", "\x1e"
# One printf per moment, not six concatenations (a quarter less of the read); a NULL account prints as ''.
_MOMENT_SQL = (f"group_concat(printf('%s{_FIELD}%s{_FIELD}%d{_FIELD}%s', e.event_time, e.account_id, e.rowid, "
               f"e.source_ip), '{_RECORD}')")
PLACE_COLUMNS = ("source_ip", "country_code", "place", "latitude", "longitude", "precision")
HOP_SCHEMA = {
    "account_id": pl.String, "principal": pl.String, "from_time": UTC_TIME, "to_time": UTC_TIME,
    "from_row": pl.Int64, "to_row": pl.Int64, "from_source_ip": pl.String, "to_source_ip": pl.String,
    "from_country": pl.String, "to_country": pl.String, "from_place": pl.String, "to_place": pl.String,
    "from_latitude": pl.Float64, "from_longitude": pl.Float64, "to_latitude": pl.Float64,
    "to_longitude": pl.Float64, "from_precision": pl.String, "to_precision": pl.String,
    "distance_km": pl.Float64, "hours": pl.Float64, "speed_kmh": pl.Float64, "basis": pl.String,
}
TRAVEL_PAIR_SCHEMA = {name: dtype for name, dtype in HOP_SCHEMA.items() if not name.endswith("_row")} | {
    "from_event_id": pl.String, "to_event_id": pl.String}


BATCH_MOMENTS = 40_000  # moments judged at once: memory stays flat however many principals roam (20,000: 0.4 s more CPU)


def _moment_texts(conn, event_filter: EventFilter | None, principals: list[str] | None = None):
    """The (principal, moments text) of every principal (of these only, when given) seen at two or more addresses,
    from the covering index in one pass, a few whole principals (about BATCH_MOMENTS moments) per list."""
    only = ["e.principal IN (SELECT value FROM json_each(?))"] if principals is not None else []
    where, params = queries._where(event_filter, OUTSIDE_AWS, _ACTORS, *only)
    params = params + ([orjson.dumps(principals).decode()] if principals is not None else [])
    sql = (f"SELECT e.principal, count(*), {_MOMENT_SQL} FROM events e {queries.indexed_by(conn, TRAVEL_INDEX)} "
           f"WHERE {where} GROUP BY e.principal HAVING min(e.source_ip) != max(e.source_ip)")
    cursor = conn.cursor()
    cursor.row_factory = None
    batch, size = [], 0
    for principal, count, moments in cursor.execute(sql, params):
        batch.append((principal, moments))
        size += count
        if size >= BATCH_MOMENTS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _parsed_moments(batch: list[tuple[str, str]]) -> pl.DataFrame:
    """PRESENCE_SCHEMA rows from (principal, moments text) pairs; unreadable moments are left out."""
    fields = pl.col("moments").str.splitn(_FIELD, 4).struct.rename_fields(["time", "account_id", "row", "source_ip"])
    return (
        pl.LazyFrame(batch, schema={"principal": pl.String, "moments": pl.String}, orient="row")
        .with_columns(pl.col("moments").str.split(_RECORD))
        .explode("moments")
        .select("principal", fields.alias("moment"))
        .unnest("moment")
        .with_columns(event_time=pl.col("time").str.to_datetime(TIME_FORMAT, time_zone="UTC", strict=False),
                      account_id=pl.when(pl.col("account_id") != "").then(pl.col("account_id")),
                      row=pl.col("row").cast(pl.Int64, strict=False))
        .drop_nulls(["event_time", "source_ip"])
        .select(PRESENCE_SCHEMA.keys())
        .collect()
    )


def _located(presence: pl.DataFrame, settings: DetectionSettings) -> pl.LazyFrame:
    """The moments at places, of principals seen at two or more places."""
    spots = pl.struct("country_code", "latitude", "longitude").n_unique().over(KEYS)
    placed = geo.locate_rows(presence, settings.city_database or None)
    return placed.lazy().select(*PRESENCE_SCHEMA, *PLACE_COLUMNS[1:]).filter(spots > 1)


def _judged(settings: DetectionSettings) -> dict[str, pl.Expr]:
    """Speed and the reason a hop is impossible (null when it is not); NULL distances never count as speed."""
    too_fast = (pl.col("distance_km") >= settings.min_travel_distance_km) & (
        (pl.col("hours") <= 0) | (pl.col("distance_km") / pl.col("hours") > settings.max_travel_speed_kmh))
    country_jump = (
        ((pl.col("from_precision") == "country") | (pl.col("to_precision") == "country")
         | pl.col("from_latitude").is_null() | pl.col("to_latitude").is_null())
        & (pl.col("from_country") != pl.col("to_country"))
        & (pl.col("hours") <= settings.country_change_window_minutes / 60))
    return {
        "speed_kmh": pl.when(pl.col("hours") > 0).then(pl.col("distance_km") / pl.col("hours")),
        "basis": pl.when(too_fast.fill_null(False)).then(pl.lit("speed"))
        .when(country_jump.fill_null(False)).then(pl.lit("countries within window")),
    }


def _hops(presence: pl.DataFrame, settings: DetectionSettings) -> pl.DataFrame:
    """Consecutive moments of one principal at two places too far apart for the time between (HOP_SCHEMA), sorted
    by principal and time."""
    same_principal = pl.all_horizontal([pl.col(key).eq_missing(pl.col(key).shift(1)) for key in KEYS])
    previous = {f"from_{column}": pl.when(same_principal).then(pl.col(column).shift(1))  # sorted by KEYS below
                for column in ("event_time", "row", *PLACE_COLUMNS)}
    distance = geo.distance_km(pl.col("from_latitude"), pl.col("from_longitude"), pl.col("to_latitude"),
                               pl.col("to_longitude"))
    return (
        _located(presence, settings)
        # By KEYS, time, address and stored row (the same hops on every run): a stable sort by principal after one by
        # time costs half the one sort by all five (principal and account tie on nearly every row)
        .sort(["event_time", "source_ip", "row"])
        .sort(pl.struct(KEYS).rank("dense"), maintain_order=True)
        .with_columns(**previous)
        .filter(pl.col("from_source_ip").is_not_null() & (pl.col("from_source_ip") != pl.col("source_ip")))
        .rename({"event_time": "to_time", "row": "to_row", "source_ip": "to_source_ip", "country_code": "to_country",
                 "place": "to_place", "latitude": "to_latitude", "longitude": "to_longitude",
                 "precision": "to_precision", "from_event_time": "from_time", "from_country_code": "from_country"})
        .with_columns(hours=(pl.col("to_time") - pl.col("from_time")).dt.total_seconds() / 3600, distance_km=distance)
        .with_columns(**_judged(settings))
        .filter(pl.col("basis").is_not_null())
        .with_columns(pl.col("distance_km").round(1), pl.col("hours").round(3), pl.col("speed_kmh").round(0))
        .select(HOP_SCHEMA.keys())
        .collect()
    )


T = TypeVar("T")
JUDGES = 2  # batches judged at once, in threads: polars and SQLite release the GIL, so both cores work


def _hop_batches(conn, event_filter: EventFilter | None, settings: DetectionSettings | None,
                 principals: list[str] | None = None, then: Callable[[pl.DataFrame], T] = lambda hops: hops
                 ) -> Iterator[T]:
    """Each batch's hops (what `then` makes of them), in order: batches are parsed and judged in JUDGES threads
    while this one reads the next from SQLite (a third of a whole-cache pass); the connection stays in this thread."""
    settings = settings or DetectionSettings()
    # The place tables are loaded here, once: both judges loading them at once would build them twice (200 MB each).
    geo.locate_rows(pl.DataFrame(schema=PRESENCE_SCHEMA), settings.city_database or None)

    def judge(batch: list[tuple[str, str]]) -> T:
        return then(_hops(_parsed_moments(batch), settings))

    with ThreadPoolExecutor(JUDGES, thread_name_prefix="trailstream-hops") as judges:
        pending = deque()
        for batch in _moment_texts(conn, event_filter, principals):
            pending.append(judges.submit(judge, batch))
            if len(pending) > JUDGES:  # a bounded queue: memory stays flat however many principals roam
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def query_travel_hops(conn, event_filter: EventFilter | None = None,
                      settings: DetectionSettings | None = None) -> pl.DataFrame:
    """Every impossible hop of the period (HOP_SCHEMA), sorted by principal and time."""
    return pl.concat([pl.DataFrame(schema=HOP_SCHEMA), *_hop_batches(conn, event_filter, settings)])


def _event_ids(conn, rows: list[int]) -> dict[int, str]:
    """Stored row number -> event id, in one query."""
    sql = "SELECT rowid, event_id FROM events WHERE rowid IN (SELECT value FROM json_each(?))"
    return dict(conn.execute(sql, [orjson.dumps(rows).decode()]).fetchall())


def query_travel_pairs(conn, event_filter: EventFilter | None = None,
                       settings: DetectionSettings | None = None) -> pl.DataFrame:
    """Every impossible hop with the event at each end, newest first (TRAVEL_PAIR_SCHEMA): for exports and tests;
    pages draw query_travel_routes and list the findings instead."""
    hops = query_travel_hops(conn, event_filter, settings)
    ids = _event_ids(conn, hops.select(pl.concat_list("from_row", "to_row").explode()).to_series().to_list())
    lookup = pl.DataFrame({"row": list(ids), "event_id": list(ids.values())}, schema={"row": pl.Int64,
                                                                                       "event_id": pl.String})
    return (
        hops.lazy()
        .join(lookup.lazy().rename({"row": "from_row", "event_id": "from_event_id"}), on="from_row", how="left")
        .join(lookup.lazy().rename({"row": "to_row", "event_id": "to_event_id"}), on="to_row", how="left")
        .sort("to_time", descending=True)
        .select(TRAVEL_PAIR_SCHEMA.keys())
        .collect()
    )


def _first_ends(column: str, limit: int = MAX_LISTED) -> pl.Expr:
    """The first `limit` distinct from_ and to_ values of an incident's hops (sorted by time), in order."""
    both = pl.concat_list(f"from_{column}", f"to_{column}").head(limit).explode()
    return both.drop_nulls().unique(maintain_order=True).head(limit)


def _all_ends(column: str) -> pl.Expr:
    """Every distinct from_ and to_ value of an incident's hops."""
    return pl.col(f"from_{column}").append(pl.col(f"to_{column}")).drop_nulls().unique()


def _incidents(hops: pl.DataFrame) -> pl.DataFrame:
    """One row per principal and run of hops less than INCIDENT_GAP apart: counts, places, the fastest hop
    (hops sorted by principal and time, as query_travel_hops returns them)."""
    fastest = pl.col("speed_kmh").fill_null(-1).arg_max()
    return (
        hops.lazy()
        .with_columns(incident=episode(KEYS, INCIDENT_GAP, "to_time"))
        .group_by([*KEYS, "incident"])
        .agg(
            pl.all().exclude("from_row", "to_row").get(fastest),
            first_time=pl.col("from_time").min(), last_time=pl.col("to_time").max(), pairs=pl.len(),
            rows=_first_ends("row", MAX_EVENT_IDS), row_count=_all_ends("row").len(),
            ips=_first_ends("source_ip"), places=_first_ends("place"), countries=_all_ends("country").sort(),
        )
        .sort("last_time", descending=True)
        .collect()
    )


def _summary(incident: dict) -> str:
    who = text(incident["principal"], "Someone")
    apart = number(incident["distance_km"], "km", "an unknown distance")
    speed = number(incident["speed_kmh"], "km/h")
    ends = (f"{text(incident['from_place'], 'an unknown place')} ({text(incident['from_source_ip'], '?')}) and "
            f"{text(incident['to_place'], 'an unknown place')} ({text(incident['to_source_ip'], '?')})")
    gap = timedelta(hours=incident["hours"]) if incident["hours"] is not None else None
    if incident["pairs"] == 1:
        return f"{who} acted from {ends}, {apart} apart, within {duration(gap)}{', ' + speed if speed else ''}."
    return (
        f"{who} made {incident['pairs']:,} impossible hops between {len(incident['countries']):,} countries "
        f"({listing(incident['countries'], 5)}) within {duration(incident['last_time'] - incident['first_time'])}; "
        f"the fastest: {ends}, {apart} apart{' at ' + speed if speed else ''}."
    )


def _details(incident: dict) -> dict:
    side = {end: {"time": iso(incident[f"{end}_time"]), "ip": incident[f"{end}_source_ip"],
                  "place": incident[f"{end}_place"], "latitude": incident[f"{end}_latitude"],
                  "longitude": incident[f"{end}_longitude"]} for end in ("from", "to")}
    return {
        "pairs": incident["pairs"], "events": incident["row_count"], "first_time": iso(incident["first_time"]),
        "countries": incident["countries"], "places": incident["places"], "ips": incident["ips"],
        "distance_km": incident["distance_km"], "hours": incident["hours"], "speed_kmh": incident["speed_kmh"],
        "basis": incident["basis"], **side,
    }


def _findings(conn, incidents: pl.DataFrame) -> list[Finding]:
    ids = _event_ids(conn, incidents.get_column("rows").explode().drop_nulls().to_list()) if incidents.height else {}
    return findings_from_incidents(incidents, ids)


def findings_from_incidents(incidents: pl.DataFrame, ids: dict[int, str]) -> list[Finding]:
    """One finding per incident, newest first, its events named through `ids` (a move's row -> its event ID)."""
    return [
        make_finding(FINDING_TYPE, incident["last_time"], incident, _summary(incident),
                     [ids.get(row) for row in incident["rows"]], _details(incident))
        for incident in incidents.sort(["last_time", "account_id", "principal"], descending=[True, False, False],
                                       nulls_last=True).iter_rows(named=True)
    ]


def detect_travel_in_moves(moves: pl.DataFrame, settings: DetectionSettings) -> tuple[list[Finding], pl.DataFrame]:
    """Findings and routes (ROUTE_SCHEMA) from moves already read (PRESENCE_SCHEMA's columns and event_id, in time
    order per principal), as a store without the cache's numbered rows gives them (the lake)."""
    numbered = moves.with_row_index("row")
    presence = numbered.select(list(PRESENCE_SCHEMA)).cast(PRESENCE_SCHEMA)
    hops = _hops(presence, settings)
    ids = dict(zip(numbered.get_column("row").cast(pl.Int64).to_list(), numbered.get_column("event_id").to_list()))
    return findings_from_incidents(_incidents(hops), ids), _merged_routes([_routes(hops)])


ROUTE_SCHEMA = {"from_place": pl.String, "to_place": pl.String, "from_latitude": pl.Float64,
                "from_longitude": pl.Float64, "to_latitude": pl.Float64, "to_longitude": pl.Float64,
                "hops": pl.Int64, "principals": pl.Int64, "fastest_kmh": pl.Float64, "last_time": UTC_TIME}
# What the post-sync step stores: one principal's hops on a route on a UTC day (principals is 1), so a sync can add a
# principal's new hops or replace its routes without touching the others'.
DAY_ROUTE_SCHEMA = {"day": pl.String, "account_id": pl.String, "principal": pl.String} | ROUTE_SCHEMA


def _routes(hops: pl.DataFrame, by_day: bool = False) -> pl.DataFrame:
    """One batch's hops counted by route (ROUTE_SCHEMA); by_day: per UTC day of arrival and principal (DAY_ROUTE_SCHEMA),
    so a principal's routes can be replaced or added to alone; a principal's hops are all in one batch."""
    place = {end: pl.coalesce(f"{end}_place", f"{end}_country", f"{end}_source_ip") for end in ("from", "to")}
    day = {"day": pl.col("to_time").dt.date(), "account_id": pl.col("account_id").fill_null(""),
           "principal": pl.col("principal").fill_null("")} if by_day else {}
    return (
        hops.lazy()
        .group_by(from_place=place["from"], to_place=place["to"], **day)
        .agg(pl.col("from_latitude", "from_longitude", "to_latitude", "to_longitude").first(), hops=pl.len(),
             principals=pl.col("principal").n_unique(), fastest_kmh=pl.col("speed_kmh").max(),
             last_time=pl.col("to_time").max())
        .with_columns(pl.col("day").dt.strftime("%Y-%m-%d") if by_day else [])  # once per route: dates group faster
        .select((DAY_ROUTE_SCHEMA if by_day else ROUTE_SCHEMA).keys())
        .cast({"hops": pl.Int64, "principals": pl.Int64})
        .collect()
    )


def _merged_routes(parts: list[pl.DataFrame], by_day: bool = False) -> pl.DataFrame:
    """The batches' route counts added up, busiest first; by_day: the batches side by side, as they are (a principal's
    hops are all in one batch, so nothing adds up, and the store keeps no order): no copy of a roaming day's routes."""
    if by_day:
        return pl.concat([pl.DataFrame(schema=DAY_ROUTE_SCHEMA), *parts], rechunk=False)
    keys = ["from_place", "to_place"]
    return (
        pl.concat([pl.DataFrame(schema=ROUTE_SCHEMA), *parts]).lazy()
        .group_by(keys)
        .agg(pl.col("from_latitude", "from_longitude", "to_latitude", "to_longitude").first(),
             pl.col("hops", "principals").sum(), pl.col("fastest_kmh", "last_time").max())
        .sort(["hops", "last_time", *keys], descending=[True, True, *([False] * len(keys))])
        .select(ROUTE_SCHEMA.keys())
        .collect()
    )


def _travel(conn, event_filter: EventFilter | None, settings: DetectionSettings | None,
            by_day: bool, principals: list[str] | None = None) -> tuple[list[Finding], pl.DataFrame]:
    """The travel findings and their routes from one pass over the hops, a batch of principals at a time (each
    batch's events named while the judges work on the next ones)."""
    incidents, routes, ids = [], [], {}
    for found, counted in _hop_batches(conn, event_filter, settings, principals,
                                       lambda hops: (_incidents(hops), _routes(hops, by_day))):
        ids |= _event_ids(conn, found.get_column("rows").explode().drop_nulls().to_list())
        incidents.append(found)
        routes.append(counted)
    found = pl.concat(incidents) if incidents else _incidents(pl.DataFrame(schema=HOP_SCHEMA))
    return findings_from_incidents(found, ids), _merged_routes(routes, by_day)


def query_travel(conn, event_filter: EventFilter | None = None,
                 settings: DetectionSettings | None = None) -> tuple[list[Finding], pl.DataFrame]:
    """The travel findings and their routes (ROUTE_SCHEMA, busiest first)."""
    return _travel(conn, event_filter, settings, by_day=False)


def query_travel_days(conn, settings: DetectionSettings | None = None,
                      since: str | None = None) -> tuple[list[Finding], pl.DataFrame]:
    """Every travel finding of the cache (from `since` on) and its routes per UTC day (day + ROUTE_SCHEMA): what the
    post-sync step stores, so a period's map adds up its days."""
    return _travel(conn, EventFilter(start=since), settings, by_day=True)


def query_principals_travel(conn, principals: list[str], settings: DetectionSettings | None = None,
                            since: str | None = None) -> tuple[list[Finding], pl.DataFrame]:
    """query_travel_days for these principals only (in every account)."""
    return _travel(conn, EventFilter(start=since), settings, by_day=True, principals=principals)


def detect_impossible_travel(conn, event_filter: EventFilter | None = None,
                             settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per principal and incident, summarising its hops and pointing at their events."""
    return query_travel(conn, event_filter, settings)[0]


def query_travel_routes(conn, event_filter: EventFilter | None = None,
                        settings: DetectionSettings | None = None) -> pl.DataFrame:
    """Impossible hops aggregated by route (from place -> to place), busiest first (ROUTE_SCHEMA): what a map draws."""
    return query_travel(conn, event_filter, settings)[1]
