"""An empty page's hints and saved searches while the lake is live: the hint (how old the newest event is, whether
the sidebar's choices match anything) is asked of the lake, and a saved search kept in the cache file runs on the
lake, even when the cache beside the lake holds no events at all."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import open_page, point_app_at_lake, write_demo_logs
from tests.test_backend import corpus_stores, demo_stores  # noqa: F401 (module fixtures)
from tests import test_integrity
from trailstream.analytics.queries import SearchQuery
from trailstream.cache import store
from trailstream.filters import EventFilter
from trailstream.ingest import lake
from trailstream.notify import saved
from trailstream.notify.saved import SavedSearch

END = datetime(2026, 3, 2, tzinfo=timezone.utc)
keys = test_integrity.keys  # the trail's signing keys (a fixture)
CHOICES = {
    "none": EventFilter(),
    "writes": EventFilter(start="2026-02-25T00:00:00Z", include_read_only=False),
    "one region": EventFilter(regions=("us-east-1",)),
    "absent account": EventFilter(accounts=("000000000000",)),
}


@pytest.mark.parametrize("stores", ["demo_stores", "corpus_stores"])
@pytest.mark.parametrize("choice", CHOICES)
def test_the_newest_event_overall_and_in_the_choices_is_the_same_on_the_cache_and_on_the_lake(request, stores,
                                                                                              choice):
    cache, lake_backend = request.getfixturevalue(stores)
    expected = cache.query("newest_event", CHOICES[choice])
    assert expected.item(0, "newest") is not None
    assert (expected.item(0, "chosen") is None) == (choice == "absent account")
    assert_frame_equal(expected, lake_backend.query("newest_event", CHOICES[choice]))


@pytest.fixture(scope="module")
def lake_folder(tmp_path_factory) -> Path:
    """A lake compacted from 1,500 demo events ending 2026-03-02 (long before any test runs)."""
    logs = tmp_path_factory.mktemp("logs")
    write_demo_logs(logs, 1500, 9, END)
    folder = tmp_path_factory.mktemp("lake") / "lake"
    lake.compact_paths(folder, [logs], workers=1)
    return folder


@pytest.fixture
def empty_cache_beside_lake(lake_folder, tmp_path, monkeypatch) -> Path:
    """The app on a cache with no events (only the app's own state), its pages reading the lake."""
    cache = tmp_path / "empty.db"
    store.open_cache(cache).close()
    point_app_at_lake(monkeypatch, tmp_path, cache, lake_folder)
    return cache


def _infos(at) -> list[str]:
    return [info.value for info in at.info]


def test_an_empty_period_on_the_lake_says_how_old_the_lakes_newest_event_is(empty_cache_beside_lake):
    at = open_page("pages/overview.py", range="7d")
    assert not at.exception
    [hint] = [info for info in _infos(at) if info.startswith("No events")]
    assert hint.startswith("No events in this period: the newest event is ") and hint.endswith(" days old.")
    assert [button.label for button in at.button if button.key == "widen-events"] in (["Show all time"],
                                                                                      ["Show 365 days"])


def test_a_saved_search_kept_in_the_cache_runs_on_the_lake(empty_cache_beside_lake):
    saved.save_search(empty_cache_beside_lake, SavedSearch("console sign-ins", "search",
                                                           search=SearchQuery(event_name="ConsoleLogin")))
    at = open_page("pages/reports.py", range="all")
    assert not at.exception and not at.error
    result = pl.from_pandas(at.dataframe[-1].value)
    assert result.height > 0 and set(result["event_name"]) == {"ConsoleLogin"}
    assert any("Read from the lake" in text.value for text in at.text)


# --- The app's own-state pages while the lake is live ----------------------------------------------


@pytest.mark.parametrize("page, title", [("pages/sync_history.py", "Sync history"),
                                         ("pages/integrity.py", "Integrity & coverage"),
                                         ("pages/audit.py", "Audit log"), ("pages/alerts.py", "Alerts"),
                                         ("pages/detection_rules.py", "Detection rules")])
def test_each_own_state_page_says_what_it_reads_while_the_lake_is_live(empty_cache_beside_lake, page, title):
    from trailstream.app import state

    at = open_page(page, range="all")
    assert title in [element.value for element in at.title]  # the page itself, not a refusal
    assert state.OWN_STATE_NOTICES[title] in _infos(at)
    assert not any("still reads the local cache" in info for info in _infos(at))


def test_integrity_counts_the_lakes_events_beside_a_cache_without_digests_or_events(empty_cache_beside_lake,
                                                                                    lake_folder):
    from trailstream.analytics import backend

    at = open_page("pages/integrity.py", range="all")
    events = backend.duckdb_backend(str(lake_folder)).query("totals", EventFilter())["events"].item()
    assert [m.value for m in at.metric if m.label == "Events"] == [f"{events:,}"] and events == 1500
    assert any(info.startswith("No CloudTrail digest covers this period") for info in _infos(at)), _infos(at)


def test_a_picked_integrity_hour_counts_its_events_in_the_live_store(keys, tmp_path, monkeypatch):
    import re

    test_integrity.tampered_cache_for_the_app(keys, tmp_path, monkeypatch)
    at = open_page("pages/integrity.py", range="all")
    [picker] = [box for box in at.selectbox if box.label == "Or pick an hour with problems"]
    picker.select(0).run()
    [said] = [caption.value for caption in at.caption if caption.value.startswith("Events in the cache in this")]
    assert re.fullmatch(r"Events in the cache in this hour: [\d,]+", said)


@pytest.mark.parametrize("stores", ["demo_stores", "corpus_stores"])
def test_the_search_forms_suggestions_are_the_same_on_the_cache_and_on_the_lake(request, stores):
    cache, lake_backend = request.getfixturevalue(stores)
    expected = cache.query("search_suggestions", EventFilter())
    assert set(expected["kind"]) == {"event_name", "error_code"}  # the stores hold both: the comparison means something
    assert_frame_equal(expected, lake_backend.query("search_suggestions", EventFilter()))


def test_the_search_form_suggests_the_lakes_event_names_beside_an_empty_cache(empty_cache_beside_lake, lake_folder):
    names = pl.read_parquet(lake_folder / "**/*.parquet", hive_partitioning=True)["event_name"].unique().sort()
    at = open_page("pages/search.py", range="all")
    assert not at.exception
    assert at.selectbox(key="event").options == names.to_list()  # the cache beside the lake holds none
