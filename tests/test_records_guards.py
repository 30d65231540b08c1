"""Parsing and its caps, exactly: boundaries, messages, counts and every column. Written to kill mutmut's mutants (README)."""

import gzip
import hashlib

import orjson
import pytest

from trailstream.cache import codec, rows
from trailstream.ingest import records

TEXT = orjson.dumps({"Records": []})


def record(**extra) -> dict:
    base = {"eventVersion": "1.09", "eventTime": "2026-11-01T10:00:00Z", "eventSource": "iam.amazonaws.com",
            "eventName": "CreateUser", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9",
            "userAgent": "=cmd|' /C calc'!A0", "errorCode": "AccessDenied", "errorMessage": "no",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333",
                             "userName": "alice", "accessKeyId": "AKIAEXAMPLE"},
            "requestParameters": {"userName": "bob"}, "responseElements": None, "eventID": "e-1", "readOnly": False,
            "eventType": "AwsApiCall", "eventCategory": "Management", "recipientAccountId": "444455556666",
            "resources": [{"ARN": "arn:aws:iam::1:user/bob"}], "additionalEventData": {"k": 1}}
    base.update(extra)
    return base


def row_of(rec) -> dict:
    return dict(zip(rows.STORED_COLUMNS, records.parse_record(rec, codec.default_compressor())))


def test_every_column_of_a_full_record_is_taken_from_its_own_field():
    row = row_of(record())
    expected = {"event_id": "e-1", "event_time": "2026-11-01T10:00:00Z", "event_source": "iam.amazonaws.com",
                "event_name": "CreateUser", "aws_region": "us-east-1", "account_id": "444455556666", "principal": "alice",
                "principal_arn": "arn:aws:iam::111122223333:user/alice", "user_type": "IAMUser",
                "access_key_id": "AKIAEXAMPLE", "source_ip": "203.0.113.9", "user_agent": "=cmd|' /C calc'!A0",
                "error_code": "AccessDenied", "error_message": "no", "read_only": 0, "event_type": "AwsApiCall",
                "event_category": "Management", "resources": '[{"ARN":"arn:aws:iam::1:user/bob"}]',
                "request_parameters": '{"userName":"bob"}', "response_elements": None,
                "additional_event_data": '{"k":1}'}
    assert {column: row[column] for column in expected} == expected
    assert row["raw_codec"] == codec.default_compressor().codec_id


def test_the_record_hash_is_pinned_so_stored_caches_keep_telling_redeliveries_from_conflicts():
    """A cache compares this hash with the one stored by earlier versions: changing how it is made breaks them."""
    first = row_of(record())["record_hash"]
    assert len(first) == 8 and first == row_of(record())["record_hash"]
    assert first.hex() == "0682c07cd9162b63"
    assert row_of(record(errorMessage=None))["record_hash"] != row_of(record(errorMessage="None"))["record_hash"]


@pytest.mark.parametrize(("rec", "reason"), [
    ("text", "record is not a JSON object"),
    (record(eventID="  "), "record has no eventID"),
    (record(eventID=5), "record has no eventID"),
    (record(eventName=""), "record has no eventName"),
    (record(eventName=5), "record has no eventName"),
    (record(eventTime=""), "record has no eventTime"),
    (record(eventTime=5), "record has no eventTime"),
    (record(eventTime="x" * 60), f"eventTime {'x' * 40!r} is not an ISO-8601 time"),
])
def test_a_refused_record_says_exactly_why(rec, reason):
    with pytest.raises(records.RecordRejected) as refused:
        records.parse_record(rec, codec.default_compressor())
    assert str(refused.value) == reason


