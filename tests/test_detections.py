"""Security detections: each on tiny hand-made cases, the demo's planted cases exactly, and the real corpus without error."""

from __future__ import annotations

import itertools
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, event as hypothesis_event, given, settings as hypothesis_settings, strategies as st

from trailstream import catalog, config
from trailstream.ingest import demo, records, sync
from trailstream.analytics import detections, queries
from trailstream.cache import store
from trailstream.analytics.detections import DetectionSettings, DetectionSettingsError, Finding
from trailstream.filters import EventFilter
from trailstream.timefmt import iso_utc
from trailstream.cache import bookkeeping

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ACCOUNT = "111122223333"
GB, GB_2, US, RU, FR, JP = "81.2.69.160", "81.2.69.161", "8.8.8.8", "77.88.8.8", "62.4.0.1", "210.130.0.1"
_ids = itertools.count()


def event(name: str, minutes: float = 0, user: str = "alice", ip: str = GB, *, user_type: str = "IAMUser",
          source: str = "iam.amazonaws.com", error: str | None = None, request=None, response=None,
          additional=None, account: str = ACCOUNT, event_type: str = "AwsApiCall") -> dict:
    """One CloudTrail record `minutes` after T0."""
    identity = {"type": user_type, "accountId": account, "principalId": "AIDAEXAMPLE"}
    if user_type == "Root":
        identity["arn"] = f"arn:aws:iam::{account}:root"
    elif user_type == "AssumedRole":
        identity["arn"] = f"arn:aws:sts::{account}:assumed-role/{user}"
    else:
        identity |= {"arn": f"arn:aws:iam::{account}:user/{user}", "userName": user}
    record = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": iso_utc(T0 + timedelta(minutes=minutes)),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": "test-agent",
        "requestParameters": request,
        "responseElements": response,
        "additionalEventData": additional,
        "eventID": f"evt-{next(_ids):06d}",
        "eventType": event_type,
        "recipientAccountId": account,
    }
    if error:
        record |= {"errorCode": error, "errorMessage": "not allowed"}
    return record


def sign_in(minutes: float, user: str = "alice", ip: str = GB, *, ok: bool = True, mfa: bool = True,
            user_type: str = "IAMUser") -> dict:
    record = event(catalog.CONSOLE_LOGIN_EVENT, minutes, user, ip, user_type=user_type,
                   source="signin.amazonaws.com", response={"ConsoleLogin": "Success" if ok else "Failure"},
                   additional={"LoginTo": "https://console.aws.amazon.com/", "MobileVersion": "No",
                               "MFAUsed": "Yes" if mfa else "No"})
    if not ok:
        record["errorMessage"] = "Failed authentication"
    return record


@pytest.fixture
def cache(db_path):
    """A function storing hand-made records in a fresh cache and returning a read-only connection to it."""

    def build(events: list[dict]):
        db = store.open_cache(db_path)
        parsed = records.parse_log_file(orjson.dumps({"Records": events}))
        store.save_parsed_file(db, bookkeeping.FileRef("local", "", "hand-made.json"), parsed, None)
        return store.open_cache_readonly(db_path)

    return build


def ids(events: list[dict]) -> list[str]:
    return [record["eventID"] for record in events]


def of_type(findings: list[Finding], finding_type: str) -> list[Finding]:
    return [finding for finding in findings if finding.type == finding_type]


# --- Settings ----------------------------------------------------------------------------


