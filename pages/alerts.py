"""Alerts (admins): what fired and whether it was mailed or posted, the rules, their channels, and Check now."""

import json
from dataclasses import asdict, replace

import streamlit as st

from trailstream.notify import alerts
from trailstream.notify.alerts.run import query_alert_event_lines
from trailstream.app import forms, signin, state, widgets
from trailstream import catalog, jobs
from trailstream.analytics.queries import SearchQuery

signin.require_admin()
st.title("Alerts")
st.caption("The rules are checked after every sync (and by `python -m trailstream alerts run`); what fires is "
           "mailed and posted to its channels at once or in the digest. Each event alerts at most once per rule and "
           "channel.")
cache = state.require_cache()
if cache.status == "empty":
    st.info("The cache has no events yet, so nothing can fire: the rules below are checked after every sync.",
            icon=":material/inbox:")
settings = state.settings()
NOTICE = "_alerts_notice"
# Every table here: readable headers, never a raw column name such as fired_at or rule_name.
LABELS = {"id": "Alert", "fired_at": "Fired", "severity": "Severity", "rule_name": "Rule",
          "summary": st.column_config.TextColumn("Summary", width="large"), "events": "Events",
          "status": "Status", "attempts": "Attempts", "sent_at": "Sent", "error": "Problem",
          "time": "Time", "principal": st.column_config.TextColumn("Principal", width="medium"), "action": "Action",
          "resource": "Resource", "source_ip": "Source IP", "account": "Account", "region": "Region",
          "label": "Channel", "channel": "Channel", "used_by": "Used by", "delivered": "Delivered",
          "waiting": "Waiting", "last_attempt_at": "Last attempt", "problem": "Problem", "name": "Rule",
          "enabled": "Enabled", "delivery": "Delivery", "recipients": "Recipients", "channels": "Channels",
          "threshold": "Threshold (events)", "window_minutes": "Window (minutes)", "matches": "Matches"}
TIMES = ("fired_at", "sent_at", "last_attempt_at", "time")


def readable(rows: list[dict]) -> list[dict]:
    """Rows with their cache time text shown the one way the app shows times."""
    return [row | {field: widgets.time_text(row[field]) for field in TIMES if field in row} for row in rows]


if NOTICE in st.session_state:
    st.success(st.session_state.pop(NOTICE), icon=":material/check_circle:")
mail_ok, mail_text = alerts.mail_status(settings)
(st.caption if mail_ok else st.warning)(widgets.plain(mail_text))
default_channels, channel_problems = alerts.channel_settings(settings)
for problem in channel_problems:
    st.warning(widgets.plain(f"Settings: {problem}"), icon=":material/link_off:")

if st.button("Check now", type="primary", icon=":material/notifications_active:"):
    with st.spinner("Checking the rules and sending what is due…"):
        outcome = jobs.after_sync(cache.path, settings)
    (st.success if outcome.succeeded else st.error)(
        "Checked: everything due was sent." if outcome.succeeded else "Checked, with problems: see below.")
    st.text(outcome.summary())


def save(rule: alerts.AlertRule, change: str) -> None:
    """Write a rule (or say what to fix) and audit it."""
    problems = alerts.check_rule(rule)
    if problems:
        st.error("Not saved. Fix this and save again:", icon=":material/error:")
        st.text("\n".join(f"• {problem}" for problem in problems))
        return
    state.write(alerts.save_rule, rule)
    signin.record("rule_changed", {"rule": rule.name, "change": change})
    st.session_state[NOTICE] = f'Rule "{rule.name}" saved.'
    st.rerun()


def how_it_alerts(rule: alerts.AlertRule, key: str) -> dict:
    """The widgets every rule shares: severity, recipients, delivery, threshold and window."""
    left, right = st.columns(2)
    return {
        "severity": left.selectbox("Severity", catalog.SEVERITIES, catalog.SEVERITIES.index(rule.severity),
                                   key=f"{key}-severity"),
        "delivery": right.radio("Delivery", alerts.DELIVERIES, alerts.DELIVERIES.index(rule.delivery),
                                key=f"{key}-delivery", horizontal=True,
                                help="Digest: one mail per [alerts] digest_every (default 24h)."),
        "recipients": alerts.parse_recipients(st.text_input(
            "Recipients", ", ".join(rule.recipients), key=f"{key}-recipients",
            help="Comma separated; empty sends to [smtp] recipients.")),
        "channels": alerts.split_channels(st.text_input(
            "Channels", " ".join(rule.channels), key=f"{key}-channels",
            help="apprise URLs (Slack, Teams, PagerDuty, json:// webhooks…), space separated; empty posts to "
                 "[alerts] channels. Write secrets as ${NAME}: read from the environment or secrets.toml.")),
        "threshold": left.number_input("Threshold (events)", 1, value=rule.threshold, key=f"{key}-threshold",
                                       help="Fire when this many matching events fall within the window "
                                            "(security-finding rules fire once per finding and ignore it)."),
        "window_minutes": right.number_input("Window (minutes)", 1, value=rule.window_minutes, key=f"{key}-window"),
    }


