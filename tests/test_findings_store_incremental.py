"""The post-sync step after new events judges travel only for the principals with new moves and recomputes windowed
detectors only from their reach, and what it stores equals storing everything again: through several syncs that
start a new incident, extend one, arrive late, or come from a principal roaming all day."""

from __future__ import annotations

import random
import shutil
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks import shapes
from tests.test_sigma import record, write_events
from tests.test_stored_findings import ROAMING_END, roaming_cache_file  # noqa: F401  (a module fixture, shared)
from trailstream import jobs
from trailstream.analytics import detections
from trailstream.analytics.detections import travel_update
from trailstream.cache import findings_store, store
from trailstream.ingest import sync
from trailstream.timefmt import iso_utc, parse_iso_utc

FINDING_SQL = ("SELECT type, severity, time, first_time, principal, account_id, summary, event_ids, details "
               "FROM stored_findings")
ROUTE_SQL = ("SELECT day, account_id, principal, from_place, to_place, from_latitude, from_longitude, to_latitude, "
             "to_longitude, hops, fastest_kmh, last_time FROM stored_principal_routes")
DAY_SQL = "SELECT * FROM stored_travel_routes"
# Addresses geoip2fast places in far-apart countries: any two of them minutes apart are an impossible hop.
FAR = {"US": "24.6.131.7", "JP": "133.242.0.3", "DE": "77.64.246.93", "BR": "200.147.67.142", "AU": "1.120.0.5"}


def stored_rows(path: Path) -> tuple[list, list, list]:
    with closing(sqlite3.connect(path)) as conn:
        return tuple(sorted(conn.execute(sql).fetchall(), key=repr) for sql in (FINDING_SQL, ROUTE_SQL, DAY_SQL))


def stored_from_scratch(path: Path, tmp_path: Path) -> tuple[list, list]:
    """What storing every finding again (as after a settings change) leaves, on a copy."""
    copy = tmp_path / "scratch.db"
    shutil.copy(path, copy)
    with closing(sqlite3.connect(copy)) as conn, conn:
        conn.execute("DELETE FROM findings_state")
    assert "over the whole cache" in jobs.store_findings(copy, {})[0]
    return stored_rows(copy)


def newest(path: Path) -> str:
    with closing(store.open_cache_readonly(path)) as conn:
        return conn.execute("SELECT max(event_time) FROM events").fetchone()[0]


def moves(principal: str, account: str, steps: list[tuple[timedelta, str]], start: str, tag: str) -> list[dict]:
    """IAM-user calls of `principal` at start + offset from each country's address."""
    identity = {"type": "IAMUser", "arn": f"arn:aws:iam::{account}:user/{principal}", "userName": principal,
                "accountId": account, "principalId": f"AIDA{principal.upper()}"}
    return [record(f"{tag}-{index}", eventTime=iso_utc(parse_iso_utc(start) + offset), sourceIPAddress=FAR[country],
                   userIdentity=identity, recipientAccountId=account)
            for index, (offset, country) in enumerate(steps)]


def sync_and_store(path: Path, folder: Path, records: list[dict]) -> str:
    sync.import_paths(path, [write_events(folder, records)])
    return jobs.store_findings(path, {})[0]


def travel_findings(path: Path, principal: str) -> list[dict]:
    with closing(store.open_cache_readonly(path)) as conn:
        return [finding.to_dict() for finding in detections.query_period_findings(conn).findings
                if finding.type == "impossible_travel" and finding.principal == principal]


@pytest.fixture(params=["demo", "roaming"])
def synced_cache(request, tmp_path) -> Path:
    """A private copy of a demo or roaming cache whose findings the post-sync step stored."""
    source = request.getfixturevalue("demo_cache_file" if request.param == "demo" else "roaming_cache_file")
    path = tmp_path / "cache.db"
    shutil.copy(source, path)
    assert "over the whole cache" in jobs.store_findings(path, {})[0]
    return path


