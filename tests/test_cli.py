"""`python -m trailstream`: the commands users script against, their output and exit codes."""

import gzip
import json
from datetime import datetime, timezone

import boto3
import pytest

from trailstream import catalog, cli
from trailstream.ingest import demo
from trailstream.cache import store

END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_reports_what_the_cache_holds(demo_cache, capsys):
    code, out, _ = run(capsys, "--db", str(demo_cache), "status")
    conn = store.open_cache_readonly(demo_cache)
    events, accounts = conn.execute("SELECT count(*), count(DISTINCT account_id) FROM events").fetchone()
    status = dict(line.strip().split(": ", 1) for line in out.splitlines())
    assert code == 0
    assert int(status["events"]) == events and int(status["accounts"]) == accounts


def test_findings_as_json_have_the_documented_fields_and_types(demo_cache, capsys):
    code, out, _ = run(capsys, "--db", str(demo_cache), "--config", "missing.toml", "findings", "--format", "json")
    findings = json.loads(out)
    assert code == 0 and findings
    for finding in findings:
        assert {"type", "severity", "time", "principal", "account_id", "summary", "event_ids"} <= set(finding)
        assert finding["type"] in catalog.FINDING_TYPES and finding["severity"] in catalog.SEVERITIES
    planted = {kind for kind, cases in demo.PLANTED.items() if any(case["expected"] for case in cases)}
    assert planted & set(catalog.FINDING_TYPES) <= {finding["type"] for finding in findings}


def test_findings_since_a_date_after_everything_is_empty(demo_cache, capsys):
    code, out, _ = run(capsys, "--db", str(demo_cache), "findings", "--since", "2999-01-01", "--format", "json")
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["backfill", "my-bucket", "--since", "2026-01-01"], "is not an S3 location"),
        (["backfill", "s3://b", "--since", "2026-02-01", "--until", "2026-01-01"], "--until is before --since"),
        (["watch", "--every", "soon"], "is not an interval"),
        (["sync", "--queue", "q"], "--bucket is required"),
        (["report", "no such report"], "no such report"),
    ],
)
def test_usage_mistakes_are_one_sentence_and_exit_2(demo_cache, capsys, argv, message):
    code, _, err = run(capsys, "--db", str(demo_cache), *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_command_on_a_missing_cache_says_how_to_make_one(tmp_path, capsys):
    code, _, err = run(capsys, "--db", str(tmp_path / "none.db"), "status")
    assert code == 2 and "trailstream demo" in err


def test_sync_from_a_queue_stores_the_announced_file_and_acknowledges_it(aws, db_path, capsys):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket="trail")
    key, body = next(demo.iter_log_files(demo.generate_records(events=400, seed=2, end=END)))
    s3.put_object(Bucket="trail", Key=key, Body=body)
    queue_url = sqs.create_queue(QueueName="ct")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"s3Bucket": "trail", "s3ObjectKey": [key]}))

    code, out, _ = run(capsys, "--db", str(db_path), "--no-alerts", "sync", "--queue", "ct", "--bucket", "trail")

    stored = store.open_cache_readonly(db_path).execute("SELECT count(*) FROM events").fetchone()[0]
    assert code == 0 and stored == len(json.loads(gzip.decompress(body))["Records"])
    assert f"{stored:,} new event(s)" in out and "1 message(s) acknowledged" in out
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None


def test_retry_imports_a_failed_local_file_once_it_is_fixed(db_path, tmp_path, capsys):
    broken = tmp_path / "logs" / "late.json"
    broken.parent.mkdir()
    broken.write_text('{"Records": [')
    assert run(capsys, "--db", str(db_path), "--no-alerts", "import", str(broken.parent))[0] == 1
    broken.write_text(json.dumps({"Records": demo.generate_records(events=300, seed=4, end=END)}))
    code, out, _ = run(capsys, "--db", str(db_path), "--config", str(tmp_path / "none.toml"), "--no-alerts", "retry")
    conn = store.open_cache_readonly(db_path)
    assert code == 0 and conn.execute("SELECT count(*) FROM events").fetchone()[0] == 300
    assert conn.execute("SELECT status FROM files").fetchone()[0] == "ok"


def test_alerts_run_also_mails_the_scheduled_reports_once(demo_cache, mail_server, tmp_path, capsys):
    import tomlkit

    from trailstream.notify import saved

    settings = tmp_path / "trailstream.toml"
    settings.write_text(tomlkit.dumps({"smtp": mail_server.smtp_section()}))
    saved.save_search(demo_cache, saved.SavedSearch("daily names", "sql", format="csv", schedule="daily", sql=(
        "SELECT event_name, count(*) AS calls FROM events GROUP BY 1")))
    argv = ("--db", str(demo_cache), "--config", str(settings), "alerts", "run")

    code, out, _ = run(capsys, *argv)
    reports_mailed = [m for m in mail_server.inbox.messages if "daily names" in m["Subject"]]
    assert code == 0 and len(reports_mailed) == 1 and "report 'daily names'" in out
    run(capsys, *argv)
    assert len([m for m in mail_server.inbox.messages if "daily names" in m["Subject"]]) == 1


def test_a_broken_settings_file_does_not_undo_an_import(db_path, tmp_path, capsys):
    settings = tmp_path / "trailstream.toml"
    settings.write_text("[smtp\nhost = ")
    logs = tmp_path / "logs"
    generated = demo.generate_records(events=300, seed=6)  # about 300: the planted cases come on top
    demo.write_log_files(logs, generated)
    code, out, err = run(capsys, "--db", str(db_path), "--config", str(settings), "import", str(logs))
    assert code == 0 and f"{len(generated)} new event(s)" in out
    assert "alerts not checked" in err and str(settings) in err and "Traceback" not in err
