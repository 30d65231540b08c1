"""Sign-ins: console sign-ins with outcome, MFA and place, and activity from places too far apart on a map."""

import streamlit as st

from trailstream.analytics import charts, detections, queries, security_queries
from trailstream.app import state, widgets

SIGN_IN_COLUMNS = ("event_time", "principal", "outcome", "mfa_used", "is_root", "source_ip", "place", "asn",
                   "new_country", "new_ip", "account_id", "user_type", "error_message", "user_agent")
TRAVEL_COLUMNS = ("time", "principal", "account_id", "events", "summary")

event_filter = widgets.page_start(
    "Sign-ins", "Console sign-ins: successes and failures, MFA, root, first sign-ins from a "
                "new country or address, and activity from places too far apart for the time between.")
settings, problems = detections.usable_detection_settings(state.settings())
for problem in problems:
    st.warning(f"Detection settings: {widgets.plain(problem)}", icon=":material/warning:")

sign_ins = state.load_on_store(detections.query_sign_ins, event_filter, settings)
if not widgets.no_matches(sign_ins, "console sign-ins"):
    widgets.metrics(detections.sign_in_counts(sign_ins),
                    {"New country": "First successful sign-in of a principal from a country it never signed in from.",
                "Without MFA": "Successful sign-ins without MFA, federated ones included (their MFA happens at the "
                               "identity provider, so only IAM users and root become findings)."})
    every = queries.BUCKETS[state.load(queries.pick_bucket, event_filter)][1]
    timeline = detections.count_over_time(sign_ins, every, "outcome")
    widgets.show_chart(charts.timeline_chart(timeline, "outcome", title="Sign-ins over time",
                                             period=widgets.period(event_filter)), timeline, "sign-ins-over-time")
    places = detections.breakdown(sign_ins, "place")
    widgets.show_chart(charts.top_n_bar_chart(places, "place", title="Sign-ins by place"), places, "sign-ins-by-place")
    st.subheader("Sign-ins, newest first")
    widgets.raw_event_viewer(sign_ins, "sign-ins", "sign-ins", SIGN_IN_COLUMNS)

st.subheader("Impossible travel")
st.caption(f"One finding per principal and day of hops: consecutive calls from places more than "
           f"{settings.min_travel_distance_km:,.0f} km apart, faster than {settings.max_travel_speed_kmh:,.0f} km/h; "
           f"or, where only countries are known, two countries within {settings.country_change_window_minutes} "
           "minutes. AWS-internal and private addresses are not places.")
travel, routes, note = state.load_on_store(security_queries.query_security_travel, event_filter, settings)
if note:
    st.caption(widgets.plain(f"Computed now: {note}."))
if not travel and widgets.period_has_events(event_filter):
    st.success("No principal acted from places too far apart in this period.", icon=":material/verified_user:")
elif not travel:  # no events, so no verdict: never a green check over no data
    st.caption("Nothing to judge: no event in the period.")
else:
    drawn = charts.drawable_routes(routes)
    if drawn.is_empty():
        st.info("The map cannot be drawn: none of these places has known coordinates (only a region such as "
                "\"EU\" is known for their addresses). The findings below list them.", icon=":material/map:")
    else:
        projection = st.segmented_control("Projection", charts.MAP_PROJECTIONS, default=charts.MAP_PROJECTIONS[0],
                                          key="projection", required=True)
        st.caption(f"The busiest {drawn.height:,} of {routes.height:,} routes (from place to place) are drawn; the "
                   "download holds them all.")
        widgets.show_chart(charts.travel_map_chart(routes, projection, title="Where the principals hopped"), drawn,
                           "impossible-travel")
    widgets.table(detections.findings_frame(travel), "travel-findings", TRAVEL_COLUMNS)
    widgets.download_table(routes, "impossible-travel-routes")