def test_a_file_counts_each_record_its_position_times_and_refusals():
    recs = [record(eventID="b", eventTime="2026-11-01T12:00:00Z"), record(eventID=5, eventName=""),
            record(eventID="a", eventTime="2026-11-01T09:00:00Z"), record(eventID="c", eventTime="2026-11-01T10:00:00Z"),
            record(eventID="d", eventName=None)]
    parsed = records.parse_log_file(orjson.dumps({"Records": recs}))
    assert [row[0] for row in parsed.rows] == ["b", "a", "c"]
    assert (parsed.records, parsed.positions) == (5, [0, 2, 3])
    assert (parsed.oldest_event_time, parsed.newest_event_time) == ("2026-11-01T09:00:00Z", "2026-11-01T12:00:00Z")
    assert parsed.rejects == [(1, None, "record has no eventID"), (4, "d", "record has no eventName")]


@pytest.mark.parametrize(("identity", "additional", "principal"), [
    ({"type": "AssumedRole", "arn": "arn:aws:iam::1:role/Admin", "userName": "u"}, None, "u"),
    ({"type": "FederatedUser", "arn": "arn:aws:iam::1:x/y"}, None, "y"),
    ({"type": "AWSService"}, None, "AWS service"),
    ({"type": "IdentityCenterUser", "userName": "named", "onBehalfOf": {"userId": "u-1"}}, {"UserName": "r"}, "named"),
    ({"type": "IdentityCenterUser", "onBehalfOf": {"userId": "u-1"}}, {"UserName": 5}, "u-1"),
    ({"type": "IdentityCenterUser", "onBehalfOf": None, "principalId": "p-1"}, "not a dict", "p-1"),
    ({"type": "IAMUser", "arn": "arn:aws:iam::1:user/path/carol"}, None, "carol"),
    ({"type": "AWSAccount", "principalId": "AIDA1"}, None, "account/AIDA1"),
    ({"type": "Unknown", "arn": "arn:aws:iam::1:thing/a/b"}, None, "b"),
    ({"type": "Unknown", "invokedBy": "svc"}, None, "svc"),
    ({"type": "Unknown", "principalId": "p", "invokedBy": "svc"}, None, "p"),
])
def test_principal_names_for_each_identity_shape(identity, additional, principal):
    assert records.principal_name(identity, additional) == principal


@pytest.mark.parametrize(("value", "flag"), [(False, 0), (True, 1), ("TRUE", 1), ("False", 0), ("yes", None), (1, None)])
def test_read_only_flags(value, flag):
    assert row_of(record(readOnly=value))["read_only"] == flag


@pytest.mark.parametrize(("extra", "category"), [
    ({"eventCategory": 5}, "5"),
    ({"eventCategory": None, "eventType": "AwsCloudTrailInsight"}, "Insight"),
    ({"eventCategory": None, "managementEvent": "false"}, "Data"),
    ({"eventCategory": None, "managementEvent": "true"}, "Management"),
])
def test_event_category_with_and_without_the_field(extra, category):
    assert row_of(record(**extra))["event_category"] == category


def test_non_text_values_become_text_and_an_identity_that_is_not_an_object_is_ignored():
    row = row_of(record(awsRegion=5, userIdentity="root", recipientAccountId=None))
    assert (row["aws_region"], row["principal"], row["account_id"], row["user_type"]) == ("5", None, None, None)


def test_the_plain_size_cap_is_exact_and_says_its_limit():
    assert records.read_log_bytes(TEXT, max_bytes=len(TEXT)) == TEXT
    with pytest.raises(records.LogFileError) as refused:
        records.read_log_bytes(TEXT, max_bytes=len(TEXT) - 1)
    assert str(refused.value) == f"file is larger than the {len(TEXT) - 1:,}-byte limit"


def test_the_decompressed_size_cap_is_exact_and_says_its_limit():
    data = gzip.compress(b" " * 2_000)
    assert len(records.read_log_bytes(data, max_bytes=2_000)) == 2_000
    with pytest.raises(records.LogFileError) as refused:
        records.read_log_bytes(data + gzip.compress(b" "), max_bytes=2_000)
    assert str(refused.value) == "decompresses to more than the 2,000-byte limit (possible gzip bomb)"


def fake_gzip(length: int, claimed: int) -> bytes:
    """Gzip magic, broken deflate data, and a trailer claiming `claimed` decompressed bytes."""
    return records.GZIP_MAGIC + b"\x08\x00" + b"\xff" * (length - 8) + claimed.to_bytes(4, "little")


