"""Impossible travel after a sync, in proportion to the new events: only principals with new moments are judged
again, each from its last two stored places on, extending its newest stored incident instead of recomputing it; a
principal whose new moments are not all later than its stored ones (a late file) is recomputed whole. The stored
result equals impossible_travel over the whole cache (the tests hold them equal)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import polars as pl

from trailstream.analytics import queries
from trailstream.analytics.detections import impossible_travel as travel
from trailstream.analytics.detections.common import MAX_EVENT_IDS, MAX_LISTED, Finding, make_finding
from trailstream.analytics.detections.events import OUTSIDE_AWS, episode, locate
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.cache import findings_store
from trailstream.cache.frames import read_frame
from trailstream.timefmt import TIME_FORMAT, iso_utc, parse_iso_utc

KEYS = travel.KEYS
LOOKBACK = 50  # stored moments read back per principal to find its last two places; fewer places: recompute it
_COLUMNS = "e.principal, e.event_time, e.source_ip, e.account_id, e.rowid"
_FASTEST = ("distance_km", "hours", "speed_kmh", "basis")


@dataclass
class TravelUpdate:
    """What a sync changes in the stored travel findings and routes."""

    recomputed: list[tuple] = field(default_factory=list)  # (principal, since): its findings and routes from then on
    replaced: list[tuple] = field(default_factory=list)  # (account or '', principal, time, type) extended
    findings: list[Finding] = field(default_factory=list)  # to store
    routes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=travel.DAY_ROUTE_SCHEMA))  # to add


def _moments(frame: pl.DataFrame) -> pl.DataFrame:
    """PRESENCE_SCHEMA moments as the whole-cache pass reads them ('' accounts as none, no time or address: left out)."""
    return (frame.with_columns(account_id=pl.when(pl.col("account_id") != "").then(pl.col("account_id")))
            .drop_nulls(["event_time", "source_ip"]).select(travel.PRESENCE_SCHEMA.keys()))


def query_new_moments(conn, after_rowid: int) -> pl.DataFrame:
    """The moments of the events stored after `after_rowid` (a rowid range: no index needed)."""
    sql = f"SELECT {_COLUMNS} FROM events e WHERE e.rowid > ? AND {OUTSIDE_AWS} AND {travel._ACTORS}"
    return _moments(read_frame(conn, sql, [after_rowid], travel.PRESENCE_SCHEMA))


def query_last_moments(conn, keys: list[tuple], up_to_rowid: int) -> pl.DataFrame:
    """Up to LOOKBACK newest moments of each (account, principal) among the events up to `up_to_rowid`, through the
    principal's index."""
    sql = (f"SELECT {_COLUMNS} FROM events e {queries.indexed_by(conn, travel.TRAVEL_INDEX)} WHERE e.principal = ? "
           f"AND COALESCE(e.account_id, '') = ? AND e.rowid <= ? AND {OUTSIDE_AWS} "
           f"ORDER BY e.event_time DESC, e.source_ip DESC LIMIT {LOOKBACK}")
    cursor = conn.cursor()
    cursor.row_factory = None
    return _frame([row for account, principal in keys
                   for row in cursor.execute(sql, [principal, account or "", up_to_rowid]).fetchall()])


def _frame(rows: list[tuple]) -> pl.DataFrame:
    wire = {name: pl.String if name == "event_time" else dtype for name, dtype in travel.PRESENCE_SCHEMA.items()}
    frame = pl.DataFrame(rows, schema=wire, orient="row")
    return _moments(frame.with_columns(pl.col("event_time").str.to_datetime(TIME_FORMAT, time_zone="UTC",
                                                                           strict=False)))


def _placed(moments: pl.DataFrame, settings: DetectionSettings) -> pl.DataFrame:
    places = locate(moments.get_column("source_ip"), settings, asn=False).select("source_ip")
    return moments.join(places, on="source_ip").sort([*KEYS, "event_time", "source_ip", "row"])


