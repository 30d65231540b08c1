"""Alerts: rules over the demo cache fire for the planted cases, mail reaches a real SMTP server exactly once."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import MailServer
from trailstream.notify import alerts
from trailstream.notify.alerts import fired as alert_records
from trailstream import catalog, jobs, cli, config
from trailstream.ingest import demo, sync
from trailstream.cache import store
from trailstream.timefmt import iso_utc
from trailstream.analytics.queries import SearchQuery

END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
BASE_URL = "https://trailstream.example.com"
ACCOUNT = "111122223333"
DEMO_EVENTS = 3000


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory):
    """A demo cache built the way users build one: log files written by the generator, then imported."""
    folder = tmp_path_factory.mktemp("demo")
    demo.write_log_files(folder / "logs", demo.generate_records(events=DEMO_EVENTS, seed=7, end=END))
    path = folder / "template.db"
    result = sync.import_paths(path, [folder / "logs"], workers=1)
    assert result.succeeded and result.new_events == DEMO_EVENTS
    return path


@pytest.fixture
def demo_cache(demo_template, tmp_path):
    """A private copy of the demo cache (SQLite's backup API, so the WAL comes along)."""
    path = tmp_path / "demo.db"
    with sqlite3.connect(demo_template) as source, sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    target.close()
    return path


def mail_settings(server: MailServer, **alert_settings) -> dict:
    return {"smtp": server.smtp_section(), "alerts": {"base_url": BASE_URL} | alert_settings}


def record(name: str, moment: datetime, source: str = "ec2.amazonaws.com", user: str = "alice",
           error: str | None = None, request: dict | None = None, ip: str = "203.0.113.9") -> dict:
    """A minimal CloudTrail record of an IAM user's call."""
    identity = {"type": "IAMUser", "userName": user, "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}", "accessKeyId": "AKIAEXAMPLEKEY000001"}
    data = {"eventVersion": "1.09", "eventID": f"{name}-{user}-{iso_utc(moment)}", "eventTime": iso_utc(moment),
            "eventSource": source, "eventName": name, "awsRegion": "eu-west-1", "sourceIPAddress": ip,
            "userAgent": "aws-cli/2.15.0", "userIdentity": identity, "requestParameters": request,
            "responseElements": None, "readOnly": False, "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT}
    if error:
        data |= {"errorCode": error, "errorMessage": "refused"}
    return data


def write_log(folder, records: list[dict], name: str = "extra"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"Records": records}))
    return path


def import_records(db_path, folder, records: list[dict], name: str = "extra") -> None:
    """Deliver records as one log file through the normal import."""
    path = write_log(folder, records, name)
    assert sync.import_paths(db_path, [path], workers=1).new_events == len(records)


def release_address(moment: datetime, user: str = "alice", public_ip: str = "198.51.100.7") -> dict:
    return record("ReleaseAddress", moment, user=user, request={"publicIp": public_ip})


def rules_by_key(db_path) -> dict[str, alerts.AlertRule]:
    conn = store.open_cache_readonly(db_path)
    try:
        return {rule.key or rule.name: rule for rule in alerts.query_rules(conn)}
    finally:
        conn.close()


def only_rules(db_path, *keys: str) -> None:
    """Disable every rule but the named ones."""
    db = store.open_cache(db_path)
    alerts.ensure_builtin_rules(db)
    for key, rule in rules_by_key(db_path).items():
        alerts.save_rule(db, replace(rule, enabled=key in keys))
    db.close()


def alerted_events(db_path) -> dict[str, set[str]]:
    """Rule key -> every event id it has alerted on."""
    conn = store.open_cache_readonly(db_path)
    rows = conn.execute(
        "SELECT coalesce(r.key, r.name), f.event_id FROM fired_alert_events f JOIN alert_rules r ON r.id = f.rule_id"
    ).fetchall()
    conn.close()
    found: dict[str, set[str]] = {}
    for key, event_id in rows:
        found.setdefault(key, set()).add(event_id)
    return found


def fired(db_path) -> list[alerts.FiredAlert]:
    conn = store.open_cache_readonly(db_path)
    try:
        return alerts.query_fired_alerts(conn)
    finally:
        conn.close()


# --- Rules ----------------------------------------------------------------------


