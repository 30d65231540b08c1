"""Community (Sigma) rules on the cache: every feature matched as an independent reading of Sigma says, the SigmaHQ
CloudTrail rules converted or refused with a reason, hostile files refused alone, findings and alerts attributed."""

from __future__ import annotations

import hashlib
import http.server
import io
import sqlite3
import stat
import threading
import zipfile
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from tests import sigma_reference as reference
from trailstream import jobs
from trailstream.analytics import detections, sigma
from trailstream.analytics.sigma import pinned
from trailstream.analytics.sigma.settings import SigmaSettings
from trailstream.cache import sigma_state, store
from trailstream.ingest import sync
from trailstream.timefmt import iso_utc

SIGMAHQ = Path(__file__).resolve().parents[2] / "shared" / "sigma"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def record(event_id: str, minutes_ago: int = 5, **fields) -> dict:
    """A CloudTrail record of alice's that a feature's event overrides field by field."""
    base = {
        "eventVersion": "1.08", "eventTime": iso_utc(NOW - timedelta(minutes=minutes_ago)),
        "eventSource": "iam.amazonaws.com", "eventName": "ListUsers", "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.15",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice",
                         "accountId": "111122223333", "principalId": "AIDAEXAMPLE"},
        "eventID": event_id, "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
    }
    return base | fields


def rule_yaml(rule_id: str, detection: str, level: str = "medium", extra: str = "") -> str:
    return (f"title: Feature {rule_id[:8]}\nid: {rule_id}\nauthor: Test Author\nlevel: {level}\n"
            f"logsource:\n  product: aws\n  service: cloudtrail\ndetection:\n{detection}{extra}")


