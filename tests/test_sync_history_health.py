"""Sync history's ingestion health is read from per-place summaries the cache keeps as files are stored, and shows
exactly what the old whole-table transform showed (kept here as the reference) whatever the order files arrive in."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
import sqlite_utils
from hypothesis import given, settings
from hypothesis import strategies as st

from trailstream.analytics import queries, transforms
from trailstream.cache import bookkeeping, store
from trailstream.cache.bookkeeping import FileRef
from trailstream.cache.frames import UTC_TIME, read_frame
from trailstream.filters import EventFilter
from trailstream.ingest import sync
from trailstream.timefmt import iso_utc

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
DEMO_END = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)

# --- The reference: the transform Sync history ran over every stored file's row before the summaries ---------------

OLD_FILE_NAME = r"(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{8}T\d{4}Z)"
OLD_SCHEMA = {"key": pl.String, "records": pl.Int64, "oldest_event_time": UTC_TIME, "newest_event_time": UTC_TIME,
              "processed_at": UTC_TIME}


def reference_deliveries(conn: sqlite3.Connection) -> pl.DataFrame:
    """Every delivered file's row into polars, grouped per place: what the page did before (5.6 s at 10M events)."""
    files = read_frame(conn, f"SELECT {', '.join(OLD_SCHEMA)} FROM files WHERE status = 'ok' AND newest_event_time "
                             "IS NOT NULL AND source != 'eventbridge'", [], OLD_SCHEMA)
    delivered_at = pl.col("key").str.extract(OLD_FILE_NAME, 3).str.to_datetime("%Y%m%dT%H%MZ", time_zone="UTC",
                                                                                strict=False)
    waited = delivered_at - pl.col("oldest_event_time").fill_null(pl.col("newest_event_time"))
    return (
        files.lazy()
        .with_columns(account_id=pl.col("key").str.extract(OLD_FILE_NAME, 1).fill_null("unknown"),
                      aws_region=pl.col("key").str.extract(OLD_FILE_NAME, 2).fill_null("unknown"),
                      lag=pl.when(waited >= pl.duration()).then(waited))
        .sort("newest_event_time")
        .group_by(transforms.PLACE)
        .agg(files=pl.len().cast(pl.Int64), records=pl.col("records").sum(),
             newest_file_event=pl.col("newest_event_time").max(), last_processed_at=pl.col("processed_at").max(),
             delivery_lag=pl.col("lag").median(), delivery_lag_p95=pl.col("lag").quantile(0.95, "nearest"),
             longest_gap=pl.col("newest_event_time").diff().max())
        .sort(transforms.PLACE)
        .collect()
    )


def summarised(conn: sqlite3.Connection) -> pl.DataFrame:
    return bookkeeping.query_delivery_health(conn).sort(transforms.PLACE)


def assert_same_health(conn: sqlite3.Connection, now: datetime) -> None:
    """The summaries give the reference's deliveries, and the page's table built from each is the same."""
    new, old = summarised(conn), reference_deliveries(conn)
    assert new.to_dicts() == old.select(new.columns).to_dicts()
    places = queries.query_account_region_counts(conn, EventFilter(), True)
    for with_places in (None, places):
        assert transforms.ingestion_health(new, with_places, now).equals(
            transforms.ingestion_health(old.select(new.columns), with_places, now))


# --- Caches with several places, lags, gaps and a silent place -------------------------------------------------------


SUMMARIES = ("delivery_places", "delivery_lags", "delivery_gaps")


