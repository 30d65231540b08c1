"""Alert rules over the cache, evaluated after every sync, delivered by email and to apprise channels.

rules: what a rule matches (built-ins as data) and its storage; settings: [alerts] and intervals; evaluate: what
fired; fired: the records, per-channel deliveries and watermarks; mail: message text; channels: apprise URLs;
run: one pass (evaluate, record, deliver). The names below are the public API.
"""

from trailstream.notify.alerts.channels import Channel, ChannelError, check_channel, parse_channels, split_channels
from trailstream.notify.alerts.evaluate import windows_over_threshold
from trailstream.notify.alerts.fired import (ChannelDelivery, FiredAlert, query_alert_events,
                                             query_channel_deliveries, query_channel_status, query_fired_alerts)
from trailstream.notify.alerts.mail import compose_channel_message, compose_mail
from trailstream.notify.alerts.rules import (BUILTIN_RULES, CUSTOM_KINDS, DELIVERIES, EVENT_RULES, RULE_KINDS,
                                             AlertRule, BuiltinRule, check_rule, configured_channels, default_rules,
                                             delete_rule,
                                             ensure_builtin_rules, parse_recipients, query_rules, save_rule)
from trailstream.notify.alerts.run import AlertRunResult, run_alerts
from trailstream.notify.alerts.settings import (AlertSettings, alert_settings_from, channel_settings, mail_status,
                                                parse_interval, section)

__all__ = [
    "BUILTIN_RULES", "CUSTOM_KINDS", "DELIVERIES", "EVENT_RULES", "RULE_KINDS", "AlertRule", "AlertRunResult",
    "AlertSettings", "BuiltinRule", "Channel", "ChannelDelivery", "ChannelError", "FiredAlert",
    "alert_settings_from", "channel_settings", "check_channel", "check_rule", "compose_channel_message",
    "configured_channels",
    "compose_mail", "default_rules", "delete_rule", "ensure_builtin_rules", "mail_status", "parse_channels",
    "parse_interval", "parse_recipients", "query_alert_events", "query_channel_deliveries", "query_channel_status",
    "query_fired_alerts", "query_rules", "run_alerts", "save_rule", "section", "split_channels",
    "windows_over_threshold",
]
