"""Access control: the allow-list and roles, the gate decision, the audit trail, and role checks on admin pages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from trailstream.cache import audit
from trailstream.auth import (
    ANONYMOUS_ACTOR,
    LOCAL_ACTOR,
    AccessPolicy,
    AccessSettingsError,
    decide_access,
    is_loopback,
    missing_auth_settings,
    parse_access_policy,
    visited_from_elsewhere,
)
from trailstream.cache.store import open_cache, open_cache_readonly

POLICY = parse_access_policy(
    {
        "allowed_emails": ["Viewer@Partner.org"],
        "allowed_domains": ["@example.com"],
        "admins": ["boss@elsewhere.net"],
    }
)


@pytest.mark.parametrize(
    "email, role",
    [
        ("boss@elsewhere.net", "admin"),
        ("BOSS@elsewhere.net", "admin"),
        ("viewer@partner.org", "viewer"),
        ("anyone@example.com", "viewer"),
        ("other@partner.org", None),
        ("mallory@evil.example.com", None),
        ("mallory@example.com.evil.net", None),
        ("example.com", None),
        ("", None),
        (None, None),
    ],
)
def test_roles_come_from_the_allow_list_and_admins(email, role):
    assert POLICY.role_for(email) == role


@pytest.mark.parametrize(
    "section, problem",
    [
        ({"admins": "boss"}, "not an e-mail address"),
        ({"allowed_domains": ["a@b.com"]}, "not a domain"),
        ({"allowed_emails": [1, 2]}, "must be a list of text values"),
        ({"allow_unauthenticated_remote": "yes"}, "must be true or false"),
        ({"admin": ["a@b.com"]}, 'unknown setting "admin"'),
    ],
)
def test_a_broken_access_section_is_refused_with_what_to_fix(section, problem):
    with pytest.raises(AccessSettingsError) as caught:
        parse_access_policy(section)
    assert any(problem in line for line in caught.value.problems)


def test_an_empty_access_section_lets_no_one_in_and_keeps_remote_off():
    policy = parse_access_policy({})
    assert policy == AccessPolicy()
    assert policy.role_for("someone@example.com") is None


@pytest.mark.parametrize(
    "address, loopback",
    [("127.0.0.1", True), ("127.0.0.5", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.com", False), ("", False), (None, False)],
)
def test_only_loopback_addresses_count_as_this_computer(address, loopback):
    assert is_loopback(address) is loopback


SIGNED_IN = {"is_logged_in": True, "name": "Boss", "email": "boss@elsewhere.net", "email_verified": True}


@pytest.mark.parametrize(
    "headers, elsewhere",
    [
        ({}, ""),
        ({"Host": "127.0.0.1:8501", "Origin": "http://127.0.0.1:8501"}, ""),
        ({"Host": "localhost:8501", "Origin": "http://localhost:8501"}, ""),
        ({"Host": "[::1]:8501"}, ""),
        ({"Host": "127.0.0.1:8501", "Origin": "https://trailstream.example.com"}, "https://trailstream.example.com"),
        ({"Host": "rebind.attacker.test:8501"}, "rebind.attacker.test:8501"),
        ({"Host": "127.0.0.1:8501", "X-Forwarded-For": "203.0.113.7"}, "a proxy (x-forwarded-for header)"),
        ({"forwarded": "for=203.0.113.7"}, "a proxy (forwarded header)"),
    ],
)
def test_a_visit_through_a_proxy_or_another_host_name_is_not_local(headers, elsewhere):
    assert visited_from_elsewhere(headers) == elsewhere


def test_without_sign_in_a_loopback_server_reached_through_a_proxy_shows_no_data():
    decision = decide_access(AccessPolicy(), auth_configured=False, server_address="127.0.0.1", user={},
                             headers={"Host": "127.0.0.1:8501", "Origin": "https://trailstream.example.com"})
    assert decision.outcome == "refuse_remote"
    assert "reached through https://trailstream.example.com" in decision.message


@pytest.mark.parametrize(
    "auth, address, remote_ok, user, outcome, role",
    [
        # Sign-in configured: the allow-list decides, wherever the app is served.
        (True, "0.0.0.0", False, {"is_logged_in": False}, "sign_in", None),
        (True, "0.0.0.0", False, {}, "sign_in", None),
        (True, "0.0.0.0", False, SIGNED_IN, "enter", "admin"),
        (True, "127.0.0.1", False, {"is_logged_in": True, "email": "x@example.com"}, "enter", "viewer"),
        (True, "0.0.0.0", False, {"is_logged_in": True, "email": "x@stranger.io"}, "not_authorised", None),
        (True, "0.0.0.0", False, {"is_logged_in": True, "name": "No Mail"}, "not_authorised", None),
        (True, "0.0.0.0", False, SIGNED_IN | {"email_verified": False}, "not_authorised", None),
        # No sign-in: loopback is the local admin; elsewhere only with the explicit opt-in, as a viewer.
        (False, "127.0.0.1", False, {}, "enter", "admin"),
        (False, "0.0.0.0", False, {}, "refuse_remote", None),
        (False, None, False, {}, "refuse_remote", None),
        (False, "10.0.0.4", True, {}, "enter", "viewer"),
    ],
)
def test_the_gate_decides_from_sign_in_address_and_allow_list(auth, address, remote_ok, user, outcome, role):
    policy = AccessPolicy(POLICY.allowed_emails, POLICY.allowed_domains, POLICY.admins, remote_ok)
    decision = decide_access(policy, auth_configured=auth, server_address=address, user=user)
    assert decision.outcome == outcome
    assert (decision.identity.role if decision.identity else None) == role
    if outcome != "enter":
        assert decision.message


def test_banners_say_why_sign_in_is_off_and_warn_remote_visitors():
    local = decide_access(AccessPolicy(), auth_configured=False, server_address="127.0.0.1", user={})
    assert local.identity.actor == LOCAL_ACTOR and local.banner_level == "info" and "README" in local.banner
    remote = decide_access(
        AccessPolicy(allow_unauthenticated_remote=True), auth_configured=False, server_address="0.0.0.0", user={}
    )
    assert remote.identity.actor == ANONYMOUS_ACTOR and remote.banner_level == "warning" and "anyone" in remote.banner
    refused = decide_access(AccessPolicy(), auth_configured=False, server_address="0.0.0.0", user={})
    assert "allow_unauthenticated_remote" in refused.message and "[auth]" in refused.message
    stranger = decide_access(
        POLICY, auth_configured=True, server_address="0.0.0.0", user={"is_logged_in": True, "email": "x@y.io"}
    )
    assert "x@y.io" in stranger.text() and "[access]" in stranger.message
    assert stranger.text(lambda account: account.upper()).startswith("You are signed in as X@Y.IO,")


def test_an_auth_section_lacking_provider_settings_is_reported():
    assert missing_auth_settings({"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "client_id": ""}) == [
        "cookie_secret", "client_id", "client_secret", "server_metadata_url"]


def test_audit_entries_are_kept_newest_first_without_secrets(db_path):
    audit.record_audit(db_path, "boss@elsewhere.net", "sign_in", {"name": "Boss"})
    audit.record_audit(db_path, "boss@elsewhere.net", "setting_changed", {"source": "prod", "client_secret": "s3cr3t"})
    audit.record_audit(db_path, "local user", "sync", "prod: 3 files, 120 new events")
    with open_cache_readonly(db_path) as conn:
        entries = audit.query_audit_log(conn)
        assert entries["action"].to_list() == ["Synced", "Changed a setting", "Signed in"]
        assert "s3cr3t" not in entries["detail"][1] and '"source":"prod"' in entries["detail"][1]
        assert audit.query_audit_log(conn, actor="local user")["actor"].to_list() == ["local user"]
        assert audit.query_audit_log(conn, action="sign_in")["action"].to_list() == ["Signed in"]
        assert entries["at"].str.ends_with("Z").all()


def test_a_sign_in_is_recorded_once_however_many_tabs_open(db_path):
    for _ in range(3):
        audit.record_audit(db_path, "boss@corp.test", "sign_in", {"signed_in_at": "2023-11-14T22:13:20Z"}, unique=True)
    audit.record_audit(db_path, "boss@corp.test", "sign_in", {"signed_in_at": "2023-11-15T00:59:59Z"}, unique=True)
    with open_cache_readonly(db_path) as conn:
        assert audit.query_audit_log(conn).height == 2


def test_unknown_audit_actions_are_refused(db_path):
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record_audit(db_path, "someone", "deleted_everything", None)


def test_a_cache_that_never_recorded_anything_has_an_empty_audit_log(db_path):
    open_cache(db_path).close()
    with open_cache_readonly(db_path) as conn:
        assert audit.query_audit_log(conn).is_empty()


# --- Role checks on the real pages (AppTest: st.user is set by the test, [auth] by at.secrets) ---------------

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret-that-is-long-enough",
    "client_id": "trailstream-test",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
ADMIN, VIEWER, STRANGER = "boss@corp.test", "analyst@corp.test", "mallory@elsewhere.test"


def app_pages() -> tuple[list[str], list[str]]:
    """(viewer pages, admin pages) as app.py lists them in PAGES and ADMIN_SECTIONS."""
    if not APP.exists():
        pytest.skip("app.py is not there yet")
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(APP.read_text()).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("PAGES", "ADMIN_SECTIONS")
    }
    pages, admin_sections = values["PAGES"], values["ADMIN_SECTIONS"]
    admin = [spec[0] for section in admin_sections for spec in pages.get(section, [])]
    viewer = [spec[0] for section, specs in pages.items() if section not in admin_sections for spec in specs]
    return viewer, admin


VIEWER_PAGES, ADMIN_PAGES = app_pages() if APP.exists() else ([], [])


@pytest.fixture
def access_settings(tmp_path, monkeypatch):
    """An allow-list (one admin, one domain of viewers) and an existing empty cache, so no demo data is built."""
    settings = tmp_path / "trailstream.toml"
    settings.write_text(f'[access]\nadmins = ["{ADMIN}"]\nallowed_domains = ["corp.test"]\n')
    monkeypatch.setenv("TRAILSTREAM_CONFIG", str(settings))
    monkeypatch.setenv("TRAILSTREAM_DB", str(tmp_path / "trailstream.db"))
    open_cache(tmp_path / "trailstream.db").close()
    return tmp_path / "trailstream.db"


def signed_in_as(email: str, script: Path = APP) -> AppTest:
    at = AppTest.from_file(script, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": email, "email_verified": True, "name": email.split("@")[0],
               "iat": 1_700_000_000}
    return at


def test_admin_pages_are_listed_in_app_py():
    assert "pages/audit.py" in ADMIN_PAGES and "pages/sources.py" in ADMIN_PAGES


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_an_admin_page_opened_directly_refuses_a_viewer(access_settings, page):
    at = signed_in_as(VIEWER, ROOT / page).run()
    assert not at.exception
    assert [title.value for title in at.title] == ["Admins only"]
    assert VIEWER.replace(".", "\\.").replace("@", "\\@") in at.error[0].value
    assert not at.dataframe and not at.main.button


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_an_admin_page_opened_directly_refuses_a_stranger(access_settings, page):
    at = signed_in_as(STRANGER, ROOT / page).run()
    assert [title.value for title in at.title] == ["Not authorised"]
    assert not at.dataframe


@pytest.mark.parametrize("page", VIEWER_PAGES[:1] + ADMIN_PAGES[:1])
def test_a_stranger_cannot_reach_any_page_of_the_app(access_settings, page):
    """The refusal is the only registered page: Streamlit must not fall back to serving the files in pages/."""
    at = signed_in_as(STRANGER).run()
    assert [title.value for title in at.title] == ["Not authorised"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(page)


@pytest.mark.parametrize("email, page", [(ADMIN, page) for page in ADMIN_PAGES + VIEWER_PAGES]
                         + [(VIEWER, page) for page in VIEWER_PAGES])
def test_each_role_opens_every_page_it_is_offered_and_only_admins_see_sync(access_settings, email, page):
    at = signed_in_as(email).run()
    at.switch_page(page).run()
    assert not at.exception
    assert "Admins only" not in [title.value for title in at.title]
    assert ("Sync" in [button.label for button in at.sidebar.button]) == (email == ADMIN)


def test_a_viewer_cannot_navigate_to_an_admin_page(access_settings):
    at = signed_in_as(VIEWER).run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(ADMIN_PAGES[0])


def test_an_admin_has_the_sync_button_and_sign_out(access_settings):
    at = signed_in_as(ADMIN).run()
    labels = [button.label for button in at.sidebar.button]
    assert "Sync" in labels and "Sign out" in labels


def test_signing_in_is_recorded_once_and_shown_on_the_audit_log(access_settings):
    at = signed_in_as(ADMIN).run()
    at.run()
    at.switch_page("pages/audit.py").run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert shown["actor"].to_list() == [ADMIN] and shown["action"].to_list() == ["Signed in"]
