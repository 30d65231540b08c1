"""Parsing log-file bytes into rows: formats, caps, odd records."""

import gzip

import orjson
import pytest

from trailstream.cache import rows
from trailstream.cache import codec
from trailstream.ingest import records


def log_file(*recs) -> bytes:
    return orjson.dumps({"Records": list(recs)})


def api_call(event_id="e-1", name="DescribeInstances", **extra) -> dict:
    record = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333",
                         "userName": "alice", "accessKeyId": "AKIAEXAMPLE"},
        "eventTime": "2026-11-01T10:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2",
        "requestParameters": {"instancesSet": {"items": [{"instanceId": "i-1"}]}},
        "responseElements": None,
        "eventID": event_id,
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    record.update(extra)
    return record


def row_of(record) -> dict:
    return dict(zip(rows.EVENT_COLUMNS, records.parse_record(record, codec.default_compressor())))


def test_plain_and_gzipped_files_give_the_same_rows():
    data = log_file(api_call())
    plain = records.parse_log_file(data)
    zipped = records.parse_log_file(gzip.compress(data))
    assert [r[:21] for r in plain.rows] == [r[:21] for r in zipped.rows]
    assert plain.records == 1 and plain.kind == "records"


def test_multi_member_gzip_is_read_whole():
    # One document split across two gzip members, as concatenated uploads produce.
    whole = log_file(api_call("a"), api_call("b"))
    data = gzip.compress(whole[:50]) + gzip.compress(whole[50:])
    parsed = records.parse_log_file(data)
    assert [row[0] for row in parsed.rows] == ["a", "b"]


def test_a_gzip_bomb_is_refused_by_the_size_cap():
    bomb = gzip.compress(b" " * 5_000_000)
    with pytest.raises(records.LogFileError, match="limit"):
        records.parse_log_file(bomb, max_bytes=1_000_000)


