"""Secrets in the environment are used, and never written: not to the cache, the settings, logs or outputs."""

import gzip
import json
import logging
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import MailServer
from tests.test_alerts import release_address
from trailstream import cli, config

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAPROBESECRET00042",
    "AWS_SECRET_ACCESS_KEY": "probe-secret-access-key-7f3a9c",
    "AWS_SESSION_TOKEN": "probe-session-token-41d2e8b6",
    "TRAILSTREAM_SMTP_PASSWORD": "probe-smtp-password-9b27c1",
}
BUCKET, ACCOUNT = "secret-probe-trail", "111122223333"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def accept_probe_password(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == SECRETS["TRAILSTREAM_SMTP_PASSWORD"].encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def signed_in_mail_server():
    server = MailServer(authenticator=accept_probe_password, auth_required=True, auth_require_tls=False).start()
    yield server
    server.stop()


def deliver_a_log_file(now: datetime) -> str:
    """A trail bucket with one log file, announced on a queue, as CloudTrail and S3 would leave them."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    key = (f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{now:%Y/%m/%d}/"
           f"{ACCOUNT}_CloudTrail_us-east-1_{now:%Y%m%dT%H%M}Z_secretprobe00001.json.gz")
    body = gzip.compress(json.dumps({"Records": [release_address(now - timedelta(minutes=5))]}).encode())
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    queue = sqs.create_queue(QueueName="secret-probe")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": [key]}))
    return queue


def test_no_file_or_log_we_write_holds_a_secret_from_the_environment(aws, monkeypatch, tmp_path, capsys, caplog,
                                                                     signed_in_mail_server):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG, logger="trailstream")  # everything we log; botocore's own DEBUG is not ours
    deliver_a_log_file(datetime.now(timezone.utc))
    settings_path, db = tmp_path / "trailstream.toml", tmp_path / "trailstream.db"
    settings_path.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {signed_in_mail_server.port}\nsecurity = "none"\n'
        f'username = "trailstream"\nsender = "trailstream@example.com"\nrecipients = ["secops@example.com"]\n'
        f'[alerts]\nmax_age = "36500d"\n'
        f'[[sources]]\nname = "trail"\nkind = "sqs"\nqueue = "secret-probe"\nbuckets = ["{BUCKET}"]\n'
        f'region = "us-east-1"\n')
    settings = config.load_settings(settings_path)
    config.save_settings(settings)  # the app's settings form writes the file back this way

    assert cli.main(["--db", str(db), "--config", str(settings_path), "--quiet", "sync"]) == 0
    assert cli.main(["--db", str(db), "--config", str(settings_path), "query", "--format", "csv",
                     "SELECT * FROM events"]) == 0

    assert len(signed_in_mail_server.inbox.envelopes) == 1  # the password was used to sign in, so it was read
    written = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert db in written and settings_path in written
    shown = capsys.readouterr()
    outputs = {"stdout": shown.out.encode(), "stderr": shown.err.encode(), "log": caplog.text.encode(), **written}
    for name, value in SECRETS.items():
        leaks = [str(place) for place, data in outputs.items() if value.encode() in data]
        assert not leaks, f"{name} was written to {leaks}"