def test_incremental_syncs_store_what_storing_everything_again_would(synced_cache, tmp_path):
    start = newest(synced_cache)
    minutes = [timedelta(minutes=value) for value in range(0, 200, 10)]
    # A new incident: nobody-seen-before walter hops from the US to Japan.
    line = sync_and_store(synced_cache, tmp_path / "s1", moves("walter", "444455556666",
                                                                [(minutes[1], "US"), (minutes[3], "JP")], start, "s1"))
    assert "windowed ones from" in line
    assert [finding["details"]["pairs"] for finding in travel_findings(synced_cache, "walter")] == [1]
    assert stored_rows(synced_cache) == stored_from_scratch(synced_cache, tmp_path)
    # It goes on: Germany then Brazil, extending the same incident.
    line = sync_and_store(synced_cache, tmp_path / "s2", moves("walter", "444455556666",
                                                                [(minutes[5], "DE"), (minutes[7], "BR")], start, "s2"))
    assert "recomputed from a midnight for 0 principals" in line
    assert [finding["details"]["pairs"] for finding in travel_findings(synced_cache, "walter")] == [3]
    assert stored_rows(synced_cache) == stored_from_scratch(synced_cache, tmp_path)
    # The same second as the newest stored call, from an address that sorts after it: still in order.
    line = sync_and_store(synced_cache, tmp_path / "s2b", moves("walter", "444455556666", [(minutes[7], "US")],
                                                                 start, "s2b"))
    assert "recomputed from a midnight for 0 principals" in line
    assert [finding["details"]["pairs"] for finding in travel_findings(synced_cache, "walter")] == [4]
    assert stored_rows(synced_cache) == stored_from_scratch(synced_cache, tmp_path)
    # A late file: a call from Australia between the US and Japan ones.
    line = sync_and_store(synced_cache, tmp_path / "s3", moves("walter", "444455556666", [(minutes[2], "AU")],
                                                                start, "s3"))
    assert "recomputed from a midnight for 1 principal " in line
    assert [finding["details"]["pairs"] for finding in travel_findings(synced_cache, "walter")] == [5]
    assert stored_rows(synced_cache) == stored_from_scratch(synced_cache, tmp_path)
    # Two days later: a new incident beside the stored one.
    later = iso_utc(parse_iso_utc(start) + timedelta(days=2))
    sync_and_store(synced_cache, tmp_path / "s4", moves("walter", "444455556666",
                                                         [(minutes[0], "JP"), (minutes[1], "US")], later, "s4"))
    assert [finding["details"]["pairs"] for finding in travel_findings(synced_cache, "walter")] == [1, 5]
    assert stored_rows(synced_cache) == stored_from_scratch(synced_cache, tmp_path)


def test_a_roaming_principal_extends_its_day_long_incident_and_late_calls_land_in_it(roaming_cache_file, tmp_path):  # noqa: F811  (the shared fixture)
    path = tmp_path / "cache.db"
    shutil.copy(roaming_cache_file, path)
    jobs.store_findings(path, {})
    with closing(sqlite3.connect(path)) as conn:
        principal, account, first, last = conn.execute(
            "SELECT principal, account_id, first_time, time FROM stored_findings WHERE type = 'impossible_travel' "
            "ORDER BY time DESC LIMIT 1").fetchone()
    name = principal.rsplit("/", 1)[-1]
    before = travel_findings(path, principal)[0]["details"]["pairs"]
    middle = iso_utc(parse_iso_utc(first) + (parse_iso_utc(last) - parse_iso_utc(first)) / 2)
    sync_and_store(path, tmp_path / "on", moves(name, account, [(timedelta(minutes=5), "AU")], last, "on"))
    assert travel_findings(path, principal)[0]["details"]["pairs"] == before + 1
    assert stored_rows(path) == stored_from_scratch(path, tmp_path)
    sync_and_store(path, tmp_path / "late", moves(name, account, [(timedelta(seconds=1), "AU")], middle, "late"))
    assert stored_rows(path) == stored_from_scratch(path, tmp_path)


def test_only_principals_with_new_moves_are_read_again(roaming_cache_file, tmp_path):  # noqa: F811  (the shared fixture)
    path = tmp_path / "cache.db"
    shutil.copy(roaming_cache_file, path)
    jobs.store_findings(path, {})
    with closing(sqlite3.connect(path)) as conn:
        top = conn.execute("SELECT max(rowid) FROM events").fetchone()[0]
    sync.import_paths(path, [write_events(tmp_path / "new", moves("walter", "444455556666", [
        (timedelta(minutes=1), "US"), (timedelta(minutes=3), "JP")], newest(path), "new"))])
    with closing(store.open_cache_readonly(path)) as conn:
        update = travel_update.query_travel_update(conn, top)
    assert update.recomputed == [] and update.replaced == []
    assert [(finding.principal, finding.details["pairs"]) for finding in update.findings] == [
        ("walter", 1)]
    assert set(update.routes.get_column("principal")) == {"walter"}


@pytest.mark.parametrize("seed", [3, 4])
def test_log_files_arriving_in_any_order_leave_what_storing_everything_again_would(tmp_path, seed):
    shapes.write_shape("roaming", tmp_path / "logs", 1500, seed=seed, end=ROAMING_END)
    files = sorted(path for path in (tmp_path / "logs").rglob("*") if path.is_file())
    random.Random(seed).shuffle(files)
    path = tmp_path / "cache.db"
    for index, batch in enumerate(files[start::4] for start in range(4)):
        sync.import_paths(path, batch)
        line = jobs.store_findings(path, {})[0]
        assert ("over the whole cache" in line) == (index == 0)
        assert stored_rows(path) == stored_from_scratch(path, tmp_path)
    assert len(files) > 4 and any(row[0] == "impossible_travel" for row in stored_rows(path)[0])


def test_the_detectors_read_with_a_small_page_cache_and_the_writes_get_the_writers_back(tmp_path):
    with closing(store.open_cache(tmp_path / "cache.db")) as db:
        writers = db.execute("PRAGMA cache_size").fetchone()[0]
        with findings_store.small_page_cache(db):
            assert db.execute("PRAGMA cache_size").fetchone()[0] == -findings_store.DETECTION_PAGE_CACHE_KIB
        assert db.execute("PRAGMA cache_size").fetchone()[0] == writers != -findings_store.DETECTION_PAGE_CACHE_KIB
