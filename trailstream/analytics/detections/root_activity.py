"""Use of the root user (failed root sign-ins excluded), one finding per session of calls close together."""

from __future__ import annotations

from trailstream import catalog
from trailstream.analytics.detections.common import Finding, iso, listing, make_finding, plural, text
from trailstream.analytics.detections.events import episode, episode_summary, from_source, security_rows
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.filters import EventFilter

FINDING_TYPE = "root_activity"
SETTINGS = ("root_session_gap_minutes",)  # default: calls within 60 minutes of each other are one session
_FAILED_SIGN_IN = (
    f"e.event_name = '{catalog.CONSOLE_LOGIN_EVENT}' AND (e.error_message IS NOT NULL "
    "OR json_extract(e.response_elements, '$.ConsoleLogin') = 'Failure')"
)
_ROOT_CALLS = (
    "e.principal = 'root' AND e.user_type = 'Root' AND COALESCE(e.event_type, '') != 'AwsServiceEvent' "
    f"AND COALESCE(e.source_ip, '') NOT LIKE '%{catalog.AWS_SERVICE_SOURCE_SUFFIX}' AND NOT ({_FAILED_SIGN_IN})"
)


def query_root_calls(conn, event_filter: EventFilter | None = None):
    """The security columns of the root user's own calls the cache holds (failed root sign-ins excluded)."""
    return security_rows(conn, event_filter, _ROOT_CALLS, [])


def detect_root_activity(conn, event_filter: EventFilter | None = None,
                         settings: DetectionSettings | None = None) -> list[Finding]:
    """Root calls grouped into sessions (gaps under root_session_gap_minutes), newest first."""
    settings = settings or DetectionSettings()
    calls = from_source(conn, "security_root_calls", query_root_calls, event_filter).drop_nulls("event_time")
    sessions = (
        calls.lazy()
        .sort("account_id", "event_time", "event_id")  # ties in event ID order: the same session from either store
        .with_columns(session=episode(["account_id"], settings.window("root_session_gap")))
        .group_by("account_id", "session")
        .agg(*episode_summary(calls))
        .sort("last_time", descending=True)
        .collect()
    )
    return [
        make_finding(
            FINDING_TYPE, session["last_time"], {"principal": "root", "account_id": session["account_id"]},
            f"The root user of account {text(session['account_id'], '(unknown)')} made "
            f"{plural(session['events'], 'call')} ({listing(session['event_names'])}) from "
            f"{listing(session['source_ips']) or 'an unknown address'}.",
            session["event_ids"],
            {"events": session["events"], "first_time": iso(session["first_time"]), "ips": session["source_ips"],
             "event_names": session["event_names"]},
        )
        for session in sessions.iter_rows(named=True)
    ]