def test_settings_round_trip_through_a_dict():
    settings = DetectionSettings(unauthorized_threshold=5, max_travel_speed_kmh=1000.0, city_database="city.mmdb")
    assert DetectionSettings.from_dict(settings.to_dict()) == settings
    assert DetectionSettings.from_dict({}) == DetectionSettings()


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"unauthorized_threshold": "many"}, "unauthorized_threshold must be a whole number above 0"),
        ({"sign_in_failure_threshold": 0}, "sign_in_failure_threshold must be a whole number above 0"),
        ({"max_travel_speed_kmh": True}, "max_travel_speed_kmh must be a number above 0"),
        ({"unauthorised_threshold": 3}, 'unknown setting "unauthorised_threshold"'),
        ({"city_database": 3}, "city_database must be text"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(values, problem):
    with pytest.raises(DetectionSettingsError) as error:
        DetectionSettings.from_dict(values)
    assert problem in str(error.value)


def test_settings_file_section_is_read_and_the_city_database_is_relative_to_it(tmp_path):
    path = tmp_path / "conf" / "trailstream.toml"
    path.parent.mkdir()
    path.write_text('[detections]\nunauthorized_threshold = 7\ncity_database = "geo/GeoLite2-City.mmdb"\n')
    settings = detections.detection_settings(config.load_settings(path))
    assert settings.unauthorized_threshold == 7
    assert settings.city_database == str(path.parent / "geo" / "GeoLite2-City.mmdb")


@pytest.mark.parametrize(
    ("text", "problem"),
    [('[detections]\nunauthorized_threshold = "lots"\n', "unauthorized_threshold must be a whole number"),
     ("[detections\n", "the settings file has problems"),
     ('[detections]\ncity_database = "missing.mmdb"\n', "does not exist")],
)
def test_unusable_settings_fall_back_to_defaults_with_the_reason(tmp_path, text, problem):
    path = tmp_path / "trailstream.toml"
    path.write_text(text)
    settings, problems = detections.usable_detection_settings(config.load_settings(path))
    assert settings.unauthorized_threshold == DetectionSettings().unauthorized_threshold
    assert any(problem in sentence for sentence in problems), problems


# --- 1. Unauthorized bursts --------------------------------------------------------------


def denied(count: int, every_seconds: float, start: float = 0, user: str = "mallory", code: str = "AccessDenied"):
    return [event("ListUsers", start + n * every_seconds / 60, user, RU, error=code) for n in range(count)]


@pytest.mark.parametrize(
    ("calls", "found"),
    [
        (denied(20, 12), 1),  # 20 refused calls in 4 minutes
        (denied(19, 12), 0),  # one short of the threshold
        (denied(20, 90), 0),  # 20 calls spread over half an hour
        (denied(25, 5, code="Client.UnauthorizedOperation"), 1),
        (denied(25, 5, code="KMSNotAuthorizedToDoThis"), 1),  # matched by pattern
        (denied(25, 5, code="NoSuchEntity"), 0),  # failed, but not for lack of rights
    ],
)
def test_unauthorized_bursts(cache, calls, found):
    findings = detections.detect_unauthorized_bursts(cache(calls))
    assert len(findings) == found
    if found:
        assert findings[0].principal == "mallory"
        assert findings[0].event_ids and set(findings[0].event_ids) <= set(ids(calls))


def test_a_burst_lists_only_the_calls_inside_it(cache):
    early = denied(2, 60, start=-120)
    burst = denied(30, 6)
    [finding] = detections.detect_unauthorized_bursts(cache(early + burst))
    assert sorted(finding.event_ids) == sorted(ids(burst))
    assert finding.details["events"] == 30 and finding.time == burst[-1]["eventTime"]
    assert finding.severity == "medium"


def test_two_principals_are_counted_apart(cache):
    calls = denied(12, 10, user="a") + denied(12, 10, user="b")
    assert detections.detect_unauthorized_bursts(cache(calls)) == []


def test_access_denied_aggregates(cache):
    calls = denied(3, 60) + [event("RunInstances", 1, "bob", US, source="ec2.amazonaws.com",
                                   error="Client.UnauthorizedOperation")]
    frame = detections.query_unauthorized_calls(cache(calls))
    assert frame.height == 4
    by_principal = detections.breakdown(frame, "principal")
    assert by_principal.select("principal", "events").rows() == [("mallory", 3), ("bob", 1)]
    assert set(detections.breakdown(frame, "api").get_column("api")) == {"iam:ListUsers",
                                                                                      "ec2:RunInstances"}
    timeline = detections.count_over_time(frame, timedelta(hours=1), "event_source")
    assert timeline.columns == ["bucket", "bucket_end", "event_source", "events"]
    assert dict(timeline.group_by("event_source").agg(pl.col("events").sum()).rows()) == {
        "iam.amazonaws.com": 3, "ec2.amazonaws.com": 1}


# --- 2. Console sign-ins -----------------------------------------------------------------


@pytest.mark.parametrize(("failures", "every_seconds", "found"), [(10, 25, 1), (9, 25, 0), (10, 60, 0)])
def test_failed_sign_in_bursts(cache, failures, every_seconds, found):
    attempts = [sign_in(n * every_seconds / 60, "bob", RU, ok=False) for n in range(failures)]
    findings = of_type(detections.detect_findings(cache(attempts)), "console_login_failure_burst")
    assert len(findings) == found
    if found:
        assert findings[0].principal == "bob" and sorted(findings[0].event_ids) == sorted(ids(attempts))


@pytest.mark.parametrize(
    ("record", "severity"),
    [
        (sign_in(0, "alice", mfa=False), "medium"),
        (sign_in(0, "root", mfa=False, user_type="Root"), "high"),
        (sign_in(0, "alice", mfa=True), None),
        (sign_in(0, "Admin/alice", mfa=False, user_type="AssumedRole"), None),  # SSO proves MFA at the IdP
        (sign_in(0, "alice", mfa=False, ok=False), None),
    ],
)
def test_sign_ins_without_mfa(cache, record, severity):
    findings = of_type(detections.detect_findings(cache([record])), "console_login_without_mfa")
    assert [finding.severity for finding in findings] == ([severity] if severity else [])


def test_first_sign_in_from_a_new_country_is_found_once(cache):
    history = [sign_in(0, ip=GB), sign_in(60 * 24, ip=GB_2), sign_in(60 * 25, ip=FR, ok=False)]
    new = sign_in(60 * 48, ip=JP)
    again = sign_in(60 * 49, ip=JP)
    conn = cache(history + [new, again])
    findings = of_type(detections.detect_findings(conn), "new_country_sign_in")
    assert [finding.event_ids for finding in findings] == [[new["eventID"]]]
    assert findings[0].details["countries"] == ["JP"]
    table = detections.query_sign_ins(conn)
    flags = {row["event_id"]: (row["new_country"], row["new_ip"]) for row in table.iter_rows(named=True)}
    assert flags[history[0]["eventID"]] == (False, False)  # the first sign-in has nothing to compare with
    assert flags[history[1]["eventID"]] == (False, True)
    assert flags[history[2]["eventID"]] == (False, False)  # failures never count as new
    assert flags[new["eventID"]] == (True, True)
    assert flags[again["eventID"]] == (False, False)


def test_the_period_limits_findings_but_not_the_history_they_compare_with(cache):
    conn = cache([sign_in(0, ip=GB), sign_in(60 * 24 * 3, ip=JP), sign_in(60 * 24 * 5, ip=GB)])
    recent = EventFilter(start=iso_utc(T0 + timedelta(days=4)))
    assert of_type(detections.detect_findings(conn, recent), "new_country_sign_in") == []
    assert detections.query_sign_ins(conn, recent).height == 1


# --- 3. Impossible travel ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("second_ip", "minutes", "basis"),
    [
        (US, 30, "speed"),  # London to Washington in half an hour
        (US, 600, None),  # ten hours: a flight
        (FR, 30, "countries within window"),  # capitals only 344 km apart, but two countries within the hour
        (FR, 120, None),
        (GB_2, 1, None),  # another address in the same country
        ("10.0.0.7", 1, None),  # private: not a place
        ("AWS Internal", 1, None),
        ("cloudformation.amazonaws.com", 1, None),
    ],
)
def test_impossible_travel(cache, second_ip, minutes, basis):
    first, second = event("ListBuckets", 0, "carol", GB), event("ListBuckets", minutes, "carol", second_ip)
    conn = cache([first, second])
    findings = detections.detect_impossible_travel(conn)
    if basis is None:
        assert findings == []
        return
    [finding] = findings
    assert finding.principal == "carol" and sorted(finding.event_ids) == sorted(ids([first, second]))
    assert finding.details["basis"] == basis
    assert finding.details["hours"] == pytest.approx(minutes / 60)
    assert finding.details["ips"] == [GB, second_ip]
    pairs = detections.query_travel_pairs(conn)
    assert pairs.select("from_latitude", "to_longitude").null_count().sum_horizontal().item() == 0


