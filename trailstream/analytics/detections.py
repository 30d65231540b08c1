"""Security detections: SQL narrows the cache to the events that matter, polars finds the patterns, findings come out.

Every `detect_*` takes a read-only connection, an optional EventFilter and DetectionSettings, and returns findings;
the `query_*` functions return the frames the security pages draw. Which names and codes count comes from `catalog`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
import polars as pl

from trailstream import catalog
from trailstream.cache.frames import placeholders, read_frame
from trailstream.analytics import geo, queries, transforms
from trailstream.config import SettingsError
from trailstream.filters import EventFilter
from trailstream.analytics.queries import UTC_TIME
from trailstream.timefmt import TIME_FORMAT

SIGN_IN_SUCCESS = "Success"
MAX_EVENT_IDS = 1000  # a finding lists at most this many events; details["events"] has the full count
TRAVEL_INCIDENT_GAP = timedelta(hours=24)  # impossible-travel pairs of one principal closer than this are one finding


# --- Settings ------------------------------------------------------------------------------


class DetectionSettingsError(ValueError):
    """The [detections] settings cannot be used; `problems` says what to fix, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds and windows of every detection; defaults suit a mid-sized company (rates no typing human makes)."""

    unauthorized_threshold: int = 20
    unauthorized_window_minutes: int = 5
    sign_in_failure_threshold: int = 10
    sign_in_failure_window_minutes: int = 5
    privilege_change_threshold: int = 15
    privilege_change_window_minutes: int = 15
    max_travel_speed_kmh: float = 900.0
    min_travel_distance_km: float = 500.0  # nearer places are within the error of IP geolocation
    country_change_window_minutes: int = 60
    root_session_gap_minutes: int = 60
    city_database: str = ""  # a MaxMind GeoLite2-City .mmdb for coordinates; countries only when empty

    @classmethod
    def from_dict(cls, values: dict | None) -> "DetectionSettings":
        """Settings from a [detections] table; unknown keys and bad values are refused with a reason each."""
        values = dict(values or {})
        known = {spec.name: spec for spec in dataclasses.fields(cls)}
        problems = [
            f'[detections] has an unknown setting "{key}"; known settings: {", ".join(known)}'
            for key in values
            if key not in known
        ]
        accepted = {}
        for name, value in values.items():
            spec = known.get(name)
            if spec is None:
                continue
            if spec.type == "str":
                if isinstance(value, str):
                    accepted[name] = value.strip()
                else:
                    problems.append(f'[detections] {name} must be text in quotes, like {name} = "GeoLite2-City.mmdb"')
                continue
            wants_int = spec.type == "int"
            number_types = (int,) if wants_int else (int, float)
            if isinstance(value, bool) or not isinstance(value, number_types) or value <= 0:
                kind = "a whole number" if wants_int else "a number"
                problems.append(f"[detections] {name} must be {kind} above 0 (it is {value!r})")
                continue
            accepted[name] = int(value) if wants_int else float(value)
        if problems:
            raise DetectionSettingsError(problems)
        return cls(**accepted)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def window(self, name: str) -> timedelta:
        return timedelta(minutes=getattr(self, f"{name}_minutes"))


# Setting -> (label, help) for the settings form on the Security overview page.
SETTING_HELP: dict[str, tuple[str, str]] = {
    "unauthorized_threshold": ("Unauthorized calls in a burst", "Refused calls by one principal within the window."),
    "unauthorized_window_minutes": ("Unauthorized burst window (minutes)", ""),
    "sign_in_failure_threshold": ("Failed sign-ins in a burst", "Failed console sign-ins for one principal."),
    "sign_in_failure_window_minutes": ("Failed sign-in window (minutes)", ""),
    "privilege_change_threshold": ("Privilege changes in a spree",
                                   "IAM, security group, bucket and key policy changes by one principal."),
    "privilege_change_window_minutes": ("Privilege change window (minutes)", ""),
    "max_travel_speed_kmh": ("Fastest possible travel (km/h)", "About an airliner's speed."),
    "min_travel_distance_km": ("Smallest distance that counts (km)", "Nearer places are within IP-location error."),
    "country_change_window_minutes": ("Two-country window (minutes)",
                                      "When only countries are known: two countries this close in time are flagged."),
    "root_session_gap_minutes": ("Root session gap (minutes)", "Root calls closer than this are one finding."),
    "city_database": ("MaxMind GeoLite2-City file", "Path to a .mmdb file for city coordinates (optional)."),
}


def detection_settings(settings) -> DetectionSettings:
    """The [detections] table of a loaded config.Settings, with the city database path read relative to the file."""
    loaded = DetectionSettings.from_dict(settings.section("detections"))
    if loaded.city_database:
        return dataclasses.replace(loaded, city_database=os.fspath(settings.resolve(loaded.city_database)))
    return loaded


def editable_detection_settings(settings) -> dict:
    """The [detections] values as written in the file (defaults where absent or unusable), for the settings form."""
    written = settings.section("detections")

    def pick(name: str, default):
        value = written.get(name, default)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value if type(value) is type(default) else default

    return {name: pick(name, default) for name, default in DetectionSettings().to_dict().items()}


def set_detection_settings(settings, values: dict) -> DetectionSettings:
    """Check the values and put them in the loaded settings' [detections] table (config.save_settings writes it)."""
    checked = DetectionSettings.from_dict(values)
    settings.set_section("detections", checked.to_dict())
    return checked


def usable_detection_settings(settings) -> tuple[DetectionSettings, list[str]]:
    """The configured settings, or the defaults when they cannot be used, with each problem as a sentence."""
    try:
        loaded = detection_settings(settings)
    except DetectionSettingsError as exc:
        return DetectionSettings(), [*exc.problems, "the default detection settings are used until this is fixed"]
    except SettingsError as exc:
        return DetectionSettings(), [f"the settings file has problems ({'; '.join(exc.problems)}); the default "
                                     "detection settings are used until it is fixed"]
    city_problem = geo.check_city_database(loaded.city_database)
    return loaded, [city_problem] if city_problem else []


