"""Search: events by name, user, resource, IP, access key, error code or any text, like CloudTrail's Event history."""

import streamlit as st

from trailstream.analytics import queries, transforms
from trailstream.app import forms, state, widgets

event_filter = widgets.page_start("Search", "Every field is optional; the search and the sidebar filters are kept in "
                                  "the URL, so you can share what you found.")
RECENT = 100

search = forms.search_form()
if search.is_empty():  # like the console's Event history: the latest events at once
    st.subheader("Recent events")
    st.caption(f"The newest {RECENT} events of the period; fill any field above to narrow them.")
    recent = state.load(queries.query_events, event_filter, limit=RECENT)
    if not widgets.no_matches(recent):
        widgets.raw_event_viewer(recent, "recent-events", "recent-events")
    st.stop()
results = state.load(queries.query_search, event_filter, search, forms.SEARCH_LIMIT)
if widgets.no_matches(results, searched=True):
    st.stop()
total = (state.load(queries.query_search_count, event_filter, search) if results.height >= forms.SEARCH_LIMIT
         else results.height)
widgets.metrics(transforms.event_counts(results) | {"Events": total})
if total > results.height:
    st.caption(f"Showing the newest {results.height:,} of {total:,} matches (the other counts are theirs); "
               "narrow the search or the period, or download them all below.")
    if st.toggle(f"Prepare all {total:,} matches for download", key="search-all"):
        widgets.download_table(state.load(queries.query_search, event_filter, search, None), "search-all")
widgets.raw_event_viewer(results, "search-results", "search-results")
forms.save_search_form("search", "Save this search", "Period when re-run", search=search, event_filter=event_filter)
