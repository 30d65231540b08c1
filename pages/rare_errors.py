"""Rare errors: error codes ranked rarest first, because the unusual failure is the one worth a look."""

import streamlit as st

from trailstream.analytics import charts, transforms
from trailstream.app import state, widgets

event_filter = widgets.page_start("Rare errors", "Failed calls grouped by service, API and error code, rarest first; "
                                  "'new' means never seen before this period.")
events = state.backend()
counts = events.query("error_counts", event_filter)
if widgets.no_matches(counts, "failed calls"):
    st.stop()
ranked = transforms.rank_rare_errors(counts, events.query("error_first_seen", event_filter),
                                     widgets.period_start(event_filter))
widgets.metrics({"Failed calls": transforms.column_total(ranked, "events"), "Distinct errors": ranked.height,
                 "New this period": transforms.count_equal(ranked, "trend", "new"),
                 "Rising": transforms.count_equal(ranked, "trend", "rising")})
widgets.show_chart(charts.rare_errors_chart(ranked), ranked, "rare-errors")

st.subheader("Errors, rarest first")
st.caption("Select an error to see the calls behind it.")
row = widgets.table(ranked, "rare-errors-table", select=True, download="rare-errors")
if row is not None:
    chosen = ranked.row(row, named=True)
    st.subheader("Calls with this error")
    st.text(f"{chosen['event_source']} · {chosen['event_name']} · {chosen['error_code']}")
    calls = events.query("error_events", event_filter, error_code=chosen["error_code"],
                         event_source=chosen["event_source"], event_name=chosen["event_name"])
    widgets.raw_event_viewer(calls, "rare-error-calls", "rare-error-calls")
