"""Search: events by name, user, resource, IP, access key, error code or any text, like CloudTrail's Event history."""

import streamlit as st

from trailstream.analytics import queries, transforms
from trailstream.app import forms, state, widgets

event_filter = widgets.page_start("Search", "Every field is optional; the search and the sidebar filters are kept in "
                                  "the URL, so you can share what you found.")
search = forms.search_form()
if search.is_empty():
    st.info("Type something to look for: an event name, a user, a resource ID, an IP, or any text.",
            icon=":material/search:")
    st.stop()
results = state.load(queries.query_search, event_filter, search, forms.SEARCH_LIMIT)
if widgets.no_matches(results, searched=True):
    st.stop()
widgets.metrics(transforms.event_counts(results))
if results.height >= forms.SEARCH_LIMIT:
    st.caption(f"Showing the newest {forms.SEARCH_LIMIT:,} matches: narrow the search or the period to see older ones.")
widgets.raw_event_viewer(results, "search-results", "search-results")
forms.save_search_form("search", "Save this search", "Period when re-run", search=search, event_filter=event_filter)
