"""Sign-in end to end: `streamlit run app.py`, a real OIDC provider on loopback, and headless Chromium.

An allowed admin, an allowed viewer and a stranger each sign in; we check what each can see and do, and that event
content planted with markup never becomes live HTML in the page.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tests.conftest import streamlit_app

CHROMIUM = "/usr/bin/chromium"
ADMIN, VIEWER, STRANGER = "boss@corp.test", "analyst@corp.test", "mallory@elsewhere.test"
ADMIN_NAV = ("Sources & settings", "Audit log")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM}; install it with apt-get install chromium")


@pytest.fixture(scope="module")
def oidc_provider():
    """oidc-provider-mock on 127.0.0.1 with three users whose claims carry verified e-mail addresses."""
    import oidc_provider_mock
    import werkzeug.serving

    users = [
        oidc_provider_mock.User(sub=email, claims={"email": email, "email_verified": True, "name": email.split("@")[0]})
        for email in (ADMIN, VIEWER, STRANGER)
    ]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the provider serves plain http on loopback
        server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(user_claims=users), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_port}"
        server.shutdown()
        thread.join()


def build_demo_cache(db_path: Path) -> None:
    """Demo events, including the planted hostile values, so every page has something to render."""
    demo = pytest.importorskip("trailstream.ingest.demo", reason="the demo generator is not there yet")
    from trailstream.ingest import sync

    sync.import_demo(db_path, 3000, seed=3)
    assert demo.PLANTED["hostile_content"][0]["strings"]


@pytest.fixture(scope="module")
def signed_in_app(tmp_path_factory, oidc_provider):
    """The app with sign-in on: [auth] pointing at the mock provider, and an allow-list naming our users."""
    tmp = tmp_path_factory.mktemp("signed-in-app")
    (tmp / "trailstream.toml").write_text(
        f'[access]\nadmins = ["{ADMIN}"]\nallowed_domains = ["corp.test"]\n'
    )
    build_demo_cache(tmp / "trailstream.db")
    secrets = (
        '[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "a-test-cookie-secret-that-is-long-enough"\n'
        'client_id = "trailstream-test"\nclient_secret = "not-a-real-secret"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n'
    )
    with streamlit_app(tmp / "trailstream.db", tmp / "trailstream.toml", secrets) as url:
        yield url, tmp / "trailstream.db"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def sign_in(browser, signed_in_app):
    """sign_in(email) -> a page signed in as that user through the provider's form, in a fresh browser profile."""
    from playwright.sync_api import expect

    url, _ = signed_in_app
    contexts = []

    def sign_in_as(email: str):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: pytest.fail(f"a script opened a dialog: {dialog.message}"))
        page.goto(url)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name=email).click()  # the provider's one-click button for a predefined user
        landed = page.get_by_text("Signed in as").or_(page.get_by_role("heading", name="Not authorised"))
        expect(landed.first).to_be_visible(timeout=60_000)
        wait_for_render(page)
        return page

    yield sign_in_as
    for context in contexts:
        context.close()


def wait_for_render(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")).to_have_count(1, timeout=60_000)


def nav_links(page) -> dict[str, str]:
    """Every page the top navigation offers (title -> URL), opening each section's menu in turn."""
    read_links = """() => Object.fromEntries(Array.from(document.querySelectorAll('a[href]'))
        .filter(a => a.href.startsWith(location.origin) && !a.getAttribute('href').startsWith('#'))
        .map(a => [a.innerText.trim().split('\\n').pop().trim(), a.href]))"""
    links = page.evaluate(read_links)
    sections = page.locator("[data-testid='stTopNavSection']")
    for index in range(sections.count()):
        sections.nth(index).click()
        links |= page.evaluate(read_links)
        page.keyboard.press("Escape")
    return links


def assert_no_live_markup(page, where: str) -> None:
    """No element carries an event handler or a javascript: link, and no inline script holds planted code."""
    assert page.locator("[onerror], [onload]:not(iframe), a[href^='javascript:' i]").count() == 0, where
    planted = page.evaluate("Array.from(document.scripts).filter(s => s.text.includes('alert(')).length")
    assert planted == 0, where


def test_a_stranger_sees_only_the_not_authorised_page(sign_in):
    from playwright.sync_api import expect

    page = sign_in(STRANGER)
    expect(page.get_by_role("heading", name="Not authorised")).to_be_visible()
    expect(page.get_by_text(f"You are signed in as {STRANGER}")).to_be_visible()
    assert nav_links(page) == {}
    assert page.locator("[data-testid='stDataFrame'], [data-testid='stMetric'], [data-testid='stTopNav']").count() == 0
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()  # the provider's own sign-out confirmation
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)


def test_a_viewer_sees_dashboards_but_no_admin_pages_or_controls(sign_in):
    from playwright.sync_api import expect

    admin_links = nav_links(sign_in(ADMIN))
    page = sign_in(VIEWER)
    expect(page.get_by_text(f"Signed in as {VIEWER} (viewer)")).to_be_visible()
    links = nav_links(page)
    assert {"Overview", "Search"} <= set(links) and not set(ADMIN_NAV) & set(links)
    assert page.get_by_role("button", name="Sync", exact=True).count() == 0
    for title in ADMIN_NAV:  # an admin page's address typed into the viewer's address bar
        page.goto(admin_links[title])
        wait_for_render(page)
        expect(page.get_by_text(f"Signed in as {VIEWER} (viewer)")).to_be_visible()
        expect(page.get_by_role("heading", name=title)).to_have_count(0)
        assert page.get_by_role("button", name="Sync", exact=True).count() == 0


def test_an_admin_gets_admin_pages_sync_and_an_audit_entry_for_the_sign_in(sign_in, signed_in_app):
    from playwright.sync_api import expect

    from trailstream.cache.audit import query_audit_log
    from trailstream.cache.store import open_cache_readonly

    page = sign_in(ADMIN)
    expect(page.get_by_text(f"Signed in as {ADMIN} (admin)")).to_be_visible()
    links = nav_links(page)
    assert set(ADMIN_NAV) <= set(links)
    expect(page.get_by_role("button", name="Sync", exact=True)).to_be_visible()
    page.goto(links["Audit log"])
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid='stDataFrame']")).to_be_visible()
    with open_cache_readonly(signed_in_app[1]) as conn:
        assert query_audit_log(conn, actor=ADMIN, action="sign_in").height >= 1


def test_planted_markup_in_events_never_becomes_live_html_on_any_page(sign_in):
    page = sign_in(ADMIN)
    links = nav_links(page)
    assert len(links) > len(ADMIN_NAV) + 3
    for title, link in links.items():
        page.goto(link)
        wait_for_render(page)
        assert_no_live_markup(page, title)


def listening_addresses(port: int) -> set[str]:
    """Local addresses of sockets listening on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_without_sign_in_the_app_listens_only_on_loopback_and_says_so(tmp_path, browser):
    from playwright.sync_api import expect

    (tmp_path / "trailstream.toml").write_text("")
    build_demo_cache(tmp_path / "trailstream.db")
    with streamlit_app(tmp_path / "trailstream.db", tmp_path / "trailstream.toml") as url:
        assert listening_addresses(int(url.rsplit(":", 1)[1])) == {"0100007F"}  # 127.0.0.1, nothing else
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        expect(page.get_by_text("Sign-in is off")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("button", name="Sync", exact=True)).to_be_visible()
        context.close()
