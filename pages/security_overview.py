"""Security overview: every finding of the period, most severe first, each opening onto the events behind it."""

import streamlit as st

from trailstream.app import forms, signin, state, widgets
from trailstream import catalog
from trailstream.analytics import charts, detections, queries, security_queries, sigma_queries, transforms

SEVERITY_ICONS = {"critical": ":material/error:", "high": ":material/warning:", "medium": ":material/info:",
                  "low": ":material/low_priority:"}
SEVERITY_BADGES = {"critical": "red", "high": "orange", "medium": "yellow", "low": "blue"}  # our words, never event text
SHOWN = 50

event_filter = widgets.page_start(
    "Security overview", "Findings of the security detections in the period: bursts of "
                         "refused calls and failed sign-ins, root use, impossible travel, risky changes.")
current = state.settings()
settings, problems = detections.usable_detection_settings(current)
for problem in problems:
    st.warning(f"Detection settings: {widgets.plain(problem)}", icon=":material/warning:")

period = state.load_on_store(security_queries.query_security_findings, event_filter, settings,
                              state.read_uncached(sigma_queries.query_lake_rules))  # the Sigma rules, on or off now
findings = period.findings
if period.note:
    st.caption(widgets.plain(f"Computed now: {period.note}."))
widgets.metrics({"Findings": len(findings), **{severity.title(): count
                                               for severity, count in detections.severity_counts(findings).items()}})
severities = st.pills("Severity", list(reversed(catalog.SEVERITIES)), selection_mode="multi", key="severity",
                      bind="query-params")
titles = state.load(detections.query_finding_types)  # the built-in types and each Sigma rule's, by title
types = st.multiselect("Finding types", list(titles), format_func=titles.get, key="finding_type",
                       bind="query-params", placeholder="All types")
shown = detections.filter_findings(findings, severities, types)
if findings and not shown:
    st.info("No findings of the chosen severities and types: clear the choices above to see the "
            f"{len(findings):,} others.", icon=":material/filter_alt_off:")
elif not shown and not widgets.period_has_events(event_filter):
    widgets.explain_empty("findings")  # no events, so no verdict: never a green check over no data
elif not shown:
    st.info("No findings: the period's events crossed no detection's threshold.", icon=":material/shield:")
else:
    frame = detections.findings_frame(shown)
    every = queries.BUCKETS[state.load(queries.pick_bucket, event_filter)][1]
    over_time = detections.count_over_time(frame, every, "severity", time_column="time", value="findings")
    widgets.show_chart(charts.findings_timeline_chart(over_time, period=widgets.period(event_filter)), over_time, "findings-over-time")
    by_type = detections.findings_by_type(frame)
    widgets.show_chart(charts.findings_by_type_chart(by_type), by_type, "findings-by-type")

    st.subheader("Findings, most severe first")
    widgets.download_table(frame.drop("key"), "findings")
    if len(shown) > SHOWN:
        st.caption(f"Showing {SHOWN} of {len(shown):,}, most severe first; the download holds them all.")
    shown = transforms.severity_first(shown)
    for finding in shown[:SHOWN]:
        badge = f":{SEVERITY_BADGES[finding.severity]}-badge[{finding.severity.upper()}]"
        label = badge + " " + widgets.plain(
            f"{finding.time.replace('T', ' ')[:16]} · {finding.title} · {finding.principal or '?'}")
        box = st.expander(label, icon=SEVERITY_ICONS[finding.severity], key=f"finding-{finding.key}",
                          on_change="rerun")
        with box:
            st.text(f"{finding.severity.upper()}: {finding.summary}")
            if box.open:
                st.json(finding.details, expanded=False)
                events = state.backend().query("security_finding_events", security_queries.finding_span(finding),
                                               event_ids=tuple(finding.event_ids))
                widgets.raw_event_viewer(events, f"events-{finding.key}", f"finding-{finding.type}")

with st.expander("Detection settings", icon=":material/tune:"):
    st.caption(widgets.plain(f"Thresholds and windows, from [detections] in {current.path}."))
    if not signin.is_admin() or current.errors:
        st.json(settings.to_dict())
    else:
        with st.form("detection-settings"):
            values = {name: (st.text_input if isinstance(value, str) else st.number_input)(
                detections.SETTING_HELP[name][0], value=value, help=detections.SETTING_HELP[name][1] or None,
                key=f"setting-{name}") for name, value in detections.editable_detection_settings(current).items()}
            saved = st.form_submit_button("Save settings", type="primary", icon=":material/save:")
        if saved:
            try:
                detections.set_detection_settings(current, values)
            except detections.DetectionSettingsError as exc:
                st.error("The settings were not saved. Fix this and save again:", icon=":material/error:")
                st.text("\n".join(f"• {problem}" for problem in exc.problems))
            else:
                if forms.save_settings(current):
                    signin.record("setting_changed", {"detections": values})
                    st.toast("Detection settings saved.", icon=":material/check_circle:")
                    st.rerun()
