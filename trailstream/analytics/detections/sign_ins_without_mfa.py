"""Successful console sign-ins of IAM users and root without MFA (federated users prove MFA at their provider)."""

from __future__ import annotations

import polars as pl

from trailstream import catalog
from trailstream.analytics.detections.common import Finding, make_finding, text
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.analytics.detections.sign_ins import SUCCESS, query_sign_ins, where_from
from trailstream.filters import EventFilter

FINDING_TYPE = "console_login_without_mfa"
SETTINGS = ()  # every such sign-in counts; root's is escalated


def detect_sign_ins_without_mfa(conn, event_filter: EventFilter | None = None,
                                settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per sign-in without MFA by an identity that should use it (root's one severity higher)."""
    sign_ins = query_sign_ins(conn, event_filter, settings)
    should_use_mfa = pl.col("user_type").is_in(catalog.MFA_SIGN_IN_USER_TYPES).fill_null(False)
    without_mfa = sign_ins.filter((SUCCESS & ~pl.col("mfa_used") & should_use_mfa).fill_null(False))
    return [
        make_finding(
            FINDING_TYPE, sign_in["event_time"], sign_in,
            f"{text(sign_in['principal'], 'Someone')} signed in to the console without MFA from {where_from(sign_in)}.",
            [sign_in["event_id"]],
            {"ips": [sign_in["source_ip"]], "countries": [sign_in["country_code"]] if sign_in["country_code"] else [],
             "place": sign_in["place"], "asn": sign_in["asn"], "mfa_used": sign_in["mfa_used"],
             "user_type": sign_in["user_type"]},
            escalate=bool(sign_in["is_root"]),
        )
        for sign_in in without_mfa.iter_rows(named=True)
    ]
