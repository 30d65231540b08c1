"""Many readers, one writer: 8 headless Chromium sessions open every page of `streamlit run app.py` while a local
import writes into the cache from another process; no error reaches a user and pages show what is committed. Then two
sessions press Sync at once: one runs, the other is told a sync is already running."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, page_specs, streamlit_app
from tests.test_browser import CHROMIUM, RUN_LIMIT_MS, wait_for_run

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed at /usr/bin/chromium")
SESSIONS = 8
ERROR_TEXT = re.compile(r"database is locked|Traceback|OperationalError|DatabaseError", re.IGNORECASE)


def url_path(section: str, title: str) -> str:
    """The page's URL path as app.py names it; the first page is the app's root."""
    if (section, title) == (page_specs()[0][0], page_specs()[0][2]):
        return ""
    return re.sub(r"[^a-z0-9]+", "-", f"{section or 'home'} {title}".lower()).strip("-")


def log_folder(base: Path, name: str, events: int, seed: int, per_file: int = 500) -> Path:
    from trailstream.ingest import demo

    folder = base / name
    demo.write_log_files(folder, demo.generate_records(events=events, seed=seed), records_per_file=per_file)
    return folder


WRITER = """
import sys
from pathlib import Path
from trailstream.ingest import sync
stop = Path(sys.argv[3])
for path in sorted(Path(sys.argv[2]).rglob("*.json.gz")):  # one sync, so one commit, per file, until told to stop
    if stop.exists():
        break
    assert sync.import_paths(sys.argv[1], [path], workers=1).succeeded
"""


def event_count(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


@pytest.fixture
def cache_with_writer_input(tmp_path) -> tuple[Path, Path, Path]:
    """(cache of real-source events, a big folder a writer imports meanwhile, the folder Sync imports)."""
    from trailstream.ingest import sync

    db = tmp_path / "cache.db"
    assert sync.import_paths(db, [log_folder(tmp_path, "first", 1500, 5)], workers=1).succeeded
    return db, log_folder(tmp_path, "writer", 6000, 6, per_file=100), log_folder(tmp_path, "configured", 4000, 7)


@pytest.fixture
def app_url(tmp_path, cache_with_writer_input):
    db, _, configured = cache_with_writer_input
    settings = tmp_path / "trailstream.toml"
    settings.write_text(f'[[sources]]\nname = "exported logs"\nkind = "local"\npath = "{configured}"\n')
    with streamlit_app(db, settings) as url:
        yield url


def assert_no_error_shown(page, where: str) -> None:
    """Nothing a user would read as a failure: no exception box, no error alert, no locking or traceback text."""
    assert page.get_by_test_id("stException").count() == 0, f"an exception is shown on {where}"
    assert page.get_by_test_id("stAlertContentError").count() == 0, f"an error is shown on {where}"
    dialogs = page.get_by_test_id("stDialog")
    assert dialogs.count() == 0, f"a dialog is open on {where}: {dialogs.first.inner_text()!r}"
    text = page.locator("body").inner_text()
    assert not ERROR_TEXT.search(text), f"{where} shows {ERROR_TEXT.search(text).group(0)!r}"


def events_metric(page) -> int:
    value = page.get_by_test_id("stMetric").filter(has_text="Events").get_by_test_id("stMetricValue").first
    return int(value.inner_text().replace(",", ""))


def open_all(tabs, url: str, paths: list[str]) -> None:
    """Navigate every tab at once, then wait for each: the server renders them concurrently."""
    for tab, path in zip(tabs, paths):
        tab.goto(f"{url}/{path}?range=all")
    for tab, path in zip(tabs, paths):
        wait_for_run(tab)
        assert_no_error_shown(tab, path)


def test_eight_sessions_read_every_page_while_a_sync_writes_and_see_no_error(app_url, cache_with_writer_input,
                                                                             tmp_path):
    from playwright.sync_api import sync_playwright

    db, writer_folder, _ = cache_with_writer_input
    before = event_count(db)
    paths = [url_path(section, title) for section, _, title in page_specs()]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            tabs = [browser.new_context(viewport={"width": 1280, "height": 900}).new_page() for _ in range(SESSIONS)]
            for tab in tabs:
                tab.set_default_timeout(RUN_LIMIT_MS)
            # The first session after the server starts registers the pages (st.navigation runs in the script):
            # until then Streamlit answers a deep link with a "Page not found" dialog, so one session goes first.
            open_all(tabs[:1], app_url, [""])
            stop = tmp_path / "stop-writing"  # the writer keeps committing file after file until the readers are done
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(writer_folder), str(stop)], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                for start in range(0, len(paths), SESSIONS):  # every page, eight sessions at a time
                    open_all(tabs, app_url, paths[start:start + SESSIONS])
                    if start == 0:
                        assert writer.poll() is None, "the writer finished before the readers: nothing overlapped"
                open_all(tabs, app_url, [paths[0]] * SESSIONS)
                seen = [events_metric(tab) for tab in tabs]
            finally:
                stop.touch()
                assert writer.wait(timeout=120) == 0, writer.stderr.read().decode()[-2000:]
            after = event_count(db)
            assert all(before <= count <= after for count in seen), (before, seen, after)
            tabs[0].reload()
            wait_for_run(tabs[0])
            assert events_metric(tabs[0]) == after  # once committed, a fresh run shows it all

            pressing = tabs[:2]
            for tab in pressing:
                tab.get_by_role("button", name="Sync").click()
            for tab in pressing:  # a crashed run shows its exception instead of a result: fail on it at once
                crashed = tab.get_by_test_id("stException")
                tab.get_by_text("failure(s)").or_(crashed).first.wait_for(timeout=RUN_LIMIT_MS)
                wait_for_run(tab)
                assert crashed.count() == 0, "a Sync pressed beside another one crashed"
            told = [tab for tab in pressing if "a sync is already running" in tab.locator("body").inner_text()]
            assert len(told) == 1, "exactly one of two simultaneous Syncs is refused"
            ran = next(tab for tab in pressing if tab is not told[0])
            assert_no_error_shown(ran, "the session whose Sync ran")
        finally:
            browser.close()