@pytest.mark.parametrize(
    "data, message",
    [
        (gzip.compress(log_file(api_call()))[:-12], "corrupt gzip"),
        (log_file(api_call())[:-5], "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"Records": {"a": 1}}', "not a list"),
    ],
    ids=["truncated-gzip", "truncated-json", "json-array", "records-not-list"],
)
def test_unreadable_files_raise_a_readable_reason(data, message):
    with pytest.raises(records.LogFileError, match=message):
        records.parse_log_file(data)


def test_digest_and_other_json_are_recognised_not_failed():
    assert records.parse_log_file(b'{"digestPublicKeyFingerprint": "x", "logFiles": []}').kind == "digest"
    assert records.parse_log_file(b'{"hello": "world"}').kind == "other"


@pytest.mark.parametrize(
    "mutation, reason",
    [
        ({"eventID": None}, "no eventID"),
        ({"eventName": ""}, "no eventName"),
        ({"eventTime": "redacted"}, "not an ISO-8601 time"),
        ({"eventTime": "2026-13-01T00:00:00Z"}, "'2026-13-01T00:00:00Z' is not a real time"),
        ({"eventTime": "0000-01-01T00:00:00Z"}, "is not a real time"),
        ({"eventTime": "2026-02-30T10:00:00Z"}, "is not a real time"),
        ({"eventTime": "2026-11-01T24:00:00Z"}, "is not a real time"),
    ],
)
def test_bad_records_are_refused_one_by_one(mutation, reason):
    parsed = records.parse_log_file(log_file(api_call("good"), api_call("bad", **mutation), "not a record"))
    assert [row[0] for row in parsed.rows] == ["good"]
    assert parsed.rejects[0][0] == 1 and reason in parsed.rejects[0][2]
    assert parsed.rejects[1] == (2, None, "record is not a JSON object")


@pytest.mark.parametrize(
    "given, stored",
    [
        ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z"),
        ("2026-11-01T10:00:00.123Z", "2026-11-01T10:00:00Z"),
        ("2026-11-01T12:00:00+02:00", "2026-11-01T10:00:00Z"),
        ("2026-11-01 10:00:00", "2026-11-01T10:00:00Z"),
    ],
)
def test_event_times_are_normalised_to_utc_seconds(given, stored):
    assert records.normalize_event_time(given) == stored


@pytest.mark.parametrize(
    "identity, principal",
    [
        ({"type": "IAMUser", "userName": "alice", "arn": "arn:aws:iam::1:user/alice"}, "alice"),
        ({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/Admin/bob"}, "Admin/bob"),
        ({"type": "Root", "arn": "arn:aws:iam::1:root"}, "root"),
        ({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}, "ec2.amazonaws.com"),
        ({"type": "FederatedUser", "arn": "arn:aws:sts::1:federated-user/carol"}, "carol"),
        ({"type": "AWSAccount", "accountId": "444455556666"}, "account/444455556666"),
        ({"type": "IdentityCenterUser", "onBehalfOf": {"userId": "u-123"}}, "u-123"),
    ],
)
def test_principal_is_readable_for_every_identity_type(identity, principal):
    assert row_of(api_call(userIdentity=identity))["principal"] == principal


def test_account_falls_back_to_the_caller_account():
    record = api_call()
    del record["recipientAccountId"]
    assert row_of(record)["account_id"] == "111122223333"


def test_read_only_accepts_booleans_and_strings():
    assert row_of(api_call(readOnly="false"))["read_only"] == 0
    assert row_of(api_call(readOnly=True))["read_only"] == 1
    assert row_of(api_call(readOnly=None))["read_only"] is None


@pytest.mark.parametrize("identity", [
    {"type": "IAMUser", "arn": "arn:aws:iam::1:user/alice", "accessKeyId": "AKIA1", "userName": "alice"},
    {"arn": "", "type": None, "accessKeyId": 7, "principalId": "x"},  # not plain text: stays in the blob
])
def test_the_record_is_restored_losslessly_in_key_order(identity):
    record = api_call(responseElements={"big": ["x" * 50] * 20}, additionalEventData={"MFAUsed": "No"},
                      userIdentity=identity, errorCode="", errorMessage=None)
    row = row_of(record)
    blob = codec.decompress(row["raw"], None)
    restored = rows.restore_record(blob, {c: row[c] for c in rows.RESTORE_COLUMNS})
    assert restored == record and list(restored) == list(record)
    assert list(restored["userIdentity"]) == list(record["userIdentity"])
    assert orjson.loads(row["request_parameters"]) == record["requestParameters"]


def test_values_a_column_holds_are_not_stored_again_in_the_blob():
    record = api_call(sourceIPAddress="198.51.100.77", userAgent="Boto3/1.34.42 unique-agent")
    blob = codec.decompress(row_of(record)["raw"], None)
    for value in ("198.51.100.77", "unique-agent", "AKIAEXAMPLE", "arn:aws:iam::111122223333:user/alice", "e-1"):
        assert value.encode() not in blob


def test_an_identity_center_user_is_named_by_the_readable_user_name_the_record_carries():
    identity = {"type": "IdentityCenterUser", "accountId": "111122223333",
                "onBehalfOf": {"userId": "94482488-3041-7026-18f3-be45837cd0e4",
                               "identityStoreArn": "arn:aws:identitystore::111122223333:identitystore/d-9067642ac7"},
                "credentialId": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE"}
    record = api_call(userIdentity=identity, additionalEventData={"UserName": "maria.garcia", "CredentialType": "PASSWORD"})
    assert row_of(record)["principal"] == "maria.garcia"


def test_a_record_without_category_that_says_it_is_not_a_management_event_is_a_data_event():
    assert row_of(api_call(managementEvent=False))["event_category"] == "Data"
    assert row_of(api_call(managementEvent=True))["event_category"] == "Management"
    assert row_of(api_call())["event_category"] == "Management"
    assert row_of(api_call(managementEvent=False, eventCategory="NetworkActivity"))["event_category"] == "NetworkActivity"


def test_empty_identity_strings_are_stored_as_unknown():
    identity = {"type": "", "principalId": "", "arn": "", "accountId": "", "accessKeyId": "", "userName": ""}
    record = api_call(userIdentity=identity)
    del record["recipientAccountId"]
    row = row_of(record)
    assert [row[c] for c in ("principal", "principal_arn", "user_type", "access_key_id", "account_id")] == [None] * 5


def test_a_file_too_large_to_hold_gives_the_same_rows_streamed_record_by_record():
    recs = [api_call(f"e-{n}", eventTime=f"2026-11-01T10:{n % 60:02}:00Z") for n in range(300)] + ["not a record"]
    data = gzip.compress(log_file(*recs))
    whole = records.parse_log_file(data)
    with pytest.raises(records.FileTooLargeToBuffer):
        records.parse_log_file(data, buffer_limit=10_000)
    streamed = records.parse_large_log_file(data)
    assert not isinstance(streamed.rows, list)
    assert [row[:21] for row in streamed.rows] == [row[:21] for row in whole.rows]
    for field_name in ("records", "rejects", "positions", "oldest_event_time", "newest_event_time", "sha256"):
        assert getattr(streamed, field_name) == getattr(whole, field_name), field_name


def test_a_streamed_file_that_breaks_part_way_raises_a_readable_reason_while_read():
    data = log_file(*[api_call(f"e-{n}") for n in range(50)])[:-400]
    parsed = records.parse_large_log_file(data)
    with pytest.raises(records.LogFileError, match="not valid JSON"):
        list(parsed.rows)


def test_a_gzip_trailer_claiming_more_than_the_cap_is_refused_without_decompressing():
    data = gzip.compress(b" " * 3_000_000)  # about 3 KB claiming 3 MB: within what deflate can do
    with pytest.raises(records.LogFileError, match="gzip bomb"):
        records.read_log_bytes(data, max_bytes=1_000_000)
    with pytest.raises(records.LogFileError, match="gzip bomb"):
        records.parse_large_log_file(data + gzip.compress(b" "), max_bytes=1_000_000)  # a last member that lies


def test_reading_a_tiny_file_reserves_no_memory_for_the_cap():
    import resource
    import subprocess
    import sys

    script = ("from trailstream.ingest import records; import gzip; "
              "print(records.read_log_bytes(gzip.compress(b'{\"Records\": []}')))")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (600_000_000, 600_000_000))  # less than the 1 GiB cap

    done = subprocess.run([sys.executable, "-c", script], preexec_fn=limit, capture_output=True, text=True)
    assert done.returncode == 0 and "Records" in done.stdout, done.stderr