@pytest.mark.parametrize(("data", "message"), [
    (fake_gzip(3_000, 2_000_000), "decompresses to more than the 1,000,000-byte limit (possible gzip bomb)"),
    (fake_gzip(100, 2_000_000), "corrupt gzip data"),  # more than deflate can expand 100 bytes to: not a trailer
    (fake_gzip(3_000, 1_000_000), "corrupt gzip data"),  # at the cap, not over it
    (fake_gzip(968, 1_000_000 + 1), "corrupt gzip data"),  # one byte over, but more than 968 bytes can expand to
    (fake_gzip(1_000, 1_032_000), "decompresses to more than"),  # exactly what 1,000 bytes can expand to
], ids=["over-the-cap", "beyond-deflate", "at-the-cap", "over-but-beyond-deflate", "at-deflate-ratio"])
def test_the_gzip_trailer_refuses_up_front_only_a_claim_over_the_cap_that_deflate_could_make(data, message):
    with pytest.raises(records.LogFileError) as refused:
        records.read_log_bytes(data, max_bytes=1_000_000)
    assert str(refused.value).startswith(message)


def test_a_truncated_gzip_member_says_the_file_ends_early():
    with pytest.raises(records.LogFileError) as refused:
        records.read_log_bytes(gzip.compress(TEXT * 50)[:-12])
    assert str(refused.value) == "corrupt gzip data: the file ends before its compressed data does"


@pytest.mark.parametrize(("tail", "trailing"), [(b"", False), (b"\0" * 16, False), (b"garbage", True),
                                                (gzip.compress(b" "), True)])
def test_what_follows_the_first_gzip_member_is_reported_as_trailing_data(tail, trailing):
    text, found = records.read_log_text(gzip.compress(TEXT) + tail)
    assert text.startswith(TEXT) and found is trailing
    assert records.parse_log_file(gzip.compress(TEXT) + tail).trailing_data is trailing


def test_the_hash_is_of_exactly_the_text_parsed_whole_or_streamed():
    data = gzip.compress(orjson.dumps({"Records": [record()]}))
    expected = hashlib.sha256(gzip.decompress(data)).hexdigest()
    assert records.parse_log_file(data).sha256 == expected
    streamed = records.parse_large_log_file(data)
    assert len(list(streamed.rows)) == 1 and streamed.sha256 == expected


def test_the_buffer_limit_is_exact():
    data = orjson.dumps({"Records": [record()]})
    assert records.parse_log_file(data, buffer_limit=len(data)).records == 1
    with pytest.raises(records.FileTooLargeToBuffer) as refused:
        records.parse_log_file(data, buffer_limit=len(data) - 1)
    assert str(refused.value) == f"more than {len(data) - 1:,} bytes of JSON"


@pytest.mark.parametrize("document", [b'{"logFiles": []}', b'{"digestPublicKeyFingerprint": "f"}'])
def test_either_digest_field_makes_a_digest(document):
    assert records.parse_log_file(document).kind == "digest"


def test_a_big_streamed_file_is_fed_in_pieces_and_every_record_comes_out():
    recs = [record(eventID=f"e-{n}", userAgent="x" * 2_000) for n in range(700)]  # about 1.7 MB: two read chunks
    parsed = records.parse_large_log_file(gzip.compress(orjson.dumps({"Records": recs})))
    assert [row[0] for row in parsed.rows] == [f"e-{n}" for n in range(700)]
    assert parsed.records == 700 and parsed.streamed


