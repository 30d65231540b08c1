"""The SQL page, the Reports page and the sidebar on the lake ([backend] kind = "athena", the lake a local folder read
by DuckDB): the same tables as on the cache built from the same files, file-reading SQL refused in a sentence,
hostile event text from the lake shown as text, the lake's own accounts offered."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from tests.conftest import APP, cache_and_lake, point_app_at_lake, write_demo_logs
from trailstream.filters import EventFilter
from trailstream.ingest import lake
from trailstream.notify import saved
from trailstream.notify.saved import SavedSearch

END = datetime(2026, 3, 2, tzinfo=timezone.utc)
HOSTILE = "[click](https://evil.example) <img src=x onerror=alert(1)> =HYPERLINK(\"x\")"
ERRORS_SQL = ("SELECT event_source, error_code, count(*) AS calls FROM events WHERE event_time >= :start "
              "AND error_code <> '' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2")
HOSTILE_SQL = "SELECT principal, user_agent, error_code FROM events WHERE event_id = 'hostile-1'"


def _hostile_log(folder: Path) -> None:
    record = {"eventID": "hostile-1", "eventTime": "2026-03-01T12:00:00Z", "eventName": "PutObject",
              "eventSource": "s3.amazonaws.com", "awsRegion": "eu-west-1", "recipientAccountId": "444455556666",
              "userIdentity": {"type": "IAMUser", "userName": HOSTILE}, "userAgent": HOSTILE, "errorCode": HOSTILE,
              "sourceIPAddress": "203.0.113.9"}
    (folder / "hostile.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [record]}).encode()))


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A cache and a lake from the same demo files (one hostile event among them), and a lake of that event alone."""
    logs, alone, folder = (tmp_path_factory.mktemp(name) for name in ("logs", "alone", "stores"))
    write_demo_logs(logs, 2000, 8, END)
    _hostile_log(logs)
    _hostile_log(alone)
    cache, lake_folder = cache_and_lake(folder, logs)
    lake.compact_paths(folder / "alone-lake", [alone], workers=1)
    return cache, lake_folder, folder / "alone-lake"


@pytest.fixture
def open_as_admin(stores, tmp_path, monkeypatch):
    """Open a page of the real app as the local admin, on the cache or (given a folder) on that lake."""
    def open_page(page: str, lake_folder: Path | None, **query) -> AppTest:
        point_app_at_lake(monkeypatch, tmp_path, stores[0], lake_folder)
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.secrets["placeholder"] = "no [auth] section"
        at.user = {}
        at.query_params.update(query)
        with patch_config_options({"server.address": "127.0.0.1"}):
            at.run()
            return at.switch_page(page).run()

    return open_page


def _run_sql(at: AppTest, sql: str) -> AppTest:
    with patch_config_options({"server.address": "127.0.0.1"}):
        return at.text_area(key="sql").set_value(sql).run()


def _result(at: AppTest) -> pl.DataFrame:
    """The result table: the page's last table (the SQL page's help table comes first on the cache)."""
    return pl.from_pandas(at.dataframe[-1].value)


def _shown_text(at: AppTest) -> list[str]:
    return [str(element.value) for element in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error,
                                                  *at.toast, *at.title, *at.subheader)]


def test_the_sql_page_on_the_lake_shows_the_caches_result(open_as_admin, stores):
    on_cache = _run_sql(open_as_admin("pages/sql.py", None, range="all"), ERRORS_SQL)
    on_lake = _run_sql(open_as_admin("pages/sql.py", stores[1], range="all"), ERRORS_SQL)
    assert not on_lake.exception and not on_lake.error
    lake_rows = _result(on_lake)
    assert lake_rows.height > 0 and lake_rows.equals(_result(on_cache))
    assert any("with DuckDB" in text.value for text in on_lake.text)


@pytest.mark.parametrize("sql", ["SELECT * FROM read_csv('/etc/passwd')", "FROM '/etc/passwd'",
                                 "CREATE TABLE copy AS SELECT * FROM events"])
def test_sql_that_would_read_a_file_or_write_is_refused_on_the_lake_in_a_sentence(open_as_admin, stores, sql):
    at = _run_sql(open_as_admin("pages/sql.py", stores[1], range="all"), sql)
    assert not at.exception
    assert [error.value for error in at.error] == ["The query was refused: nothing ran and nothing changed."]
    assert not at.dataframe and "root:" not in " ".join(text.value for text in at.text)


def test_hostile_text_from_the_lake_on_the_sql_page_stays_text(open_as_admin, stores):
    at = _run_sql(open_as_admin("pages/sql.py", stores[1], range="all"), HOSTILE_SQL)
    assert _result(at).row(0) == (HOSTILE, HOSTILE, HOSTILE)
    assert not any("evil.example" in text for text in _shown_text(at))


def test_a_saved_report_reruns_on_the_lake_with_the_caches_table(open_as_admin, stores):
    saved.save_search(stores[0], SavedSearch("lake errors", "sql", sql=ERRORS_SQL, format="html",
                                             event_filter=EventFilter(start="2026-02-20T00:00:00Z")))
    tables = {}
    for name, folder in (("cache", None), ("lake", stores[1])):
        at = open_as_admin("pages/reports.py", folder, saved="lake errors")
        assert not at.exception and not at.error
        tables[name] = _result(at)
    assert tables["lake"].height > 0 and tables["lake"].equals(tables["cache"])
    assert any("with DuckDB" in text.value for text in at.text)
    assert not any("still reads the local cache" in info.value for info in at.info)


def test_a_hostile_report_from_the_lake_stays_text(open_as_admin, stores):
    saved.save_search(stores[0], SavedSearch("hostile rows", "sql", sql=HOSTILE_SQL, format="csv"))
    at = open_as_admin("pages/reports.py", stores[2], saved="hostile rows")
    assert _result(at).row(0) == (HOSTILE, HOSTILE, HOSTILE)
    assert not any("evil.example" in text for text in _shown_text(at))


def test_the_sidebar_offers_the_lakes_accounts_and_regions(open_as_admin, stores):
    on_cache = open_as_admin("pages/sql.py", None, range="all")
    on_lake = open_as_admin("pages/sql.py", stores[2], range="all")
    assert on_lake.multiselect(key="account").options == ["444455556666"]
    assert on_lake.multiselect(key="region").options == ["eu-west-1"]
    assert len(on_cache.multiselect(key="account").options) > 1

