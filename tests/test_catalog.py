"""The catalog (which calls make each use case, which errors mean 'unauthorized') checked against real CloudTrail."""

import json
from collections import defaultdict

import pytest

from trailstream import catalog

DOCUMENTED_FINDING_TYPES = {
    "unauthorized_burst", "console_login_failure_burst", "console_login_without_mfa", "root_activity",
    "impossible_travel", "new_country_sign_in", "privilege_change_spree", "trail_tampering",
    "security_group_open_to_world", "admin_policy_attached", "access_key_for_other_user", "detector_disabled",
}


@pytest.fixture(scope="module")
def corpus_records(corpus) -> list[dict]:
    """Every record of the real corpus that names its call (irregular/ too: its odd IDs and times don't matter here)."""
    return [record for path in sorted(corpus.glob("*/*.json")) if path.parent.name in ("events", "irregular")
            for record in json.loads(path.read_text())["Records"]
            if isinstance(record, dict) and isinstance(record.get("eventName"), str)]


@pytest.fixture(scope="module")
def sources_by_name(corpus_records) -> dict[str, set[str]]:
    found = defaultdict(set)
    for record in corpus_records:
        found[record["eventName"]].add(record.get("eventSource"))
    return found


def is_unauthorized(error_code: str) -> bool:
    return error_code in catalog.UNAUTHORIZED_ERROR_CODES or any(
        pattern in error_code for pattern in catalog.UNAUTHORIZED_ERROR_CODE_PATTERNS)


@pytest.mark.parametrize(
    "event_name, use_case",
    [
        ("RunInstances", "instances"), ("StartInstances", "instances"), ("StopInstances", "instances"),
        ("TerminateInstances", "instances"), ("ModifyInstanceAttribute", "instances"),
        ("CreateSecurityGroup", "network"), ("AuthorizeSecurityGroupIngress", "network"),
        ("AuthorizeSecurityGroupEgress", "network"), ("CreateNetworkAclEntry", "network"), ("CreateRoute", "network"),
        ("CreateVpc", "network"), ("AttachInternetGateway", "network"),
        ("CreateUser", "iam"), ("CreateLoginProfile", "iam"), ("AttachUserPolicy", "iam"),
        ("AttachRolePolicy", "iam"), ("PutUserPolicy", "iam"), ("CreateAccessKey", "iam"), ("CreateRole", "iam"),
        ("UpdateAssumeRolePolicy", "iam"), ("AddUserToGroup", "iam"),
    ],
)
def test_real_changes_belong_to_their_use_case_with_the_right_service(sources_by_name, event_name, use_case):
    assert event_name in sources_by_name, f"{event_name} is no longer in the corpus"
    entry = catalog.USE_CASES[use_case]
    assert event_name in entry.event_names
    assert sources_by_name[event_name] == {entry.event_source}


def test_read_only_calls_of_the_corpus_are_not_counted_as_changes(corpus_records):
    change_names = {name for use_case in catalog.USE_CASES.values() for name in use_case.event_names}
    read_only = {r["eventName"] for r in corpus_records if r.get("readOnly") is True}
    assert read_only and not (read_only & change_names) - {"GetPasswordData"}


def test_every_denial_in_the_corpus_counts_as_unauthorized(corpus_records):
    codes = {r["errorCode"] for r in corpus_records if r.get("errorCode")}
    denials = {code for code in codes if "Denied" in code or "Unauthorized" in code}
    assert denials and all(is_unauthorized(code) for code in denials)
    assert not is_unauthorized("ThrottlingException") and not is_unauthorized("NoSuchEntity")


def test_trail_tampering_names_are_real_cloudtrail_calls(sources_by_name):
    seen = {name for name in catalog.TRAIL_TAMPERING_EVENTS if name in sources_by_name}
    assert {"StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"} <= seen
    assert all(sources_by_name[name] == {"cloudtrail.amazonaws.com"} for name in seen)


def test_lists_have_no_repeats_and_finding_types_are_the_documented_ones():
    for use_case in catalog.USE_CASES.values():
        assert len(use_case.event_names) == len(set(use_case.event_names)), use_case.key
    assert set(catalog.FINDING_TYPES) == DOCUMENTED_FINDING_TYPES
    assert set(catalog.FINDING_SEVERITY) == DOCUMENTED_FINDING_TYPES
    assert set(catalog.FINDING_SEVERITY.values()) <= set(catalog.SEVERITIES)