# --- Findings ------------------------------------------------------------------------------


@dataclass
class Finding:
    """One thing a person should look at: what, how bad, who, when, and the events behind it."""

    type: str
    severity: str
    time: str
    principal: str | None
    account_id: str | None
    summary: str
    event_ids: list[str]
    details: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return catalog.FINDING_TYPES[self.type]

    @property
    def key(self) -> str:
        """Stable while a finding grows (same type, account, principal and first event): for de-duplicating alerts."""
        first = self.event_ids[0] if self.event_ids else ""
        return f"{self.type}:{self.account_id or ''}:{self.principal or ''}:{first}"

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "title": self.title,
            "severity": self.severity,
            "time": self.time,
            "principal": self.principal,
            "account_id": self.account_id,
            "summary": self.summary,
            "event_ids": list(self.event_ids),
            "details": orjson.loads(orjson.dumps(self.details, default=str)),
        }

    @classmethod
    def from_dict(cls, values: dict) -> "Finding":
        names = {spec.name for spec in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in names})


def _iso(moment) -> str:
    return moment.strftime(TIME_FORMAT)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return _plural(seconds, "second")
    if seconds < 2 * 3600:
        return _plural(round(seconds / 60), "minute")
    return f"{seconds / 3600:.1f} hours"


def _listing(values, limit: int = 3) -> str:
    values = [value for value in values if value]
    shown = ", ".join(values[:limit])
    return f"{shown} and {len(values) - limit} more" if len(values) > limit else shown


def _severity(finding_type: str, escalate: bool = False) -> str:
    base = catalog.FINDING_SEVERITY[finding_type]
    if not escalate:
        return base
    return catalog.SEVERITIES[min(catalog.SEVERITIES.index(base) + 1, len(catalog.SEVERITIES) - 1)]


def _finding(finding_type: str, last_time, row: dict, summary: str, event_ids, details: dict,
             escalate: bool = False) -> Finding:
    """A finding dated by its newest event, for the principal and account of `row`."""
    return Finding(
        type=finding_type,
        severity=_severity(finding_type, escalate),
        time=_iso(last_time),
        principal=row.get("principal"),
        account_id=row.get("account_id"),
        summary=summary,
        event_ids=list(event_ids)[:MAX_EVENT_IDS],
        details=details,
    )


# --- Reading the cache ---------------------------------------------------------------------

SECURITY_SCHEMA = {
    "event_id": pl.String,
    "event_time": UTC_TIME,
    "account_id": pl.String,
    "principal": pl.String,
    "user_type": pl.String,
    "source_ip": pl.String,
    "event_source": pl.String,
    "event_name": pl.String,
    "error_code": pl.String,
}
SIGN_IN_SCHEMA = SECURITY_SCHEMA | {
    "outcome": pl.String,
    "mfa_used": pl.String,
    "error_message": pl.String,
    "user_agent": pl.String,
}
_SECURITY_COLUMNS = ", ".join(f"e.{name}" for name in SECURITY_SCHEMA)
_OUTSIDE_AWS = (
    "e.source_ip IS NOT NULL AND e.source_ip NOT IN ({}) AND e.source_ip NOT LIKE '%{}'".format(
        ", ".join(f"'{source}'" for source in catalog.AWS_INTERNAL_SOURCES), catalog.AWS_SERVICE_SOURCE_SUFFIX
    )
)
_SUCCEEDED = "COALESCE(e.error_code, '') = ''"


def _security_rows(conn, event_filter: EventFilter | None, condition: str, params: list, schema=SECURITY_SCHEMA,
                   extra_sql: str = "") -> pl.DataFrame:
    where, filter_params = queries._where(event_filter, f"({condition})")
    columns = _SECURITY_COLUMNS + extra_sql
    return read_frame(conn, f"SELECT {columns} FROM events e WHERE {where}", filter_params + params, schema)


def _unauthorized_condition() -> tuple[str, list]:
    codes = catalog.UNAUTHORIZED_ERROR_CODES
    patterns = [f"%{pattern}%" for pattern in catalog.UNAUTHORIZED_ERROR_CODE_PATTERNS]
    likes = " OR ".join("e.error_code LIKE ?" for _ in patterns)
    return f"e.error_code IS NOT NULL AND (e.error_code IN ({placeholders(codes)}) OR {likes})", [
        *codes,
        *patterns,
    ]


def _names_condition(names) -> tuple[str, list]:
    return f"e.event_name IN ({placeholders(names)})", list(names)


def query_unauthorized_calls(conn, event_filter: EventFilter | None = None) -> pl.DataFrame:
    """Every call refused as unauthorized (catalog codes and patterns), newest first, for the Access denied page."""
    condition, params = _unauthorized_condition()
    return (
        _security_rows(conn, event_filter, condition, params)
        .with_columns(api=pl.concat_str(pl.col("event_source").str.replace(r"\.amazonaws\.com$", ""), pl.lit(":"),
                                        pl.col("event_name")))
        .sort("event_time", descending=True)
    )


def query_finding_events(conn, event_ids: list[str]) -> pl.DataFrame:
    """The stored events behind a finding (queries.EVENT_SCHEMA), newest first."""
    columns = ", ".join(f"e.{name}" for name in queries.EVENT_SCHEMA)
    sql = (
        f"SELECT {columns} FROM events e WHERE e.event_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY e.event_time DESC"
    )
    return read_frame(conn, sql, [orjson.dumps(list(event_ids)).decode()], queries.EVENT_SCHEMA)


# --- Reusable frame steps ------------------------------------------------------------------