def test_a_text_of_several_read_chunks_is_joined_whole_and_counted_whole_against_the_buffer_limit():
    text = orjson.dumps({"Records": [record(eventID=f"e-{n}", userAgent="x" * 2_000) for n in range(1_200)]})
    assert len(text) > 2 * records.READ_CHUNK
    assert records.read_log_text(gzip.compress(text)) == (text, False)
    with pytest.raises(records.FileTooLargeToBuffer):
        records.parse_log_file(gzip.compress(text), buffer_limit=records.READ_CHUNK + records.READ_CHUNK // 2)


def test_json_that_is_not_an_object_says_so():
    with pytest.raises(records.LogFileError) as refused:
        records.parse_log_file(b"[1, 2]")
    assert str(refused.value) == "not a CloudTrail log file: the JSON is not an object"


def test_a_digest_file_keeps_the_hash_of_its_own_text():
    document = b'{"digestPublicKeyFingerprint": "f", "logFiles": []}'
    parsed = records.parse_log_file(gzip.compress(document))
    assert parsed.sha256 == parsed.digest.values["sha256"] == hashlib.sha256(document).hexdigest()


def test_records_that_are_not_a_list_say_so():
    with pytest.raises(records.LogFileError) as refused:
        records.parse_log_file(b'{"Records": {"a": 1}}')
    assert str(refused.value) == 'not a CloudTrail log file: "Records" is not a list'


def test_a_streamed_file_is_records_and_keeps_floats_as_the_whole_parse_does():
    data = orjson.dumps({"Records": [record(requestParameters={"ratio": 1.5, "count": 2})]})
    whole, streamed = records.parse_log_file(data), records.parse_large_log_file(data)
    assert [row[:21] for row in streamed.rows] == [row[:21] for row in whole.rows]
    assert streamed.kind == "records" and whole.rows[0][18] == '{"ratio":1.5,"count":2}'


def test_a_bomb_hidden_before_a_small_last_member_is_refused_a_chunk_at_a_time(tmp_path):
    """The trailer check sees only the last member: the first is still never decompressed whole (600 MB of address
    space for 700 MB of zeros: decompressing it at once fails with MemoryError instead of the cap's sentence)."""
    import resource
    import subprocess
    import sys
    import zlib

    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(bytes(1 << 20)) for _ in range(700)) + packer.flush() + gzip.compress(b" ")
    (tmp_path / "bomb.gz").write_bytes(bomb)
    with pytest.raises(records.LogFileError):  # in-process too, so mutmut links this test to the decompressor
        records.read_log_bytes(bomb, max_bytes=10_000_000)
    script = ("import sys; from trailstream.ingest import records\n"
              "try:\n    records.read_log_bytes(open(sys.argv[1], 'rb').read(), max_bytes=10_000_000)\n"
              "except records.LogFileError as exc:\n    print(exc)\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (600_000_000, 600_000_000))

    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "bomb.gz")], preexec_fn=limit,
                          capture_output=True, text=True)
    assert done.stdout.strip() == "decompresses to more than the 10,000,000-byte limit (possible gzip bomb)", done.stderr


@pytest.mark.parametrize(("identity", "principal"), [
    ({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/A:assumed-role/B"}, "A:assumed-role/B"),
    ({"type": "FederatedUser", "arn": "arn:aws:sts::1:federated-user/a:federated-user/b/c"}, "a:federated-user/b/c"),
    ({"type": "AWSAccount", "accountId": "4", "arn": "arn:aws:iam::4:user/x"}, "account/4"),
    ({"type": "IAMUser", "arn": "arn:aws:iam::1:odd"}, "arn:aws:iam::1:odd"),
])
def test_principal_names_take_everything_after_the_first_marker_and_never_fail(identity, principal):
    assert records.principal_name(identity) == principal


def test_a_text_read_without_a_collector_is_still_whole():
    assert b"".join(records.iter_log_text(TEXT)) == TEXT
    assert b"".join(records.iter_log_text(gzip.compress(TEXT))) == TEXT


def test_bytes_after_a_member_that_are_not_nul_padding_are_trailing_data():
    assert records.read_log_text(gzip.compress(TEXT) + b"XX") == (TEXT, True)


def test_the_lookup_columns_come_from_the_record():
    identity = {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/R/s",
                "sessionContext": {"sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::1:role/R"}}}
    assert row_of(record(userIdentity=identity))["session_issuer_type"] == "Role"