def test_a_fresh_cache_holds_every_builtin_rule_enabled(db_path):
    db = store.open_cache(db_path)
    alerts.ensure_builtin_rules(db)
    db.close()
    rules = rules_by_key(db_path)
    assert set(rules) == set(alerts.BUILTIN_RULES)
    assert all(rule.enabled and rule.delivery == "immediate" for rule in rules.values())
    assert {f"finding:{kind}" for kind in catalog.FINDING_TYPES} <= set(rules)


def test_rules_fire_exactly_for_the_planted_positives(demo_cache):
    result = alerts.run_alerts(demo_cache, {}, now=END)
    assert result.fired > 0
    alerted = alerted_events(demo_cache)
    for kind, cases in demo.PLANTED.items():
        key = f"finding:{kind}" if f"finding:{kind}" in alerts.BUILTIN_RULES else kind
        if key not in alerts.BUILTIN_RULES:
            continue  # planted content checks (hostile text) are not alerts
        got = alerted.get(key, set())
        for case in cases:
            hit = bool(got & set(case["event_ids"]))
            assert hit == case["expected"], (kind, case["principal"], case["expected"])
        if key.startswith("finding:") or key == "rare_error":
            planted = {event_id for case in cases if case["expected"] for event_id in case["event_ids"]}
            assert got <= planted, (kind, got - planted)


def test_use_case_rules_alert_only_on_their_successful_calls(demo_cache):
    alerts.run_alerts(demo_cache, {}, now=END)
    alerted = alerted_events(demo_cache)
    conn = store.open_cache_readonly(demo_cache)
    for key, names in (("instance_terminated", {"TerminateInstances"}), ("elastic_ip_released", {"ReleaseAddress"}),
                       ("iam_user_or_key_created", {"CreateUser", "CreateAccessKey"})):
        ids = sorted(alerted[key])
        rows = conn.execute(
            f"SELECT event_name, error_code FROM events WHERE event_id IN ({', '.join('?' for _ in ids)})", ids
        ).fetchall()
        assert {row[0] for row in rows} <= names and all(row[1] is None for row in rows)
    conn.close()


def test_disabled_rules_do_not_fire(demo_cache):
    only_rules(demo_cache, "elastic_ip_released")
    alerts.run_alerts(demo_cache, {}, now=END)
    assert set(alerted_events(demo_cache)) == {"elastic_ip_released"}


def test_events_older_than_max_age_do_not_alert(demo_cache):
    result = alerts.run_alerts(demo_cache, {}, now=END + timedelta(days=30))
    assert result.fired == 0 and fired(demo_cache) == []


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"severity": "urgent"}, "severity must be one of"),
        ({"recipients": ("secops",)}, '"secops" is not an email address'),
        ({"threshold": 0}, "at least 1"),
        ({"query": "{}"}, "fill at least one search field"),
        ({"query": "1"}, "search fields must be a JSON object"),  # found by fuzz/run.py rule
        ({"query": "{not json"}, "the search fields cannot be read"),
        ({"kind": "sql", "query": " "}, "must return an event_id column"),
    ],
)
def test_bad_rule_settings_are_explained(change, problem):
    rule = alerts.AlertRule(None, "search", "AccessDenied storm", query=json.dumps({"error_code": "AccessDenied"}))
    assert alerts.check_rule(rule) == []
    assert any(problem in text for text in alerts.check_rule(replace(rule, **change)))


# --- Mail -----------------------------------------------------------------------


def test_a_fresh_demo_cache_mails_on_the_first_run_and_a_second_run_sends_nothing(demo_cache, mail_server):
    first = alerts.run_alerts(demo_cache, mail_settings(mail_server), now=END)
    assert first.succeeded and first.fired > 0
    assert first.sent == first.fired == len(mail_server.inbox.envelopes)
    assert all(alert.status == "sent" for alert in fired(demo_cache))
    second = alerts.run_alerts(demo_cache, mail_settings(mail_server), now=END + timedelta(minutes=5))
    assert (second.fired, second.sent) == (0, 0) and second.succeeded
    assert len(mail_server.inbox.envelopes) == first.fired