def _split(new: pl.DataFrame, old: pl.DataFrame, settings: DetectionSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(principal and earliest new place of those to recompute, the last two stored places of the others): a
    principal is recomputed when a new place sorts before its last stored one (by time, then address: a new row sorts
    after a stored one of the same time and address), or its last LOOKBACK stored moments hold under two places."""
    placed = _placed(old, settings)
    last_two = placed.filter(pl.int_range(pl.len()).over(KEYS) >= pl.len().over(KEYS) - 2)
    read = old.group_by(KEYS).agg(read=pl.len())
    newest = placed.group_by(KEYS).agg(newest=pl.col("event_time").last(), newest_ip=pl.col("source_ip").last(),
                                       places=pl.len())
    earliest = _placed(new, settings).group_by(KEYS).agg(earliest=pl.col("event_time").first(),
                                                         earliest_ip=pl.col("source_ip").first())
    before = (pl.col("earliest") < pl.col("newest")) | (
        (pl.col("earliest") == pl.col("newest")) & (pl.col("earliest_ip") < pl.col("newest_ip")))
    judged = (earliest.join(newest, on=KEYS, how="left", nulls_equal=True)
              .join(read, on=KEYS, how="left", nulls_equal=True)
              .filter(before | ((pl.col("places").fill_null(0) < 2) & (pl.col("read").fill_null(0) >= LOOKBACK))))
    late = judged.group_by("principal").agg(pl.col("earliest").min()).sort("principal")
    return late, last_two.filter(~pl.col("principal").is_in(late.get_column("principal").implode()))


def _rewound(conn, late: pl.DataFrame, after_rowid: int, settings: DetectionSettings) -> list[tuple[str, str]]:
    """(principal, UTC midnight to recompute from; '' for its whole history) of each late principal: before its
    place just ahead of the earliest new one and before every stored incident within the incident gap of it, moved
    earlier while a stored incident spans it (so its routes of that day on are recomputed whole)."""
    if late.is_empty():
        return []
    spans = findings_store.query_finding_spans(conn, travel.FINDING_TYPE, late.get_column("principal").to_list())
    reads = [query_moments_before(conn, principal, earliest, after_rowid) for principal, earliest in late.iter_rows()]
    placed = _placed(pl.concat(reads), settings)  # placed in one lookup, not one per principal
    rewound = []
    for (principal, earliest), read in zip(late.iter_rows(), reads):
        before = placed.filter(pl.col("principal") == principal)
        if before.is_empty() and read.height >= LOOKBACK:
            rewound.append((principal, ""))
            continue
        start = min([earliest, *before.get_column("event_time").tail(1)])
        incidents = [(parse_iso_utc(first), parse_iso_utc(last)) for first, last in spans.get(principal, [])]
        start = min([start, *(first for first, last in incidents if last >= start - travel.INCIDENT_GAP)])
        cut = _midnight(start)
        while spanning := [first for first, last in incidents if first < cut <= last]:
            cut = _midnight(min(spanning))
        rewound.append((principal, iso_utc(cut)))
    return rewound


def _midnight(moment):
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


_BEFORE_SQL = ("FROM events e {index} WHERE e.principal = ? AND e.event_time < ? AND e.rowid <= ? AND {outside} "
               "ORDER BY e.event_time DESC, e.source_ip DESC LIMIT {limit}")


def query_moments_before(conn, principal: str, moment, up_to_rowid: int) -> pl.DataFrame:
    """Up to LOOKBACK stored moments of the principal (any account) just before `moment`."""
    sql = f"SELECT {_COLUMNS} " + _BEFORE_SQL.format(index=queries.indexed_by(conn, travel.TRAVEL_INDEX),
                                                     outside=OUTSIDE_AWS, limit=LOOKBACK)
    return _frame(conn.execute(sql, [principal, moment.strftime(TIME_FORMAT), up_to_rowid]).fetchall())


def _ends(hops: pl.DataFrame, column: str, count: int) -> list:
    """The from_ and to_ values of the first `count` hops in order, as impossible_travel._first_ends reads them."""
    head = hops.head(max(count, 0))
    return [value for pair in zip(head[f"from_{column}"], head[f"to_{column}"]) for value in pair if value is not None]


def _first(values: list, limit: int) -> list:
    return list(dict.fromkeys(values))[:limit]


def _stored_fastest(details: dict) -> dict:
    """The fastest hop of a stored incident, as _incidents names its fields."""
    ends = {f"{end}_{name}": details[end][key] for end in ("from", "to")
            for name, key in (("source_ip", "ip"), ("place", "place"), ("latitude", "latitude"),
                              ("longitude", "longitude"))}
    times = {f"{end}_time": parse_iso_utc(details[end]["time"]) for end in ("from", "to")}
    return ends | times | {name: details[name] for name in _FASTEST}


def _speed(value) -> float:
    return value if value is not None else -1


def _extended(stored: dict, new: dict, hops: pl.DataFrame, overlap: bool, ids: list) -> Finding:
    """The stored incident with the new incident's hops added, exactly as one pass over all its hops makes it."""
    details, event_ids = orjson.loads(stored["details"]), orjson.loads(stored["event_ids"])
    pairs = details["pairs"]
    fastest = new if _speed(new["speed_kmh"]) > _speed(details["speed_kmh"]) else _stored_fastest(details)
    listed = {name: details[name] if pairs >= MAX_LISTED else
              _first(details[name] + _ends(hops, column, MAX_LISTED - pairs), MAX_LISTED)
              for name, column in (("ips", "source_ip"), ("places", "place"))}
    incident = {
        **{name: fastest[name] for name in travel.HOP_SCHEMA if name in fastest and not name.endswith("_row")},
        "account_id": new["account_id"], "principal": new["principal"], "pairs": pairs + new["pairs"],
        "first_time": parse_iso_utc(details["first_time"]), "last_time": new["last_time"],
        "row_count": details["events"] + new["row_count"] - overlap,
        "countries": sorted(set(details["countries"]) | set(new["countries"])), **listed,
    }
    return make_finding(travel.FINDING_TYPE, incident["last_time"], incident, travel._summary(incident),
                        _first(event_ids + ids, MAX_EVENT_IDS), travel._details(incident))


def _continued(conn, hops: pl.DataFrame, last_two: pl.DataFrame, update: TravelUpdate) -> None:
    """Add the in-order principals' new hops: extend each one's newest stored incident when the first new hop is
    within the incident gap of it, store the other new incidents as they are."""
    old_rows = last_two.get_column("row")
    newest_rows = last_two.group_by(KEYS).agg(pl.col("row").last()).get_column("row")
    overlapping = hops.filter(pl.col("to_row").is_in(newest_rows.implode())).select(KEYS)
    fresh = hops.filter(~pl.col("to_row").is_in(old_rows.implode()))
    if fresh.is_empty():
        return
    stored = findings_store.query_latest_findings(conn, travel.FINDING_TYPE,
                                                  fresh.select(KEYS).unique().rows())
    fresh = fresh.with_columns(incident=episode(KEYS, travel.INCIDENT_GAP, "to_time"))
    fresh = fresh.with_columns(first=pl.col("incident") == pl.col("incident").min().over(KEYS))
    joins = {key for key, row in stored.items()
             if fresh.filter(_is_key(key) & pl.col("first"))["to_time"].min() - parse_iso_utc(row["time"])
             <= travel.INCIDENT_GAP}
    joined = pl.lit(False) if not joins else pl.any_horizontal([_is_key(key) for key in joins]) & pl.col("first")
    apart, merged = fresh.filter(~joined).drop("incident", "first"), fresh.filter(joined).drop("incident", "first")
    update.findings += travel._findings(conn, travel._incidents(apart))
    incidents = travel._incidents(merged)
    ids = travel._event_ids(conn, incidents.get_column("rows").explode().drop_nulls().to_list())
    overlaps = set(overlapping.rows())
    for new in incidents.iter_rows(named=True):
        key = (new["account_id"], new["principal"])
        update.replaced.append((new["account_id"] or "", new["principal"], stored[key]["time"], travel.FINDING_TYPE))
        update.findings.append(_extended(stored[key], new, merged.filter(_is_key(key)), key in overlaps,
                                         [ids.get(row) for row in new["rows"]]))
    update.routes = pl.concat([update.routes, travel._routes(fresh.drop("incident", "first"), by_day=True)])


def _is_key(key: tuple) -> pl.Expr:
    return pl.col("account_id").eq_missing(key[0]) & (pl.col("principal") == key[1])


def query_travel_update(conn, after_rowid: int, settings: DetectionSettings | None = None) -> TravelUpdate:
    """The change to the stored travel findings and routes that the events after `after_rowid` make."""
    settings = settings or DetectionSettings()
    new = query_new_moments(conn, after_rowid)
    keys = [key for key in new.select(KEYS).unique().rows() if key[1] is not None]
    old = query_last_moments(conn, keys, after_rowid)
    late, last_two = _split(new, old, settings)
    update = TravelUpdate(recomputed=_rewound(conn, late, after_rowid, settings))
    for since in sorted({since for _principal, since in update.recomputed}):
        principals = [principal for principal, start in update.recomputed if start == since]
        found, routes = travel.query_principals_travel(conn, principals, settings, since or None)
        update.findings += found
        update.routes = pl.concat([update.routes, routes])
    in_order = pl.concat([last_two, new.filter(~pl.col("principal").is_in(late.get_column("principal").implode()))])
    _continued(conn, travel._hops(in_order, settings), last_two, update)
    return update