def test_travel_reads_the_covering_index_not_the_table(cache):
    records = [event("ListBuckets", 0, "carol", GB), event("ListBuckets", 20, "carol", US)]
    conn = cache(records)
    indexed_by = queries.indexed_by(conn, detections.TRAVEL_INDEX)
    plan = " ".join(row[3] for row in conn.execute(
        f"EXPLAIN QUERY PLAN SELECT e.principal, e.source_ip, count(*) FROM events e {indexed_by} "
        "GROUP BY e.principal, e.source_ip, e.account_id"))
    assert f"COVERING INDEX {detections.TRAVEL_INDEX}" in plan
    assert detections.detect_impossible_travel(conn)


def test_travel_is_per_principal_and_flips_of_one_incident_are_one_finding(cache):
    flips = [event("GetObject", minute, "dave", ip) for minute, ip in [(0, GB), (5, RU), (10, GB), (15, RU)]]
    others = [event("GetObject", 1, "erin", US), event("GetObject", 2, "frank", JP)]
    [finding] = detections.detect_impossible_travel(cache(flips + others))
    assert finding.principal == "dave" and finding.details["pairs"] == 3
    assert sorted(finding.event_ids) == sorted(ids(flips))


def test_travel_with_city_coordinates_uses_speed(cache, tmp_path):
    from tests.test_geo import city, write_city_database

    path = tmp_path / "GeoLite2-City.mmdb"
    write_city_database(path, {"81.2.69.0/24": city("London", "GB", "United Kingdom", 51.51, -0.13),
                               "62.4.0.0/24": city("Paris", "FR", "France", 48.86, 2.35),
                               "77.88.8.0/24": city("Moscow", "RU", "Russia", 55.75, 37.62)})
    settings = DetectionSettings(city_database=str(path))
    near = cache([event("GetObject", 0, "gina", GB), event("GetObject", 20, "gina", FR)])
    assert detections.detect_impossible_travel(near, settings=settings) == []  # 344 km: within IP-location error
    far = [event("GetObject", 30, "gina", RU)]
    conn = cache(far)
    [finding] = detections.detect_impossible_travel(conn, settings=settings)
    assert finding.details["places"] == ["Paris, France", "Moscow, Russia"]
    assert finding.details["distance_km"] == pytest.approx(2486, abs=15)
    assert finding.details["speed_kmh"] > settings.max_travel_speed_kmh