def test_the_mail_names_the_rule_lists_its_events_and_links_to_them(demo_cache, mail_server):
    only_rules(demo_cache, "finding:root_activity")
    db = store.open_cache(demo_cache)
    alerts.save_rule(db, replace(rules_by_key(demo_cache)["finding:root_activity"],
                                        recipients=("ciso@example.com",)))
    db.close()
    alerts.run_alerts(demo_cache, mail_settings(mail_server), now=END)
    [envelope] = mail_server.inbox.envelopes
    [message] = mail_server.inbox.messages
    [alert] = fired(demo_cache)
    assert envelope.rcpt_tos == ["ciso@example.com"]
    assert message["Subject"].startswith("[TrailStream] HIGH: Root account used: The root user of account")
    text = message.get_body(("plain",)).get_content()
    markup = message.get_body(("html",)).get_content()
    [case_login, case_terminate] = demo.PLANTED["root_activity"]
    for part in (text, markup):
        assert f"{BASE_URL}/admin-alerts?alert={alert.id}" in part
        assert "signin:ConsoleLogin" in part and "ec2:TerminateInstances" in part
        assert case_login["ips"][0] in part and case_terminate["instance_ids"][0] in part
        assert case_login["account"] in part and "us-east-1" in part


def test_event_content_is_escaped_in_the_html_part(db_path, tmp_path, mail_server):
    hostile = "<img src=x onerror=alert(1)>"
    import_records(db_path, tmp_path / "logs", [release_address(END - timedelta(hours=1), user=hostile,
                                                                public_ip="<script>x</script>")])
    alerts.run_alerts(db_path, mail_settings(mail_server), now=END)
    [message] = mail_server.inbox.messages
    markup = message.get_body(("html",)).get_content()
    assert "&lt;img src=x onerror=alert(1)&gt;" in markup and "&lt;script&gt;x&lt;/script&gt;" in markup
    assert "<img" not in markup and "<script" not in markup
    assert hostile in message.get_body(("plain",)).get_content()


def test_smtp_down_then_up_delivers_each_alert_exactly_once(demo_cache):
    server = MailServer()  # not started: nothing listens on its port
    down = alerts.run_alerts(demo_cache, mail_settings(server), now=END)
    assert down.fired > 0 and down.sent == 0 and down.failed == down.fired and not down.succeeded
    assert any("cannot reach the mail server" in error for error in down.errors)
    assert {alert.status for alert in fired(demo_cache)} == {"failed"}
    assert all("cannot reach the mail server" in alert.error for alert in fired(demo_cache))
    server.start()
    try:
        up = alerts.run_alerts(demo_cache, mail_settings(server), now=END + timedelta(minutes=5))
        assert up.fired == 0 and up.sent == up.retried == down.fired and up.succeeded
        again = alerts.run_alerts(demo_cache, mail_settings(server), now=END + timedelta(minutes=10))
        assert again.sent == 0
        assert len(server.inbox.envelopes) == down.fired
        assert {alert.status for alert in fired(demo_cache)} == {"sent"}
    finally:
        server.stop()


def test_a_crash_between_sending_and_recording_sends_again_rather_than_losing(demo_cache, mail_server, monkeypatch):
    only_rules(demo_cache, "elastic_ip_released")
    recorded = alert_records.mark_alerts

    def crash_after_send(db, ids, status, when, error=None):
        if status == "sent":
            raise KeyboardInterrupt("killed right after the mail server accepted the message")
        recorded(db, ids, status, when, error)

    monkeypatch.setattr(alert_records, "mark_alerts", crash_after_send)
    with pytest.raises(KeyboardInterrupt):
        alerts.run_alerts(demo_cache, mail_settings(mail_server), now=END)
    assert len(mail_server.inbox.envelopes) == 1
    assert [alert.status for alert in fired(demo_cache)] == ["pending"]
    monkeypatch.setattr(alert_records, "mark_alerts", recorded)
    after = alerts.run_alerts(demo_cache, mail_settings(mail_server), now=END)
    assert (after.fired, after.sent) == (0, 1)
    assert len(mail_server.inbox.envelopes) == 2  # a duplicate, never a loss
    assert [alert.status for alert in fired(demo_cache)] == ["sent"]


def test_a_new_event_alerts_once_and_alone(demo_cache, tmp_path, mail_server):
    only_rules(demo_cache, "elastic_ip_released")
    alerts.run_alerts(demo_cache, mail_settings(mail_server), now=END)
    late = release_address(END - timedelta(days=2), user="late-delivery")  # old time, stored now: still news
    import_records(demo_cache, tmp_path / "logs", [late])
    result = alerts.run_alerts(demo_cache, mail_settings(mail_server), now=END)
    assert (result.fired, result.sent) == (1, 1)
    newest = fired(demo_cache)[0]
    conn = store.open_cache_readonly(demo_cache)
    assert [line["event_id"] for line in alerts.query_alert_events(conn, newest.id)] == [late["eventID"]]
    conn.close()
    assert "late-delivery" in mail_server.inbox.messages[-1].get_body(("plain",)).get_content()