def count_over_time(frame: pl.DataFrame, every: timedelta, by: str, time_column: str = "event_time",
                    value: str = "events") -> pl.DataFrame:
    """Rows per time bucket and `by` value (bucket, bucket_end, by, value), the shape charts.timeline_chart draws."""
    return (
        frame.lazy()
        .sort(time_column)
        .group_by_dynamic(time_column, every=every, group_by=by)
        .agg(pl.len().cast(pl.Int64).alias(value))
        .rename({time_column: "bucket"})
        .with_columns(bucket_end=pl.col("bucket") + every)
        .select("bucket", "bucket_end", by, value)
        .collect()
    )


def _episode(keys: list[str], gap: timedelta) -> pl.Expr:
    """Number runs of events (frame sorted by keys, time) whose gaps stay within `gap`: one id per run."""
    return (pl.col("event_time").diff().over(keys) > gap).fill_null(True).cum_sum()


def _episode_summary(events: pl.DataFrame) -> list[pl.Expr]:
    """What a burst or session reports: its span, size, events, addresses and calls."""
    names = pl.col("event_name").unique(maintain_order=True) if "event_name" in events.columns else pl.lit([])
    return [
        pl.col("event_time").min().alias("first_time"),
        pl.col("event_time").max().alias("last_time"),
        pl.len().alias("events"),
        pl.col("event_id").alias("event_ids"),
        pl.col("source_ip").drop_nulls().unique(maintain_order=True).alias("source_ips"),
        names.alias("event_names"),
    ]


def find_bursts(events: pl.DataFrame, keys: list[str], threshold: int, window: timedelta) -> pl.DataFrame:
    """Events that sit in some window-long span holding >= threshold events of the same keys, one row per burst."""
    position = pl.int_range(pl.len()).over(keys)
    window_start = pl.col("event_time").search_sorted(pl.col("event_time") - window, side="left").over(keys)
    full_window_start = pl.when(pl.col("in_window") >= threshold).then(pl.col("window_start"))
    return (
        events.lazy()
        .sort([*keys, "event_time"])
        .with_columns(position=position, window_start=window_start.cast(pl.Int64))
        .with_columns(in_window=pl.col("position") - pl.col("window_start") + 1)
        .with_columns(next_full_start=full_window_start.backward_fill().over(keys))
        .filter(pl.col("next_full_start") <= pl.col("position"))
        .with_columns(burst=_episode(keys, window))
        .group_by([*keys, "burst"])
        .agg(*_episode_summary(events), peak=pl.col("in_window").max())
        .sort("last_time", descending=True)
        .collect()
    )


def _burst_findings(bursts: pl.DataFrame, finding_type: str, threshold: int, describe) -> list[Finding]:
    findings = []
    for burst in bursts.iter_rows(named=True):
        span = burst["last_time"] - burst["first_time"]
        details = {
            "events": burst["events"],
            "peak_in_window": burst["peak"],
            "threshold": threshold,
            "first_time": _iso(burst["first_time"]),
            "minutes": round(span.total_seconds() / 60, 1),
            "ips": burst["source_ips"],
            "event_names": burst["event_names"],
        }
        findings.append(_finding(finding_type, burst["last_time"], burst, describe(burst, span), burst["event_ids"],
                                 details, escalate=burst["peak"] >= 5 * threshold))
    return findings


def _places(frame: pl.DataFrame, settings: DetectionSettings) -> pl.DataFrame:
    return geo.locate_ips(frame.get_column("source_ip").unique().to_list(), settings.city_database or None)


# --- 1. Unauthorized calls -----------------------------------------------------------------


def detect_unauthorized_bursts(conn, event_filter: EventFilter | None = None,
                               settings: DetectionSettings | None = None) -> list[Finding]:
    """Principals refused as unauthorized at a rate no person produces by mistake (scanning, stolen keys)."""
    settings = settings or DetectionSettings()
    threshold = settings.unauthorized_threshold
    window = settings.window("unauthorized_window")
    bursts = find_bursts(query_unauthorized_calls(conn, event_filter), ["account_id", "principal"], threshold, window)

    def describe(burst, span):
        return (
            f"{burst['principal']} had {_plural(burst['events'], 'call')} refused as unauthorized in "
            f"{_duration(span)} ({_listing(burst['event_names'])}) from "
            f"{_listing(burst['source_ips']) or 'an unknown address'}."
        )

    return _burst_findings(bursts, "unauthorized_burst", threshold, describe)


def breakdown(events: pl.DataFrame, by: str, limit: int = 15) -> pl.DataFrame:
    """Events counted by one column (principal, source_ip, api, error_code, place...), largest first."""
    return (
        events.lazy()
        .group_by(by)
        .agg(events=pl.len(), first_seen=pl.col("event_time").min(), last_seen=pl.col("event_time").max())
        .sort(["events", by], descending=[True, False], nulls_last=True)
        .head(limit)
        .collect()
    )


# --- 2. Console sign-ins -------------------------------------------------------------------