# Feature -> (rule detection, the event that must match, the look-alike that must not).
FEATURES = {
    "nested field": (
        "  sel:\n    additionalEventData.MFAUsed: 'No'\n  condition: sel\n",
        {"additionalEventData": {"MFAUsed": "No"}}, {"additionalEventData": {"MFAUsed": "Yes"}}),
    "nested field copied to its own column": (
        "  sel:\n    userIdentity.sessionContext.sessionIssuer.type: Role\n  condition: sel\n",
        {"userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Ops/s",
                          "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "Ops"}}}},
        {"userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Ops/s",
                          "sessionContext": {"sessionIssuer": {"type": "User", "userName": "Role"}}}}),
    "list of values": (
        "  sel:\n    eventName:\n      - CreateUser\n      - DeleteUser\n  condition: sel\n",
        {"eventName": "DeleteUser"}, {"eventName": "DeleteUserPolicy"}),
    "contains": (
        "  sel:\n    userAgent|contains: TruffleHog\n  condition: sel\n",
        {"userAgent": "TruffleHog v3.63"}, {"userAgent": "Truffle Hog v3.63"}),
    "startswith": (
        "  sel:\n    eventName|startswith: UpdateFunctionConfiguration\n  condition: sel\n",
        {"eventName": "UpdateFunctionConfiguration20150331v2"}, {"eventName": "GetUpdateFunctionConfiguration"}),
    "endswith": (
        "  sel:\n    userIdentity.arn|endswith: ':root'\n  condition: sel\n",
        {"userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root"}},
        {"userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/root-admin"}}),
    "regular expression": (
        "  sel:\n    userIdentity.arn|re: '.+:assumed-role/aws:.+'\n  condition: sel\n",
        {"userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/aws:ec2-instance/i-1"}},
        {"userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/awsome/i-1"}}),
    "all of a list": (
        "  sel:\n    requestParameters|contains|all:\n      - '\"s3:GetObject\"'\n      - '\"Allow\"'\n"
        "  condition: sel\n",
        {"requestParameters": {"policyDocument": {"Effect": "Allow", "Action": "s3:GetObject"}}},
        {"requestParameters": {"policyDocument": {"Effect": "Deny", "Action": "s3:GetObject"}}}),
    "field reference": (
        "  sel:\n    eventName: UpdateLoginProfile\n  filter:\n    userIdentity.userName|fieldref: "
        "requestParameters.userName\n  condition: sel and not filter\n",
        {"eventName": "UpdateLoginProfile", "requestParameters": {"userName": "bob"}},
        {"eventName": "UpdateLoginProfile", "requestParameters": {"userName": "ALICE"}}),
    "null": (
        "  sel:\n    eventName: DeleteBucket\n  ok:\n    errorCode: null\n  condition: sel and ok\n",
        {"eventName": "DeleteBucket"}, {"eventName": "DeleteBucket", "errorCode": "AccessDenied"}),
    "1 of": (
        "  selection_a:\n    eventName: StopLogging\n  selection_b:\n    eventName: DeleteTrail\n"
        "  condition: 1 of selection_*\n",
        {"eventName": "DeleteTrail"}, {"eventName": "StartLogging"}),
    "not": (
        "  sel:\n    eventName: ListBuckets\n  filter:\n    userIdentity.type: AssumedRole\n"
        "  condition: sel and not filter\n",
        {"eventName": "ListBuckets"},
        {"eventName": "ListBuckets", "userIdentity": {"type": "AssumedRole",
                                                      "arn": "arn:aws:sts::111122223333:assumed-role/Ops/s"}}),
    "JSON boolean as quoted word": (
        "  sel:\n    responseElements.publiclyAccessible: 'true'\n  condition: sel\n",
        {"responseElements": {"publiclyAccessible": True}}, {"responseElements": {"publiclyAccessible": False}}),
    "JSON boolean as YAML boolean": (
        "  sel:\n    requestParameters.enable: false\n  condition: sel\n",
        {"requestParameters": {"enable": False}}, {"requestParameters": {"enable": True}}),
    "field below an array of objects": (
        "  sel:\n    requestParameters.containerDefinitions.command|contains:"
        " '$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'\n"
        "  condition: sel\n",
        {"requestParameters": {"containerDefinitions": [
            {"name": "a", "command": ["sh"]},
            {"name": "b", "command": ["sh", "-c", "curl 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]}]}},
        {"requestParameters": {"containerDefinitions": [
            {"name": "b", "command": ["sh"], "environment": ["$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]}]}}),
    "case folding": (
        "  sel:\n    eventName: consolelogin\n    additionalEventData.MFAUsed: 'NO'\n  condition: sel\n",
        {"eventName": "ConsoleLogin", "additionalEventData": {"MFAUsed": "No"}},
        {"eventName": "ConsoleLogin", "additionalEventData": {"MFAUsed": "Nope"}}),
    "field exists": (
        "  sel:\n    eventName: AttachRolePolicy\n    requestParameters.policyArn|exists: true\n  condition: sel\n",
        {"eventName": "AttachRolePolicy", "requestParameters": {"policyArn": "arn:aws:iam::aws:policy/ReadOnly"}},
        {"eventName": "AttachRolePolicy", "requestParameters": {"roleName": "policyArn"}}),
    "underscore and percent are literal": (
        "  sel:\n    userAgent|contains: 'tool_v1%'\n  condition: sel\n",
        {"userAgent": "my tool_v1% build"}, {"userAgent": "my toolXv1Y build"}),
    "nested field kept only in the record": (
        "  sel:\n    userIdentity.sessionContext.attributes.mfaAuthenticated: 'true'\n  condition: sel\n",
        {"userIdentity": {"type": "AssumedRole", "sessionContext": {"attributes": {"mfaAuthenticated": "true"}}}},
        {"userIdentity": {"type": "AssumedRole", "sessionContext": {"attributes": {"mfaAuthenticated": "false"},
                                                                    "sessionIssuer": {"type": "true"}}}}),
    "regular expression whose look-alike holds its literal text": (
        "  sel:\n    userIdentity.arn|re: '^arn:aws:sts::\\d+:assumed-role/aws:.+'\n  condition: sel\n",
        {"userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/aws:ec2-instance/i-1"}},
        {"userIdentity": {"type": "AssumedRole",
                          "arn": "x-arn:aws:sts::111122223333:assumed-role/aws:ec2-instance/i-1"}}),
}
FEATURE_IDS = {name: f"{index:08d}-0000-4000-8000-000000000000" for index, name in enumerate(FEATURES, 1)}


def write_events(folder: Path, records: list[dict], name: str = "events.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(orjson.dumps({"Records": records}))
    return path


def feature_records() -> list[dict]:
    records = []
    for name, (_, match, lookalike) in FEATURES.items():
        records.append(record(f"{FEATURE_IDS[name]}-match", **match))
        records.append(record(f"{FEATURE_IDS[name]}-lookalike", **lookalike))
    return records


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """A cache holding each feature's matching event and look-alike, and a folder with each feature's rule."""
    root = tmp_path_factory.mktemp("sigma-features")
    records = feature_records()
    sync.import_paths(root / "cache.db", [write_events(root / "logs", records)])
    rules = root / "rules"
    rules.mkdir()
    for name, (detection, _, _) in FEATURES.items():
        (rules / f"{FEATURE_IDS[name]}.yml").write_text(rule_yaml(FEATURE_IDS[name], detection))
    with closing(store.open_cache(root / "cache.db")) as db:
        sigma.save_rules(db, sigma.load_rules([rules]), SigmaSettings())
    return root / "cache.db", rules, records


def matched_ids(db_path: Path) -> dict[str, set[str]]:
    """Event IDs behind each rule's findings, by rule ID."""
    with closing(store.open_cache_readonly(db_path)) as conn:
        found: dict[str, set[str]] = {}
        for finding in sigma.detect_sigma_findings(conn):
            found.setdefault(finding.details["rule_id"], set()).update(finding.event_ids)
        return found


@pytest.mark.parametrize("feature", list(FEATURES))
def test_each_sigma_feature_matches_its_event_and_not_the_look_alike(feature_cache, feature):
    db_path, rules, records = feature_cache
    rule_id = FEATURE_IDS[feature]
    rule = reference.load_yaml_rules((rules / f"{rule_id}.yml").read_text())[0]
    expected = {item["eventID"] for item in records if reference.rule_matches(rule, item)}
    assert f"{rule_id}-match" in expected and f"{rule_id}-lookalike" not in expected  # the reference agrees
    assert matched_ids(db_path).get(rule_id, set()) == expected


@pytest.mark.parametrize(("regex", "literal"), [
    (".+:assumed-role/aws:.+", ":assumed-role/aws:"),
    ("^arn:aws:iam::\\d+:user/(admin|root)$", "arn:aws:iam::"),  # the longest run
    ("admin|root", ""),  # either may match: no text is required
    ("ab?c", "a"),  # b is optional, so "abc" is not required
    ("(?i)TruffleHog", ""),  # instr() compares case-sensitively
    ("x'y", "x'y"),
    ("[unclosed", ""),
])
def test_regex_prefilter_requires_only_text_every_match_contains(regex, literal):
    from trailstream.analytics.sigma.backend import required_text

    assert required_text(regex) == literal


def test_every_feature_rule_converts(feature_cache):
    _, rules, _ = feature_cache
    states = {rule.rule_id: (rule.status, rule.reason) for rule in sigma.load_rules([rules]).rules}
    assert states == {rule_id: ("converted", "") for rule_id in FEATURE_IDS.values()}


CORRELATION = """title: Repeated failed sign-ins
id: 0f0f0f0f-0000-4000-8000-000000000001
author: Test Author
level: low
logsource:
  product: aws
  service: cloudtrail
detection:
  sel:
    eventName: ConsoleLogin
    errorMessage: Failed authentication
  condition: sel
---
title: Sign-in brute force
id: 0f0f0f0f-0000-4000-8000-000000000002
author: Test Author
level: high
correlation:
  type: event_count
  rules:
    - 0f0f0f0f-0000-4000-8000-000000000001
  group-by:
    - userIdentity.arn
  timespan: 10m
  condition:
    gte: 3
"""


def failed_sign_in(event_id: str, user: str, minutes_ago: int) -> dict:
    return record(event_id, minutes_ago, eventName="ConsoleLogin", eventSource="signin.amazonaws.com",
                  errorMessage="Failed authentication",
                  userIdentity={"type": "IAMUser", "arn": f"arn:aws:iam::111122223333:user/{user}", "userName": user})


def test_event_count_correlation_fires_for_a_burst_and_not_for_the_same_count_spread_out(tmp_path):
    records = ([failed_sign_in(f"alice-{n}", "alice", 30 + n * 2) for n in range(3)]
               + [failed_sign_in(f"bob-{n}", "bob", 30 + n * 25) for n in range(3)])
    sync.import_paths(tmp_path / "cache.db", [write_events(tmp_path / "logs", records)])
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "brute.yml").write_text(CORRELATION)
    with closing(store.open_cache(tmp_path / "cache.db")) as db:
        sigma.save_rules(db, sigma.load_rules([tmp_path / "rules"]), SigmaSettings())
    with closing(store.open_cache_readonly(tmp_path / "cache.db")) as conn:
        findings = [f for f in sigma.detect_sigma_findings(conn) if f.details["rule_id"].endswith("0002")]
    base, correlation = reference.load_yaml_rules(CORRELATION)
    assert reference.correlation_groups(correlation, {base["id"]: base}, records) == {
        ("arn:aws:iam::111122223333:user/alice",)}
    assert [(f.details["group"], sorted(f.event_ids)) for f in findings] == [
        ({"userIdentity.arn": "arn:aws:iam::111122223333:user/alice"}, ["alice-0", "alice-1", "alice-2"])]
    assert findings[0].severity == "high" and findings[0].details["author"] == "Test Author"


def user_record(event_id: str, user: str, minutes_ago: int, **fields) -> dict:
    return record(event_id, minutes_ago, userIdentity={"type": "IAMUser", "userName": user,
                                                       "arn": f"arn:aws:iam::111122223333:user/{user}"}, **fields)


VALUE_AND_TEMPORAL = """title: Refused call
id: 0e0e0e0e-0000-4000-8000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    errorCode: AccessDenied
  condition: sel
---
title: User created
id: 0e0e0e0e-0000-4000-8000-000000000002
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: CreateUser
  condition: sel
---
title: Policy attached to a user
id: 0e0e0e0e-0000-4000-8000-000000000003
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: AttachUserPolicy
  condition: sel
---
title: One address, many refused users
id: 0e0e0e0e-0000-4000-8000-000000000004
author: Test Author
level: medium
correlation:
  type: value_count
  rules: [0e0e0e0e-0000-4000-8000-000000000001]
  group-by: [sourceIPAddress]
  timespan: 10m
  condition: {gte: 3, field: userIdentity.arn}
---
title: User created and given a policy
id: 0e0e0e0e-0000-4000-8000-000000000005
author: Test Author
level: high
correlation:
  type: temporal
  rules: [0e0e0e0e-0000-4000-8000-000000000002, 0e0e0e0e-0000-4000-8000-000000000003]
  group-by: [userIdentity.arn]
  timespan: 5m
"""


def test_value_count_and_temporal_correlations_match_the_reference_windows(tmp_path):
    records = (
        [user_record(f"a-{n}", user, 20 + n, errorCode="AccessDenied", sourceIPAddress="203.0.113.9")
         for n, user in enumerate(("ann", "ben", "cat"))]
        + [user_record(f"b-{n}", "dan", 20 + n, errorCode="AccessDenied", sourceIPAddress="203.0.113.77")
           for n in range(4)]
        + [user_record("c-1", "eve", 50, eventName="CreateUser"),
           user_record("c-2", "eve", 48, eventName="AttachUserPolicy"),
           user_record("d-1", "fay", 90, eventName="CreateUser"),
           user_record("d-2", "fay", 40, eventName="AttachUserPolicy")]
    )
    sync.import_paths(tmp_path / "cache.db", [write_events(tmp_path / "logs", records)])
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "correlations.yml").write_text(VALUE_AND_TEMPORAL)
    with closing(store.open_cache(tmp_path / "cache.db")) as db:
        sigma.save_rules(db, sigma.load_rules([tmp_path / "rules"]), SigmaSettings())
    with closing(store.open_cache_readonly(tmp_path / "cache.db")) as conn:
        findings = sigma.detect_sigma_findings(conn)
    documents = reference.load_yaml_rules(VALUE_AND_TEMPORAL)
    bases = {document["id"]: document for document in documents[:3]}
    for correlation in documents[3:]:
        groups = {tuple(f.details["group"].values()) for f in findings if f.details["rule_id"] == correlation["id"]}
        assert groups == reference.correlation_groups(correlation, bases, records)
    assert {tuple(f.details["group"].values()) for f in findings if "correlation" in f.details} == {
        ("203.0.113.9",), ("arn:aws:iam::111122223333:user/eve",)}


def test_a_correlation_over_a_missing_rule_is_refused_with_its_reason(tmp_path):
    (tmp_path / "lonely.yml").write_text(CORRELATION.split("---\n", 1)[1])
    [entry] = sigma.load_rules([tmp_path]).rules
    assert entry.status in ("failed", "unsupported") and "0f0f0f0f-0000-4000-8000-000000000001" in entry.reason


# --- Broken and hostile rule files ------------------------------------------------------------

HOSTILE = {
    "bad YAML": ("bad.yml", "title: [unclosed\nlogsource: {product: aws, service: cloudtrail}\n"),
    "unknown modifier": ("modifier.yml", rule_yaml("aaaaaaaa-0000-4000-8000-000000000001",
                                                   "  sel:\n    eventName|sqlinject: x\n  condition: sel\n")),
    "field name made to inject SQL": ("inject.yml", rule_yaml(
        "aaaaaaaa-0000-4000-8000-000000000002",
        "  sel:\n    \"eventName') OR 1=1; DROP TABLE events; --\": x\n  condition: sel\n")),
    "JSON path made to inject SQL": ("path.yml", rule_yaml(
        "aaaaaaaa-0000-4000-8000-000000000003",
        "  sel:\n    \"requestParameters.a') OR 1=1 OR ('\": x\n  condition: sel\n")),
}


def test_broken_and_hostile_rule_files_are_refused_alone_with_their_reason(tmp_path):
    for file_name, text in HOSTILE.values():
        (tmp_path / file_name).write_text(text)
    (tmp_path / "legacy.yml").write_text(rule_yaml("aaaaaaaa-0000-4000-8000-000000000004",
                                                   "  sel:\n    eventName: ConsoleLogin\n"
                                                   "  condition: sel | count() by sourceIPAddress > 5\n"))
    (tmp_path / "good.yml").write_text(rule_yaml("aaaaaaaa-0000-4000-8000-000000000005",
                                                 "  sel:\n    eventName: DeleteTrail\n  condition: sel\n"))
    states = {Path(rule.path).name: (rule.status, rule.reason) for rule in sigma.load_rules([tmp_path]).rules}
    assert states["good.yml"] == ("converted", "")
    assert states["legacy.yml"][0] == "unsupported" and "count() by" in states["legacy.yml"][1]
    assert states["bad.yml"][0] == "failed" and "Sigma file" in states["bad.yml"][1]
    assert states["modifier.yml"] == ("failed", "Unknown modifier 'sqlinject'")
    for name in ("inject.yml", "path.yml"):
        assert states[name][0] == "failed" and "not a CloudTrail field path" in states[name][1]


def test_hostile_rule_files_never_stop_the_good_rule_from_running_after_a_sync(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    for file_name, text in HOSTILE.values():
        (rules / file_name).write_text(text)
    (rules / "deep.yml").write_text("title: x\nlogsource: {product: aws, service: cloudtrail}\n" + "[" * 5000)
    (rules / "binary.yml").write_bytes(b"\xff\xfe cloudtrail \x81")
    # Catastrophic backtracking for a backtracking engine: 2^60 steps on this user agent, linear in RE2.
    (rules / "redos.yml").write_text(rule_yaml("aaaaaaaa-0000-4000-8000-000000000006",
                                               "  sel:\n    userAgent|re: '^(a+)+$'\n  condition: sel\n"))
    (rules / "good.yml").write_text(rule_yaml("aaaaaaaa-0000-4000-8000-000000000005",
                                              "  sel:\n    eventName: DeleteTrail\n  condition: sel\n"))
    db_path = tmp_path / "cache.db"
    sync.import_paths(db_path, [write_events(tmp_path / "logs", [record("trail-1", eventName="DeleteTrail",
                                                                        userAgent="a" * 60 + "!")])])
    outcome = jobs.after_sync(db_path, {"sigma": {"rule_paths": [str(rules)]}})
    assert outcome.sigma == ["sigma: 2 rules over 1 new event, 1 new match"]
    with closing(store.open_cache_readonly(db_path)) as conn:
        states = {Path(row["path"]).name: row["status"] for row in sigma_state.query_catalog(conn)}
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    assert states == {"good.yml": "converted", "redos.yml": "converted", "deep.yml": "failed", "binary.yml": "failed",
                      **{file_name: "failed" for file_name, _ in HOSTILE.values()}}


def test_a_rule_from_another_product_is_not_listed(tmp_path):
    (tmp_path / "windows.yml").write_text(rule_yaml("bbbbbbbb-0000-4000-8000-000000000001", "  sel:\n    "
                                                    "EventID: 4624\n  condition: sel\n").replace("aws", "windows"))
    assert sigma.load_rules([tmp_path]).rules == []


# --- The SigmaHQ CloudTrail rules and the real corpus ----------------------------------------


@pytest.fixture(scope="module")
def sigmahq() -> Path:
    if not (SIGMAHQ / "rules").exists():
        pytest.skip(f"the SigmaHQ CloudTrail rules are not at {SIGMAHQ}")
    return SIGMAHQ


def test_every_sigmahq_cloudtrail_rule_converts_or_says_why_not(sigmahq):
    ruleset = sigma.load_rules([sigmahq])
    files = sorted(sigmahq.rglob("*.yml"))
    assert len(ruleset.rules) == len(files) == 57
    for rule in ruleset.rules:
        assert rule.status in ("converted", "unsupported"), (rule.path, rule.reason)
        assert rule.status == "converted" or rule.reason
        assert rule.author and rule.link.startswith("https://github.com/SigmaHQ/sigma/blob/master/rules/cloud/aws/")


def test_only_a_rule_on_a_field_cloudtrail_lacks_reads_the_compressed_record(sigmahq):
    rules = {rule.title: rule.where for rule in sigma.load_rules([sigmahq]).rules if rule.where}
    assert {title for title, where in rules.items() if "sigma_values(" in where} == {
        "AWS SAML Provider Deletion Activity"}  # its `status` field is not a CloudTrail field
    assert "session_issuer_type COLLATE NOCASE = 'Role'" in rules["AWS STS AssumeRole Misuse"]
    imds = rules["Malicious Usage Of IMDS Credentials Outside Of AWS Infrastructure"]
    assert imds.startswith("(instr(principal_arn, ':assumed-role/aws:') > 0 AND principal_arn REGEXP")


def test_a_cache_from_before_the_session_issuer_column_fills_it_from_the_stored_records(tmp_path):
    role = {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Ops/s",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "Ops"}}}
    records = [record("role-1", userIdentity=role), record("user-1"),
               record("odd-1", userIdentity={"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": 7}}})]
    db_path = tmp_path / "cache.db"
    sync.import_paths(db_path, [write_events(tmp_path / "logs", records)])
    with closing(sqlite3.connect(db_path)) as conn, conn:  # as a cache written before m015 looks
        conn.execute("ALTER TABLE events DROP COLUMN session_issuer_type")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm015_events_lookup_columns'")
    with closing(store.open_cache(db_path)) as db:
        assert dict(db.execute("SELECT event_id, session_issuer_type FROM events").fetchall()) == {
            "role-1": "Role", "user-1": None, "odd-1": "7"}
        assert [store.load_record(db.conn, item["eventID"]) for item in records] == records


def test_the_real_corpus_runs_through_every_sigmahq_rule_as_the_reference_reads_them(sigmahq, corpus, tmp_path):
    sync.import_paths(tmp_path / "cache.db", [corpus / "events"])
    with closing(store.open_cache(tmp_path / "cache.db")) as db:
        sigma.save_rules(db, sigma.load_rules([sigmahq]), SigmaSettings())
        run = sigma.evaluate_new_events(db)
    assert run.problems == [] and run.rules == 57
    records = [item for path in sorted((corpus / "events").glob("*.json"))
               for item in orjson.loads(path.read_bytes())["Records"]]
    stored = dict(sqlite3.connect(tmp_path / "cache.db").execute("SELECT event_id, event_time FROM events"))
    found = matched_ids(tmp_path / "cache.db")
    for path in sorted(sigmahq.rglob("*.yml")):
        rule = reference.load_yaml_rules(path.read_text())[0]
        expected = {item["eventID"] for item in records if item.get("eventID") in stored
                    and reference.rule_matches(rule, item)}
        assert found.get(rule["id"], set()) == expected, rule["title"]
    assert sum(map(len, found.values())) > 20  # the corpus does hold attacks these rules are about


# --- State, findings pipeline, alerts --------------------------------------------------------


def test_disabling_a_rule_or_adding_an_exception_silences_it(feature_cache, tmp_path):
    import shutil

    db_path = tmp_path / "cache.db"
    shutil.copy(feature_cache[0], db_path)
    rule_ids = [FEATURE_IDS["list of values"], FEATURE_IDS["contains"], FEATURE_IDS["nested field copied to its "
                                                                                   "own column"]]
    with closing(store.open_cache(db_path)) as db:
        sigma_state.mark_enabled(db, rule_ids[0], False)
        sigma_state.save_exception(db, rule_ids[1], "principal", "arn:aws:iam::111122223333:user/alice")
        sigma_state.save_exception(db, rule_ids[2], "principal", "Ops")  # a role: every session of it
    found = matched_ids(db_path)
    assert not set(rule_ids) & set(found)
    assert FEATURE_IDS["1 of"] in found


def test_sigma_findings_carry_their_rule_author_id_and_link_in_the_findings_pipeline(feature_cache):
    with closing(store.open_cache_readonly(feature_cache[0])) as conn:
        found = [f for f in detections.detect_findings(conn) if f.type.startswith("sigma:")]
    rule_id = FEATURE_IDS["regular expression"]
    [finding] = [f for f in found if f.type == f"sigma:{rule_id}"]
    as_json = finding.to_dict()
    assert as_json["title"] == "Sigma: Feature 00000007"
    assert as_json["details"]["author"] == "Test Author" and as_json["details"]["rule_id"] == rule_id
    assert as_json["details"]["link"].startswith("file://")
    assert all(part in finding.summary for part in ("Test Author", rule_id, "Detection Rule License"))


def test_exported_sigma_findings_keep_the_rule_author_id_and_link(feature_cache):
    from trailstream.analytics import exports

    with closing(store.open_cache_readonly(feature_cache[0])) as conn:
        found = [f for f in detections.detect_findings(conn) if f.type.startswith("sigma:")]
    text = exports.table_csv(detections.findings_frame(found).drop("key")).decode()
    rule_id = FEATURE_IDS["nested field"]
    [line] = [line for line in text.splitlines() if f"sigma:{rule_id}" in line]
    assert "Test Author" in line and f"Sigma rule {rule_id}" in line and f"{rule_id}.yml" in line


def test_after_a_sync_rules_count_only_new_events_and_alert_at_the_configured_level(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "keys.yml").write_text(rule_yaml("cccccccc-0000-4000-8000-000000000001",
                                              "  sel:\n    eventName: GetKeyPolicy\n  condition: sel\n", "high"))
    (rules / "noise.yml").write_text(rule_yaml("cccccccc-0000-4000-8000-000000000002",
                                               "  sel:\n    eventName: ListUsers\n  condition: sel\n", "low"))
    settings = {"sigma": {"rule_paths": [str(rules)], "alert_level": "high"}}
    db_path = tmp_path / "cache.db"
    sync.import_paths(db_path, [write_events(tmp_path / "a", [record("e1", eventName="GetKeyPolicy"),
                                                              record("e2")])])
    first = jobs.after_sync(db_path, settings)
    sync.import_paths(db_path, [write_events(tmp_path / "b", [record("e3")])])
    second = jobs.after_sync(db_path, settings)
    assert first.sigma == ["sigma: 2 rules over 2 new events, 2 new matches"]
    assert second.sigma == ["sigma: 2 rules over 1 new event, 1 new match"]
    with closing(store.open_cache_readonly(db_path)) as conn:
        counts = {row["rule_id"][-1]: row["matches"] for row in sigma_state.query_catalog(conn)}
        alerts = conn.execute("SELECT rule_name, summary FROM fired_alerts").fetchall()
    assert counts == {"1": 1, "2": 2}
    [(name, summary)] = alerts  # the high rule mails; the low one only counts
    assert name == "Community (Sigma) rule matched"
    assert "cccccccc-0000-4000-8000-000000000001" in summary and "Test Author" in summary


def test_a_broken_sigma_table_is_reported_after_the_sync_and_the_alerts_still_run(tmp_path):
    sync.import_paths(tmp_path / "cache.db", [write_events(tmp_path / "a", [record("e1")])])
    outcome = jobs.after_sync(tmp_path / "cache.db", {"sigma": {"alert_level": "loud"}})
    assert outcome.sigma == ["sigma: rules not run: [sigma] alert_level must be one of informational, low, medium, "
                             "high, critical (it is 'loud')"]
    assert outcome.alerts.summary().startswith("alerts:")


# --- rules fetch ---------------------------------------------------------------------------


def sigmahq_archive(sigmahq: Path, change=None) -> bytes:
    """A zip laid out as GitHub's archive of the pinned commit, built from ../shared/sigma (that commit's files)
    with other repository files beside them; `change(members)` edits the {name: bytes} first."""
    root = f"sigma-{pinned.COMMIT}/"
    members = {root + "README.md": b"# Sigma", root + "rules/windows/process_creation/proc.yml": b"title: other"}
    for name in pinned.MANIFEST:
        members[root + name] = (sigmahq / name).read_bytes()
    if change:
        change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def archive_server():
    """A loopback HTTP server handing out whatever bytes the test puts in `served["archive"]`."""
    served = {"archive": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(served["archive"])))
            self.end_headers()
            self.wfile.write(served["archive"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{pinned.COMMIT}.zip", served
    server.shutdown()


def test_the_pinned_manifest_is_the_sha256_of_each_shared_sigmahq_file(sigmahq):
    assert pinned.manifest_of(sigmahq) == pinned.MANIFEST and len(pinned.MANIFEST) == 58  # 57 rules, LICENSE


def test_repinning_the_shared_rules_at_the_pinned_commit_writes_pinned_py_unchanged(sigmahq):
    from trailstream.analytics.sigma import repin

    assert repin.module_text(sigmahq, pinned.COMMIT) == Path(pinned.__file__).read_text(encoding="utf-8")


def test_fetch_installs_the_pinned_rules_of_an_archive_of_the_pinned_commit(sigmahq, archive_server, tmp_path):
    url, served = archive_server
    served["archive"] = sigmahq_archive(sigmahq)
    assert sigma.fetch_release(url, "", tmp_path / "sigma-rules") == 57
    installed = {path.relative_to(tmp_path / "sigma-rules").as_posix(): path.read_bytes()
                 for path in tmp_path.rglob("*") if path.is_file()}
    assert installed == {name: (sigmahq / name).read_bytes() for name in pinned.MANIFEST}
    assert {rule.status for rule in sigma.load_rules([tmp_path / "sigma-rules"]).rules} == {"converted"}


def _change_one_byte(members):
    name = next(name for name in members if name.endswith("aws_root_account_usage.yml"))
    members[name] = members[name].replace(b"level: medium", b"level: mediun")


def _symlink(members):
    name = next(name for name in members if name.endswith("aws_enum_buckets.yml"))
    del members[name]
    link = zipfile.ZipInfo(name)
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    members[link] = b"../../../../../etc/passwd"


def _rename(old_end, new_name):
    def change(members):
        name = next(name for name in members if name.endswith(old_end))
        members[name.rsplit("/", 1)[0] + "/" + new_name] = members.pop(name)
    return change


REFUSED_ARCHIVES = {
    "one byte changed": (_change_one_byte, "SHA-256 differs from the pinned one"),
    "a path-traversal member": (lambda m: m.update({f"sigma-{pinned.COMMIT}/../../escape.yml": b"x"}),
                                "outside the rules folder"),
    "an absolute member": (lambda m: m.update({"/tmp/escape.yml": b"x"}), "outside the rules folder"),
    "an extra rule file": (lambda m: m.update({f"sigma-{pinned.COMMIT}/rules/cloud/aws/cloudtrail/extra.yml": b"x"}),
                           "not in the pinned manifest"),
    "a missing rule file": (lambda m: m.pop(f"sigma-{pinned.COMMIT}/rules/cloud/aws/cloudtrail/aws_enum_buckets.yml"),
                            "missing from it"),
    "a renamed rule file": (_rename("aws_enum_buckets.yml", "aws_enum_bucket.yml"), "not in the pinned manifest"),
    "a second top folder": (lambda m: m.update({"other/notes.txt": b"x"}), "exactly one top folder"),
    "a rule file that is a symbolic link": (_symlink, "symbolic link"),
}


@pytest.mark.parametrize("case", list(REFUSED_ARCHIVES))
def test_fetch_refuses_an_archive_unlike_the_pinned_commit_and_keeps_nothing(sigmahq, archive_server, tmp_path,
                                                                            case):
    change, reason = REFUSED_ARCHIVES[case]
    url, served = archive_server
    served["archive"] = sigmahq_archive(sigmahq, change)
    folder = tmp_path / "rules" / "sigma-rules"
    folder.mkdir(parents=True)
    (folder / "mine.yml").write_text("kept")
    with pytest.raises(sigma.FetchError, match=reason):
        sigma.fetch_release(url, "", folder)
    assert sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*")) == [
        "rules", "rules/sigma-rules", "rules/sigma-rules/mine.yml"]


def test_fetch_refuses_what_is_not_a_zip_archive(archive_server, tmp_path):
    url, served = archive_server
    served["archive"] = b"<html>Not Found</html>"
    with pytest.raises(sigma.FetchError, match="not a readable zip archive"):
        sigma.fetch_release(url, "", tmp_path / "sigma-rules")
    assert not (tmp_path / "sigma-rules").exists()


# --- Detection rules page ------------------------------------------------------------------


def test_rules_page_lists_states_and_turns_a_rule_off_and_back(app_demo_cache, tmp_path):
    from tests.conftest import open_page
    from trailstream.app.signin import escape_markdown

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "hostile.yml").write_text(rule_yaml("eeeeeeee-0000-4000-8000-000000000001",
                                                 "  sel:\n    eventName: ConsoleLogin\n  condition: sel\n")
                                       .replace("title: Feature eeeeeeee", "title: '**bold** [link](http://x) <b>'"))
    (rules / "broken.yml").write_text("title: [unclosed\nlogsource: {product: aws, service: cloudtrail}\n")
    (tmp_path / "trailstream.toml").write_text(f'[sigma]\nrule_paths = ["{rules}"]\n')
    at = open_page("pages/detection_rules.py")
    at.button[0].click().run()  # Reload rules
    assert {m.label: m.value for m in at.metric} == {"Converted": "1", "Unsupported": "0", "Failed": "1"}
    at.selectbox(key="sigma_rule").set_value("eeeeeeee-0000-4000-8000-000000000001").run()
    assert not at.exception
    assert at.subheader[0].value == escape_markdown("**bold** [link](http://x) <b>")  # shown as typed
    at.toggle[0].set_value(False).run()
    with closing(store.open_cache_readonly(app_demo_cache)) as conn:
        assert [row["enabled"] for row in sigma_state.query_catalog(conn) if row["status"] == "converted"] == [0]


# --- CLI -----------------------------------------------------------------------------------


def test_rules_list_prints_each_rule_with_its_state_reason_and_matches(tmp_path, capsys):
    from trailstream import cli

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(rule_yaml("ffffffff-0000-4000-8000-000000000001",
                                              "  sel:\n    eventName: ListUsers\n  condition: sel\n"))
    (rules / "legacy.yml").write_text(rule_yaml("ffffffff-0000-4000-8000-000000000002",
                                                "  sel:\n    eventName: ListUsers\n  condition: sel | count() > 5\n"))
    (tmp_path / "trailstream.toml").write_text('[sigma]\nrule_paths = ["rules"]\n')
    sync.import_paths(tmp_path / "cache.db", [write_events(tmp_path / "logs", [record("e1"), record("e2")])])
    code = cli.main(["--db", str(tmp_path / "cache.db"), "--config", str(tmp_path / "trailstream.toml"),
                     "rules", "list"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == "converted    Feature ffffffff [ffffffff-0000-4000-8000-000000000001]: 2 matches, medium"
    assert lines[1].startswith("unsupported  Feature ffffffff [ffffffff-0000-4000-8000-000000000002]: uses the retired")
    assert lines[-1] == "2 rules: 1 converted, 1 unsupported, 0 failed"


def test_rules_fetch_installs_beside_the_settings_file_or_refuses_a_wrong_archive_hash(sigmahq, archive_server,
                                                                                    tmp_path, capsys):
    from trailstream import cli

    url, served = archive_server
    served["archive"] = sigmahq_archive(sigmahq)
    settings = tmp_path / "trailstream.toml"
    arguments = ["--db", str(tmp_path / "cache.db"), "--config", str(settings), "rules", "fetch"]
    settings.write_text(f'[sigma]\nrelease_url = "{url}"\nrelease_sha256 = "{"f" * 64}"\n')
    assert cli.main(arguments) == 1
    assert "not the pinned" in capsys.readouterr().err and not (tmp_path / "sigma-rules").exists()
    digest = hashlib.sha256(served["archive"]).hexdigest()
    settings.write_text(f'[sigma]\nrelease_url = "{url}"\nrelease_sha256 = "{digest}"\n')
    assert cli.main(arguments) == 0
    assert "57 rule files from" in capsys.readouterr().out
    assert (tmp_path / "sigma-rules" / "rules" / "cloud" / "aws" / "cloudtrail" / "aws_enum_buckets.yml").exists()


def test_leaving_the_demo_starts_every_rule_over_from_the_first_real_event(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "users.yml").write_text(rule_yaml("abababab-0000-4000-8000-000000000001",
                                               "  sel:\n    eventName: ListUsers\n  condition: sel\n"))
    settings = {"sigma": {"rule_paths": [str(rules)]}}
    db_path = tmp_path / "cache.db"
    sync.import_demo(db_path, events=300, seed=5, workers=1)
    jobs.after_sync(db_path, settings)
    with closing(store.open_cache(db_path)) as db:
        store.discard_demo_data(db)
    sync.import_paths(db_path, [write_events(tmp_path / "real", [record("real-1")])])
    assert jobs.after_sync(db_path, settings).sigma == ["sigma: 1 rule over 1 new event, 1 new match"]


def test_an_edited_rule_forgets_what_its_old_text_matched(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file = rules / "edited.yml"
    rule_file.write_text(rule_yaml("acacacac-0000-4000-8000-000000000001",
                                   "  sel:\n    eventName: ListUsers\n  condition: sel\n"))
    settings = {"sigma": {"rule_paths": [str(rules)]}}
    db_path = tmp_path / "cache.db"
    events = [record("users"), record("trail", eventName="DeleteTrail")]
    sync.import_paths(db_path, [write_events(tmp_path / "a", events)])
    jobs.after_sync(db_path, settings)
    rule_file.write_text(rule_file.read_text().replace("ListUsers", "DeleteTrail"))
    assert jobs.after_sync(db_path, settings).sigma == ["sigma: 1 rule over 2 new events, 1 new match"]
    assert matched_ids(db_path) == {"acacacac-0000-4000-8000-000000000001": {"trail"}}


def test_a_second_run_at_the_same_time_leaves_the_rules_to_the_first(tmp_path):
    sync.import_paths(tmp_path / "cache.db", [write_events(tmp_path / "a", [record("e1")])])
    with store.file_lock(tmp_path / "cache.db", "sigma") as acquired:
        assert acquired
        assert jobs.run_sigma_rules(tmp_path / "cache.db", {}) == [
            "sigma: another run is checking the rules right now; this one leaves it to that run"]


def test_a_correlation_with_field_aliases_is_reported_unsupported(tmp_path):
    aliased = CORRELATION.replace("  group-by:\n    - userIdentity.arn\n",
                                  "  group-by:\n    - who\n  aliases:\n    who:\n"
                                  "      0f0f0f0f-0000-4000-8000-000000000001: userIdentity.arn\n")
    (tmp_path / "aliased.yml").write_text(aliased)
    states = {rule.rule_id[-1]: (rule.status, rule.reason) for rule in sigma.load_rules([tmp_path]).rules}
    assert states["2"] == ("unsupported", "correlation field aliases are not supported")