def test_digest_rules_wait_for_the_digest_and_go_out_in_one_mail(demo_cache, tmp_path, mail_server):
    only_rules(demo_cache, "elastic_ip_released", "instance_terminated")
    db = store.open_cache(demo_cache)
    for key in ("elastic_ip_released", "instance_terminated"):
        alerts.save_rule(db, replace(rules_by_key(demo_cache)[key], delivery="digest"))
    db.close()
    settings = mail_settings(mail_server, digest_every="24h")
    first = alerts.run_alerts(demo_cache, settings, now=END)
    assert (first.fired, first.sent, len(mail_server.inbox.envelopes)) == (2, 2, 1)
    assert mail_server.inbox.messages[0]["Subject"].startswith("[TrailStream] Digest: 2 alerts")
    import_records(demo_cache, tmp_path / "logs", [release_address(END, user="carol")])
    waiting = alerts.run_alerts(demo_cache, settings, now=END + timedelta(hours=1))
    assert (waiting.fired, waiting.sent, waiting.waiting) == (1, 0, 1) and waiting.succeeded
    due = alerts.run_alerts(demo_cache, settings, now=END + timedelta(hours=25))
    assert (due.sent, due.waiting, len(mail_server.inbox.envelopes)) == (1, 0, 2)


def test_no_mail_settings_keeps_alerts_unsent_and_says_how_to_fix_it(demo_cache):
    result = alerts.run_alerts(demo_cache, {}, now=END)
    assert result.fired > 0 and result.failed == result.fired and not result.succeeded
    assert any("add an [smtp] section" in error for error in result.errors)


# --- Custom rules -----------------------------------------------------------------


def test_a_search_rule_fires_when_its_threshold_is_reached_within_the_window(db_path, tmp_path, mail_server):
    quiet = END - timedelta(hours=3)
    burst = [record("DescribeVolumes", END - timedelta(hours=1, minutes=m), error="AccessDenied") for m in (0, 2, 4)]
    import_records(db_path, tmp_path / "logs", [record("DescribeVolumes", quiet, error="AccessDenied"), *burst])
    only_rules(db_path)
    db = store.open_cache(db_path)
    alerts.save_rule(db, alerts.AlertRule(None, "search", "Refusals", severity="high", threshold=3, window_minutes=10,
                                          query=json.dumps(SearchQuery(error_code="AccessDenied").to_dict())))
    db.close()
    first = alerts.run_alerts(db_path, mail_settings(mail_server), now=END)
    assert (first.fired, first.sent) == (1, 1)
    assert alerted_events(db_path)["Refusals"] == {item["eventID"] for item in burst}
    import_records(db_path, tmp_path / "logs", [record("DescribeVolumes", END - timedelta(minutes=55),
                                                       error="AccessDenied")], "more")
    second = alerts.run_alerts(db_path, mail_settings(mail_server), now=END)
    assert second.fired == 1 and fired(db_path)[0].events == 1


def test_a_sql_rule_runs_read_only_and_a_broken_one_does_not_stop_the_others(db_path, tmp_path, mail_server):
    import_records(db_path, tmp_path / "logs", [record("GetSecretValue", END - timedelta(hours=1), ip="192.0.2.66",
                                                       source="secretsmanager.amazonaws.com")])
    only_rules(db_path)
    db = store.open_cache(db_path)
    alerts.save_rule(db, alerts.AlertRule(None, "sql", "Bad", query="DELETE FROM events"))
    alerts.save_rule(db, alerts.AlertRule(
        None, "sql", "From the lab network",
        query="SELECT event_id FROM events WHERE source_ip = '192.0.2.66' AND event_time >= :start",
    ))
    db.close()
    result = alerts.run_alerts(db_path, mail_settings(mail_server), now=END)
    assert result.fired == 1 and result.sent == 1
    assert any(error.startswith('rule "Bad" could not be evaluated') and "would change the cache" in error
               for error in result.errors)
    conn = store.open_cache_readonly(db_path)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    conn.close()