def query_sign_ins(conn, event_filter: EventFilter | None = None,
                   settings: DetectionSettings | None = None) -> pl.DataFrame:
    """Console sign-ins with outcome, MFA, place and whether the country or IP is new for the principal, newest first.

    "New" compares with the principal's earlier successful sign-ins in the whole cache, not only the period; a
    principal's very first sign-in is not new (there is nothing to compare with).
    """
    settings = settings or DetectionSettings()
    event_filter = event_filter or EventFilter()
    history = dataclasses.replace(event_filter, start=None)
    condition, params = _names_condition((catalog.CONSOLE_LOGIN_EVENT,))
    outcome_sql = (
        ", json_extract(e.response_elements, '$.ConsoleLogin'), json_extract(e.additional_event_data, '$.MFAUsed'), "
        "e.error_message, e.user_agent"
    )
    sign_ins = _security_rows(conn, history, condition, params, SIGN_IN_SCHEMA, outcome_sql)
    keys = ["account_id", "principal"]
    success = pl.col("outcome") == SIGN_IN_SUCCESS

    def first_success_by(column: str) -> pl.Expr:
        earlier = pl.when(success & pl.col(column).is_not_null()).then(pl.col("event_time"))
        return success & (pl.col("event_time") == earlier.min().over([*keys, column])) & (
            pl.col("event_time") > pl.when(success).then(pl.col("event_time")).min().over(keys)
        )

    start = pl.lit(event_filter.start).str.to_datetime(TIME_FORMAT, time_zone="UTC") if event_filter.start else None
    return (
        sign_ins.lazy()
        .with_columns(
            outcome=pl.when(pl.col("outcome").is_null() & pl.col("error_message").is_not_null())
            .then(pl.lit("Failure"))
            .otherwise(pl.col("outcome")),
            mfa_used=pl.col("mfa_used") == "Yes",
            is_root=pl.col("user_type") == "Root",
        )
        .join(_places(sign_ins, settings).lazy(), on="source_ip", how="left")
        .sort("event_time")
        .with_columns(new_country=first_success_by("country_code"), new_ip=first_success_by("source_ip"))
        .filter(pl.col("event_time") >= start if start is not None else pl.lit(True))
        .sort("event_time", descending=True)
        .select(
            "event_time", "principal", "account_id", "user_type", "outcome", "mfa_used", "is_root", "source_ip",
            "country_code", "place", "asn", "latitude", "longitude", "new_country", "new_ip", "error_message",
            "user_agent", "event_id",
        )
        .collect()
    )


def detect_sign_in_findings(conn, event_filter: EventFilter | None = None,
                            settings: DetectionSettings | None = None) -> list[Finding]:
    """Failed sign-in bursts, IAM-user and root sign-ins without MFA, and first sign-ins from a new country."""
    settings = settings or DetectionSettings()
    sign_ins = query_sign_ins(conn, event_filter, settings)
    success = pl.col("outcome") == SIGN_IN_SUCCESS
    threshold = settings.sign_in_failure_threshold
    failures = find_bursts(
        sign_ins.filter(~success), ["account_id", "principal"], threshold, settings.window("sign_in_failure_window")
    )

    def describe(burst, span):
        return (
            f"{_plural(burst['events'], 'failed console sign-in')} for {burst['principal']} in {_duration(span)} "
            f"from {_listing(burst['source_ips']) or 'an unknown address'}."
        )

    findings = _burst_findings(failures, "console_login_failure_burst", threshold, describe)
    should_use_mfa = pl.col("user_type").is_in(catalog.MFA_SIGN_IN_USER_TYPES)
    without_mfa = sign_ins.filter(success & ~pl.col("mfa_used") & should_use_mfa)
    for sign_in in without_mfa.iter_rows(named=True):
        findings.append(_sign_in_finding(
            sign_in, "console_login_without_mfa", sign_in["is_root"],
            f"{sign_in['principal']} signed in to the console without MFA from {_where_from(sign_in)}.",
        ))
    new_country = sign_ins.filter(pl.col("new_country"))
    for sign_in in new_country.iter_rows(named=True):
        findings.append(_sign_in_finding(
            sign_in, "new_country_sign_in", False,
            f"{sign_in['principal']} signed in from {sign_in['place'] or sign_in['country_code']} for the first time "
            f"({sign_in['source_ip']}).",
        ))
    return findings


def _where_from(row: dict) -> str:
    place = row.get("place")
    return f"{row['source_ip']} ({place})" if place else (row.get("source_ip") or "an unknown address")


def _sign_in_finding(sign_in: dict, finding_type: str, escalate: bool, summary: str) -> Finding:
    details = {
        "ips": [sign_in["source_ip"]],
        "countries": [sign_in["country_code"]] if sign_in["country_code"] else [],
        "place": sign_in["place"],
        "asn": sign_in["asn"],
        "mfa_used": sign_in["mfa_used"],
        "user_type": sign_in["user_type"],
    }
    return _finding(finding_type, sign_in["event_time"], sign_in, summary, [sign_in["event_id"]], details, escalate)


# --- 3. Impossible travel ------------------------------------------------------------------

USAGE_SCHEMA = {"account_id": pl.String, "principal": pl.String, "source_ip": pl.String, "events": pl.Int64}
# Read from the events_principal_activity index alone (store's migration m007): no row of the table is touched.
PRESENCE_SCHEMA = {"account_id": pl.String, "principal": pl.String, "source_ip": pl.String, "event_time": UTC_TIME}
PLACE_COLUMNS = ("source_ip", "country_code", "place", "latitude", "longitude", "precision")
_ACTORS = "e.principal IS NOT NULL"  # AWS services acting on their own call from their own domain: not places
TRAVEL_INDEX = queries.PRINCIPAL_INDEX


