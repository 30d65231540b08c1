"""Screens in headless Chromium at 1280x900 (issue 18's leftovers): every title near the top with the standing notes
in the sidebar, and a page's file-named link opened first after a start still passing the access gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import streamlit_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed at /usr/bin/chromium")
RUN_LIMIT_MS = 120_000
VIEWPORT = {"width": 1280, "height": 900}
TITLE_TOP_LIMIT = 200  # px from the top of the window; two banners above it put it at ~390
TITLED_PAGES = {"": "Overview", "activity-network-security-groups": "Network & security groups",
                "activity-ec2-instances": "EC2 instances", "activity-elastic-ips": "Elastic IPs", "activity-iam": "IAM",
                "security-access-denied": "Access denied", "security-integrity-coverage": "Integrity & coverage",
                "security-security-overview": "Security overview", "admin-sync-history": "Sync history",
                "admin-alerts": "Alerts"}
CUT_TILE_LABELS = """() => [...document.querySelectorAll('[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *')]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"""


def wait_for_run(page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=RUN_LIMIT_MS)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=RUN_LIMIT_MS)


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def test_every_title_sits_near_the_top_no_tile_label_is_cut_and_the_notes_are_in_the_sidebar(demo_cache_file, tmp_path,
                                                                                       chromium):
    from playwright.sync_api import expect

    shutil.copy(demo_cache_file, tmp_path / "demo.db")
    (tmp_path / "trailstream.toml").write_text("")
    with streamlit_app(tmp_path / "demo.db", tmp_path / "trailstream.toml") as url:
        page = chromium.new_page(viewport=VIEWPORT)
        page.set_default_timeout(RUN_LIMIT_MS)
        page.goto(url)
        wait_for_run(page)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Demo data")).to_be_visible()
        expect(sidebar.get_by_text("Sign-in is off")).to_be_visible()
        for path, title in TITLED_PAGES.items():
            page.goto(f"{url}/{path}?range=all")
            wait_for_run(page)
            heading = page.get_by_role("heading", name=title, level=1)
            expect(heading).to_be_visible()
            assert heading.bounding_box()["y"] < TITLE_TOP_LIMIT, path
            assert page.evaluate(CUT_TILE_LABELS) == [], path
            assert page.get_by_test_id("stMain").get_by_text("Demo data").count() == 0, path


def test_a_pages_file_named_link_opened_first_after_a_start_still_passes_the_access_gate(demo_cache_file, tmp_path,
                                                                                         chromium):
    from playwright.sync_api import expect

    shutil.copy(demo_cache_file, tmp_path / "demo.db")
    (tmp_path / "trailstream.toml").write_text("")
    with streamlit_app(tmp_path / "demo.db", tmp_path / "trailstream.toml") as url:
        # Reached through a proxy without sign-in: the gate must refuse, even on Streamlit's pages/ file route.
        context = chromium.new_context(viewport=VIEWPORT, extra_http_headers={"X-Forwarded-For": "203.0.113.9"})
        page = context.new_page()
        page.set_default_timeout(RUN_LIMIT_MS)
        page.goto(f"{url}/overview")  # the first request the server sees, by the file name pages/overview.py
        wait_for_run(page)
        expect(page.get_by_text("shows no data").first).to_be_visible()
        assert page.get_by_test_id("stMetric").count() == 0 and page.get_by_test_id("stDataFrame").count() == 0
        context.close()
