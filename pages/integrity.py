"""Integrity & coverage: every hour of every account and region as verified, missing, modified, a gap, or unchecked."""

import streamlit as st

from trailstream.analytics import charts, integrity
from trailstream.app import state, widgets

event_filter = widgets.page_start(
    "Integrity & coverage",
    "Each hour of each account and region checked against CloudTrail's signed digests: were all log files delivered "
    "and unaltered? Turn on log file validation on the trail for digests to exist.")
since, until = integrity.period_days(event_filter.start, event_filter.end)
report = state.load(integrity.query_integrity_report, since, until, event_filter.accounts, event_filter.regions)
counts = report.counts()
widgets.metrics({"Digests valid": f"{counts['digests_valid']:,} / {counts['digests']:,}",
                 "Log files valid": f"{counts['log_files_valid']:,} / {counts['log_files']:,}",
                 "Problems": report.problems().height, "Newest not checked": counts["digests_unchecked"],
                 "Events": widgets.event_count(event_filter)},
                {"Events": f"Events {state.store_words()} in the period, whatever their files' state"})
widgets.unconfirmed_early_events()
if report.hours.height == 0:
    if widgets.period_has_events(event_filter):  # events, but nothing to check them against: say why
        st.info("No CloudTrail digest covers this period, so its log files cannot be checked. Digests exist only "
                "when log file validation is on for the trail and its digest files are synced with the logs; "
                "local sample files and Event history have none.", icon=":material/gpp_maybe:")
    else:
        widgets.explain_empty("digests or log files")
    st.stop()
if report.failed:
    st.error("Some log files or digests are missing, altered or unaccounted for: see the problems below.",
             icon=":material/gpp_bad:")

cells = integrity.heatmap_cells(report.hours)
picked = st.altair_chart(charts.integrity_heatmap_chart(cells, integrity.STATE_COLORS), on_select="rerun",
                         key="integrity-heatmap", use_container_width=True)
chosen = integrity.selected_cell(cells, (picked.selection.get("cell") or [None])[0] if picked else None)
problem_cells, labels = integrity.problem_cells(cells)
pick = st.selectbox("Or pick an hour with problems", range(len(labels)), format_func=labels.__getitem__, index=None)
cell = chosen or (problem_cells.row(pick, named=True) if pick is not None else None)
if cell:
    st.subheader("Digest, files and reasons")
    st.text(f"{cell['trail']} · {cell['hour']:%Y-%m-%d %H:00} UTC · {cell['state']}")
    details = integrity.cell_details(report, cell["account_id"], cell["region"], cell["hour"], cell["span"])
    widgets.table(details, "integrity-cell")
    span = widgets.cell_filter(cell["account_id"], cell["region"], cell["hour"], cell["span"])
    st.caption(f"Events {state.store_words()} in this {cell['span']}: {widgets.event_count(span):,}")

st.subheader("Problems")
widgets.table(report.problems(), "integrity-problems", download="integrity-report")
