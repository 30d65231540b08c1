"""The Streamlit side of access control: the gate app.py calls first, and the admin check admin pages call.

Facts come from Streamlit (st.secrets for [auth], server.address, st.user); the decision is auth.decide_access.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

import polars as pl

import streamlit as st
from streamlit import config as st_config

from trailstream.cache import audit
from trailstream.auth import (
    AccessDecision,
    AccessPolicy,
    AccessSettingsError,
    Identity,
    decide_access,
    missing_auth_settings,
    parse_access_policy,
)
from trailstream.config import load_settings
from trailstream.cache.store import CacheUnreadable, open_cache_readonly
from trailstream.timefmt import TIME_FORMAT

IDENTITY_KEY = "_trailstream_identity"
SIGNED_IN_KEY = "_trailstream_sign_in_recorded"
ACCESS_NOTE_KEY = "_trailstream_access_note"
_MARKDOWN_SPECIALS = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text: str) -> str:
    """Backslash-escape every ASCII punctuation mark so text from outside (a claim, a record) shows as typed."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def auth_configured() -> bool:
    """True when secrets.toml has an [auth] section; an incomplete one stops the app, naming what is missing."""
    try:
        section = st.secrets.get("auth") if st.secrets.load_if_toml_exists() else None
    except FileNotFoundError:
        return False
    if not section:
        return False
    missing = missing_auth_settings(section)
    if missing:
        stop_with(lambda: st.error(
            f"Sign-in is set up in .streamlit/secrets.toml, but its [auth] section lacks {', '.join(missing)}. "
            "Add them (see .streamlit/secrets.toml.example) and restart TrailStream.", icon=":material/block:"))
    return True


def stop_with(render) -> NoReturn:
    """End the run showing only `render`: a one-page navigation, so Streamlit never falls back to listing (and
    serving) the files in pages/ to someone the gate turned away."""
    def trailstream() -> None:
        render()

    st.navigation([st.Page(trailstream, title="TrailStream", default=True)], position="hidden").run()
    st.stop()


def load_access() -> tuple[AccessPolicy, str]:
    """The [access] policy and the cache path; read even when a source has problems (so Sources & settings stays
    reachable to fix it), but an unreadable file or a broken [access] stops the app: access fails closed."""
    settings = load_settings()
    try:
        if settings.errors and not settings.values:
            raise AccessSettingsError(settings.errors)
        return parse_access_policy(settings.values.get("access", {})), settings.db_path()
    except AccessSettingsError as exc:
        problems = exc.problems

    def settings_problems() -> None:
        st.error("TrailStream cannot check who may enter, so it shows nothing. Fix the settings file and reload:",
                 icon=":material/block:")
        for problem in problems:
            st.text(f"• {problem}")

    stop_with(settings_problems)


def gate() -> Identity:
    """Call first in app.py: returns who is here, or renders sign-in / refusal and stops the run for everyone else."""
    policy, db_path = load_access()
    decision = decide_access(
        policy,
        auth_configured=auth_configured(),
        server_address=st_config.get_option("server.address"),
        user=st.user.to_dict(),
        headers=dict(st.context.headers),
    )
    if decision.outcome != "enter":
        st.session_state.pop(IDENTITY_KEY, None)
        stop_with(lambda: _render_refusal(decision))
    identity = decision.identity
    st.session_state[IDENTITY_KEY] = identity
    if decision.banner_level == "warning" and decision.banner:  # others can see the data: everyone must read this
        st.warning(decision.banner, icon=":material/lock_open:")
    st.session_state[ACCESS_NOTE_KEY] = decision.banner if decision.banner_level == "info" else ""
    if identity.email:
        _record_sign_in_once(db_path, identity)
        with st.sidebar:
            st.caption(f"Signed in as {escape_markdown(identity.email)} ({identity.role})")
            if st.button("Sign out", key="_trailstream_sign_out"):
                st.logout()
    return identity


def access_note() -> None:
    """The gate's standing note (sign-in is off, this computer only) at the foot of the sidebar, not over every title."""
    note = st.session_state.get(ACCESS_NOTE_KEY)
    if note:
        st.sidebar.info(note, icon=":material/lock_open:")


def _render_refusal(decision: AccessDecision) -> None:
    if decision.outcome == "sign_in":
        st.title("TrailStream")
        st.write(decision.message)
        if st.button("Sign in", type="primary"):
            st.login()
        return
    st.title("Not authorised" if decision.outcome == "not_authorised" else "TrailStream shows no data")
    st.error(decision.text(escape_markdown), icon=":material/block:")
    if decision.outcome == "not_authorised" and st.button("Sign out"):
        st.logout()


def _record_sign_in_once(db_path: str, identity: Identity) -> None:
    """One audit entry per sign-in: the identity cookie's issue time tells a new sign-in from a new browser tab."""
    issued = st.user.to_dict().get("iat")
    marker = (identity.actor, issued)
    if st.session_state.get(SIGNED_IN_KEY) == marker:
        return
    at = datetime.fromtimestamp(issued, timezone.utc).strftime(TIME_FORMAT) if isinstance(issued, int) else None
    if _audit(db_path, identity.actor, "sign_in", {"name": identity.name, "signed_in_at": at}, unique=at is not None):
        st.session_state[SIGNED_IN_KEY] = marker


def record(action: str, detail: str | dict | None = None) -> None:
    """Audit an action by whoever is here: call it after a sync, a saved setting or alert rule, a retry."""
    _audit(load_settings().db_path(), current_identity().actor, action, detail)


def _audit(db_path: str, actor: str, action: str, detail, unique: bool = False) -> bool:
    """Write an audit entry; if the cache cannot take it, say so and carry on (the action itself already happened)."""
    try:
        audit.record_audit(db_path, actor, action, detail, unique=unique)
    except (sqlite3.Error, CacheUnreadable, OSError) as exc:
        st.warning(f"This was not written to the audit log: the cache at {escape_markdown(db_path)} refused it "
                   f"({escape_markdown(str(exc))}). Check the file is writable.", icon=":material/warning:")
        return False
    return True


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


def load_audit_log(action: str | None = None) -> pl.DataFrame:
    """The audit log as it is now (not cached: entries arrive between syncs); empty before the cache exists."""
    path = load_settings().db_path()
    if not Path(path).exists():
        return pl.DataFrame(schema=audit.AUDIT_SCHEMA)
    conn = open_cache_readonly(path)
    try:
        return audit.query_audit_log(conn, action=action)
    finally:
        conn.close()