def _travel_candidates(conn, event_filter: EventFilter | None,
                       settings: DetectionSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Principals seen at two or more places (a cheap first pass over distinct IPs), and the places of their IPs."""
    where, params = queries._where(event_filter, _OUTSIDE_AWS, _ACTORS)
    sql = (
        f"SELECT e.account_id, e.principal, e.source_ip, count(*) FROM events e {queries._indexed_by(conn, TRAVEL_INDEX)} "
        f"WHERE {where} GROUP BY e.principal, e.source_ip, e.account_id"
    )
    usage = read_frame(conn, sql, params, USAGE_SCHEMA)
    places = _places(usage, settings).select(PLACE_COLUMNS)
    candidates = (
        usage.join(places, on="source_ip")
        .group_by("account_id", "principal")
        .agg(spots=pl.struct("country_code", "latitude", "longitude").n_unique())
        .filter(pl.col("spots") > 1)
        .select("account_id", "principal")
    )
    return candidates, places


def _with_event_ids(conn, pairs: pl.DataFrame) -> pl.DataFrame:
    """Name one stored event at each end of every pair (same principal, address, account and second)."""
    ends = {
        side: pairs.select(pl.concat_list(pl.col("principal"), pl.col(f"{side}_source_ip"), pl.col("account_id"),
                                          pl.col(f"{side}_time").dt.strftime(TIME_FORMAT)))
        .to_series().to_list()
        for side in ("from", "to")
    }
    sql = (
        "SELECT (SELECT e.event_id FROM events e WHERE e.principal = w.value ->> 0 AND e.source_ip = w.value ->> 1 "
        "AND e.account_id IS w.value ->> 2 AND e.event_time = w.value ->> 3 ORDER BY e.event_id LIMIT 1) "
        "FROM json_each(?) w ORDER BY w.key"
    )
    found = {side: [row[0] for row in conn.execute(sql, [orjson.dumps(values).decode()])]
             for side, values in ends.items()}
    return pairs.with_columns(from_event_id=pl.Series(found["from"], dtype=pl.String),
                              to_event_id=pl.Series(found["to"], dtype=pl.String))


def query_travel_pairs(conn, event_filter: EventFilter | None = None,
                       settings: DetectionSettings | None = None) -> pl.DataFrame:
    """Consecutive calls of one principal from two places too far apart for the time between them, newest first.

    With coordinates the test is speed (distance over time above max_travel_speed_kmh, places at least
    min_travel_distance_km apart); when a side is known only by its country, two countries within
    country_change_window_minutes also count. AWS-internal and private addresses are not places.
    """
    settings = settings or DetectionSettings()
    candidates, places = _travel_candidates(conn, event_filter, settings)
    if candidates.is_empty():
        return _empty_travel_pairs()
    where, params = queries._where(
        event_filter, _OUTSIDE_AWS, _ACTORS, "e.principal IN (SELECT value FROM json_each(?))"
    )
    principals = orjson.dumps(candidates.get_column("principal").unique().to_list()).decode()
    columns = ", ".join(f"e.{name}" for name in PRESENCE_SCHEMA)
    sql = f"SELECT DISTINCT {columns} FROM events e {queries._indexed_by(conn, TRAVEL_INDEX)} WHERE {where}"
    presence = read_frame(conn, sql, params + [principals], PRESENCE_SCHEMA)
    keys = ["account_id", "principal"]
    previous = {column: pl.col(column).shift(1).over(keys) for column in ("event_time", *PLACE_COLUMNS)}
    hours = (pl.col("to_time") - pl.col("from_time")).dt.total_seconds() / 3600
    distance = geo.distance_km(pl.col("from_latitude"), pl.col("from_longitude"), pl.col("to_latitude"),
                               pl.col("to_longitude"))
    too_fast = (pl.col("distance_km") >= settings.min_travel_distance_km) & (
        (pl.col("hours") <= 0) | (pl.col("distance_km") / pl.col("hours") > settings.max_travel_speed_kmh)
    )
    country_jump = (
        ((pl.col("from_precision") == "country") | (pl.col("to_precision") == "country"))
        & (pl.col("from_country") != pl.col("to_country"))
        & (pl.col("hours") <= settings.country_change_window_minutes / 60)
    )
    pairs = (
        presence.lazy()
        .join(candidates.lazy(), on=keys, how="semi")
        .join(places.lazy(), on="source_ip")
        .sort([*keys, "event_time", "source_ip"])
        .with_columns(**{f"from_{name}": expr for name, expr in previous.items()})
        .filter(pl.col("from_source_ip").is_not_null() & (pl.col("from_source_ip") != pl.col("source_ip")))
        .rename({"event_time": "to_time", "source_ip": "to_source_ip", "country_code": "to_country",
                 "place": "to_place", "latitude": "to_latitude", "longitude": "to_longitude",
                 "precision": "to_precision", "from_event_time": "from_time", "from_country_code": "from_country"})
        .with_columns(hours=hours, distance_km=distance)
        .with_columns(
            speed_kmh=pl.when(pl.col("hours") > 0).then(pl.col("distance_km") / pl.col("hours")),
            basis=pl.when(too_fast.fill_null(False)).then(pl.lit("speed")).when(country_jump.fill_null(False))
            .then(pl.lit("countries within window")),
        )
        .filter(pl.col("basis").is_not_null())
        .with_columns(pl.col("distance_km").round(1), pl.col("hours").round(3), pl.col("speed_kmh").round(0))
        .sort("to_time", descending=True)
        .collect()
    )
    return _with_event_ids(conn, pairs).select(TRAVEL_PAIR_SCHEMA.keys())


TRAVEL_PAIR_SCHEMA = {
    "account_id": pl.String,
    "principal": pl.String,
    "from_time": UTC_TIME,
    "to_time": UTC_TIME,
    "from_event_id": pl.String,
    "to_event_id": pl.String,
    "from_source_ip": pl.String,
    "to_source_ip": pl.String,
    "from_country": pl.String,
    "to_country": pl.String,
    "from_place": pl.String,
    "to_place": pl.String,
    "from_latitude": pl.Float64,
    "from_longitude": pl.Float64,
    "to_latitude": pl.Float64,
    "to_longitude": pl.Float64,
    "from_precision": pl.String,
    "to_precision": pl.String,
    "distance_km": pl.Float64,
    "hours": pl.Float64,
    "speed_kmh": pl.Float64,
    "basis": pl.String,
}


def _empty_travel_pairs() -> pl.DataFrame:
    return pl.DataFrame(schema=TRAVEL_PAIR_SCHEMA)


def _both_ends(column: str) -> pl.Expr:
    """The from_ and to_ values of every pair in a group, once each, in order."""
    both = pl.concat_list(f"from_{column}", f"to_{column}")
    return both.list.explode(keep_nulls=False, empty_as_null=False).unique(maintain_order=True)


def detect_impossible_travel(conn, event_filter: EventFilter | None = None,
                             settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per principal and pair of places per incident (pairs less than a day apart merge)."""
    pairs = query_travel_pairs(conn, event_filter, settings)
    keys = ["account_id", "principal", "places"]
    incidents = (
        pairs.lazy()
        .with_columns(places=pl.concat_list("from_place", "to_place").list.sort(), event_time=pl.col("to_time"))
        .sort([*keys, "event_time"])
        .with_columns(incident=_episode(keys, TRAVEL_INCIDENT_GAP))
        .sort("speed_kmh", descending=True, nulls_last=False)
        .group_by([*keys, "incident"])
        .agg(
            pl.all().first(),
            last_time=pl.col("to_time").max(),
            pairs=pl.len(),
            event_ids=_both_ends("event_id"),
            ips=_both_ends("source_ip"),
        )
        .sort("last_time", descending=True)
        .collect()
    )
    findings = []
    for pair in incidents.iter_rows(named=True):
        gap = timedelta(hours=pair["hours"])
        speed = f", {pair['speed_kmh']:,.0f} km/h" if pair["speed_kmh"] is not None else ""
        summary = (
            f"{pair['principal']} acted from {pair['from_place']} ({pair['from_source_ip']}) and "
            f"{pair['to_place']} ({pair['to_source_ip']}), {pair['distance_km']:,.0f} km apart, within "
            f"{_duration(gap)}{speed}."
        )
        details = {
            "distance_km": pair["distance_km"],
            "hours": pair["hours"],
            "speed_kmh": pair["speed_kmh"],
            "basis": pair["basis"],
            "countries": [pair["from_country"], pair["to_country"]],
            "places": [pair["from_place"], pair["to_place"]],
            "ips": pair["ips"],
            "pairs": pair["pairs"],
            "from": {"time": _iso(pair["from_time"]), "ip": pair["from_source_ip"], "place": pair["from_place"],
                     "latitude": pair["from_latitude"], "longitude": pair["from_longitude"]},
            "to": {"time": _iso(pair["to_time"]), "ip": pair["to_source_ip"], "place": pair["to_place"],
                   "latitude": pair["to_latitude"], "longitude": pair["to_longitude"]},
        }
        findings.append(_finding("impossible_travel", pair["last_time"], pair, summary, pair["event_ids"], details))
    return findings


# --- 4. Privilege-change sprees ------------------------------------------------------------


def detect_privilege_change_sprees(conn, event_filter: EventFilter | None = None,
                                   settings: DetectionSettings | None = None) -> list[Finding]:
    """Many successful changes to who may do what (IAM, security groups, bucket and key policies) in a short window."""
    settings = settings or DetectionSettings()
    threshold = settings.privilege_change_threshold
    condition, params = _names_condition(catalog.PRIVILEGE_CHANGE_EVENTS)
    changes = _security_rows(conn, event_filter, f"{condition} AND {_SUCCEEDED}", params)
    bursts = find_bursts(changes, ["account_id", "principal"], threshold, settings.window("privilege_change_window"))

    def describe(burst, span):
        return (
            f"{burst['principal']} made {_plural(burst['events'], 'access-privilege change')} in {_duration(span)} "
            f"({_listing(burst['event_names'])})."
        )

    return _burst_findings(bursts, "privilege_change_spree", threshold, describe)


# --- 5. High-risk single events ------------------------------------------------------------


def grants_full_admin(policy_document: str | dict | None) -> bool:
    """True when a policy document allows every action ("*" or "*:*") on every resource."""
    if isinstance(policy_document, str):
        try:
            policy_document = orjson.loads(policy_document)
        except orjson.JSONDecodeError:
            return False
    if not isinstance(policy_document, dict):
        return False
    statements = policy_document.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]

    def as_list(value):
        return value if isinstance(value, list) else [value]

    return any(
        isinstance(statement, dict)
        and statement.get("Effect") == "Allow"
        and any(action in ("*", "*:*") for action in as_list(statement.get("Action")))
        and "*" in as_list(statement.get("Resource"))
        for statement in statements
    )


