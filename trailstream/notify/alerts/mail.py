"""Alert messages: the mail (plain text and HTML with every event field escaped) and the channel message."""

from __future__ import annotations

import html

from trailstream import catalog
from trailstream.notify.alerts.fired import FiredAlert

MAIL_EVENT_LIMIT = 50
CHANNEL_EVENT_LIMIT = 10  # chat messages stay short; the link opens the rest
MAIL_COLUMNS = (("time", "Time"), ("principal", "Principal"), ("action", "Action"), ("resource", "Resource"),
                ("source_ip", "Source IP"), ("account", "Account"), ("region", "Region"))


ALERTS_PAGE_PATH = "admin-alerts"  # app.py's url_path("Admin", "Alerts")


def alert_link(base_url: str, alert_id: int | None = None) -> str:
    """The Alerts page (on one alert when given) in the app at base_url."""
    return f"{base_url.rstrip('/')}/{ALERTS_PAGE_PATH}" + (f"?alert={alert_id}" if alert_id is not None else "")


def compose_mail(alerts: list[FiredAlert], events: dict[int, list[dict]], base_url: str) -> tuple[str, str, str]:
    """Subject, plain text and HTML for one alert or a digest of several; every event field is HTML-escaped."""
    intro = _intro(alerts)
    if len(alerts) == 1:
        alert = alerts[0]
        subject = f"[TrailStream] {alert.severity.upper()}: {alert.rule_name}: {alert.summary}"
    else:
        subject = f"[TrailStream] Digest: {intro.partition(': ')[2]}"
    texts, htmls = [intro, ""], [f"<h2>{html.escape(intro)}</h2>"]
    for alert in alerts:
        text, markup = _alert_section(alert, events.get(alert.id, []), base_url)
        texts.append(text)
        htmls.append(markup)
    footer = f"All alerts: {alert_link(base_url)}"
    texts.append(footer)
    htmls.append(f'<p><a href="{html.escape(alert_link(base_url))}">All alerts in TrailStream</a></p>')
    body = "<html><body style=\"font-family: sans-serif\">" + "\n".join(htmls) + "</body></html>"
    return _one_line(subject, 200), "\n".join(texts), body


def compose_channel_message(alerts: list[FiredAlert], events: dict[int, list[dict]], base_url: str) -> tuple[str, str]:
    """Title and plain-text body for a chat or webhook channel; apprise escapes the body for each service's markup.

    The title holds only what an admin wrote (rule name, severity): some services put it in markup unescaped.
    """
    if len(alerts) == 1:
        title = f"[TrailStream] {alerts[0].severity.upper()}: {alerts[0].rule_name}"
    else:
        title = f"[TrailStream] Digest: {len(alerts)} alerts"
    texts = [_intro(alerts), ""]
    texts += [_alert_section(alert, events.get(alert.id, []), base_url)[0] for alert in alerts]
    texts.append(f"All alerts: {alert_link(base_url)}")
    return _one_line(title, 200), "\n".join(texts)


def _intro(alerts: list[FiredAlert]) -> str:
    """The first line of a message: one alert's severity, or a digest's count per severity."""
    if len(alerts) == 1:
        return f"TrailStream alert ({alerts[0].severity})"
    counts = {severity: sum(a.severity == severity for a in alerts) for severity in reversed(catalog.SEVERITIES)}
    spread = ", ".join(f"{n} {severity}" for severity, n in counts.items() if n)
    return f"TrailStream digest: {len(alerts)} alerts ({spread})"


def _alert_section(alert: FiredAlert, lines: list[dict], base_url: str) -> tuple[str, str]:
    link = alert_link(base_url, alert.id)
    more = alert.events - len(lines)
    text = [
        f"{alert.rule_name} ({alert.severity}): {alert.summary}",
        f"Fired at {alert.fired_at}; {alert.events} event(s):",
        *("  - " + " | ".join(line[key] or "-" for key, _ in MAIL_COLUMNS) for line in lines),
    ]
    if more > 0:
        text.append(f"  ... and {more} more on the Alerts page")
    text += [f"Open in TrailStream: {link}", ""]
    cell = 'style="text-align:left;padding:2px 6px"'
    head = "".join(f"<th {cell}>{html.escape(title)}</th>" for _, title in MAIL_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td {cell}>{html.escape(line[key])}</td>" for key, _ in MAIL_COLUMNS) + "</tr>"
        for line in lines
    )
    markup = (
        f"<h3>{html.escape(alert.rule_name)} ({html.escape(alert.severity)})</h3>"
        f"<p>{html.escape(alert.summary)}</p>"
        f"<p>Fired at {html.escape(alert.fired_at)}; {alert.events} event(s).</p>"
        f'<table style="border-collapse:collapse;font-size:13px"><tr>{head}</tr>{body}</table>'
        + (f"<p>... and {more} more on the Alerts page.</p>" if more > 0 else "")
        + f'<p><a href="{html.escape(link)}">Open in TrailStream</a></p>'
    )
    return "\n".join(text), markup


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