history_tab, rules_tab, add_tab, channels_tab = st.tabs(["History", "Rules", "Add a rule", "Channels"])
rules = state.read_uncached(alerts.query_rules)
history = state.read_uncached(alerts.query_fired_alerts)
# Without [smtp], alerts bound for a channel are never mailed: only the ones that failed are waiting.
unsent = [alert for alert in history if alert.status != "sent" and (mail_ok or alert.status == "failed")]
# The missing-email sentence is said once, at the top; below it an alert's problem only points there.
MAIL_PROBLEM = "" if mail_ok else mail_text.rstrip(".").lower()
with history_tab:
    if unsent:
        latest = unsent[0].error or "not attempted yet"
        if MAIL_PROBLEM and latest.rstrip(".").lower() == MAIL_PROBLEM:
            st.caption(f"{len(unsent)} alert(s) wait for email (see above); they are sent on the first run after.")
        else:
            st.warning(f"{len(unsent)} alert(s) not sent yet: they are retried on every run. Latest problem:",
                       icon=":material/unsubscribe:")
            st.text(latest)
    if not history:
        st.info("No alert has fired yet. Press **Check now** to check the rules.", icon=":material/inbox:")
    else:
        picked = st.dataframe(
            readable([asdict(alert) | {"recipients": ", ".join(alert.recipients),
                                       "error": "waits for email (see above)"
                                       if MAIL_PROBLEM and (alert.error or "").rstrip(".").lower() == MAIL_PROBLEM
                                       else alert.error} for alert in history]),
            hide_index=True, key="history", on_select="rerun", selection_mode="single-row",
            column_order=("id", "fired_at", "severity", "rule_name", "summary", "events", "status", "attempts",
                          "sent_at", "error"), column_config=LABELS)
        rows = picked.selection.rows if picked else []
        linked = st.query_params.get("alert", "")
        chosen = history[rows[0]].id if rows else int(linked) if linked.isdigit() else None
        if chosen is not None:
            st.subheader(f"Events of alert {chosen}")
            shown = next((alert for alert in history if alert.id == chosen), None)
            max_age = alerts.alert_settings_from(settings.section("alerts"))[0].max_age
            lines = (state.read_uncached(query_alert_event_lines, shown, None, state.backend(), max_age) if shown
                     else state.read_uncached(alerts.query_alert_events, chosen))  # the lake's where the cache lacks them
            st.dataframe(readable(lines), hide_index=True,
                         key="alert-events", column_config=LABELS,
                         column_order=("time", "principal", "action", "resource", "source_ip", "account", "region"))
            posted = state.read_uncached(alerts.query_channel_deliveries, chosen)
            if posted:
                st.dataframe(readable([asdict(item) for item in posted]), hide_index=True, key="alert-channels",
                             column_order=("label", "status", "attempts", "sent_at", "error"), column_config=LABELS)

with rules_tab:
    by_ident = {item.key or f"custom-{item.id}": item for item in rules}
    ident = st.selectbox("Rule", list(by_ident), key="rule",
                         format_func=lambda key: f"{by_ident[key].name} ({alerts.RULE_KINDS[by_ident[key].kind]})")
    rule = by_ident[ident]
    st.caption(rule.describe())
    with st.form(f"edit-{ident}"):
        enabled = st.toggle("Enabled", rule.enabled, key=f"{ident}-enabled")
        shared = how_it_alerts(rule, ident)
        label = "SQL" if rule.kind == "sql" else "Search fields (JSON)"
        query = st.text_area(label, rule.query, key=f"{ident}-query") if rule.custom else rule.query
        if st.form_submit_button("Save rule", type="primary", icon=":material/save:"):
            save(replace(rule, enabled=enabled, query=query, **shared), "saved")
    if rule.custom and st.button("Delete this rule", icon=":material/delete:"):
        state.write(alerts.delete_rule, rule.id)
        signin.record("rule_changed", {"rule": rule.name, "change": "deleted"})
        st.session_state[NOTICE] = f'Rule "{rule.name}" deleted.'
        st.rerun()
    st.dataframe([asdict(item) | {"recipients": ", ".join(item.recipients), "channels": " ".join(item.channels),
                                  "matches": item.describe()}
                  for item in rules], hide_index=True, key="rules", column_config=LABELS,
                 column_order=("name", "enabled", "severity", "delivery", "recipients", "channels", "threshold",
                               "window_minutes", "matches"))

with add_tab:
    kind = st.radio("Match events with", alerts.CUSTOM_KINDS, format_func=alerts.RULE_KINDS.get, key="new-kind",
                    horizontal=True)
    with st.form("new-rule"):
        name = st.text_input("Name", key="new-name")
        if kind == "search":
            columns = st.columns(3)
            search = {field: columns[position % 3].text_input(label, key=f"new-{field}", placeholder=placeholder)
                      for position, (field, (label, _key, placeholder)) in enumerate(forms.SEARCH_FIELDS.items())}
            query = json.dumps(SearchQuery.from_dict(search).to_dict())
        else:
            query = st.text_area("SQL", key="new-sql", placeholder="SELECT event_id FROM events WHERE …",
                                 help="Read-only; must return an event_id column. :start and :end hold the period "
                                      "checked.")
        shared = how_it_alerts(alerts.AlertRule(None, kind, ""), "new")
        if st.form_submit_button("Add rule", type="primary", icon=":material/add_alert:"):
            save(alerts.AlertRule(None, kind, name, query=query, **shared), "added")

with channels_tab:
    channels = state.read_uncached(alerts.query_channel_status, default_channels)
    if not channels:
        st.info("No channel yet: add apprise URLs to [alerts] channels in the settings file (every rule) or to a "
                "rule (that rule only).", icon=":material/hub:")
    else:
        st.dataframe(readable(channels), hide_index=True, key="channels", column_config=LABELS,
                     column_order=("channel", "used_by", "delivered", "waiting", "last_attempt_at", "problem"))
