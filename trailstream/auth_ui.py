"""The Streamlit side of access control: the gate app.py calls first, and the admin check admin pages call.

Facts come from Streamlit (st.secrets for [auth], server.address, st.user); the decision is auth.decide_access.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import streamlit as st
from streamlit import config as st_config

from trailstream import audit
from trailstream.auth import (
    AccessDecision,
    AccessPolicy,
    AccessSettingsError,
    Identity,
    decide_access,
    parse_access_policy,
)
from trailstream.config import SettingsError, load_settings

IDENTITY_KEY = "_trailstream_identity"
SIGNED_IN_KEY = "_trailstream_sign_in_recorded"
REQUIRED_AUTH_KEYS = ("redirect_uri", "cookie_secret")
_MARKDOWN_SPECIALS = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text: str) -> str:
    """Backslash-escape every ASCII punctuation mark so text from outside (a claim, a record) shows as typed."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def auth_configured() -> bool:
    """True when .streamlit/secrets.toml has an [auth] section, i.e. st.login can run."""
    try:
        section = st.secrets.get("auth") if st.secrets.load_if_toml_exists() else None
    except FileNotFoundError:
        return False
    return bool(section) and all(section.get(key) for key in REQUIRED_AUTH_KEYS)


def load_access() -> tuple[AccessPolicy, str]:
    """The [access] policy and the cache path from trailstream.toml; a broken file stops the app, failing closed."""
    try:
        settings = load_settings()
        return parse_access_policy(settings.section("access")), settings.db_path()
    except (SettingsError, AccessSettingsError) as exc:
        st.error("TrailStream cannot check who may enter, so it shows nothing. Fix trailstream.toml and reload:")
        for problem in getattr(exc, "problems", [str(exc)]):
            st.text(f"• {problem}")
        st.stop()


def gate() -> Identity:
    """Call first in app.py: returns who is here, or renders sign-in / refusal and stops the run for everyone else."""
    policy, db_path = load_access()
    decision = decide_access(
        policy,
        auth_configured=auth_configured(),
        server_address=st_config.get_option("server.address"),
        user=st.user.to_dict(),
    )
    if decision.outcome != "enter":
        st.session_state.pop(IDENTITY_KEY, None)
        _render_refusal(decision)
        st.stop()
    identity = decision.identity
    st.session_state[IDENTITY_KEY] = identity
    if decision.banner:
        (st.warning if decision.banner_level == "warning" else st.info)(decision.banner, icon=":material/lock_open:")
    if identity.email:
        _record_sign_in_once(db_path, identity)
        with st.sidebar:
            st.caption(f"Signed in as {escape_markdown(identity.email)} ({identity.role})")
            if st.button("Sign out", key="_trailstream_sign_out"):
                st.logout()
    return identity


def _render_refusal(decision: AccessDecision) -> None:
    if decision.outcome == "sign_in":
        st.title("TrailStream")
        st.write(decision.message)
        if st.button("Sign in", type="primary"):
            st.login()
        return
    st.title("Not authorised" if decision.outcome == "not_authorised" else "TrailStream shows no data")
    st.error(escape_markdown(decision.message), icon=":material/block:")
    if decision.outcome == "not_authorised" and st.button("Sign out"):
        st.logout()


def _record_sign_in_once(db_path: str, identity: Identity) -> None:
    """One audit entry per sign-in: the identity cookie's issue time tells a new sign-in from a new browser tab."""
    issued = st.user.to_dict().get("iat")
    marker = (identity.actor, issued)
    if st.session_state.get(SIGNED_IN_KEY) == marker:
        return
    signed_in_at = datetime.fromtimestamp(issued, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(issued, (int, float)) else None
    audit.record_audit(db_path, identity.actor, "sign_in", {"name": identity.name, "signed_in_at": signed_in_at},
                       unique=issued is not None)
    st.session_state[SIGNED_IN_KEY] = marker


def current_identity() -> Identity:
    """Who is here, as decided by this run's gate (runs the gate itself if a page is reached without it)."""
    identity = st.session_state.get(IDENTITY_KEY)
    return identity if isinstance(identity, Identity) else gate()


def is_admin() -> bool:
    """For hiding admin controls (the sidebar Sync button, retry buttons) from viewers."""
    return current_identity().is_admin


def require_admin() -> Identity:
    """First line of every admin page: a viewer who opens it by URL sees a refusal and nothing else."""
    identity = current_identity()
    if not identity.is_admin:
        st.title("Admins only")
        st.error(
            f"This page is for TrailStream admins and you are a viewer ({escape_markdown(identity.actor)}). "
            "Ask an admin to add you to admins under [access] in trailstream.toml if you need it.",
            icon=":material/block:",
        )
        st.stop()
    return identity
