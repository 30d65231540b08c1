"""Log integrity: a fake CloudTrail signs real digest chains (RSA-2048) and verification tells tampering apart."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from tests.cloudtrail_fake import FakeCloudTrail, SigningKey, public_keys_json
from trailstream import cli
from trailstream.analytics import integrity
from trailstream.cache import store
from trailstream.ingest import aws_sync, digests, integrity_sync, sync

ACCOUNT, OTHER = "111122223333", "444455556666"
BUCKET = "trail-bucket"
FIRST = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)
GOLDEN = Path(__file__).parent / "data" / "integrity_golden.json"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """Region keys as CloudTrail holds them: two for us-east-1 (a rotation), one for eu-west-1."""
    return {"east": SigningKey.generate(), "east-next": SigningKey.generate(), "west": SigningKey.generate()}


def key_ring(*signers: SigningKey, pkcs1: bool = False) -> dict[str, bytes]:
    return {signer.fingerprint: signer.public_der(pkcs1) for signer in signers}


def imported(trail: FakeCloudTrail, tmp_path: Path) -> Path:
    """The trail copied to a folder as `aws s3 sync` would, and imported into a fresh cache."""
    db = tmp_path / "cache.db"
    result = sync.import_paths(db, [trail.write_folder(tmp_path / "copy")], workers=1)
    assert result.failed == 0, result.failures
    return db


def report_of(db: Path, keys: dict[str, bytes], **options) -> integrity.IntegrityReport:
    with store.open_cache_readonly(db) as conn:
        return integrity.verify_integrity(conn, keys, **options)


def states(frame) -> dict[str, str]:
    return dict(zip(frame["key"].map_elements(lambda k: k.rsplit("/", 1)[-1], return_dtype=str), frame["state"]))


def file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def test_a_valid_chain_with_a_starting_and_an_empty_digest_is_verified(keys, tmp_path):
    trail = FakeCloudTrail()
    made = trail.hours(ACCOUNT, "us-east-1", FIRST, 4, keys["east"], empty=(2,))
    report = report_of(imported(trail, tmp_path), key_ring(keys["east"]))

    assert set(report.digests["state"]) == {"verified", "unchecked"}  # offline, the newest has no signature
    assert states(report.digests)[file_name(made[-1])] == "unchecked"
    assert report.counts() | {} == {"digests_valid": 3, "digests": 3, "digests_unchecked": 1, "log_files_valid": 3,
                                    "log_files": 3}
    assert not report.failed
    assert set(report.hours["state"]) == {"verified", "pending"}


def test_digests_and_their_signatures_come_from_s3_metadata_through_a_backfill(keys, db_path, aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    trail = FakeCloudTrail(prefix="org-trail/", org="o-abcdefghij")
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    trail.hours(OTHER, "eu-west-1", FIRST, 3, keys["west"])
    trail.write_s3(s3)

    result = aws_sync.backfill(db_path, BUCKET, "org-trail", since=date(2026, 3, 1), until=date(2026, 3, 2), workers=1)

    assert result.failed == 0 and result.new_events == 6
    report = report_of(db_path, key_ring(keys["east"], keys["west"]))
    assert set(report.digests["state"]) == {"verified"}  # the newest too: its signature came with the metadata
    assert report.counts()["log_files_valid"] == report.counts()["log_files"] == 6 and report.log_files.height == 0
    assert not report.failed


def test_a_digest_announced_on_the_queue_is_stored_with_its_signature(keys, db_path, aws):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="trail-queue")["QueueUrl"]
    trail = FakeCloudTrail()
    [digest] = trail.hours(ACCOUNT, "us-east-1", FIRST, 1, keys["east"])
    trail.write_s3(s3)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": list(trail.objects)}))

    result = aws_sync.sync_queue(db_path, queue, [BUCKET], wait_seconds=1, workers=1)

    assert (result.failed, result.skipped, result.messages_deleted) == (0, 0, 1)
    assert states(report_of(db_path, key_ring(keys["east"])).digests) == {file_name(digest): "verified"}


def flip_a_byte(trail: FakeCloudTrail, key: str) -> None:
    text = bytearray(gzip.decompress(trail.objects[key].body))
    text[text.index(b"alice")] = ord("A")
    trail.objects[key].body = gzip.compress(bytes(text))


def test_one_byte_flipped_in_a_log_file_is_modified(keys, tmp_path):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    victim = sorted(k for k in trail.objects if "/CloudTrail/" in k)[0]
    flip_a_byte(trail, victim)

    report = report_of(imported(trail, tmp_path), key_ring(keys["east"]))

    assert states(report.log_files)[file_name(victim)] == "modified"
    assert report.failed and "modified" in set(report.hours["state"])


@pytest.mark.parametrize("appended, state", [(b"\n", "trailing data"), (b'{"Records": [{"eventID": "injected"}]}',
                                                                       "unreadable")])
def test_a_second_gzip_member_appended_to_a_log_file_is_tampering(keys, tmp_path, appended, state):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 2, keys["east"])
    victim = sorted(k for k in trail.objects if "/CloudTrail/" in k)[0]
    trail.objects[victim].body += gzip.compress(appended)
    db = tmp_path / "cache.db"
    sync.import_paths(db, [trail.write_folder(tmp_path / "copy")], workers=1)

    report = report_of(db, key_ring(keys["east"]))

    assert states(report.log_files)[file_name(victim)] == state and report.failed
    with store.open_cache_readonly(db) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE event_id = 'injected'").fetchone()[0] == 0


def test_a_deleted_log_file_is_missing(keys, tmp_path):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    victim = sorted(k for k in trail.objects if "/CloudTrail/" in k)[1]
    del trail.objects[victim]

    report = report_of(imported(trail, tmp_path), key_ring(keys["east"]))

    assert states(report.log_files)[file_name(victim)] == "missing"
    assert report.failed


@pytest.mark.parametrize("deleted, missing_hours", [((2,), 1), ((2, 3), 2)])
def test_deleted_digests_are_missing_hours_each(keys, tmp_path, deleted, missing_hours):
    trail = FakeCloudTrail()
    made = trail.hours(ACCOUNT, "us-east-1", FIRST, 6, keys["east"])
    for position in deleted:
        del trail.objects[made[position]]

    report = report_of(imported(trail, tmp_path), key_ring(keys["east"]))

    missing = report.digests.filter(report.digests["state"] == "missing")
    assert missing.height == missing_hours
    assert missing["hour"].to_list() == [FIRST + timedelta(hours=h) for h in deleted]
    assert file_name(made[deleted[-1]]) in {file_name(k) for k in missing["key"]}  # named by the next digest's link
    assert (report.hours.filter(report.hours["state"] == "missing")).height == missing_hours
    assert report.failed


def test_a_digest_copied_to_another_key_is_moved(keys, tmp_path):
    trail = FakeCloudTrail()
    made = trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    copy = made[0].replace("/2026/03/01/", "/2026/03/02/")
    trail.objects[copy] = trail.objects[made[0]].__class__(copy, trail.objects[made[0]].body)

    report = report_of(imported(trail, tmp_path), key_ring(keys["east"]))

    moved = report.digests.filter(report.digests["state"] == "moved")
    assert moved["key"].to_list() == [str((tmp_path / "copy" / copy).resolve())]
    assert report.failed


@pytest.mark.parametrize("change, expected", [("remove", "verified"), ("wrong", "signature invalid")])
def test_signature_metadata_removed_or_wrong(keys, db_path, aws, change, expected):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    trail = FakeCloudTrail()
    made = trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    middle = trail.objects[made[1]]
    middle.metadata = {} if change == "remove" else {**middle.metadata, "signature": keys["west"].sign("forged")}
    trail.write_s3(s3)
    aws_sync.backfill(db_path, BUCKET, since=date(2026, 3, 1), until=date(2026, 3, 1), workers=1)

    found = states(report_of(db_path, key_ring(keys["east"])).digests)

    # without metadata the next digest's previousDigestSignature still vouches for it
    assert found[file_name(made[1])] == expected and found[file_name(made[2])] == "verified"


def test_an_unknown_fingerprint_is_reported_not_verified(keys, tmp_path):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])

    report = report_of(imported(trail, tmp_path), key_ring(keys["west"]))

    assert set(report.digests["state"]) == {"unknown key", "unchecked"}
    assert report.failed and "fingerprint" in report.problems()["reason"][0]


@pytest.mark.parametrize("pkcs1", [False, True], ids=["SubjectPublicKeyInfo", "PKCS#1"])
def test_key_rotation_and_two_regions_verify_with_either_key_encoding(keys, tmp_path, pkcs1):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 2, keys["east"])
    trail.hours(ACCOUNT, "us-east-1", FIRST, 2, keys["east-next"])  # the key rotates mid-range
    trail.hours(ACCOUNT, "eu-west-1", FIRST, 3, keys["west"])

    report = report_of(imported(trail, tmp_path), key_ring(keys["east"], keys["east-next"], keys["west"], pkcs1=pkcs1))

    assert report.digests.height == 7 and not report.failed
    assert set(report.digests["state"]) == {"verified", "unchecked"}
    assert set(report.hours["region"]) == {"us-east-1", "eu-west-1"}


def test_a_backfill_digest_signed_by_a_later_key_verifies_and_asks_for_keys_around_its_generation(keys, tmp_path):
    trail = FakeCloudTrail()
    generated = FIRST + timedelta(days=40)
    trail.hours(ACCOUNT, "us-east-1", FIRST, 1, keys["east"])
    backfill = trail.add_digest(ACCOUNT, "us-east-1", FIRST + timedelta(hours=1, seconds=30), keys["east-next"], [],
                                backfill_at=generated)
    trail.hours(ACCOUNT, "us-east-1", FIRST, 1, keys["east-next"])
    db = imported(trail, tmp_path)

    found = states(report_of(db, key_ring(keys["east"], keys["east-next"])).digests)
    window = integrity_sync.public_key_windows([{"region": "us-east-1", "start": None, "end": FIRST,
                                                 "backfill_generated_at": "2026-04-10T00:00:00Z"}])

    assert digests.parse_digest_key(backfill).backfill and found[file_name(backfill)] == "verified"
    assert window == {"us-east-1": (generated - timedelta(hours=1), generated + timedelta(hours=1))}


def test_a_stop_and_start_is_a_gap_explained_by_the_stoplogging_call(keys, tmp_path):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 1, keys["east"])
    stop = FIRST + timedelta(hours=1, minutes=5)
    stop_log = trail.add_log(ACCOUNT, "us-east-1", stop, "stop", [{
        "eventID": "stop-1", "eventTime": stop.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventName": "StopLogging",
        "eventSource": "cloudtrail.amazonaws.com", "awsRegion": "us-east-1", "recipientAccountId": ACCOUNT,
        "userIdentity": {"type": "IAMUser", "userName": "mallory", "accountId": ACCOUNT}}])
    trail.add_digest(ACCOUNT, "us-east-1", trail.heads[(ACCOUNT, "us-east-1")]["end"], keys["east"], [stop_log])
    trail.hours(ACCOUNT, "us-east-1", FIRST + timedelta(hours=5), 2, keys["east"], starting=True)

    report = report_of(imported(trail, tmp_path), key_ring(keys["east"]))

    gaps = report.digests.filter(report.digests["state"] == "gap")
    assert gaps.height == 3 and "StopLogging" in gaps["reason"][0] and "mallory" in gaps["reason"][0]
    assert report.hours.filter(report.hours["state"] == "gap").height == 3
    assert "missing" not in set(report.digests["state"])


def test_an_unreferenced_log_file_is_flagged_once_its_digest_is_overdue(keys, tmp_path):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    injected = trail.add_log(ACCOUNT, "us-east-1", FIRST + timedelta(hours=1, minutes=40), "injected")
    db = imported(trail, tmp_path)

    later = report_of(db, key_ring(keys["east"]))
    soon = report_of(db, key_ring(keys["east"]), now=FIRST + timedelta(hours=3))

    assert states(later.log_files)[file_name(injected)] == "unreferenced" and later.failed
    assert states(soon.log_files)[file_name(injected)] == "pending"


def test_log_files_of_a_region_without_digests_are_validation_off_not_failures(keys, tmp_path):
    trail = FakeCloudTrail()
    trail.add_log(OTHER, "ap-south-1", FIRST, "plain")

    report = report_of(imported(trail, tmp_path), {})

    assert set(report.hours["state"]) == {"validation off"} and not report.failed


def test_golden_vector_string_to_sign_and_signature():
    vector = json.loads(GOLDEN.read_text())
    digest_bytes = bytes.fromhex(vector["digest_hex"])
    document = json.loads(digest_bytes)

    import hashlib

    sha256 = hashlib.sha256(digest_bytes).hexdigest()
    message = integrity.string_to_sign(document["digestEndTime"], document["digestS3Bucket"],
                                       document["digestS3Object"], sha256, document["previousDigestSignature"])
    key = integrity.load_public_key(bytes.fromhex(vector["public_key_der_hex"]))

    assert message.decode() == vector["string_to_sign"]
    assert integrity.signature_valid(key, message, vector["signature"])
    assert not integrity.signature_valid(key, message + b"x", vector["signature"])


def test_cli_verify_passes_a_clean_folder_and_fails_a_tampered_one(keys, tmp_path, capsys):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    db = imported(trail, tmp_path)
    key_file = tmp_path / "keys.json"
    key_file.write_text(public_keys_json(keys["east"]))

    clean = cli.main(["--db", str(db), "verify", "--public-keys", str(key_file)])
    clean_out = capsys.readouterr().out
    flip_a_byte(trail, sorted(k for k in trail.objects if "/CloudTrail/" in k)[0])
    tampered_db = imported(trail, tmp_path / "again")
    tampered = cli.main(["--db", str(tampered_db), "verify", "--public-keys", str(key_file), "--format", "json"])
    document = json.loads(capsys.readouterr().out)

    assert clean == 0 and "2/2 digest files valid" in clean_out and "3/3 log files valid" in clean_out
    assert "not checked" in clean_out  # the newest digest, whose signature stayed in S3
    assert tampered == 1 and [p["state"] for p in document["problems"]] == ["modified"]


def test_cli_verify_explains_a_bad_public_keys_file(tmp_path, capsys):
    (tmp_path / "keys.json").write_text("{}")
    code = cli.main(["--db", str(tmp_path / "none.db"), "verify", "--public-keys", str(tmp_path / "keys.json")])
    assert code == 2 and "not a public keys file" in capsys.readouterr().err


def tampered_cache_for_the_app(keys, tmp_path, monkeypatch) -> Path:
    """A cache whose newest log file was altered after delivery, with the region key stored, and the app on it."""
    from tests.conftest import point_app_at
    from trailstream.cache import integrity as tables

    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    trail.add_digest(ACCOUNT, "us-east-1", trail.heads[(ACCOUNT, "us-east-1")]["end"], keys["east"], [])
    flip_a_byte(trail, sorted(k for k in trail.objects if "/CloudTrail/" in k)[-1])
    db = imported(trail, tmp_path)
    with store.open_cache(db) as cache:
        tables.save_public_keys(cache, [{"fingerprint": keys["east"].fingerprint, "value": keys["east"].public_der()}])
    point_app_at(monkeypatch, db, tmp_path / "trailstream.toml")
    return db


def test_the_page_shows_the_tampered_hour_and_a_picked_cell_gives_its_reason(keys, tmp_path, monkeypatch):
    from tests.conftest import open_page

    tampered_cache_for_the_app(keys, tmp_path, monkeypatch)
    at = open_page("pages/integrity.py", range="all")
    [problems] = [frame.value for frame in at.dataframe]  # the problems table; no cell picked yet
    [picker] = [box for box in at.selectbox if box.label == "Or pick an hour with problems"]
    picker.select(0).run()
    details, _problems = [frame.value for frame in at.dataframe]

    assert problems["state"].tolist() == ["modified"]
    assert "modified" in details["state"].tolist() and any("SHA-256 differs" in r for r in details["reason"])
    assert at.error, "the page says the trail fails verification"
    assert {button.key for button in at.get("download_button")} >= {"table-integrity-report-CSV",
                                                                     "table-integrity-report-JSON"}


def test_the_raw_record_of_an_event_from_a_modified_file_carries_a_badge(keys, tmp_path, monkeypatch):
    from tests.conftest import HOME_PAGE, open_page

    tampered_cache_for_the_app(keys, tmp_path, monkeypatch)
    at = open_page(HOME_PAGE, range="all")
    at.session_state["overview-events"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()

    assert any("Not verified (modified)" in warning.value for warning in at.warning)
    at.session_state["overview-events"] = {"selection": {"rows": [2], "columns": [], "cells": []}}  # the oldest
    at.run()
    assert any("verified against CloudTrail's signed digest" in caption.value for caption in at.caption)
    assert not any("Not verified" in warning.value for warning in at.warning)


def test_built_in_alerts_fire_for_a_modified_file_and_for_digests_that_stopped(keys, tmp_path, monkeypatch):
    from trailstream.notify import alerts

    db = tampered_cache_for_the_app(keys, tmp_path, monkeypatch)

    result = alerts.run_alerts(db, None, now=FIRST + timedelta(hours=12))

    with store.open_cache_readonly(db) as conn:
        fired = dict(conn.execute("SELECT rule_name, summary FROM fired_alerts").fetchall())
    assert result.fired >= 2
    assert "modified log file 111122223333 us-east-1" in fired["Log file modified or injected"]
    assert "no digest from 111122223333 us-east-1 since" in fired["Digests stopped arriving"]
    assert "Log file or digest missing" not in fired and "Digest chain broken or signature invalid" not in fired


class PublicKeysServer:
    """CloudTrail's ListPublicKeys on 127.0.0.1, speaking its JSON 1.1 wire protocol (moto lacks the operation)."""

    TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListPublicKeys"

    def __init__(self, *signers: SigningKey):
        import http.server
        import threading

        server = self
        self.requests: list[dict] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                server.requests.append({"target": self.headers.get("X-Amz-Target"), **body})
                answer = {"PublicKeyList": [
                    {"Value": base64.b64encode(s.public_der()).decode(), "Fingerprint": s.fingerprint,
                     "ValidityStartTime": body["StartTime"], "ValidityEndTime": body["EndTime"]} for s in signers]}
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_verify_fetches_missing_public_keys_from_cloudtrail_then_works_offline(keys, tmp_path, aws, monkeypatch, capsys):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    db = imported(trail, tmp_path)
    server = PublicKeysServer(keys["east"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", server.url)
    try:
        online = cli.main(["--db", str(db), "verify"])
    finally:
        server.stop()
    offline = cli.main(["--db", str(db), "verify"])  # the keys stayed in the cache

    [request] = server.requests
    assert request["target"] == PublicKeysServer.TARGET
    assert request["StartTime"] == (FIRST + timedelta(seconds=30) - timedelta(hours=1)).timestamp()
    assert request["EndTime"] == (FIRST + timedelta(hours=3, seconds=30) + timedelta(hours=2)).timestamp()
    assert online == 0 and offline == 0
    assert capsys.readouterr().out.count("2/2 digest files valid") == 2


def test_a_backfill_keeps_the_public_keys_its_digests_need(keys, db_path, aws, monkeypatch):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 2, keys["east"])
    trail.write_s3(s3)
    server = PublicKeysServer(keys["east"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", server.url)
    try:
        aws_sync.backfill(db_path, BUCKET, since=date(2026, 3, 1), until=date(2026, 3, 1), workers=1)
    finally:
        server.stop()

    report = report_of(db_path, {})  # no keys passed: the cache has them
    assert set(report.digests["state"]) == {"verified"} and len(server.requests) == 1


@pytest.mark.parametrize("change", ["garbage", "bad time"])
def test_an_unreadable_digest_is_malformed_and_fails_verification(keys, tmp_path, change):
    trail = FakeCloudTrail()
    made = trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    body = trail.objects[made[1]].body
    trail.objects[made[1]].body = (gzip.compress(b'{"digestPublicKeyFingerprint": 7, "logFiles": "none"}')
                                   if change == "garbage" else
                                   gzip.compress(gzip.decompress(body).replace(b'"digestStartTime": "2026', b'"digestStartTime": "x026')))

    report = report_of(imported(trail, tmp_path), key_ring(keys["east"]))

    assert states(report.digests)[file_name(made[1])] == "malformed" and report.failed
    assert "missing" not in set(report.digests["state"])  # its hour is there, just unreadable


def test_cli_verify_names_each_failure_and_filters_by_region(keys, tmp_path, capsys):
    trail = FakeCloudTrail()
    trail.hours(ACCOUNT, "us-east-1", FIRST, 3, keys["east"])
    trail.hours(ACCOUNT, "eu-west-1", FIRST, 3, keys["west"])
    victim = sorted(k for k in trail.objects if "/CloudTrail/us-east-1/" in k)[0]
    del trail.objects[victim]
    db = imported(trail, tmp_path)
    key_file = tmp_path / "keys.json"
    key_file.write_text(public_keys_json(keys["east"], keys["west"]))

    everywhere = cli.main(["--db", str(db), "verify", "--public-keys", str(key_file)])
    report = capsys.readouterr().out
    west_only = cli.main(["--db", str(db), "verify", "--public-keys", str(key_file), "--region", "eu-west-1"])

    assert everywhere == 1 and west_only == 0
    assert f"missing: log file {ACCOUNT} us-east-1 2026-03-01T00:00:00Z {victim}: listed by its digest" in report


@pytest.mark.parametrize("name, listed", [("cloudtrail-digest-file_with-log-files.json", 1),
                                          ("cloudtrail-digest-file_no-log-files.json", 0)])
def test_the_documented_digest_files_parse_with_their_links(corpus, name, listed):
    import hashlib

    data = (corpus / "messages" / name).read_bytes()
    parsed = digests.parse_digest_document(json.loads(data), hashlib.sha256(data).hexdigest())

    assert parsed.values.get("error") is None and len(parsed.log_files) == listed
    assert (parsed.values["account_id"], parsed.values["region"], parsed.values["home_region"]) == (
        "111122223333", "us-east-2", "us-east-2")
    assert parsed.values["trail"] in ("your-trail-name", "example-trail-name")  # as each documentation sample names it
    assert parsed.values["previous_object"] is None or "CloudTrail-Digest" in parsed.values["previous_object"]