EU_WITHOUT_COORDINATES = "168.168.31.126"  # geoip2fast: country "EU", which has no capital and so no coordinates


def test_two_sign_ins_from_a_place_without_coordinates_and_the_us_never_raise(cache):
    first, second = sign_in(0, "olga", EU_WITHOUT_COORDINATES), sign_in(20, "olga", US)
    conn = cache([first, second])
    findings = detections.detect_findings(conn)
    [travel] = of_type(findings, "impossible_travel")
    assert travel.details["basis"] == "countries within window" and travel.details["distance_km"] is None
    assert "an unknown distance" in travel.summary and "None" not in travel.summary
    assert sorted(travel.event_ids) == sorted(ids([first, second]))
    assert detections.format_findings_table(findings) and detections.findings_frame(findings).height == len(findings)
    [route] = detections.query_travel_routes(conn).rows(named=True)
    assert (route["from_latitude"], route["hops"]) == (None, 1)


ROAMING_IPS = [GB, US, RU, FR, JP, "139.130.4.5", "189.1.12.5", "103.4.96.44"]


def test_a_roaming_principal_is_one_travel_finding_summarising_its_hops(cache):
    calls = [event("GetObject", minute * 7, "rover", ip) for minute, ip in enumerate(ROAMING_IPS * 6)]
    [finding] = detections.detect_impossible_travel(cache(calls))
    assert finding.details["pairs"] == len(calls) - 1
    assert finding.details["events"] == len(calls)
    assert set(finding.details["countries"]) == {"GB", "US", "RU", "FR", "JP", "AU", "BR", "SG"}
    assert finding.event_ids[0] == calls[0]["eventID"] and sorted(finding.event_ids) == sorted(ids(calls))
    assert finding.details["speed_kmh"] == max(detections.query_travel_pairs(cache([])).get_column("speed_kmh"))
    assert f"{len(calls) - 1:,} impossible hops" in finding.summary


def test_travel_judged_a_few_principals_at_a_time_finds_the_same(cache, monkeypatch):
    calls = [event("GetObject", minute * 7, user, ip) for user in ("ann", "ben", "cat")
             for minute, ip in enumerate(ROAMING_IPS * 2)]
    conn = cache(calls)
    whole = detections.query_travel(conn)
    monkeypatch.setattr(detections.impossible_travel, "BATCH_MOMENTS", 5)
    batched = detections.query_travel(conn)
    assert [finding.to_dict() for finding in batched[0]] == [finding.to_dict() for finding in whole[0]]
    assert batched[1].equals(whole[1]) and whole[1].get_column("principals").max() == 3


def test_travel_reads_through_a_connection_bound_to_its_thread(cache, db_path):
    calls = [event("GetObject", minute * 7, user, ip) for user in ("ann", "ben")
             for minute, ip in enumerate(ROAMING_IPS * 2)]
    expected = [finding.to_dict() for finding in detections.detect_impossible_travel(cache(calls))]
    with sqlite3.connect(db_path) as bound:  # check_same_thread: only this thread may read through it
        assert [finding.to_dict() for finding in detections.detect_impossible_travel(bound)] == expected
    assert len(expected) == 2


def test_routes_per_day_and_principal_are_the_same_however_principals_are_batched(cache, monkeypatch):
    calls = [event("GetObject", minute * 7, user, ip) for user in ("ann", "ben", "cat")
             for minute, ip in enumerate(ROAMING_IPS * 2)]
    conn = cache(calls)
    key = ["day", "account_id", "principal", "from_place", "to_place"]
    whole = detections.impossible_travel.query_travel_days(conn)[1].sort(key)
    monkeypatch.setattr(detections.impossible_travel, "BATCH_MOMENTS", 5)
    batched = detections.impossible_travel.query_travel_days(conn)[1].sort(key)
    assert batched.equals(whole) and set(whole.get_column("principal")) == {"ann", "ben", "cat"}


