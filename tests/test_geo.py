"""IP geolocation offline: which sources are places, countries from geoip2fast, coordinates from a MaxMind city file."""

from __future__ import annotations

import ipaddress
import struct

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from trailstream.analytics import geo


@pytest.mark.parametrize(
    "source_ip",
    ["AWS Internal", "ec2.amazonaws.com", "cloudtrail.amazonaws.com", "10.0.0.1", "172.16.4.2", "192.168.1.1",
     "127.0.0.1", "100.64.0.1", "192.0.2.1", "225.01.00.16", "224.0.0.1", "::1", "fe80::1", "", None, "not-an-ip"],
)
def test_aws_callers_private_reserved_and_junk_sources_are_not_places(source_ip):
    assert not geo.is_place(source_ip)


@pytest.mark.parametrize("source_ip", ["8.8.8.8", "81.2.69.160", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_are_places(source_ip):
    assert geo.is_place(source_ip)


def test_countries_come_from_the_bundled_data_with_the_capital_as_coordinates():
    places = geo.locate_ips(["8.8.8.8", "81.2.69.160", "77.88.8.8", "AWS Internal", "10.1.2.3", "8.8.8.8"])
    by_ip = {row["source_ip"]: row for row in places.iter_rows(named=True)}
    assert set(by_ip) == {"8.8.8.8", "81.2.69.160", "77.88.8.8"}
    assert (by_ip["8.8.8.8"]["country_code"], by_ip["8.8.8.8"]["asn"]) == ("US", "GOOGLE")
    assert by_ip["81.2.69.160"]["place"] == "United Kingdom"
    assert by_ip["77.88.8.8"]["country_code"] == "RU"
    assert by_ip["81.2.69.160"]["latitude"] == pytest.approx(51.5, abs=0.1)  # London
    assert by_ip["8.8.8.8"]["longitude"] == pytest.approx(-77.0, abs=0.1)  # Washington
    assert set(places.get_column("precision")) == {"country"}


def test_a_country_without_a_capital_is_a_place_without_coordinates():
    [eu] = geo.locate_ips(["168.168.31.126"]).rows(named=True)  # geoip2fast's "EU": a region, not a country
    assert (eu["country_code"], eu["latitude"], eu["longitude"]) == ("EU", None, None)
    assert eu["place"]


def test_no_sources_give_an_empty_frame_with_the_place_columns():
    assert geo.locate_ips([]).schema == pl.Schema(geo.PLACE_SCHEMA)


def test_every_country_with_cities_has_coordinates():
    coordinates = geo.country_coordinates()
    assert coordinates["FR"][2] == "Paris"
    assert coordinates["US"][2] == "Washington"
    assert coordinates["AU"][2] == "Canberra"
    assert len(coordinates) > 240


@pytest.mark.parametrize(
    ("a", "b", "kilometres"),
    [((51.5074, -0.1278), (48.8566, 2.3522), 344), ((0.0, 0.0), (0.0, 0.0), 0), ((0.0, 0.0), (0.0, 180.0), 20015)],
)
def test_great_circle_distance(a, b, kilometres):
    frame = pl.DataFrame({"lat1": [a[0]], "lon1": [a[1]], "lat2": [b[0]], "lon2": [b[1]]})
    distance = frame.select(geo.distance_km(pl.col("lat1"), pl.col("lon1"), pl.col("lat2"), pl.col("lon2"))).item()
    assert distance == pytest.approx(kilometres, abs=2)


# --- A real (tiny) MaxMind database written byte by byte, so the reader is exercised for real ---------------


def _control(kind: int, size: int) -> bytes:
    assert size < 29
    return bytes([(kind << 5) | size]) if kind <= 7 else bytes([size, kind - 7])


def _encode(value, kind: int | None = None) -> bytes:
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(_encode(key) + _encode(item) for key, item in value.items())
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(_encode(item) for item in value)
    if isinstance(value, str):
        return _control(2, len(value.encode())) + value.encode()
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    width = {5: 2, 6: 4, 9: 8}[kind or 6]
    data = value.to_bytes(width, "big").lstrip(b"\0")
    return _control(kind or 6, len(data)) + data


def write_city_database(path, networks: dict[str, dict]) -> None:
    """An IPv4 MaxMind DB (24-bit records) mapping each network to its record."""
    nodes: list[list] = [[None, None]]
    for cidr, record in networks.items():
        network = ipaddress.ip_network(cidr)
        bits = [int(bit) for bit in format(int(network.network_address), "032b")[: network.prefixlen]]
        node = 0
        for depth, bit in enumerate(bits):
            if depth == len(bits) - 1:
                nodes[node][bit] = record
            else:
                if nodes[node][bit] is None:
                    nodes.append([None, None])
                    nodes[node][bit] = len(nodes) - 1
                node = nodes[node][bit]
    data = b""
    tree = b""
    for left_right in nodes:
        for entry in left_right:
            if entry is None:
                value = len(nodes)
            elif isinstance(entry, int):
                value = entry
            else:
                value = len(nodes) + 16 + len(data)
                data += _encode(entry)
            tree += value.to_bytes(3, "big")
    metadata = {
        "node_count": len(nodes),
        "record_size": 24,
        "ip_version": 4,
        "database_type": "GeoLite2-City",
        "languages": ["en"],
        "binary_format_major_version": 2,
        "binary_format_minor_version": 0,
        "build_epoch": 1_700_000_000,
        "description": {"en": "test"},
    }
    kinds = {"node_count": 6, "record_size": 5, "ip_version": 5, "binary_format_major_version": 5,
             "binary_format_minor_version": 5, "build_epoch": 9}
    encoded = _control(7, len(metadata)) + b"".join(
        _encode(key) + _encode(value, kinds.get(key)) for key, value in metadata.items()
    )
    path.write_bytes(tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + encoded)


def city(name: str, country: str, country_name: str, latitude: float, longitude: float) -> dict:
    return {
        "city": {"names": {"en": name}},
        "country": {"iso_code": country, "names": {"en": country_name}},
        "location": {"latitude": latitude, "longitude": longitude},
    }


@pytest.fixture
def city_database(tmp_path):
    path = tmp_path / "GeoLite2-City.mmdb"
    write_city_database(path, {
        "81.2.69.0/24": city("Manchester", "GB", "United Kingdom", 53.48, -2.24),
        "8.8.8.0/24": city("Mountain View", "US", "United States", 37.39, -122.08),
    })
    return path


def test_a_city_database_gives_coordinates_and_other_addresses_fall_back_to_the_country(city_database):
    places = geo.locate_ips(["81.2.69.160", "8.8.8.8", "77.88.8.8"], city_database)
    by_ip = {row["source_ip"]: row for row in places.iter_rows(named=True)}
    assert by_ip["81.2.69.160"]["place"] == "Manchester, United Kingdom"
    assert (by_ip["81.2.69.160"]["latitude"], by_ip["81.2.69.160"]["precision"]) == (53.48, "city")
    assert by_ip["8.8.8.8"]["longitude"] == -122.08
    assert by_ip["8.8.8.8"]["asn"] == "GOOGLE"  # the ASN still comes from geoip2fast
    assert (by_ip["77.88.8.8"]["country_code"], by_ip["77.88.8.8"]["precision"]) == ("RU", "country")
    assert geo.check_city_database(city_database) is None


def test_a_missing_or_unreadable_city_database_is_explained_and_countries_are_used(tmp_path):
    missing = tmp_path / "nowhere.mmdb"
    assert "does not exist" in geo.check_city_database(missing)
    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a database")
    assert "not a readable MaxMind" in geo.check_city_database(garbage)
    places = geo.locate_ips(["81.2.69.160"], garbage)
    assert places.row(0, named=True)["precision"] == "country"


# --- Many addresses at once give the same places as one at a time ------------------------------------------


def _one_at_a_time(addresses: list[str]) -> pl.DataFrame:
    return pl.DataFrame(geo._python_places(set(addresses), None), schema=geo.PLACE_SCHEMA, orient="row")


def _same_places(addresses: list[str]) -> None:
    columns = ["source_ip", "country_code", "country_name", "place", "latitude", "longitude", "precision"]
    at_once = geo.locate_ips(addresses).select(columns).sort("source_ip")
    assert at_once.equals(_one_at_a_time(addresses).select(columns).sort("source_ip"))


EDGES = [str(ipaddress.IPv4Address(number)) for network in geo.NOT_PLACES_IPV4
         for edge in (ipaddress.IPv4Network(network).network_address, ipaddress.IPv4Network(network).broadcast_address)
         for number in (int(edge) - 1, int(edge), int(edge) + 1) if 0 <= number < 2**32]


def test_the_edges_of_every_network_that_is_not_a_place_are_placed_as_one_at_a_time():
    _same_places(EDGES + ["168.168.31.126", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3", " 8.8.8.8"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=300))
def test_random_ipv4_addresses_are_placed_as_one_at_a_time(numbers):
    _same_places([str(ipaddress.IPv4Address(number)) for number in numbers])


def test_placing_rows_gives_every_row_its_address_s_place_and_leaves_out_the_rest():
    """Travel places each move by its row (no distinct list joined back): the same places as locate_ips, duplicates,
    IPv6 and odd spellings included; rows at no place dropped, the frame's own columns kept."""
    addresses = EDGES + ["8.8.8.8", "8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "01.2.3.4", "AWS Internal"]
    frame = pl.DataFrame({"source_ip": addresses, "row": range(len(addresses))})
    placed = geo.locate_rows(frame)
    columns = ["source_ip", "country_code", "country_name", "city", "place", "latitude", "longitude", "precision"]
    expected = frame.join(geo.locate_ips(addresses).select(columns), on="source_ip")
    assert placed.columns == ["source_ip", "row", *columns[1:]]
    assert placed.sort("row").equals(expected.sort("row"))
    assert placed.filter(pl.col("source_ip") == "8.8.8.8").height == 2


@pytest.fixture
def fresh_tables_folder(tmp_path, monkeypatch):
    """An empty user cache folder, and no tables held by this process, before and after the test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    geo._ipv4_tables.cache_clear()
    yield geo.ipv4_tables_folder()
    geo._ipv4_tables.cache_clear()


ADDRESSES = ["8.8.8.8", "1.1.1.1", "168.168.31.126", "81.2.69.142", "10.0.0.1", "203.0.113.9"]


def test_the_ipv4_tables_are_kept_for_the_next_process_and_place_addresses_as_when_built(fresh_tables_folder):
    built = geo.locate_ips(ADDRESSES).sort("source_ip")
    assert {path.name for path in fresh_tables_folder.iterdir()} == {f"{name}.arrow" for name in geo.IPV4_TABLES}

    geo._ipv4_tables.cache_clear()  # what a new process sees: only the kept files
    kept = geo._ipv4_tables()
    assert [len(table) for table in kept] == [len(table) for table in geo._build_ipv4_tables()]
    assert geo.locate_ips(ADDRESSES).sort("source_ip").equals(built)
    assert built.get_column("source_ip").to_list() == sorted(["8.8.8.8", "1.1.1.1", "168.168.31.126", "81.2.69.142"])


def test_a_damaged_kept_table_is_built_again_instead_of_failing(fresh_tables_folder):
    expected = geo.locate_ips(ADDRESSES).sort("source_ip")
    (fresh_tables_folder / "countries.arrow").write_bytes(b"not an arrow file")
    geo._ipv4_tables.cache_clear()

    assert geo.locate_ips(ADDRESSES).sort("source_ip").equals(expected)
    assert (fresh_tables_folder / "countries.arrow").read_bytes()[:6] == b"ARROW1"  # kept again, whole
