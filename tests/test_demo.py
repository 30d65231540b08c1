"""The demo generator: reproducible, CloudTrail-shaped records whose planted findings other tests rely on."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from trailstream import catalog
from trailstream.ingest import demo, records, sync
from trailstream.cache import store

END = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
END_EPOCH = int(END.timestamp())
EVENTS = 12_000
KEY_PATTERN = re.compile(
    r"^AWSLogs/(?P<account>\d{12})/CloudTrail/(?P<region>[a-z]{2}-[a-z]+-\d)/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/"
    r"(?P=account)_CloudTrail_(?P=region)_(?P=y)(?P=m)(?P=d)T(?P<hh>\d\d)(?P<mm>\d\d)Z_[A-Za-z0-9]{16}\.json\.gz$"
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def generated() -> list[dict]:
    return demo.generate_records(events=EVENTS, end=END)


@pytest.fixture(scope="module")
def by_id(generated) -> dict[str, dict]:
    return {record["eventID"]: record for record in generated}


@pytest.fixture(scope="module")
def geoip():
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast()


def epoch(record: dict) -> int:
    return int(datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def principal(record: dict) -> str | None:
    return records.principal_name(record.get("userIdentity") or {})


def planted_ids(kind: str, expected: bool | None = None) -> set[str]:
    return {event_id for case in demo.PLANTED.get(kind, ()) if expected in (None, case["expected"])
            for event_id in case["event_ids"]}


def most_in_window(times: list[int], seconds: int) -> int:
    """The largest number of `times` that fall within any `seconds`-long window."""
    times, best, first = sorted(times), 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] > seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


def per_principal(selected) -> dict[str, list[int]]:
    found = defaultdict(list)
    for record in selected:
        found[principal(record)].append(epoch(record))
    return found


# --- Reproducible and well-formed ----------------------------------------------------------------------------------

def test_same_arguments_give_identical_records_and_another_seed_differs():
    first = demo.generate_records(events=2_000, seed=3, end=END)
    assert orjson.dumps(first) == orjson.dumps(demo.generate_records(events=2_000, seed=3, end=END))
    other = demo.generate_records(events=2_000, seed=4, end=END)
    assert {r["eventID"] for r in first} != {r["eventID"] for r in other}


# sha256 of the records (orjson, sorted keys) and of the log files, for 2,000 events ending GOLDEN_END: computed from
# the single-module generator before it became a package. An intended change to the demo's output updates them.
GOLDEN_END = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
GOLDEN = {
    0: ("11a08950bd50ce978e7591aedd59721305aaa8110b0e0d0abacc2947821856fb",
        "d339a4c181b7ccf139fbfc1b29ab272d56e8310f14d745c1dc280734c86671f2"),
    7: ("c16b43f04865f25bf13753e7f0efa4e02d2044ca407e2915f4e6e5838544510c",
        "deddfe6ea2e4421c3dfe392486d1475d76ba08a04d2376d2e3a9787d6542a047"),
}


@pytest.mark.parametrize("seed", sorted(GOLDEN))
def test_a_seed_gives_the_same_bytes_as_before_the_generator_was_split(seed):
    generated = demo.generate_records(2_000, seed=seed, end=GOLDEN_END)
    files = b"".join(key.encode() + data for key, data in demo.iter_log_files(generated))
    digests = (hashlib.sha256(orjson.dumps(generated, option=orjson.OPT_SORT_KEYS)).hexdigest(),
               hashlib.sha256(files).hexdigest())
    assert digests == GOLDEN[seed]


def test_planted_records_are_the_same_for_every_seed_and_end():
    planted = {event_id for cases in demo.PLANTED.values() for case in cases for event_id in case["event_ids"]}
    for seed, end in ((1, END), (2, END + timedelta(days=40, minutes=7))):
        ids = {r["eventID"] for r in demo.generate_records(events=2_000, seed=seed, end=end)}
        assert planted <= ids


def test_background_only_slices_leave_the_planted_records_out():
    planted = {event_id for cases in demo.PLANTED.values() for case in cases for event_id in case["event_ids"]}
    background = demo.generate_records(events=5_000, seed=3, end=END, days=1, planted=False)
    assert len(background) == 5_000 and not planted & {r["eventID"] for r in background}
    times = [r["eventTime"] for r in background]
    assert (END - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ") <= min(times)
    assert max(times) < END.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_exactly_the_requested_number_of_events_sorted_within_the_span(generated):
    assert len(generated) == EVENTS
    times = [r["eventTime"] for r in generated]
    assert times == sorted(times)
    start = (END - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert start <= times[0] and times[-1] < END.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len({r["eventID"] for r in generated}) == EVENTS


def test_end_defaults_to_now_truncated_to_the_minute():
    before = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    newest = max(r["eventTime"] for r in demo.generate_records(events=500))
    assert newest < (before + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert newest >= (before - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_records_have_cloudtrail_shapes(generated):
    kinds = Counter()
    for record in generated:
        assert record["eventVersion"].startswith("1.")
        assert EVENT_TIME.match(record["eventTime"])
        assert UUID.match(record["eventID"])
        assert record["awsRegion"] in demo.REGIONS
        assert record["recipientAccountId"] in demo.ACCOUNTS
        assert record["eventType"] in ("AwsApiCall", "AwsConsoleSignIn", "AwsServiceEvent")
        assert record["eventCategory"] in ("Management", "Data")
        assert isinstance(record["readOnly"], bool) and isinstance(record["managementEvent"], bool)
        assert "errorMessage" in record if "errorCode" in record else True
        identity = record["userIdentity"]
        kinds[identity.get("type")] += 1
        if identity.get("type") == "AssumedRole" and record["eventType"] == "AwsApiCall":
            assert identity["accessKeyId"].startswith("ASIA")
            assert set(identity["sessionContext"]) >= {"sessionIssuer", "attributes"}
            assert set(identity["sessionContext"]["attributes"]) == {"creationDate", "mfaAuthenticated"}
        if identity.get("type") == "IAMUser" and record["eventType"] == "AwsApiCall":
            assert identity["accessKeyId"][:4] in ("AKIA", "ASIA") and identity["arn"].endswith(identity["userName"])
        if record["eventCategory"] == "Data":
            assert record["managementEvent"] is False and {r["type"] for r in record["resources"]} == {
                "AWS::S3::Object", "AWS::S3::Bucket"}
        if record["eventType"] == "AwsApiCall" and "tlsDetails" not in record:
            assert not re.match(r"^\d", record["sourceIPAddress"]) or record["sourceIPAddress"].startswith("10.")
    assert {"IAMUser", "AssumedRole", "Root", "AWSService", "FederatedUser"} <= set(kinds)
    assert 0.5 < sum(r["readOnly"] for r in generated) / len(generated) < 0.8


def test_console_sign_ins_look_like_cloudtrail_writes_them(generated):
    sign_ins = [r for r in generated if r["eventName"] == "ConsoleLogin"]
    assert sign_ins
    for record in sign_ins:
        assert record["eventSource"] == "signin.amazonaws.com" and record["eventType"] == "AwsConsoleSignIn"
        outcome = record["responseElements"]["ConsoleLogin"]
        assert set(record["additionalEventData"]) >= {"LoginTo", "MobileVersion", "MFAUsed"}
        assert "errorCode" not in record
        if outcome == "Failure":
            assert record["errorMessage"] == "Failed authentication"
        else:
            assert outcome == "Success" and "errorMessage" not in record
    assert {r["responseElements"]["ConsoleLogin"] for r in sign_ins} == {"Success", "Failure"}


def test_every_catalog_use_case_has_events(generated):
    for use_case in catalog.USE_CASES.values():
        names = {r["eventName"] for r in generated if r["eventSource"] == use_case.event_source}
        assert names & set(use_case.event_names), use_case.key


def test_instance_and_elastic_ip_events_name_resources_created_before_them(generated):
    launched: dict[str, tuple[str, str, str]] = {}
    allocations: dict[str, tuple[str, str]] = {}
    associations: set[str] = set()
    checked = Counter()
    for record in generated:
        if "errorCode" in record or record["eventSource"] != "ec2.amazonaws.com":
            continue
        name, req, resp = record["eventName"], record["requestParameters"], record["responseElements"]
        place = (record["recipientAccountId"], record["awsRegion"])
        if name == "RunInstances":
            for item in resp["instancesSet"]["items"]:
                launched[item["instanceId"]] = (*place, item["instanceType"])
        elif name in ("StartInstances", "StopInstances", "RebootInstances", "TerminateInstances"):
            for item in req["instancesSet"]["items"]:
                assert launched[item["instanceId"]][:2] == place, record["eventID"]
                checked[name] += 1
        elif name == "ModifyInstanceAttribute":
            assert launched[req["instanceId"]][:2] == place
        elif name == "AllocateAddress":
            allocations[resp["allocationId"]] = place
        elif name == "AssociateAddress":
            assert allocations[req["allocationId"]] == place
            assert "instanceId" not in req or launched[req["instanceId"]][:2] == place
            associations.add(resp["associationId"])
        elif name == "DisassociateAddress":
            assert req.get("associationId") in associations or req.get("allocationId") in allocations
        elif name == "ReleaseAddress":
            assert allocations[req["allocationId"]] == place
            checked[name] += 1
    assert checked["TerminateInstances"] and checked["StopInstances"] and checked["ReleaseAddress"]


def test_people_and_travel_addresses_geolocate_to_their_countries(geoip):
    for person in demo.PEOPLE.values():
        assert {geoip.lookup(ip).country_code for ip in person.ips} == {person.country}, person.name
    for country, ip in demo.TRAVEL_IPS.items():
        assert geoip.lookup(ip).country_code == country
    assert len({p.country for p in demo.PEOPLE.values()}) >= 6


# --- Files as CloudTrail delivers them ----------------------------------------------------------------------------

def test_log_files_parse_without_rejects_and_hold_one_account_and_region(generated):
    total = 0
    for key, data in demo.iter_log_files(generated[:4_000], records_per_file=40):
        match = KEY_PATTERN.match(key)
        assert match, key
        parsed = records.parse_log_file(data)
        assert parsed.kind == "records" and not parsed.rejects and 0 < parsed.records <= 40
        members = orjson.loads(gzip.decompress(data))["Records"]
        assert {(r["recipientAccountId"], r["awsRegion"]) for r in members} == {(match["account"], match["region"])}
        delivered = datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["hh"]), int(match["mm"]),
                             tzinfo=timezone.utc)
        assert all(delivered - timedelta(minutes=5) <= datetime.fromtimestamp(epoch(r), timezone.utc) < delivered
                   for r in members)
        total += parsed.records
    assert total == 4_000


def test_log_file_keys_are_deterministic_and_name_their_content():
    def files(seed):
        return dict(demo.iter_log_files(demo.generate_records(events=800, seed=seed, end=END)))

    first, second = files(5), files(6)
    assert first == files(5)
    shared = set(first) & set(second)  # only files of planted records, which are the same for every seed
    assert len(shared) < len(first) / 10 and all(first[key] == second[key] for key in shared)


def test_written_files_import_into_a_cache(generated, db_path, tmp_path):
    paths = demo.write_log_files(tmp_path / "logs", generated[:3_000], records_per_file=200)
    assert paths and all(path.is_file() for path in paths)
    result = sync.import_paths(db_path, [tmp_path / "logs"], workers=1)
    assert result.succeeded and result.rejected == 0 and result.new_events == 3_000
    conn = store.open_cache_readonly(db_path)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3_000
    sample = generated[1_234]
    assert store.load_record(conn, sample["eventID"]) == sample


# --- Planted cases ----------------------------------------------------------------------------------------------------

def test_planted_cases_cover_every_finding_type_with_positives():
    for kind in list(catalog.FINDING_TYPES) + ["rare_error", "instance_terminated", "elastic_ip_released",
                                                "hostile_content"]:
        assert any(case["expected"] for case in demo.PLANTED[kind]), kind


@pytest.mark.parametrize("kind", sorted(demo.PLANTED))
def test_planted_events_exist_in_the_last_seven_days(kind, by_id):
    for case in demo.PLANTED[kind]:
        assert case["event_ids"] and {"principal", "expected", "account"} <= set(case)
        for event_id, before in zip(case["event_ids"], case["seconds_before_end"], strict=True):
            record = by_id[event_id]
            assert END_EPOCH - epoch(record) == before <= 7 * 86_400
            assert record["recipientAccountId"] == case["account"]


def cases(kind: str, expected: bool) -> list[dict]:
    return [case for case in demo.PLANTED[kind] if case["expected"] is expected]


def test_impossible_travel_cases(by_id, geoip):
    (positive,) = cases("impossible_travel", True)
    events = [by_id[i] for i in positive["event_ids"]]
    assert {principal(r) for r in events} == {positive["principal"]}
    countries = [geoip.lookup(r["sourceIPAddress"]).country_code for r in events]
    assert countries[0] == "US" and countries[-1] == "JP"
    hop = min(epoch(r) for r in events if r["sourceIPAddress"] == demo.TRAVEL_IPS["JP"]) - epoch(events[0])
    assert hop <= 30 * 60
    feasible, not_places = sorted(cases("impossible_travel", False), key=lambda c: c["principal"])
    assert [geoip.lookup(by_id[i]["sourceIPAddress"]).country_code for i in feasible["event_ids"]][::2] == ["DE", "GB"]
    sources = {by_id[i]["sourceIPAddress"] for i in not_places["event_ids"]}
    assert {"AWS Internal", "cloudformation.amazonaws.com"} <= sources and any(s.startswith("10.") for s in sources)


@pytest.mark.parametrize("kind, size, window, belongs", [
    ("console_login_failure_burst", 12, 300, lambda r: r["responseElements"] == {"ConsoleLogin": "Failure"}),
    ("privilege_change_spree", 25, 600, lambda r: r["eventName"] in catalog.PRIVILEGE_CHANGE_EVENTS),
    ("unauthorized_burst", 40, 300, lambda r: r["errorCode"] in catalog.UNAUTHORIZED_ERROR_CODES),
])
def test_bursts_are_dense_and_their_look_alikes_spread_out(kind, size, window, belongs, by_id):
    (burst,) = cases(kind, True)
    events = [by_id[i] for i in burst["event_ids"]]
    assert len(events) == size and all(belongs(r) for r in events)
    assert most_in_window([epoch(r) for r in events], window) == size
    (spread,) = cases(kind, False)
    events = [by_id[i] for i in spread["event_ids"]]
    assert len(events) > 1 and all(belongs(r) for r in events)
    assert most_in_window([epoch(r) for r in events], 3_000) == 1


@pytest.mark.parametrize("kind, names, source", [
    ("trail_tampering", catalog.TRAIL_TAMPERING_EVENTS, {"cloudtrail.amazonaws.com"}),
    ("detector_disabled", catalog.DETECTOR_DISABLING_EVENTS, {"guardduty.amazonaws.com", "config.amazonaws.com"}),
])
def test_control_switched_off_cases(kind, names, source, by_id):
    found = [by_id[i] for case in cases(kind, True) for i in case["event_ids"]]
    assert {r["eventName"] for r in found} >= ({"StopLogging", "DeleteTrail"} if kind == "trail_tampering"
                                                else {"DeleteDetector", "StopConfigurationRecorder"})
    assert all(r["eventName"] in names and r["eventSource"] in source for r in found)


def test_sign_in_cases(by_id):
    root = [by_id[i] for case in cases("root_activity", True) for i in case["event_ids"]]
    assert {r["eventName"] for r in root} == {"ConsoleLogin", "TerminateInstances"}
    assert all(r["userIdentity"]["type"] == "Root" for r in root)
    (no_mfa,) = [by_id[i] for case in cases("console_login_without_mfa", True) for i in case["event_ids"]]
    assert no_mfa["userIdentity"]["type"] == "IAMUser" and no_mfa["additionalEventData"]["MFAUsed"] == "No"
    assert no_mfa["responseElements"] == {"ConsoleLogin": "Success"}
    (abroad,) = cases("new_country_sign_in", True)
    assert by_id[abroad["event_ids"][0]]["sourceIPAddress"] == demo.TRAVEL_IPS["SG"]


def test_security_group_cases(by_id):
    def opened(record):
        return {(item.get("fromPort"), cidr)
                for item in record["requestParameters"]["ipPermissions"]["items"]
                for cidr in [r["cidrIp"] for r in item["ipRanges"].get("items", ())]
                + [r["cidrIpv6"] for r in item["ipv6Ranges"].get("items", ())]}

    for case in demo.PLANTED["security_group_open_to_world"]:
        record = by_id[case["event_ids"][0]]
        admin = any(port in catalog.ADMIN_PORTS and cidr in catalog.WORLD_CIDRS for port, cidr in opened(record))
        assert (admin and record["eventName"] == "AuthorizeSecurityGroupIngress") == case["expected"]
    assert {c["port"] for c in cases("security_group_open_to_world", True)} == {22, 3389}


def test_iam_cases(by_id):
    (admin,) = [by_id[i] for case in cases("admin_policy_attached", True) for i in case["event_ids"]]
    assert admin["requestParameters"]["policyArn"] in catalog.ADMIN_POLICY_ARNS
    (key,) = [by_id[i] for case in cases("access_key_for_other_user", True) for i in case["event_ids"]]
    assert key["requestParameters"]["userName"] != principal(key)
    assert key["responseElements"]["accessKey"]["accessKeyId"].startswith("AKIA")
    (own,) = [by_id[i] for case in cases("access_key_for_other_user", False) for i in case["event_ids"]]
    assert own["requestParameters"]["userName"] == principal(own)


def test_hostile_content_is_in_one_record(by_id):
    (case,) = demo.PLANTED["hostile_content"]
    text = orjson.dumps(by_id[case["event_ids"][0]]).decode()
    assert all(s in text for s in ("<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "**bold**", "<script>"))
    assert "<script>" in by_id[case["event_ids"][0]]["userAgent"]


# --- The background stays quiet ----------------------------------------------------------------------------------------

def test_background_refusals_never_burst(generated):
    refused = per_principal(r for r in generated if r.get("errorCode") in catalog.UNAUTHORIZED_ERROR_CODES)
    loud = {who for who, times in refused.items() if most_in_window(times, 600) > 2}
    assert loud == {c["principal"] for c in cases("unauthorized_burst", True)}


def test_background_sign_in_failures_are_scattered(generated):
    failed = per_principal(r for r in generated
                           if r["eventName"] == "ConsoleLogin" and r["responseElements"]["ConsoleLogin"] == "Failure")
    loud = {who for who, times in failed.items() if most_in_window(times, 3_600) > 2}
    assert loud == {c["principal"] for c in cases("console_login_failure_burst", True)}


def test_background_privilege_changes_are_slow(generated):
    changes = per_principal(r for r in generated if r["eventName"] in catalog.PRIVILEGE_CHANGE_EVENTS)
    loud = {who for who, times in changes.items() if most_in_window(times, 600) > 3}
    assert loud == {c["principal"] for c in cases("privilege_change_spree", True)}


def test_only_planted_events_trigger_the_single_event_findings(generated):
    def ids(predicate):
        return {r["eventID"] for r in generated if predicate(r)}

    assert ids(lambda r: r["userIdentity"].get("type") == "Root") == planted_ids("root_activity")
    assert ids(lambda r: r["eventName"] in catalog.TRAIL_TAMPERING_EVENTS) == planted_ids("trail_tampering")
    assert ids(lambda r: r["eventName"] in catalog.DETECTOR_DISABLING_EVENTS) == planted_ids("detector_disabled")
    assert ids(lambda r: "AdministratorAccess" in orjson.dumps(r["requestParameters"]).decode()) == planted_ids(
        "admin_policy_attached", True)
    assert ids(lambda r: r["eventName"] == "CreateAccessKey" and r["requestParameters"]
               and r["requestParameters"]["userName"] != principal(r)) == planted_ids("access_key_for_other_user", True)
    assert ids(lambda r: r["eventName"] == "ConsoleLogin" and r["additionalEventData"]["MFAUsed"] == "No"
               and r["userIdentity"]["type"] == "IAMUser") == planted_ids("console_login_without_mfa", True)
    codes = Counter(r["errorCode"] for r in generated if "errorCode" in r)
    assert [code for code, n in codes.items() if n == 1] == [c["error_code"] for c in demo.PLANTED["rare_error"]]


def test_background_never_opens_admin_ports_to_the_world(generated):
    def opens_admin_port(record):
        for item in record["requestParameters"]["ipPermissions"]["items"]:
            low, high = item.get("fromPort", 0), item.get("toPort", 65535)
            ports = [p for p in catalog.ADMIN_PORTS if low <= p <= high] if item["ipProtocol"] != "-1" else [0]
            cidrs = [r["cidrIp"] for r in item["ipRanges"].get("items", ())] + [
                r["cidrIpv6"] for r in item["ipv6Ranges"].get("items", ())]
            if ports and set(cidrs) & set(catalog.WORLD_CIDRS):
                return True
        return False

    opened = {r["eventID"] for r in generated if r["eventName"] == "AuthorizeSecurityGroupIngress"
              and "errorCode" not in r and opens_admin_port(r)}
    assert opened == planted_ids("security_group_open_to_world", True)


def test_background_people_stay_in_their_country(generated, geoip):
    located = defaultdict(list)
    for record in generated:
        ip = record["sourceIPAddress"]
        if ip[0].isdigit() and not ip.startswith("10."):
            located[principal(record)].append((epoch(record), geoip.lookup(ip).country_code))
    hops = set()
    for who, places in located.items():
        places.sort()
        for (then, there), (now, here) in zip(places, places[1:]):
            if there != here and now - then < 8 * 3_600:
                hops.add(who)
    assert hops == {c["principal"] for c in cases("impossible_travel", True)}
    signed_in = defaultdict(set)
    for record in generated:
        if record["eventName"] == "ConsoleLogin" and record["responseElements"]["ConsoleLogin"] == "Success":
            signed_in[principal(record)].add(geoip.lookup(record["sourceIPAddress"]).country_code)
    assert {who for who, countries in signed_in.items() if len(countries) > 1} == {
        c["principal"] for c in cases("new_country_sign_in", True)}
