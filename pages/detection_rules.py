"""Detection rules (admins): the community (Sigma) rules, each converted, unsupported or failed with the reason, how
often it matched, on or off, and the principals, accounts and events it must not report."""

import streamlit as st

from trailstream.analytics import sigma
from trailstream.app import signin, state, widgets
from trailstream.cache import sigma_state

signin.require_admin()
st.title("Detection rules")
st.caption("Sigma rules (SigmaHQ's CloudTrail rules, your own, or both) from the folders in `[sigma] rule_paths`; "
           "they run after every sync, and their matches are findings on the Security overview. Rules are under "
           "the Detection Rule License 1.1: every finding and alert names the rule's author, ID and link.")
cache = state.require_cache()
try:
    config = sigma.sigma_settings(state.settings())
except (sigma.SigmaSettingsError, ValueError) as exc:
    st.error(widgets.plain(f"Settings: {exc}"), icon=":material/error:")
    st.stop()
st.caption(widgets.plain(f"Rule folders: {', '.join(str(path) for path in config.rule_paths)}; "
                         f"alerts for level {config.alert_level} and above."))
if st.button("Reload rules", icon=":material/refresh:"):
    ruleset = sigma.configured_rules(config)
    state.write(sigma.save_rules, ruleset, config)
    signin.record("rule_changed", {"detection rules": "reloaded", "rules": len(ruleset.rules)})
    for problem in ruleset.problems:
        st.warning(widgets.plain(problem), icon=":material/folder_off:")

table = state.read_uncached(sigma.query_rule_table)
if table.is_empty():
    st.info("No rules loaded yet. Point `[sigma] rule_paths` at a folder of rules (or run "
            "`python -m trailstream rules fetch`), then press Reload rules or sync.", icon=":material/rule:")
    st.stop()
widgets.metrics({status.capitalize(): count for status, count in sigma.status_counts(table).items()})
st.dataframe(
    table.select("title", "status", "level", "enabled", "matches", "last_match_at", "reason", "lake", "author",
                 "rule_id"),
    hide_index=True, key="sigma_rules",
    column_config={"title": "Rule", "status": "State", "level": "Level", "enabled": "On", "matches": "Matches",
                   "last_match_at": "Last match (UTC)", "reason": "Why not run",
                   "lake": "Not on the lake", "author": "Author",
                   "rule_id": "Rule ID"},
)
titles = dict(zip(table["rule_id"], table["title"]))
chosen = st.selectbox("Rule to turn on or off, or give exceptions", list(titles), index=None, key="sigma_rule",
                      format_func=lambda rule_id: f"{titles[rule_id]} ({rule_id})")
if chosen is None:
    st.stop()
rule = table.row(table["rule_id"].to_list().index(chosen), named=True)
st.subheader(widgets.plain(rule["title"]), anchor=False)
st.text(f"ID {rule['rule_id']} · by {rule['author']} · {rule['link']}\n{rule['path']}")
if rule["status"] != "converted":
    st.warning(widgets.plain(f"Not run: {rule['reason']}"), icon=":material/block:")
elif rule["lake"]:
    st.caption(widgets.plain(f"Not run on the lake: it {rule['lake']}."))
enabled = st.toggle("Enabled", value=rule["enabled"], key=f"sigma-on-{rule['rule_id']}")
if enabled != rule["enabled"]:
    state.write(sigma_state.mark_enabled, rule["rule_id"], enabled)
    signin.record("rule_changed", {"detection rule": rule["rule_id"], "enabled": enabled})
    st.rerun()

for item in state.read_uncached(sigma_state.query_exceptions, rule["rule_id"]):
    left, right = st.columns([5, 1])
    left.text(f"{sigma_state.EXCEPTION_FIELDS[item['field']]}: {item['value']}")
    if right.button("Remove", key=f"sigma-exception-{item['id']}"):
        state.write(sigma_state.delete_exception, item["id"])
        signin.record("rule_changed", {"detection rule": rule["rule_id"], "exception removed": item["value"]})
        st.rerun()
with st.form("sigma_exception", clear_on_submit=True):
    field = st.selectbox("Never report for", list(sigma_state.EXCEPTION_FIELDS),
                         format_func=sigma_state.EXCEPTION_FIELDS.get)
    value = st.text_input("Value", placeholder="arn:aws:iam::123456789012:role/Scanner")
    if st.form_submit_button("Add exception") and value.strip():
        state.write(sigma_state.save_exception, rule["rule_id"], field, value)
        signin.record("rule_changed", {"detection rule": rule["rule_id"], "exception added": value.strip()})
        st.rerun()