def _request_text(path: str) -> pl.Expr:
    return transforms.request(path)


def _single_event_findings(events: pl.DataFrame, finding_type: str, summary: pl.Expr, severity=None,
                           details: dict[str, pl.Expr] | None = None) -> list[Finding]:
    severity = severity if severity is not None else pl.lit(catalog.FINDING_SEVERITY[finding_type])
    rows = events.with_columns(summary=summary, severity=severity, **(details or {}))
    return [
        Finding(
            type=finding_type,
            severity=row["severity"],
            time=_iso(row["event_time"]),
            principal=row["principal"],
            account_id=row["account_id"],
            summary=row["summary"],
            event_ids=[row["event_id"]],
            details={"event_name": row["event_name"], "ip": row["source_ip"],
                     **{name: row[name] for name in (details or {})}},
        )
        for row in rows.iter_rows(named=True)
    ]


def _who() -> pl.Expr:
    return pl.col("principal").fill_null("someone")


def detect_trail_tampering(events: pl.DataFrame) -> list[Finding]:
    """CloudTrail logging stopped, deleted, or narrowed (trail updates and event selectors)."""
    tampering = events.filter(pl.col("event_name").is_in(catalog.TRAIL_TAMPERING_EVENTS))
    trail = transforms.first_of(_request_text("$.name"), _request_text("$.trailName"),
                                _request_text("$.eventDataStore"))
    summary = pl.format("{} called {} on trail {}.", _who(), pl.col("event_name"), trail.fill_null("(unnamed)"))
    severity = pl.when(pl.col("event_name").is_in(catalog.TRAIL_STOPPING_EVENTS)).then(pl.lit("critical")).otherwise(
        pl.lit(catalog.FINDING_SEVERITY["trail_tampering"]))
    return _single_event_findings(tampering, "trail_tampering", summary, severity, {"trail": trail})


