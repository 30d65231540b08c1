"""The integrity badge on raw records: an event from a log file CloudTrail's digests do not vouch for says so."""

from __future__ import annotations

import streamlit as st

from trailstream.analytics import integrity
from trailstream.app import state


def integrity_badge(event_id: str) -> None:
    """A caption when the event's log file is verified, a warning naming why when it is not."""
    verdict, reason = state.load(integrity.query_event_integrity, event_id)
    if verdict == "verified":
        st.caption(":material/verified: Log file verified against CloudTrail's signed digest.")
    elif verdict in ("not verified", "unknown"):
        st.caption(f":material/gpp_maybe: Not verified: {reason}.")
    else:
        st.warning(f"Not verified ({verdict}): {reason}. See Integrity & coverage.", icon=":material/gpp_bad:")