def test_travel_a_day_apart_is_two_findings(cache):
    calls = [event("GetObject", 0, "pat", GB), event("GetObject", 10, "pat", US),
             event("GetObject", 60 * 30, "pat", GB), event("GetObject", 60 * 30 + 10, "pat", JP)]
    assert len(detections.detect_impossible_travel(cache(calls))) == 2


def test_new_countries_of_a_roaming_person_are_one_finding_per_day(cache):
    history = [sign_in(0, "nomad", GB)]
    roaming = [sign_in(60 * 24 + hour * 60, "nomad", ip) for hour, ip in enumerate([US, RU, FR, JP])]
    later = [sign_in(60 * 24 * 4, "nomad", "139.130.4.5")]
    findings = of_type(detections.detect_findings(cache(history + roaming + later)), "new_country_sign_in")
    assert [sorted(finding.event_ids) for finding in findings] == [ids(later), sorted(ids(roaming))]
    assert findings[1].details["countries"] == ["US", "RU", "FR", "JP"]
    assert "4 new countries" in findings[1].summary


def test_refused_calls_of_many_sessions_of_one_role_are_one_burst_of_the_role(cache):
    calls = [event("ListUsers", n / 10, f"Deployer/session-{n}", US, user_type="AssumedRole", error="AccessDenied")
             for n in range(25)]
    conn = cache(calls)
    [finding] = detections.detect_unauthorized_bursts(conn)
    assert finding.principal == "Deployer" and finding.details["session_count"] == 25
    assert sorted(finding.event_ids) == sorted(ids(calls))
    by_role = detections.breakdown(detections.query_unauthorized_calls(conn), "principal", column="actor")
    assert by_role.select("principal", "events").rows() == [("Deployer", 25)]


# --- 4. Privilege-change sprees ----------------------------------------------------------


@pytest.mark.parametrize(("changes", "error", "found"), [(15, None, 1), (14, None, 0), (20, "AccessDenied", 0)])
def test_privilege_change_sprees(cache, changes, error, found):
    names = itertools.cycle(["AttachUserPolicy", "PutBucketPolicy", "AuthorizeSecurityGroupIngress", "PutKeyPolicy"])
    calls = [event(next(names), n / 2, "henry", US, error=error) for n in range(changes)]
    calls.append(event("ListUsers", 1, "henry", US))  # reads never count
    findings = detections.detect_privilege_change_sprees(cache(calls))
    assert len(findings) == found
    if found:
        assert len(findings[0].event_ids) == changes


# --- 5. High-risk single events ----------------------------------------------------------


def test_root_use_is_grouped_into_sessions(cache):
    session = [sign_in(0, "root", mfa=True, user_type="Root"),
               event("CreateAccessKey", 5, "root", user_type="Root"), event("ListUsers", 50, "root", user_type="Root")]
    later = [event("DeleteBucket", 300, "root", user_type="Root", source="s3.amazonaws.com")]
    ignored = [sign_in(400, "root", ok=False, user_type="Root"),
               event("SharedSnapshotCopyInitiated", 410, "root", "AWS Internal", user_type="Root",
                     event_type="AwsServiceEvent")]
    findings = detections.detect_root_activity(cache(session + later + ignored))
    assert [sorted(finding.event_ids) for finding in findings] == [sorted(ids(later)), sorted(ids(session))]
    assert {finding.principal for finding in findings} == {"root"}


def grant(name: str, **request) -> dict:
    return event(name, 0, "ivan", US, request=request)


ADMIN_DOCUMENT = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
DENY_DOCUMENT = json.dumps({"Statement": {"Effect": "Deny", "Action": ["*"], "Resource": ["*"]}})
S3_DOCUMENT = json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


