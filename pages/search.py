"""Search: events by name, user, resource, IP, access key, error code or any text, like CloudTrail's Event history;
the same named queries on the cache or on the lake."""

import streamlit as st

from trailstream.analytics import transforms
from trailstream.app import forms, state, widgets

event_filter = widgets.page_start("Search", "Every field is optional; the search and the sidebar filters are kept in "
                                  "the URL, so you can share what you found.")
RECENT = 100

search = forms.search_form()
events = state.backend()
if search.is_empty():  # like the console's Event history: the latest events at once
    st.subheader("Recent events")
    st.caption(f"The newest {RECENT} events of the period; fill any field above to narrow them.")
    recent = events.query("events", event_filter, limit=RECENT)
    if not widgets.no_matches(recent):
        widgets.raw_event_viewer(recent, "recent-events", "recent-events")
    st.stop()
results = events.query("search", event_filter, search=search, limit=forms.SEARCH_LIMIT)
if widgets.no_matches(results, searched=True):
    st.stop()
total = (events.query("search_count", event_filter, search=search).item() if results.height >= forms.SEARCH_LIMIT
         else results.height)
widgets.metrics(transforms.event_counts(results) | {"Events": total})
if total > results.height:
    st.caption(f"Showing the newest {results.height:,} of {total:,} matches (the other counts are theirs); "
               "narrow the search or the period, or download them all below.")
    if st.toggle(f"Prepare all {total:,} matches for download", key="search-all"):
        widgets.download_table(events.query("search", event_filter, search=search, limit=None), "search-all")
widgets.raw_event_viewer(results, "search-results", "search-results")
forms.save_search_form("search", "Save this search", "Period when re-run", search=search, event_filter=event_filter)
