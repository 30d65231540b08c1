"""Free text and resource lookups through the word index: the same events as a word-start match over the text
columns (an independent regex oracle), whichever plan the query takes."""

from __future__ import annotations

import random
import re
import shutil
import sqlite3
from datetime import datetime, timezone

import pytest

from trailstream.ingest import demo, sync
from trailstream.cache import derived, store, wordindex
from trailstream.analytics import queries
from trailstream.filters import EventFilter
from trailstream.analytics.queries import SearchQuery

END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, sqlite3.Connection]:
    """3,000 demo events imported by sync; a copy whose derived data is emptied and marked behind reads `events`."""
    folder = tmp_path_factory.mktemp("words")
    demo.write_log_files(folder / "logs", demo.generate_records(events=3000, seed=21, end=END), records_per_file=150)
    sync.import_paths(folder / "cache.db", [folder / "logs"], workers=1)
    shutil.copy(folder / "cache.db", folder / "behind.db")
    with sqlite3.connect(folder / "behind.db") as conn:
        derived.clear(conn)  # so a reader that still used the index would find nothing
        conn.execute("UPDATE meta SET value = '-1' WHERE key = ?", [derived.WATERMARK_KEY])
    conn.close()
    with pytest.MonkeyPatch.context() as patch:  # a commit every file: the index in many segments, merged less often
        patch.setattr(sync, "BATCH_ROWS", 1)
        sync.import_paths(folder / "segments.db", [folder / "logs"], workers=1)
    return {"index": store.open_cache_readonly(folder / "cache.db"),
            "behind": store.open_cache_readonly(folder / "behind.db"),
            "segments": store.open_cache_readonly(folder / "segments.db")}


def texts_of(conn: sqlite3.Connection) -> dict[str, str]:
    columns = ", ".join(f"ifnull({c}, '')" for c in wordindex.SEARCH_TEXT_COLUMNS)
    return {row[0]: "\n".join(row[1:]) for row in conn.execute(f"SELECT event_id, {columns} FROM events")}


def word_start_matches(texts: dict[str, str], text: str, ignore_case: bool = True) -> set[str]:
    """The oracle: events where `text` occurs (ignoring ASCII case), not inside a word if it begins with one."""
    word_start = r"(?<![A-Za-z0-9])" if re.match("[A-Za-z0-9]", text) else ""
    pattern = re.compile(word_start + re.escape(text), re.IGNORECASE | re.ASCII if ignore_case else 0)
    return {event_id for event_id, body in texts.items() if pattern.search(body)}


def sampled_terms(conn: sqlite3.Connection, count: int) -> list[str]:
    """Terms people type: whole IDs and names, their beginnings, and multi-word pieces, taken from stored events."""
    chooser = random.Random(4)
    bodies = list(texts_of(conn).values())
    terms = set()
    while len(terms) < count:
        body = chooser.choice(bodies)
        starts = [m.start() for m in re.finditer(r"(?<![A-Za-z0-9])[A-Za-z0-9]", body)]
        start = chooser.choice(starts)
        term = body[start : start + chooser.choice([3, 6, 12, 20, 40])].split("\n")[0]
        if term.strip():
            terms.add(term.upper() if chooser.random() < 0.2 else term)
    return sorted(terms)


def test_match_query_keeps_words_whole_and_the_last_as_a_prefix():
    assert wordindex.match_query("sg-0abc") == '"sg" AND "0abc"*'
    assert wordindex.match_query("100%_sure") == '"100" AND "sure"*'
    assert wordindex.match_query("  alice ") == '"alice"*'
    assert wordindex.match_query("%_-") is None  # no word: nothing to narrow with
    assert wordindex.match_query("Ünïcode") is None  # FTS5 folds case beyond ASCII, LIKE does not: scan


@pytest.mark.parametrize("plan", ["index", "behind", "segments"])
def test_free_text_finds_what_the_word_start_oracle_finds(caches, plan):
    conn = caches[plan]
    texts = texts_of(conn)
    narrowed = 0
    for term in sampled_terms(conn, 60):
        found = queries.query_search(conn, EventFilter(), SearchQuery(text=term), limit=None)
        assert set(found["event_id"]) == word_start_matches(texts, term), term
        narrowed += queries.word_query(conn, term) is not None
    assert narrowed > 30 if plan != "behind" else narrowed == 0  # the index really narrowed most terms


def test_the_word_index_merges_its_segments_sixteen_at_a_time(caches):
    setting = f"SELECT v FROM {wordindex.TABLE}_config WHERE k = 'automerge'"
    assert caches["segments"].execute(setting).fetchone()[0] == wordindex.MERGE_SEGMENTS == 16


def test_a_fragment_inside_a_word_is_not_a_word_start(caches):
    conn = caches["index"]
    instance = conn.execute(
        "SELECT json_extract(request_parameters, '$.instancesSet.items[0].instanceId') AS id FROM events "
        "WHERE id IS NOT NULL LIMIT 1"
    ).fetchone()[0]
    inside = instance[4:12]  # 'i-0123456789abcdef' -> a piece from the middle of the hex part
    assert queries.query_search(conn, EventFilter(), SearchQuery(text=instance), limit=None).height > 0
    for plan in caches.values():  # the same rule whether or not the index narrows
        assert queries.query_search(plan, EventFilter(), SearchQuery(text=inside), limit=None).is_empty()
        assert queries.query_search(plan, EventFilter(), SearchQuery(text="-" + inside[1:]), limit=None).is_empty()
        assert queries.query_search(plan, EventFilter(), SearchQuery(text=instance[1:]), limit=None).height > 0


def test_common_words_are_read_newest_first_with_the_same_results(caches, monkeypatch):
    conn = caches["index"]
    term = "amazonaws"
    through_index = queries.query_search(conn, EventFilter(), SearchQuery(text=term), limit=None)
    assert queries.word_query(conn, term) is not None
    monkeypatch.setattr(queries, "WORD_INDEX_MAX_CANDIDATES", 10)  # now far too common to narrow
    assert queries.word_query(conn, term) is None
    scanned = queries.query_search(conn, EventFilter(), SearchQuery(text=term), limit=None)
    assert set(scanned["event_id"]) == set(through_index["event_id"]) == word_start_matches(texts_of(conn), term)


@pytest.mark.parametrize("plan", ["index", "behind"])
def test_resource_history_and_resource_name_search_agree_with_instr(caches, plan):
    conn = caches[plan]
    group = conn.execute(
        "SELECT request_parameters ->> '$.groupId' AS id FROM events WHERE id LIKE 'sg-%' "
        "GROUP BY id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]
    expected = {
        row[0]
        for row in conn.execute(
            "SELECT event_id FROM events WHERE instr(resources, ?) OR instr(request_parameters, ?) "
            "OR instr(response_elements, ?)", [group] * 3
        )
    }
    history = queries.query_resource_history(conn, EventFilter(), group, limit=None)
    by_name = queries.query_search(conn, EventFilter(), SearchQuery(resource_name=group), limit=None)
    assert set(history["event_id"]) == set(by_name["event_id"]) == expected and len(expected) > 1
    assert (queries.word_query(conn, group) is not None) == (plan == "index")
