"""The SQL and Reports pages in the real app: examples run into a table, hostile queries show an error, never raise."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from tests.test_sqlguard import fingerprint
from trailstream.notify import saved
from trailstream.notify.saved import SavedSearch

APP = Path(__file__).resolve().parents[1] / "app.py"


@pytest.fixture
def app_on(demo_cache, tmp_path, monkeypatch):  # noqa: F811
    """Open a page of the real app on the demo cache, as the local admin (loopback, no sign-in set up)."""
    settings = tmp_path / "trailstream.toml"
    settings.write_text("")
    monkeypatch.setenv("TRAILSTREAM_CONFIG", str(settings))
    monkeypatch.setenv("TRAILSTREAM_DB", str(demo_cache))

    def open_page(page: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.secrets["placeholder"] = "no [auth] section"
        at.user = {}
        with patch_config_options({"server.address": "127.0.0.1"}):
            at.run()
            return at.switch_page(page).run()

    return open_page


def run_sql(at: AppTest, sql: str) -> AppTest:
    with patch_config_options({"server.address": "127.0.0.1"}):
        return at.text_area(key="sql").set_value(sql).run()


def test_an_example_query_shows_a_table_and_a_chart(app_on):
    at = app_on("pages/sql.py")
    assert not at.exception
    with patch_config_options({"server.address": "127.0.0.1"}):
        at.selectbox(key="example").set_value("top_errors_per_service").run()
    assert not at.exception and not at.error
    assert "event_source, error_code" in at.text_area(key="sql").value
    result = at.dataframe[-1].value
    assert len(result) > 0 and list(result.columns) == ["event_source", "error_code", "calls", "principals"]
    assert at.get("vega_lite_chart"), "the quick chart is drawn"


@pytest.mark.parametrize("sql, heading", [
    ("DROP TABLE events", "refused"),
    ("SELECT load_extension('x')", "refused"),
    ("ATTACH 'other.db' AS other", "refused"),
    ("SELECT 1; DELETE FROM events", "refused"),
    ("SELEC nonsense", "did not finish"),
])
def test_a_hostile_or_broken_query_shows_an_error_and_changes_nothing(app_on, demo_cache, sql, heading):  # noqa: F811
    before = fingerprint(demo_cache)
    at = run_sql(app_on("pages/sql.py"), sql)
    assert not at.exception
    assert len(at.error) == 1 and heading in at.error[0].value
    assert at.text and len(at.text[-1].value) > 20, "the reason is shown as text"
    assert fingerprint(demo_cache) == before


def test_a_saved_query_reruns_on_the_reports_page(app_on, demo_cache):  # noqa: F811
    saved.save_search(demo_cache, SavedSearch("Busiest principals", "sql", period="all", format="html", sql=(
        "SELECT principal, count(*) AS calls FROM events WHERE event_time >= :start GROUP BY 1 ORDER BY 2 DESC")))
    at = app_on("pages/reports.py")
    assert not at.exception and not at.error
    assert at.selectbox(key=saved.SHARE_PARAM).value == "Busiest principals"
    assert len(at.dataframe[-1].value) > 0
    assert at.get("vega_lite_chart")