def detect_detectors_disabled(events: pl.DataFrame) -> list[Finding]:
    """GuardDuty, Config, Security Hub or Access Analyzer switched off (an UpdateDetector only when it disables)."""
    enable = _request_text("$.enable").str.to_lowercase()
    disabled = events.filter(
        pl.col("event_name").is_in(catalog.DETECTOR_DISABLING_EVENTS)
        & ((pl.col("event_name") != "UpdateDetector") | (enable == "false").fill_null(False))
    )
    service = pl.col("event_source").str.replace(r"\.amazonaws\.com$", "")
    summary = pl.format("{} called {} on {}, switching a detector off.", _who(), pl.col("event_name"), service)
    return _single_event_findings(disabled, "detector_disabled", summary, details={"service": service})


def detect_admin_grants(events: pl.DataFrame) -> list[Finding]:
    """AdministratorAccess attached, or an inline policy or new default version allowing *:* on *."""
    attach = pl.col("event_name").is_in(catalog.POLICY_ATTACH_EVENTS) & _request_text("$.policyArn").is_in(
        catalog.ADMIN_POLICY_ARNS).fill_null(False)
    document = _request_text("$.policyDocument")
    not_a_draft = (pl.col("event_name") != "CreatePolicyVersion") | (
        _request_text("$.setAsDefault").str.to_lowercase() == "true").fill_null(False)
    inline = pl.col("event_name").is_in(catalog.POLICY_DOCUMENT_EVENTS) & not_a_draft & document.map_elements(
        grants_full_admin, return_dtype=pl.Boolean, skip_nulls=True).fill_null(False)
    target = transforms.first_of(
        pl.format("user {}", _request_text("$.userName")),
        pl.format("role {}", _request_text("$.roleName")),
        pl.format("group {}", _request_text("$.groupName")),
        pl.format("policy {}", _request_text("$.policyArn")),
    )
    grant = pl.when(attach).then(_request_text("$.policyArn").str.extract(r"policy/(.+)$", 1)).otherwise(
        pl.lit("an inline policy allowing *:*"))
    summary = pl.format("{} gave {} {} ({}).", _who(), target.fill_null("an identity"), grant, pl.col("event_name"))
    return _single_event_findings(events.filter(attach | inline), "admin_policy_attached", summary,
                                  details={"target": target})


def detect_access_keys_for_others(events: pl.DataFrame) -> list[Finding]:
    """Access keys created by one identity for another IAM user (a classic persistence step)."""
    user = _request_text("$.userName")
    own_name = pl.col("principal").str.split("/").list.last()
    others = events.filter(
        pl.col("event_name").is_in(catalog.ACCESS_KEY_CREATION_EVENTS)
        & user.is_not_null()
        & ((pl.col("user_type") != "IAMUser") | (user != own_name)).fill_null(True)
    )
    summary = pl.format("{} created an access key for IAM user {}.", _who(), user)
    return _single_event_findings(others, "access_key_for_other_user", summary, details={"target_user": user})


def detect_world_open_security_groups(events: pl.DataFrame) -> list[Finding]:
    """Ingress rules letting the whole internet reach an administration port (SSH, RDP, databases)."""
    rules = transforms.security_group_rules(events)
    ports = pl.concat_list([
        pl.when((pl.col("protocol") == "all") | pl.col("from_port").is_null()
                | ((pl.col("from_port") <= port) & (pl.col("to_port").fill_null(pl.col("from_port")) >= port)))
        .then(pl.lit(port))
        for port in catalog.ADMIN_PORTS
    ]).list.drop_nulls()
    world = pl.col("open_to_world") | pl.col("peer").str.ends_with("/0").fill_null(False)
    opened = (
        rules.lazy()
        .filter((pl.col("action") == "authorize") & (pl.col("direction") == "ingress") & world
                & (pl.col("protocol") != "icmp") & (pl.col("protocol") != "icmpv6") & transforms.FAILED.not_())
        .with_columns(ports=ports)
        .filter(pl.col("ports").list.len() > 0)
        .group_by("event_id", maintain_order=True)
        .agg(ports=pl.col("ports").list.explode(keep_nulls=False, empty_as_null=False).unique().sort(),
             peers=pl.col("peer").unique().sort(),
             group_id=pl.col("group_id").first())
        .collect()
    )
    flagged = events.join(opened, on="event_id")
    port_label = pl.when(pl.col("ports").list.len() == 1).then(pl.lit("port")).otherwise(pl.lit("ports"))
    summary = pl.format("{} opened {} {} of security group {} to the whole internet ({}).", _who(), port_label,
                        pl.col("ports").cast(pl.List(pl.String)).list.join(", "),
                        pl.col("group_id").fill_null("(unknown)"), pl.col("peers").list.join(", "))
    return _single_event_findings(flagged, "security_group_open_to_world", summary,
                                  details={"ports": pl.col("ports"), "peers": pl.col("peers"),
                                           "group_id": pl.col("group_id")})


SINGLE_EVENT_DETECTIONS = (
    detect_trail_tampering,
    detect_detectors_disabled,
    detect_admin_grants,
    detect_access_keys_for_others,
    detect_world_open_security_groups,
)
_SINGLE_EVENT_NAMES = tuple(dict.fromkeys(
    catalog.TRAIL_TAMPERING_EVENTS
    + catalog.DETECTOR_DISABLING_EVENTS
    + catalog.POLICY_ATTACH_EVENTS
    + catalog.POLICY_DOCUMENT_EVENTS
    + catalog.ACCESS_KEY_CREATION_EVENTS
    + catalog.SECURITY_GROUP_RULE_EVENTS
))


def detect_high_risk_events(conn, event_filter: EventFilter | None = None,
                            settings: DetectionSettings | None = None) -> list[Finding]:
    """Single successful calls that are dangerous on their own, one finding each."""
    events = queries.query_events(conn, event_filter or EventFilter(), _SINGLE_EVENT_NAMES, limit=None)
    events = events.filter(transforms.FAILED.not_())
    return [finding for detect in SINGLE_EVENT_DETECTIONS for finding in detect(events)]


