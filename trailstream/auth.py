"""Who may enter and with which role: the [access] allow-list and the gate decision, pure so pytest can table it.

The Streamlit side (st.login, st.user, st.logout, banners) lives in auth_ui.py and only feeds this module facts:
whether sign-in is configured, the server address, and the signed-in user's claims.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "viewer"]
Outcome = Literal["enter", "sign_in", "not_authorised", "refuse_remote"]

LOCAL_ACTOR = "local user"
ANONYMOUS_ACTOR = "anonymous visitor"
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
# A browser request carrying any of these came through a proxy, whatever address the server listens on.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
ACCESS_KEYS = {"allowed_emails", "allowed_domains", "admins", "allow_unauthenticated_remote"}


class AccessSettingsError(ValueError):
    """The [access] section cannot be used; `problems` lists each thing to fix, for people."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("[access] in trailstream.toml: " + "; ".join(problems))


@dataclass(frozen=True)
class AccessPolicy:
    """The [access] section: who may sign in (addresses and/or domains), who is admin, and the remote opt-out."""

    allowed_emails: frozenset[str] = frozenset()
    allowed_domains: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    allow_unauthenticated_remote: bool = False

    def role_for(self, email: str | None) -> Role | None:
        """admin if named in admins, viewer if the address or its domain is allowed, else None (a stranger)."""
        address = _normal_email(email)
        local, at, domain = address.rpartition("@")
        if not (local and at and domain):
            return None
        if address in self.admins:
            return "admin"
        if address in self.allowed_emails or domain in self.allowed_domains:
            return "viewer"
        return None


@dataclass(frozen=True)
class Identity:
    """The person using this session: `actor` is what the audit log records."""

    actor: str
    role: Role
    name: str = ""
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class AccessDecision:
    """What the gate does: let in (`identity`, maybe with a `banner`), ask to sign in, or refuse with `message`."""

    outcome: Outcome
    identity: Identity | None = None
    banner: str = ""
    banner_level: Literal["info", "warning"] = "info"
    message: str = ""  # may hold "{account}": the claimed e-mail, which the UI escapes before showing
    account: str = ""

    def text(self, escape=str) -> str:
        return self.message.replace("{account}", escape(self.account))


def parse_access_policy(section: Mapping) -> AccessPolicy:
    """The [access] table -> AccessPolicy; addresses and domains compared in lower case, domains without '@'."""
    if not isinstance(section, Mapping):
        raise AccessSettingsError(["[access] must be a table: a line [access] followed by its settings"])
    problems = [f'unknown setting "{key}"; known settings: {", ".join(sorted(ACCESS_KEYS))}'
                for key in section if key not in ACCESS_KEYS]
    lists = {}
    for key in ("allowed_emails", "allowed_domains", "admins"):
        value = section.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            problems.append(f'"{key}" must be a list of text values, like {key} = ["a@example.com"]')
            value = []
        lists[key] = value
    emails = {_normal_email(item) for item in lists["allowed_emails"]} - {""}
    admins = {_normal_email(item) for item in lists["admins"]} - {""}
    domains = {item.strip().lower().lstrip("@") for item in lists["allowed_domains"]} - {""}
    problems.extend(f'"{item}" in allowed_emails or admins is not an e-mail address; write it as name@example.com'
                    for item in sorted(emails | admins) if "@" not in item)
    problems.extend(f'"{item}" in allowed_domains is not a domain; write it as example.com'
                    for item in sorted(domains) if "@" in item or "." not in item)
    remote = section.get("allow_unauthenticated_remote", False)
    if not isinstance(remote, bool):
        problems.append('"allow_unauthenticated_remote" must be true or false, without quotes')
        remote = False
    if problems:
        raise AccessSettingsError(problems)
    return AccessPolicy(frozenset(emails), frozenset(domains), frozenset(admins), remote)


def missing_auth_settings(section: Mapping) -> list[str]:
    """The [auth] keys st.login() needs for its default provider that the secrets file leaves out or empty."""
    return [key for key in AUTH_KEYS if not section.get(key)]