@pytest.mark.parametrize(
    "minutes, new, threshold, expected",
    [
        ([0, 1, 2], [True, True, True], 3, [True, True, True]),
        ([0, 1, 20], [True, True, True], 3, [False, False, False]),
        ([0, 1, 2, 30], [False, False, False, True], 3, [False, False, False, False]),
        ([0, 8, 9, 12], [False, False, False, True], 3, [False, True, True, True]),
        ([0, 10], [True, True], 1, [True, True]),
    ],
)
def test_threshold_windows(minutes, new, threshold, expected):
    times = [END + timedelta(minutes=m) for m in minutes]
    assert alerts.windows_over_threshold(times, new, threshold, timedelta(minutes=10)) == expected


# --- Running ----------------------------------------------------------------------


@pytest.mark.parametrize("text, interval", [("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)),
                                            ("1h30m", timedelta(minutes=90)), ("7d", timedelta(days=7))])
def test_intervals_read_like_people_write_them(text, interval):
    assert alerts.parse_interval(text) == interval


@pytest.mark.parametrize("text", ["", "5", "five minutes", "0m", "5x"])
def test_bad_intervals_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="like 30s, 5m, 1h or 7d|longer than that"):
        alerts.parse_interval(text)


def test_bad_alert_settings_are_reported_and_defaults_used(demo_cache):
    result = alerts.run_alerts(demo_cache, {"alerts": {"base_url": "trailstream", "max_age": "soon"}}, now=END)
    assert any("base_url" in error for error in result.errors)
    assert any("max_age" in error for error in result.errors)
    assert result.fired > 0


def write_settings(path, server: MailServer, extra: str = "") -> None:
    path.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\ntimeout = 10\n'
        f'sender = "TrailStream <trailstream@example.com>"\nrecipients = ["secops@example.com"]\n\n'
        f'[alerts]\nbase_url = "{BASE_URL}"\nmax_age = "36500d"\n{extra}'
    )


def test_alerts_run_on_a_missing_cache_says_what_to_do(db_path, tmp_path, capsys):
    write_settings(tmp_path / "trailstream.toml", MailServer())
    assert cli.main(["--db", str(db_path), "--config", str(tmp_path / "trailstream.toml"), "alerts", "run"]) == 1
    assert "no cache at" in capsys.readouterr().out and not db_path.exists()


def test_alerts_run_exits_zero_when_everything_due_was_sent(demo_cache, tmp_path, mail_server, capsys):
    write_settings(tmp_path / "trailstream.toml", mail_server)
    code = cli.main(["--db", str(demo_cache), "--config", str(tmp_path / "trailstream.toml"), "alerts", "run"])
    assert code == 0
    assert len(mail_server.inbox.envelopes) == len(fired(demo_cache)) > 0
    assert "sent" in capsys.readouterr().out


def test_alerts_run_exits_non_zero_when_a_send_failed(demo_cache, tmp_path, capsys):
    write_settings(tmp_path / "trailstream.toml", MailServer())
    code = cli.main(["--db", str(demo_cache), "--config", str(tmp_path / "trailstream.toml"), "alerts", "run"])
    assert code == 1
    assert "cannot reach the mail server" in capsys.readouterr().out


def test_watch_syncs_the_sources_then_mails_the_alerts(db_path, tmp_path, mail_server):
    logs = tmp_path / "logs"
    now = datetime.now(timezone.utc)
    write_log(logs, [release_address(now - timedelta(hours=1))])
    write_settings(tmp_path / "trailstream.toml", mail_server,
                   f'\n[[sources]]\nname = "local"\nkind = "local"\npath = "{logs}"\n')
    settings = config.load_settings(tmp_path / "trailstream.toml")
    lines = []
    result = jobs.watch(db_path, settings, timedelta(minutes=5), iterations=1, report=lines.append)
    assert result.alerts.sent == len(mail_server.inbox.envelopes) == 1
    assert any("1 new event(s)" in line for line in lines)
    assert any(line.startswith("alerts: 1 fired, 1 sent") for line in lines)


def test_a_second_alerts_run_on_the_same_cache_does_nothing_and_says_so(demo_cache):
    with store.file_lock(demo_cache, "alerts") as acquired:
        assert acquired
        busy = alerts.run_alerts(demo_cache, {}, now=END)
    assert busy.busy and busy.fired == 0
    assert "another alerts run is in progress" in busy.summary()
    assert alerted_events(demo_cache) == {}  # nothing was evaluated while the other run held the lock
    assert alerts.run_alerts(demo_cache, {}, now=END).fired > 0  # and the lock is released with the run