def detect_root_activity(conn, event_filter: EventFilter | None = None,
                         settings: DetectionSettings | None = None) -> list[Finding]:
    """Use of the root user (failed root sign-ins excluded), one finding per session of calls close together."""
    settings = settings or DetectionSettings()
    failed_sign_in = (
        f"e.event_name = '{catalog.CONSOLE_LOGIN_EVENT}' AND (e.error_message IS NOT NULL "
        "OR json_extract(e.response_elements, '$.ConsoleLogin') = 'Failure')"
    )
    condition = (
        "e.principal = 'root' AND e.user_type = 'Root' AND COALESCE(e.event_type, '') != 'AwsServiceEvent' "
        f"AND COALESCE(e.source_ip, '') NOT LIKE '%{catalog.AWS_SERVICE_SOURCE_SUFFIX}' AND NOT ({failed_sign_in})"
    )
    calls = _security_rows(conn, event_filter, condition, [])
    sessions = (
        calls.lazy()
        .sort("account_id", "event_time")
        .with_columns(session=_episode(["account_id"], settings.window("root_session_gap")))
        .group_by("account_id", "session")
        .agg(*_episode_summary(calls))
        .sort("last_time", descending=True)
        .collect()
    )
    return [
        _finding(
            "root_activity", session["last_time"], {"principal": "root", "account_id": session["account_id"]},
            f"The root user of account {session['account_id'] or '(unknown)'} made "
            f"{_plural(session['events'], 'call')} ({_listing(session['event_names'])}) from "
            f"{_listing(session['source_ips']) or 'an unknown address'}.",
            session["event_ids"],
            {"events": session["events"], "first_time": _iso(session["first_time"]), "ips": session["source_ips"],
             "event_names": session["event_names"]},
        )
        for session in sessions.iter_rows(named=True)
    ]


# --- All together --------------------------------------------------------------------------

DETECTIONS = (
    detect_unauthorized_bursts,
    detect_sign_in_findings,
    detect_root_activity,
    detect_impossible_travel,
    detect_privilege_change_sprees,
    detect_high_risk_events,
)


def detect_findings(conn, event_filter: EventFilter | None = None,
                    settings: DetectionSettings | None = None) -> list[Finding]:
    """Every detection over the period, newest first (most severe first among equal times)."""
    settings = settings or DetectionSettings()
    conn = getattr(conn, "conn", conn)  # a sqlite_utils.Database works too
    findings = [finding for detect in DETECTIONS for finding in detect(conn, event_filter, settings)]
    rank = {severity: index for index, severity in enumerate(catalog.SEVERITIES)}
    return sorted(findings, key=lambda finding: (finding.time, rank[finding.severity], finding.type), reverse=True)


def findings_frame(findings: list[Finding]) -> pl.DataFrame:
    """Findings as a table (one row each) for pages, charts and downloads."""
    schema = {"time": UTC_TIME, "severity": pl.String, "type": pl.String, "title": pl.String,
              "principal": pl.String, "account_id": pl.String, "summary": pl.String, "events": pl.Int64,
              "event_ids": pl.List(pl.String), "key": pl.String}
    rows = [
        {"time": finding.time, "severity": finding.severity, "type": finding.type, "title": finding.title,
         "principal": finding.principal, "account_id": finding.account_id, "summary": finding.summary,
         "events": finding.details.get("events", len(finding.event_ids)), "event_ids": finding.event_ids,
         "key": finding.key}
        for finding in findings
    ]
    wire = schema | {"time": pl.String}
    return pl.DataFrame(rows, schema=wire).with_columns(pl.col("time").str.to_datetime(TIME_FORMAT, time_zone="UTC"))


def filter_findings(findings: list[Finding], severities=(), types=()) -> list[Finding]:
    """Only the chosen severities and types (all when none are chosen)."""
    return [finding for finding in findings if (not severities or finding.severity in severities)
            and (not types or finding.type in types)]


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    """Findings per severity, most severe first (every severity present, zero when none)."""
    return {severity: sum(finding.severity == severity for finding in findings)
            for severity in reversed(catalog.SEVERITIES)}


def sign_in_counts(sign_ins: pl.DataFrame) -> dict[str, int]:
    """Headline numbers of the sign-in table."""
    counts = sign_ins.select(
        pl.len().alias("Sign-ins"),
        (pl.col("outcome") != SIGN_IN_SUCCESS).sum().alias("Failed"),
        ((pl.col("outcome") == SIGN_IN_SUCCESS) & ~pl.col("mfa_used")).sum().alias("Without MFA"),
        pl.col("is_root").sum().alias("Root"),
        pl.col("new_country").sum().alias("New country"),
    )
    return {name: int(value or 0) for name, value in counts.row(0, named=True).items()}


def findings_by_type(frame: pl.DataFrame) -> pl.DataFrame:
    """Findings counted per type and severity (from findings_frame), for a bar chart."""
    return frame.group_by("title", "severity").agg(findings=pl.len()).sort("findings", "title", descending=[True, False])


def format_findings_table(findings: list[Finding]) -> str:
    """A plain-text table for the terminal (`trailstream findings --format table`)."""
    if not findings:
        return "No findings in this period."
    headers = ("time", "severity", "type", "principal", "account", "summary")
    rows = [
        (finding.time, finding.severity, finding.type, finding.principal or "", finding.account_id or "",
         finding.summary)
        for finding in findings
    ]
    widths = [max(len(header), *(len(row[index]) for row in rows)) for index, header in enumerate(headers[:-1])]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths + [0])).rstrip()]
    lines.append("  ".join("-" * width for width in widths + [len(headers[-1])]))
    lines.extend("  ".join(value.ljust(width) for value, width in zip(row, widths + [0])).rstrip() for row in rows)
    return "\n".join(lines)