def is_loopback(address: str | None) -> bool:
    """True when the server listens only on this computer; an unset address means every interface."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def visited_from_elsewhere(headers: Mapping[str, str]) -> str:
    """'' for a visit from this computer; else what gives it away: a proxy header, or the Host/Origin it used
    (a reverse proxy or a DNS-rebinding page reaches a loopback server under another name)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    proxied = [name for name in FORWARDING_HEADERS if name in lowered]
    if proxied:
        return f"a proxy ({proxied[0]} header)"
    for name in ("origin", "host"):
        value = lowered.get(name)
        if value and not is_loopback(urlsplit(value if "//" in value else f"//{value}").hostname):
            return value
    return ""


def decide_access(
    policy: AccessPolicy, *, auth_configured: bool, server_address: str | None, user: Mapping,
    headers: Mapping[str, str] | None = None,
) -> AccessDecision:
    """The whole gate: sign-in configured -> allow-list and roles; otherwise a local visit to a loopback server is
    the admin, a remote one needs the explicit opt-in (as a viewer), else refuse."""
    if auth_configured:
        return _decide_signed_in(policy, user)
    elsewhere = visited_from_elsewhere(headers or {})
    where = server_address or "every network interface"
    if elsewhere:
        where += f", reached through {elsewhere}"
    if is_loopback(server_address) and not elsewhere:
        return AccessDecision(
            "enter",
            Identity(LOCAL_ACTOR, "admin"),
            banner=f"Sign-in is off, so TrailStream is served only on this computer ({where}) and you are an admin. "
            "Before sharing it, turn on sign-in: see “Sign-in and access” in the README.",
        )
    if policy.allow_unauthenticated_remote:
        return AccessDecision(
            "enter",
            Identity(ANONYMOUS_ACTOR, "viewer"),
            banner=f"Sign-in is off and TrailStream is served on {where}: anyone who can reach this address sees "
            "these CloudTrail records. Turn on sign-in ([auth] in .streamlit/secrets.toml, see the README) "
            "or remove allow_unauthenticated_remote from trailstream.toml.",
            banner_level="warning",
        )
    return AccessDecision(
        "refuse_remote",
        message=f"TrailStream is served on {where} without sign-in, so it shows no data. "
        "Do one of these, then restart it: turn on sign-in with an [auth] section in .streamlit/secrets.toml "
        "(see “Sign-in and access” in the README); or serve only on this computer with "
        'server.address = "127.0.0.1" in .streamlit/config.toml; or, on a network you trust, '
        "set allow_unauthenticated_remote = true under [access] in trailstream.toml.",
    )


def _decide_signed_in(policy: AccessPolicy, user: Mapping) -> AccessDecision:
    if not user.get("is_logged_in"):
        return AccessDecision("sign_in", message="Sign in with your organisation's account to see TrailStream.")
    email = user.get("email") if isinstance(user.get("email"), str) else None
    name = str(user.get("name") or email or "")
    if not email:
        return AccessDecision(
            "not_authorised",
            message="Your sign-in did not include an e-mail address, so TrailStream cannot check its allow-list. "
            "Ask whoever runs the identity provider to release the “email” claim, then sign in again.",
        )
    if user.get("email_verified") is False:
        return AccessDecision(
            "not_authorised",
            message="Your identity provider has not verified {account}, so TrailStream does not trust it. "
            "Verify the address with your provider, then sign in again.",
            account=email,
        )
    role = policy.role_for(email)
    if role is None:
        return AccessDecision(
            "not_authorised",
            message="You are signed in as {account}, which is not allowed to use TrailStream. Ask a TrailStream admin "
            "to add your address or domain under [access] in trailstream.toml, or sign out and use another account.",
            account=email,
        )
    return AccessDecision("enter", Identity(_normal_email(email), role, name=name, email=email))


def _normal_email(email: str | None) -> str:
    return (email or "").strip().lower()