def trail_key(account: str, region: str, delivered: datetime, suffix: str = "abc") -> str:
    stamp = delivered.strftime("%Y%m%dT%H%MZ")
    return (f"AWSLogs/{account}/CloudTrail/{region}/{delivered:%Y/%m/%d}/"
            f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz")


def store_file(db, key: str, newest: datetime, oldest: datetime | None = None, records: int = 3,
               source: str = "s3", status: str = "ok", processed: datetime | None = None) -> None:
    """A files row as a sync leaves it (its event times and processing time)."""
    bookkeeping.save_file_row(db, FileRef(source, "trail-bucket" if source != "local" else "", key), status, None,
                              records=records, newest_event_time=iso_utc(newest),
                              oldest_event_time=oldest and iso_utc(oldest),
                              processed_at=iso_utc(processed or newest + timedelta(minutes=20)))


@pytest.fixture
def cache(tmp_path):
    db = store.open_cache(tmp_path / "health.db")
    yield db
    db.conn.close()


def stored_out_of_order(db) -> None:
    """eu-west-1 every 5 minutes (files arriving newest first), us-east-1 silent for 9 hours, a second account with
    ties and a long gap, a stamp before its events (no lag), a local export and an EventBridge message."""
    for i in reversed(range(12)):
        moment = T0 - timedelta(minutes=5 * i)
        store_file(db, trail_key("111111111111", "eu-west-1", moment + timedelta(minutes=7), f"e{i}"), moment,
                   moment - timedelta(seconds=40 * (i % 4)), records=i + 1)
    for i in range(3):
        moment = T0 - timedelta(hours=9 + i)
        store_file(db, trail_key("111111111111", "us-east-1", moment + timedelta(minutes=4), f"u{i}"), moment)
    for i, minutes in enumerate([0, 0, 30, 31, 31, 400, 2]):  # ties and a gap; the last one lands in the middle
        moment = T0 - timedelta(hours=2) + timedelta(minutes=minutes)
        store_file(db, trail_key("222222222222", "ap-south-1", moment + timedelta(minutes=1 + i), f"a{i}"), moment)
    store_file(db, trail_key("222222222222", "ap-south-1", T0 - timedelta(days=2), "early"), T0 - timedelta(hours=30))
    store_file(db, "/home/me/export.json", T0 - timedelta(days=40), source="local")
    store_file(db, "eventbridge/message-1", T0, source="eventbridge")


def test_the_summaries_show_what_every_files_row_showed_whatever_order_files_arrive_in(cache):
    stored_out_of_order(cache)
    assert_same_health(cache.conn, T0 + timedelta(hours=1))
    health = transforms.ingestion_health(summarised(cache.conn), now=T0 + timedelta(hours=1))
    quiet = {(row["account_id"], row["aws_region"]): row["quiet"] for row in health.iter_rows(named=True)}
    assert quiet[("111111111111", "us-east-1")] and not quiet[("111111111111", "eu-west-1")]


def test_files_stored_again_failed_or_removed_leave_the_summaries_as_a_recount_would(cache):
    stored_out_of_order(cache)
    middle = trail_key("111111111111", "eu-west-1", T0 - timedelta(minutes=5 * 6 - 7), "e6")
    store_file(cache, middle, T0 - timedelta(minutes=29), T0 - timedelta(minutes=31), records=50)  # a new copy
    assert_same_health(cache.conn, T0)
    bookkeeping.mark_file(cache, FileRef("s3", "trail-bucket", middle), "failed", "gone", None)
    newest = trail_key("111111111111", "eu-west-1", T0 + timedelta(minutes=7), "e0")
    bookkeeping.mark_file(cache, FileRef("s3", "trail-bucket", newest), "failed", "gone", None)  # the newest and
    assert_same_health(cache.conn, T0)  # the last processed file of its place
    cache.execute("DELETE FROM files WHERE key LIKE '%ap-south-1%'")
    assert_same_health(cache.conn, T0)
    assert "ap-south-1" not in summarised(cache.conn)["aws_region"].to_list()
    assert_as_recounted(cache)


def test_a_demo_import_through_the_real_pipeline_matches_the_reference(tmp_path):
    sync.import_demo(tmp_path / "demo.db", 3000, seed=11, end=DEMO_END, workers=1)
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        assert summarised(conn).height == 12
        assert_same_health(conn, DEMO_END + timedelta(hours=1))


def test_a_cache_from_before_the_summaries_gets_them_from_its_stored_files(tmp_path):
    db = store.open_cache(tmp_path / "old.db")
    stored_out_of_order(db)
    expected = summarised(db.conn)
    for trigger in bookkeeping.DELIVERY_TRIGGERS:
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("DROP INDEX files_delivery")
    for table in SUMMARIES:
        db.execute(f"DROP TABLE {table}")
    for column in ("account_id", "aws_region", "delivered_at"):
        db.execute(f"ALTER TABLE files DROP COLUMN {column}")
    db.execute("DELETE FROM _sqlite_migrations WHERE name LIKE 'm018_%'")
    db.conn.close()
    with store.open_cache(tmp_path / "old.db").conn as conn:
        assert summarised(conn).equals(expected)
        assert_same_health(conn, T0)


def test_a_cache_without_delivered_files_has_no_health_rows(cache):
    store_file(cache, "eventbridge/message-1", T0, source="eventbridge")
    store_file(cache, trail_key("111111111111", "eu-west-1", T0), T0, status="failed")
    assert summarised(cache.conn).height == 0 and reference_deliveries(cache.conn).height == 0


@pytest.mark.parametrize("key, expected", [
    (trail_key("123456789012", "eu-west-1", T0), ("123456789012", "eu-west-1", "2026-11-20T12:00:00Z")),
    ("AWSLogs/123456789012/CloudTrail/eu-west-1/123456789012_CloudTrail_eu-west-1_20261399T2599Z_x.json.gz",
     ("123456789012", "eu-west-1", None)),  # a stamp that is no time
    ("/home/me/export.json", ("unknown", "unknown", None)),
])
def test_a_files_place_and_delivery_time_come_from_its_cloudtrail_name(key, expected):
    assert bookkeeping.parse_delivery(key) == expected


# --- What the page concludes from the summaries ----------------------------------------------------------------------


@pytest.fixture
def quiet_region(cache) -> pl.DataFrame:
    """eu-west-1 delivers every 5 minutes until now, 7 minutes after its events; us-east-1 stopped 9 hours ago; one
    file with a local name."""
    for i in range(12):
        moment = T0 - timedelta(minutes=5 * i)
        store_file(cache, trail_key("111111111111", "eu-west-1", moment + timedelta(minutes=7), f"e{i}"), moment)
    for i in range(3):
        moment = T0 - timedelta(hours=9 + i)
        store_file(cache, trail_key("111111111111", "us-east-1", moment, f"u{i}"), moment)
    store_file(cache, "/home/me/export.json", T0 - timedelta(days=40), source="local")
    return bookkeeping.query_delivery_health(cache.conn)


def test_a_region_that_went_quiet_gets_a_warning(quiet_region):
    health = transforms.ingestion_health(quiet_region, now=T0, quiet_after=timedelta(hours=6))
    by_place = {(r["account_id"], r["aws_region"]): r for r in health.iter_rows(named=True)}
    fresh, stopped = by_place[("111111111111", "eu-west-1")], by_place[("111111111111", "us-east-1")]
    assert not fresh["quiet"] and fresh["warning"] is None and fresh["files"] == 12
    assert fresh["delivery_lag"] == timedelta(minutes=7) and fresh["silent_for"] == timedelta(0)
    assert stopped["quiet"] and "us-east-1" in stopped["warning"] and "trail" in stopped["warning"]
    assert stopped["silent_for"] == timedelta(hours=9)
    assert by_place[("unknown", "unknown")]["files"] == 1
    assert health["quiet"].to_list()[:2] == [True, True]  # quiet first


def test_delivery_lag_runs_from_the_event_to_the_delivery_time_in_the_file_name_not_to_the_sync(cache):
    for i in range(5):  # synced a day later
        moment = T0 - timedelta(hours=i)
        store_file(cache, trail_key("111111111111", "eu-west-1", moment + timedelta(minutes=4), f"e{i}"), moment,
                   oldest=moment - timedelta(minutes=1), processed=moment + timedelta(days=1))
    health = transforms.ingestion_health(bookkeeping.query_delivery_health(cache.conn), now=T0 + timedelta(days=1))
    row = health.row(0, named=True)
    assert row["delivery_lag"] == row["delivery_lag_p95"] == timedelta(minutes=5)  # oldest event to delivery
    assert row["silent_for"] == timedelta(days=1) != row["delivery_lag"]


def test_every_pair_the_events_hold_is_listed_and_files_without_a_trail_name_make_no_unknown_pair(quiet_region):
    places = pl.DataFrame({"account_id": ["111111111111", "111111111111", "222222222222"],
                           "aws_region": ["eu-west-1", "us-east-1", "ap-south-1"], "events": [120, 30, 4],
                           "last_seen": [T0, T0 - timedelta(hours=9), T0 - timedelta(days=40)]},
                          schema_overrides={"last_seen": pl.Datetime("us", "UTC")})
    health = transforms.ingestion_health(quiet_region, places, now=T0)
    quiet = {(r["account_id"], r["aws_region"]): r["quiet"] for r in health.iter_rows(named=True)}
    assert quiet == {("111111111111", "us-east-1"): True, ("111111111111", "eu-west-1"): False,
                     ("222222222222", "ap-south-1"): None}  # a local export's pair is listed, never judged quiet


def test_the_quiet_threshold_is_configurable(quiet_region):
    lenient = transforms.ingestion_health(quiet_region, now=T0, quiet_after=timedelta(hours=12))
    assert lenient.filter(pl.col("aws_region") == "us-east-1")["quiet"].item() is False


def test_a_region_that_delivers_twice_a_month_is_not_quiet_after_a_few_days(cache):
    for i in range(3):
        moment = T0 - timedelta(days=4 + 15 * i)
        store_file(cache, trail_key("222222222222", "ap-south-1", moment, f"a{i}"), moment)
    for i in range(12):
        moment = T0 - timedelta(hours=7, minutes=5 * i)
        store_file(cache, trail_key("222222222222", "eu-west-1", moment, f"e{i}"), moment)
    health = transforms.ingestion_health(bookkeeping.query_delivery_health(cache.conn), now=T0)
    quiet = dict(zip(health["aws_region"], health["quiet"]))
    assert quiet == {"ap-south-1": False, "eu-west-1": True}  # judged by each pair's own rhythm


KEYS = [("111111111111", "eu-west-1"), ("111111111111", "us-east-1"), ("222222222222", "eu-west-1")]
operations = st.lists(st.tuples(
    st.sampled_from(["store", "store", "store", "fail", "delete"]),
    st.integers(0, 5),  # which file (two per place)
    st.integers(0, 12),  # its newest event, 5-minute steps after T0 (ties and equal gaps likely)
    st.integers(0, 6),  # its oldest event, minutes before the newest
    st.integers(0, 3),  # its delivery stamp, half hours after T0: the same file is often stored again
), min_size=6, max_size=30)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_any_sequence_of_stores_failures_and_removals_keeps_the_summaries_exact(steps):
    db = sqlite_utils.Database(memory=True)
    store.migrations.apply(db)
    for step, (action, which, newest, before, delivered) in enumerate(steps):
        account, region = KEYS[which % 3]
        moment = T0 + timedelta(minutes=5 * newest)
        key = trail_key(account, region, T0 + timedelta(minutes=30 * delivered), f"f{which}")
        if action == "store":
            store_file(db, key, moment, moment - timedelta(minutes=before), records=which + 1,
                       processed=T0 + timedelta(hours=step))
        elif action == "fail":
            bookkeeping.mark_file(db, FileRef("s3", "trail-bucket", key), "failed", "gone", None)
        else:
            db.execute("DELETE FROM files WHERE key LIKE ?", [f"%_f{which}.json.gz"])
    assert summarised(db.conn).to_dicts() == reference_deliveries(db.conn).select(summarised(db.conn).columns).to_dicts()
    assert_as_recounted(db)


def summary_rows(db) -> dict[str, list]:
    return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall() for table in SUMMARIES}


def assert_as_recounted(db) -> None:
    """The summaries the triggers kept are row for row what a recount from the files makes."""
    kept = summary_rows(db)
    with db.atomic():
        bookkeeping.rebuild_delivery_summaries(db)
    assert kept == summary_rows(db)