@pytest.mark.parametrize(
    ("record", "finding_type", "severity"),
    [
        (event("StopLogging", request={"name": "main"}, source="cloudtrail.amazonaws.com"), "trail_tampering",
         "critical"),
        (event("DeleteTrail", request={"name": "main"}, source="cloudtrail.amazonaws.com"), "trail_tampering",
         "critical"),
        (event("PutEventSelectors", request={"trailName": "main"}, source="cloudtrail.amazonaws.com"),
         "trail_tampering", "high"),
        (event("StopLogging", request={"name": "main"}, error="AccessDenied"), None, None),
        (event("UpdateDetector", request={"detectorId": "d1", "enable": False}, source="guardduty.amazonaws.com"),
         "detector_disabled", "high"),
        (event("UpdateDetector", request={"detectorId": "d1", "findingPublishingFrequency": "SIX_HOURS"}), None, None),
        (event("StopConfigurationRecorder", request={"configurationRecorderName": "default"}), "detector_disabled",
         "high"),
        (grant("AttachUserPolicy", userName="bob", policyArn="arn:aws:iam::aws:policy/AdministratorAccess"),
         "admin_policy_attached", "high"),
        (grant("AttachRolePolicy", roleName="ci", policyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"), None, None),
        (grant("PutRolePolicy", roleName="ci", policyName="x", policyDocument=ADMIN_DOCUMENT), "admin_policy_attached",
         "high"),
        (grant("PutUserPolicy", userName="bob", policyName="x", policyDocument=DENY_DOCUMENT), None, None),
        (grant("PutGroupPolicy", groupName="devs", policyName="x", policyDocument=S3_DOCUMENT), None, None),
        (grant("CreatePolicyVersion", policyArn="arn:aws:iam::1:policy/p", policyDocument=ADMIN_DOCUMENT,
               setAsDefault=True), "admin_policy_attached", "high"),
        (grant("CreatePolicyVersion", policyArn="arn:aws:iam::1:policy/p", policyDocument=ADMIN_DOCUMENT,
               setAsDefault=False), None, None),
        (grant("CreateAccessKey", userName="bob"), "access_key_for_other_user", "high"),
        (grant("CreateAccessKey", userName="ivan"), None, None),  # a user's own key
        (grant("CreateAccessKey"), None, None),
    ],
)
def test_high_risk_single_events(cache, record, finding_type, severity):
    findings = detections.detect_high_risk_events(cache([record]))
    expected = [(finding_type, severity, [record["eventID"]])] if finding_type else []
    assert [(finding.type, finding.severity, finding.event_ids) for finding in findings] == expected


def ingress(cidr_field: str, cidr: str, protocol: str = "tcp", from_port: int = 22, to_port: int = 22) -> dict:
    peers = {"ipRanges": {}, "ipv6Ranges": {}}
    peers["ipv6Ranges" if cidr_field == "cidrIpv6" else "ipRanges"] = {"items": [{cidr_field: cidr}]}
    permission = {"ipProtocol": protocol, "fromPort": from_port, "toPort": to_port, "groups": {}, "prefixListIds": {},
                  **peers}
    return event("AuthorizeSecurityGroupIngress", 0, "judy", US, source="ec2.amazonaws.com",
                 request={"groupId": "sg-1", "ipPermissions": {"items": [permission]}})


@pytest.mark.parametrize(
    ("record", "ports"),
    [
        (ingress("cidrIp", "0.0.0.0/0"), [22]),
        (ingress("cidrIpv6", "::/0", from_port=3389, to_port=3389), [3389]),
        (ingress("cidrIp", "0.0.0.0/0", from_port=0, to_port=65535), sorted(catalog.ADMIN_PORTS)),
        (ingress("cidrIp", "0.0.0.0/0", protocol="-1", from_port=-1, to_port=-1), sorted(catalog.ADMIN_PORTS)),
        (ingress("cidrIp", "0.0.0.0/0", from_port=443, to_port=443), None),
        (ingress("cidrIp", "10.0.0.0/8"), None),
        (event("AuthorizeSecurityGroupIngress", source="ec2.amazonaws.com",
               request={"groupId": "sg-2", "cidrIp": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 5432,
                        "toPort": 5432}), [5432]),
    ],
)
def test_security_groups_opened_to_the_world_on_admin_ports(cache, record, ports):
    findings = detections.detect_high_risk_events(cache([record]))
    assert [finding.details["ports"] for finding in findings] == ([ports] if ports else [])


@pytest.mark.parametrize(
    ("document", "admin"),
    [
        (ADMIN_DOCUMENT, True),
        ({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "*:*"], "Resource": ["*"]}]}, True),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::bucket/*"}]}, False),
        (DENY_DOCUMENT, False),
        (S3_DOCUMENT, False),
        ("{not json", False),
        (None, False),
    ],
)
def test_grants_full_admin(document, admin):
    assert detections.grants_full_admin(document) is admin


# --- All together ------------------------------------------------------------------------


def test_findings_are_newest_first_and_json_ready(cache):
    conn = cache([event("StopLogging", 10, request={"name": "t"}, source="cloudtrail.amazonaws.com"),
                  grant("CreateAccessKey", userName="bob"), sign_in(5, "root", mfa=False, user_type="Root")])
    findings = detections.detect_findings(conn)
    assert [finding.time for finding in findings] == sorted((finding.time for finding in findings), reverse=True)
    assert {finding.type for finding in findings} == {"trail_tampering", "access_key_for_other_user", "root_activity",
                                                      "console_login_without_mfa"}
    for finding in findings:
        as_json = json.loads(orjson.dumps(finding.to_dict()))
        assert {"type", "severity", "time", "principal", "account_id", "summary", "event_ids"} <= set(as_json)
        assert Finding.from_dict(as_json).key == finding.key
        assert finding.type in catalog.FINDING_TYPES and finding.severity in catalog.SEVERITIES
    table = detections.format_findings_table(findings)
    assert table.splitlines()[0].split() == ["time", "severity", "type", "principal", "account", "summary"]
    assert "called StopLogging on trail t" in table
    assert detections.findings_frame(findings).height == len(findings)
    events = detections.query_finding_events(conn, findings[0].event_ids)
    assert events.get_column("event_id").to_list() == findings[0].event_ids


def test_an_empty_cache_has_no_findings(cache):
    conn = cache([])
    assert detections.detect_findings(conn) == []
    assert detections.format_findings_table([]) == "No findings in this period."
    assert detections.query_travel_pairs(conn).is_empty()
    assert detections.query_sign_ins(conn).is_empty()


def test_the_whole_corpus_runs_and_finds_its_attacks(corpus, db_path):
    db = store.open_cache(db_path)
    for folder in ("events", "irregular"):
        for path in sorted((corpus / folder).glob("*.json")):
            parsed = records.parse_log_file(path.read_bytes())
            store.save_parsed_file(db, bookkeeping.FileRef("local", "", str(path)), parsed, None)
    conn = store.open_cache_readonly(db_path)
    findings = detections.detect_findings(conn)
    found = {(finding.type, finding.details.get("event_name")) for finding in findings}
    assert {("trail_tampering", "StopLogging"), ("trail_tampering", "DeleteTrail"),
            ("admin_policy_attached", "AttachUserPolicy"), ("security_group_open_to_world",
                                                          "AuthorizeSecurityGroupIngress")} <= found
    assert of_type(findings, "root_activity")
    detections.query_sign_ins(conn)
    detections.query_unauthorized_calls(conn)


# --- Any value missing or odd: never an exception --------------------------------------------

ODD_TEXT = st.one_of(st.none(), st.just(""), st.text(max_size=12).filter(lambda value: "None" not in value),
                    st.sampled_from(["<b>x</b>", "=1+1", "a/b/c"]))
ODD_IPS = st.sampled_from([None, "", EU_WITHOUT_COORDINATES, GB, US, JP, "10.0.0.1", "AWS Internal",
                           "s3.amazonaws.com", "::1", "2001:4860:4860::8888", "not-an-ip", "999.1.1.1"])
FUZZED_NAMES = st.sampled_from([catalog.CONSOLE_LOGIN_EVENT, "StopLogging", "AttachUserPolicy", "PutUserPolicy",
                                "CreatePolicyVersion", "CreateAccessKey", "AuthorizeSecurityGroupIngress",
                                "UpdateDetector", "ListUsers", "GetObject"])
KNOWN_IDENTITIES = st.sampled_from([
    {"type": "IAMUser", "userName": "zed", "arn": f"arn:aws:iam::{ACCOUNT}:user/zed", "accountId": ACCOUNT},
    {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Role/s1", "accountId": ACCOUNT},
    {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT},
])
ODD_IDENTITIES = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["IAMUser", "AssumedRole", "Root", "AWSService", "FederatedUser",
                                       "AWSAccount", "IdentityCenterUser"]), ODD_TEXT),
    "arn": st.one_of(ODD_TEXT, st.sampled_from([f"arn:aws:sts::{ACCOUNT}:assumed-role/Role/s1",
                                               f"arn:aws:iam::{ACCOUNT}:user/zed", f"arn:aws:iam::{ACCOUNT}:root"])),
    "userName": ODD_TEXT, "accountId": st.one_of(st.none(), st.just(ACCOUNT)), "invokedBy": ODD_TEXT,
})
IDENTITIES = st.one_of(KNOWN_IDENTITIES, ODD_IDENTITIES)
REQUESTS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "userName": ODD_TEXT, "policyArn": st.one_of(ODD_TEXT, st.just("arn:aws:iam::aws:policy/AdministratorAccess")),
    "policyDocument": st.one_of(ODD_TEXT, st.just(ADMIN_DOCUMENT)), "name": ODD_TEXT, "enable": ODD_TEXT,
    "groupId": ODD_TEXT, "cidrIp": st.one_of(ODD_TEXT, st.just("0.0.0.0/0")),
    "fromPort": st.one_of(st.none(), st.integers(-1, 70000)), "toPort": st.one_of(st.none(), st.integers(-1, 70000)),
    "ipProtocol": st.one_of(ODD_TEXT, st.just("tcp")),
}))
FUZZED_RECORDS = st.builds(
    lambda name, minutes, identity, ip, agent, error, request, outcome, mfa: {
        "eventVersion": "1.08", "eventTime": iso_utc(T0 + timedelta(minutes=minutes)), "eventName": name,
        "eventSource": "iam.amazonaws.com", "userIdentity": identity, "sourceIPAddress": ip, "userAgent": agent,
        "errorCode": error, "requestParameters": request, "responseElements": {"ConsoleLogin": outcome},
        "additionalEventData": {"MFAUsed": mfa}, "eventID": f"fuzz-{next(_ids):06d}", "recipientAccountId": ACCOUNT,
        "awsRegion": "eu-west-1"},
    FUZZED_NAMES, st.integers(0, 90), IDENTITIES, ODD_IPS, ODD_TEXT,
    st.one_of(ODD_TEXT, st.just("AccessDenied")), REQUESTS, st.sampled_from(["Success", "Failure", None, ""]),
    st.sampled_from(["Yes", "No", None]),
)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])
@given(st.lists(FUZZED_RECORDS, min_size=1, max_size=30))
def test_detections_survive_missing_and_odd_values(tmp_path_factory, fuzzed):
    path = tmp_path_factory.mktemp("fuzz") / "cache.db"
    db = store.open_cache(path)
    parsed = records.parse_log_file(orjson.dumps({"Records": fuzzed}))
    store.save_parsed_file(db, bookkeeping.FileRef("local", "", "fuzz.json"), parsed, None)
    conn = store.open_cache_readonly(path)
    settings = DetectionSettings(unauthorized_threshold=2, sign_in_failure_threshold=2, privilege_change_threshold=2)
    findings = detections.detect_findings(conn, None, settings)
    hypothesis_event(f"findings: {sorted({finding.type for finding in findings})}")
    # a missing value is worded ("an unknown address"), never printed as None (stored names may say None)
    assert all(finding.summary and "None" not in finding.summary.replace(finding.principal or "", "")
               for finding in findings)
    orjson.dumps([finding.to_dict() for finding in findings])
    detections.format_findings_table(findings)
    detections.findings_frame(findings)
    detections.query_travel_routes(conn, None, settings)
    detections.sign_in_counts(detections.query_sign_ins(conn, None, settings))
    detections.breakdown(detections.query_unauthorized_calls(conn), "principal")


# --- The demo's planted cases, exactly ---------------------------------------------------

DEMO_END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
PLANTED_KINDS = sorted(kind for kind in demo.PLANTED if kind in catalog.FINDING_TYPES)


@pytest.fixture(scope="module", params=[3, 11], ids=["seed-3", "seed-11"])
def demo_conn(request, tmp_path_factory):
    """A cache of demo log files (planted cases on two different backgrounds), imported like real files."""
    folder = tmp_path_factory.mktemp("demo-logs")
    demo.write_log_files(folder, demo.generate_records(events=8000, seed=request.param, end=DEMO_END))
    path = folder / "cache.db"
    sync.import_paths(path, [folder], workers=1)
    return store.open_cache_readonly(path)


@pytest.fixture(scope="module")
def demo_findings(demo_conn) -> list[Finding]:
    return detections.detect_findings(demo_conn)


def test_every_finding_type_has_planted_cases():
    assert PLANTED_KINDS == sorted(catalog.FINDING_TYPES)


@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_exactly_the_planted_positives_are_found(demo_findings, kind):
    found = of_type(demo_findings, kind)
    for case in demo.PLANTED[kind]:
        matching = [finding for finding in found if set(finding.event_ids) & set(case["event_ids"])]
        assert bool(matching) == case["expected"], case
        assert {finding.principal for finding in matching} <= {case["principal"]}
    positives = set().union(*(case["event_ids"] for case in demo.PLANTED[kind] if case["expected"]))
    assert [finding.summary for finding in found if not set(finding.event_ids) & positives] == []


def test_the_last_week_holds_the_same_findings(demo_conn, demo_findings):
    last_week = EventFilter(start=iso_utc(DEMO_END - timedelta(days=7)))
    assert {finding.key for finding in detections.detect_findings(demo_conn, last_week)} == {
        finding.key for finding in demo_findings}


def test_impossible_travel_pairs_carry_what_the_map_needs(demo_conn):
    [bob] = [case for case in demo.PLANTED["impossible_travel"] if case["expected"]]
    pairs = detections.query_travel_pairs(demo_conn)
    assert set(pairs.get_column("principal")) == {"bob"}
    pair = pairs.row(0, named=True)
    assert {pair["from_country"], pair["to_country"]} == set(bob["countries"])
    assert {pair["from_event_id"], pair["to_event_id"]} <= set(bob["event_ids"])
    assert pair["distance_km"] > 9000 and pair["hours"] < 1 and pair["speed_kmh"] > 900
