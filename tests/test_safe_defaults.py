"""Safe defaults: loopback-only without sign-in, XSRF on, bounded uploads, and refusal to serve data remotely."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from trailstream.auth import missing_auth_settings

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"


def test_streamlit_serves_only_on_loopback_with_xsrf_on_and_uploads_bounded():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "127.0.0.1"
    assert server.get("enableXsrfProtection", True) is True
    assert 0 < server["maxUploadSize"] <= 200


def test_the_real_secrets_file_is_ignored_and_the_example_documents_every_auth_setting():
    assert ".streamlit/secrets.toml" in (ROOT / ".gitignore").read_text().splitlines()
    example = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text())
    assert missing_auth_settings(example["auth"]) == []


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    """An empty trailstream.toml and an empty cache path, so the app reads nothing of the developer's."""
    path = tmp_path / "trailstream.toml"
    path.write_text("")
    monkeypatch.setenv("TRAILSTREAM_CONFIG", str(path))
    monkeypatch.setenv("TRAILSTREAM_DB", str(tmp_path / "trailstream.db"))
    return path


def run_app(address: str) -> AppTest:
    """The real app, without [auth] (secrets hold only a placeholder), served as if on `address`."""
    if not APP.exists():
        pytest.skip("app.py is not there yet")
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["placeholder"] = "no [auth] section"
    at.user = {}
    with patch_config_options({"server.address": address}):
        return at.run()


def shown_text(at: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("markdown", "error", "warning", "info", "text", "title")
                     for element in getattr(at, kind))


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.20", ""])
def test_without_sign_in_a_remote_address_shows_no_data_and_says_what_to_do(settings_file, address):
    at = run_app(address)
    assert not at.exception
    assert len(at.error) == 1 and "shows no data" in at.error[0].value
    assert "allow_unauthenticated_remote" in at.error[0].value and "127.0.0.1" in at.error[0].value
    assert not at.dataframe and not at.get("arrow_vega_lite_chart") and not at.metric and not at.button


def test_without_sign_in_on_loopback_the_banner_says_so_and_the_local_user_is_admin(settings_file):
    at = run_app("127.0.0.1")
    assert not at.exception
    assert "Sign-in is off" in at.info[0].value and "127.0.0.1" in at.info[0].value
    assert not at.error


def test_remote_without_sign_in_needs_the_explicit_setting_and_then_warns_everyone(settings_file):
    settings_file.write_text("[access]\nallow_unauthenticated_remote = true\n")
    at = run_app("0.0.0.0")
    assert not at.exception
    assert any("anyone who can reach" in warning.value for warning in at.warning)
    assert "shows no data" not in shown_text(at)


def test_a_broken_access_section_fails_closed(settings_file):
    settings_file.write_text('[access]\nadmins = "nobody"\n')
    at = run_app("127.0.0.1")
    assert "cannot check who may enter" in at.error[0].value
    assert "not an e-mail address" in shown_text(at)
    assert not at.dataframe and not at.metric


# --- Event content is data, not markup ----------------------------------------------------------------------

# Proto fields Streamlit renders as Markdown or HTML: bodies of markdown/alerts/headings/html, labels and help.
# st.text, st.code and st.json show their body as typed, and a metric's value (its body) is plain text.
MARKUP_FIELDS = {"body", "label", "help", "tooltip"}
PLAIN_TEXT_KINDS = {"text", "code", "json"}
MARKUP_FIELDS_OF = {"metric": {"label", "help"}}


def hostile_values() -> list[str]:
    demo = pytest.importorskip("trailstream.ingest.demo", reason="the demo generator is not there yet")
    return sorted({text for case in demo.PLANTED["hostile_content"] for text in case["strings"]})


@pytest.fixture(scope="module")
def hostile_cache(tmp_path_factory):
    """A demo cache: its events carry the demo generator's planted markup in request parameters and names."""
    hostile = hostile_values()
    from trailstream.ingest import sync
    from trailstream.cache.store import open_cache_readonly

    path = tmp_path_factory.mktemp("hostile") / "trailstream.db"
    sync.import_demo(path, 3000, seed=3)
    with open_cache_readonly(path) as conn:
        stored = "\n".join(str(value) for row in conn.execute("SELECT * FROM events").fetchall() for value in row
                           if isinstance(value, str))
    assert all(value in stored for value in hostile), "the planted values did not reach the cache"
    return path


def markup_strings(message, fields=MARKUP_FIELDS) -> list[str]:
    """Every string in the given fields of a proto message (and nested ones): what Streamlit renders as markup."""
    found = []
    for field, value in message.ListFields():
        for item in value if field.is_repeated else [value]:
            if isinstance(item, str) and field.name in fields:
                found.append(item)
            elif hasattr(item, "ListFields"):
                found.extend(markup_strings(item, fields))
    return found


def rendered_markup(node) -> list[str]:
    """The markup-rendered strings of an AppTest element tree, plain-text elements left out."""
    kind = getattr(node, "type", "")
    found = []
    if getattr(node, "proto", None) is not None and kind not in PLAIN_TEXT_KINDS:
        found = markup_strings(node.proto, MARKUP_FIELDS_OF.get(kind, MARKUP_FIELDS))
    for child in getattr(node, "children", {}).values():
        found.extend(rendered_markup(child))
    return found


def every_page() -> list[str]:
    from tests.test_auth import ADMIN_PAGES, VIEWER_PAGES

    return VIEWER_PAGES + ADMIN_PAGES


@pytest.mark.parametrize("page", every_page())
def test_no_page_renders_event_content_as_markdown_or_html(hostile_cache, monkeypatch, tmp_path, page):
    settings = tmp_path / "trailstream.toml"
    settings.write_text("")
    monkeypatch.setenv("TRAILSTREAM_CONFIG", str(settings))
    monkeypatch.setenv("TRAILSTREAM_DB", str(hostile_cache))
    at = run_app("127.0.0.1")
    at.switch_page(page).run(timeout=120)
    assert not at.exception
    markup = rendered_markup(at._tree)
    assert markup, "nothing rendered"
    leaks = [(value, text) for value in hostile_values() for text in markup if value in text]
    assert not leaks, f"{page} renders event content as markup: {leaks[:3]}"
