"""Pure transforms on tiny frames built here: rules exploded per peer, key fields pulled out, errors ranked."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from trailstream.cache import rows as stored_rows
from trailstream import timefmt
from trailstream import catalog
from trailstream.cache import codec
from trailstream.ingest import demo, records
from trailstream.analytics import queries, transforms

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def events(*rows: dict) -> pl.DataFrame:
    """An events frame shaped like queries.EVENT_SCHEMA; request/response given as dicts become JSON text."""
    shaped = []
    for n, row in enumerate(rows):
        row = dict(row)
        for key in ("request_parameters", "response_elements", "resources"):
            if key in row and not isinstance(row[key], str) and row[key] is not None:
                row[key] = json.dumps(row[key])
        shaped.append({"event_id": f"e{n}", "event_time": T0 + timedelta(minutes=n), "principal": "alice", **row})
    return pl.DataFrame(shaped, schema=queries.EVENT_SCHEMA)


def permission(protocol, from_port=None, to_port=None, **peers) -> dict:
    item = {"ipProtocol": protocol, "groups": {}, "ipRanges": {}, "ipv6Ranges": {}, "prefixListIds": {}}
    if from_port is not None:
        item |= {"fromPort": from_port, "toPort": to_port}
    for field, values in peers.items():
        item[field] = {"items": values}
    return item


@pytest.fixture
def ssh_and_web_rules_opened() -> pl.DataFrame:
    """One ingress call: SSH from the world (IPv4) and an office range, HTTPS from ::/0 and from another group."""
    return events(
        {
            "event_name": "AuthorizeSecurityGroupIngress",
            "request_parameters": {
                "groupId": "sg-web",
                "ipPermissions": {
                    "items": [
                        permission("tcp", 22, 22, ipRanges=[{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "192.0.2.0/24",
                                                                                         "description": "office"}]),
                        permission("6", 443, 443, ipv6Ranges=[{"cidrIpv6": "::/0"}],
                                   groups=[{"groupId": "sg-lb", "userId": "111111111111"}]),
                    ]
                },
            },
        }
    )


def test_each_rule_and_peer_becomes_a_row(ssh_and_web_rules_opened):
    rules = transforms.security_group_rules(ssh_and_web_rules_opened)
    assert rules.select("port_range", "peer_kind", "peer", "open_to_world").rows() == [
        ("22", "ipv4", "0.0.0.0/0", True),
        ("22", "ipv4", "192.0.2.0/24", False),
        ("443", "ipv6", "::/0", True),
        ("443", "security group", "sg-lb", False),
    ]
    assert set(rules["protocol"]) == {"tcp"} and set(rules["group_id"]) == {"sg-web"}
    assert set(rules["direction"]) == {"ingress"} and set(rules["action"]) == {"authorize"}
    assert rules.filter(pl.col("peer") == "192.0.2.0/24")["description"].item() == "office"


@pytest.fixture
def cli_short_form_and_revokes() -> pl.DataFrame:
    """The CLI's --cidr form, an egress revoke of all traffic, a revoke by rule ID, and an unrelated event."""
    return events(
        {
            "event_name": "AuthorizeSecurityGroupIngress",
            "request_parameters": {"groupId": "sg-a", "ipPermissions": {}, "ipProtocol": "tcp", "fromPort": 3389,
                                   "toPort": 3389, "cidrIp": "0.0.0.0/0"},
        },
        {
            "event_name": "RevokeSecurityGroupEgress",
            "request_parameters": {"groupId": "sg-b", "ipPermissions": {"items": [
                permission("-1", ipRanges=[{"cidrIp": "0.0.0.0/0"}])]}},
            "error_code": "InvalidPermission.NotFound",
        },
        {
            "event_name": "RevokeSecurityGroupIngress",
            "request_parameters": {"groupId": "sg-c", "securityGroupRuleIds": {"items": [
                {"securityGroupRuleId": "sgr-1"}, {"securityGroupRuleId": "sgr-2"}]}},
        },
        {"event_name": "DescribeSecurityGroups", "request_parameters": {"groupId": "sg-a"}},
    )


def test_short_form_revokes_and_rule_ids_are_rules_too(cli_short_form_and_revokes):
    rules = transforms.security_group_rules(cli_short_form_and_revokes).sort("event_time", "peer")
    assert rules.select("group_id", "action", "direction", "protocol", "port_range", "peer", "open_to_world").rows() == [
        ("sg-a", "authorize", "ingress", "tcp", "3389", "0.0.0.0/0", True),
        ("sg-b", "revoke", "egress", "all", "all", "0.0.0.0/0", False),  # closing a world rule opens nothing
        ("sg-c", "revoke", "ingress", None, None, "sgr-1", False),
        ("sg-c", "revoke", "ingress", None, None, "sgr-2", False),
    ]
    assert rules["error_code"].to_list() == [None, "InvalidPermission.NotFound", None, None]


def test_any_slash_zero_peer_is_the_whole_internet():
    opened = events({"event_name": "AuthorizeSecurityGroupIngress", "request_parameters": {
        "groupId": "sg-x", "ipPermissions": {"items": [permission("tcp", 22, 22, ipRanges=[
            {"cidrIp": "208.236.235.254/0"}, {"cidrIp": "10.0.0.0/8"}])]}}})
    rules = transforms.security_group_rules(opened).sort("peer")
    assert rules.select("peer", "open_to_world").rows() == [("10.0.0.0/8", False), ("208.236.235.254/0", True)]


def test_an_unexpected_json_shape_degrades_to_one_row_per_event_instead_of_failing():
    odd = events(
        {"event_name": "AuthorizeSecurityGroupIngress", "request_parameters": {
            "groupId": "sg-odd", "ipPermissions": {"items": [{"ipProtocol": "tcp", "ipRanges": ""}]}}},
        {"event_name": "AuthorizeSecurityGroupIngress", "request_parameters": {
            "groupId": "sg-fine", "ipPermissions": {"items": [permission("tcp", 22, 22, ipRanges=[{"cidrIp": "10.0.0.0/8"}])]}}},
        {"event_name": "RunInstances", "response_elements": {"instancesSet": {"items": [{"instanceId": {"odd": 1}}]}}},
    )
    rules = transforms.security_group_rules(odd)
    assert sorted(rules["group_id"]) == ["sg-fine", "sg-odd"] and rules["peer"].null_count() == 2
    assert transforms.instance_changes(odd).height == 1


def test_no_security_group_events_gives_an_empty_table_with_columns():
    rules = transforms.security_group_rules(events({"event_name": "DescribeInstances"}))
    assert rules.height == 0 and "open_to_world" in rules.columns and rules.schema["from_port"] == pl.Int64


@pytest.fixture
def network_changes_of_every_kind() -> pl.DataFrame:
    """A VPC, a subnet, an ACL allow and deny from the world, a default route to a gateway, a peering."""
    return events(
        {"event_name": "CreateVpc", "request_parameters": {"cidrBlock": "10.0.0.0/16"},
         "response_elements": {"vpc": {"vpcId": "vpc-1", "cidrBlock": "10.0.0.0/16"}}},
        {"event_name": "CreateSubnet", "request_parameters": {"vpcId": "vpc-1", "cidrBlock": "10.0.1.0/24"},
         "response_elements": {"subnet": {"subnetId": "subnet-1", "vpcId": "vpc-1"}}},
        {"event_name": "CreateNetworkAclEntry", "request_parameters": {
            "networkAclId": "acl-1", "ruleNumber": 100, "egress": False, "ruleAction": "allow", "aclProtocol": "6",
            "cidrBlock": "0.0.0.0/0", "portRange": {"from": 22, "to": 22}}},
        {"event_name": "CreateNetworkAclEntry", "request_parameters": {
            "networkAclId": "acl-1", "ruleNumber": 90, "egress": True, "ruleAction": "deny", "aclProtocol": "-1",
            "cidrBlock": "0.0.0.0/0", "icmpTypeCode": {}, "portRange": {}}},
        {"event_name": "CreateRoute", "request_parameters": {
            "routeTableId": "rtb-1", "destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"}},
        {"event_name": "CreateVpcPeeringConnection", "request_parameters": {"vpcId": "vpc-1", "peerVpcId": "vpc-2"},
         "response_elements": {"vpcPeeringConnection": {"vpcPeeringConnectionId": "pcx-1"}}},
        {"event_name": "RunInstances"},
    )


def test_network_changes_pull_out_each_kinds_key_fields(network_changes_of_every_kind):
    changes = transforms.network_changes(network_changes_of_every_kind).sort("event_time")
    assert changes.select("resource_kind", "resource_id", "cidr").rows() == [
        ("VPC", "vpc-1", "10.0.0.0/16"),
        ("VPC", "subnet-1", "10.0.1.0/24"),
        ("network ACL", "acl-1", "0.0.0.0/0"),
        ("network ACL", "acl-1", "0.0.0.0/0"),
        ("route table", "rtb-1", "0.0.0.0/0"),
        ("VPC", "pcx-1", None),
    ]
    acl = changes.filter(pl.col("resource_kind") == "network ACL")
    assert acl.select("rule_number", "direction", "rule_action", "protocol", "port_range", "open_to_world").rows() == [
        (100, "ingress", "allow", "tcp", "22", True),
        (90, "egress", "deny", "all", "all", False),
    ]
    assert changes.filter(pl.col("resource_id") == "rtb-1")["target"].item() == "igw-1"


@pytest.fixture
def an_instance_life() -> pl.DataFrame:
    """Two instances launched in one call, one stopped, its type changed, and a launch that was refused."""
    return events(
        {"event_name": "RunInstances",
         "request_parameters": {"instanceType": "t3.micro", "instancesSet": {"items": [{"imageId": "ami-1", "minCount": 2}]}},
         "response_elements": {"instancesSet": {"items": [
             {"instanceId": "i-1", "imageId": "ami-1", "instanceType": "t3.micro", "instanceState": {"name": "pending"}},
             {"instanceId": "i-2", "imageId": "ami-1", "instanceType": "t3.micro", "instanceState": {"name": "pending"}}]}}},
        {"event_name": "StopInstances", "request_parameters": {"instancesSet": {"items": [{"instanceId": "i-1"}]}},
         "response_elements": {"instancesSet": {"items": [{"instanceId": "i-1", "currentState": {"name": "stopping"},
                                                           "previousState": {"name": "running"}}]}}},
        {"event_name": "ModifyInstanceAttribute", "request_parameters": {"instanceId": "i-1",
                                                                         "instanceType": {"value": "m5.large"}}},
        {"event_name": "RunInstances", "error_code": "Client.UnauthorizedOperation",
         "request_parameters": {"instanceType": "p2.xlarge", "instancesSet": {"items": [{"imageId": "ami-9"}]}}},
    )


def test_instance_changes_are_one_row_per_instance(an_instance_life):
    changes = transforms.instance_changes(an_instance_life).sort("event_time", "instance_id")
    assert changes.select("event_name", "instance_id", "instance_type", "image_id", "current_state", "attribute").rows() == [
        ("RunInstances", "i-1", "t3.micro", "ami-1", "pending", None),
        ("RunInstances", "i-2", "t3.micro", "ami-1", "pending", None),
        ("StopInstances", "i-1", None, None, "stopping", None),
        ("ModifyInstanceAttribute", "i-1", "m5.large", None, None, "instanceType"),
        ("RunInstances", None, "p2.xlarge", "ami-9", None, None),
    ]
    assert changes.filter(pl.col("event_name") == "StopInstances")["previous_state"].item() == "running"


def test_elastic_ip_changes_follow_the_address():
    changes = transforms.elastic_ip_changes(
        events(
            {"event_name": "AllocateAddress", "request_parameters": {"domain": "vpc"},
             "response_elements": {"publicIp": "203.0.113.9", "allocationId": "eipalloc-1", "domain": "vpc"}},
            {"event_name": "AssociateAddress", "request_parameters": {"allocationId": "eipalloc-1", "instanceId": "i-1"},
             "response_elements": {"associationId": "eipassoc-1"}},
            {"event_name": "DisassociateAddress", "request_parameters": {"associationId": "eipassoc-1"}},
            {"event_name": "ReleaseAddress", "request_parameters": {"publicIp": "203.0.113.9"}},
        )
    ).sort("event_time")
    assert changes.select("public_ip", "allocation_id", "association_id", "instance_id").rows() == [
        ("203.0.113.9", "eipalloc-1", None, None),
        (None, "eipalloc-1", "eipassoc-1", "i-1"),
        (None, None, "eipassoc-1", None),
        ("203.0.113.9", None, None, None),
    ]


def test_iam_changes_name_the_entity_policy_and_key():
    changes = transforms.iam_changes(
        events(
            {"event_name": "CreateUser", "request_parameters": {"userName": "carol"}},
            {"event_name": "AttachUserPolicy", "request_parameters": {
                "userName": "carol", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}},
            {"event_name": "CreateAccessKey", "request_parameters": {"userName": "carol"},
             "response_elements": {"accessKey": {"accessKeyId": "AKIAEXAMPLE", "userName": "carol"}}},
            {"event_name": "PutRolePolicy", "request_parameters": {"roleName": "ops", "policyName": "inline"}},
            {"event_name": "CreateVirtualMFADevice", "request_parameters": {"virtualMFADeviceName": "phone"},
             "response_elements": {"virtualMFADevice": {"serialNumber": "arn:aws:iam::1:mfa/phone"}}},
            {"event_name": "ConsoleLogin"},
        )
    ).sort("event_time")
    assert changes.select("entity_kind", "action", "target", "policy", "admin_policy", "access_key_id").rows() == [
        ("user", "create", "carol", None, False, None),
        ("policy", "attach", "carol", "arn:aws:iam::aws:policy/AdministratorAccess", True, None),
        ("credential", "create", "carol", None, False, "AKIAEXAMPLE"),
        ("policy", "put", "ops", "inline", False, None),
        ("credential", "create", "arn:aws:iam::1:mfa/phone", None, False, None),
    ]


def error_day(day: int, source: str, name: str, code: str, count: int) -> dict:
    moment = T0.replace(hour=0) + timedelta(days=day)
    return {"event_source": source, "event_name": name, "error_code": code, "day": moment, "events": count,
            "first_seen": moment + timedelta(hours=1), "last_seen": moment + timedelta(hours=2)}


@pytest.fixture
def errors_over_four_days() -> pl.DataFrame:
    """AccessDenied every day and growing, a throttle that faded, and a one-off that appeared on the last day."""
    rows = [error_day(d, "s3", "GetObject", "AccessDenied", 2 + 3 * d) for d in range(4)]
    rows += [error_day(d, "ec2", "DescribeInstances", "Throttling", 10 - 3 * d) for d in range(3)]
    rows += [error_day(3, "iam", "CreateUser", "EntityAlreadyExists", 1)]
    return pl.DataFrame(rows, schema=queries.ERROR_COUNTS_SCHEMA)


def test_rare_errors_are_ranked_rarest_first_with_a_trend(errors_over_four_days):
    ranked = transforms.rank_rare_errors(errors_over_four_days)
    assert ranked.select("rarity_rank", "error_code", "events", "days_seen", "trend").rows() == [
        (1, "EntityAlreadyExists", 1, 1, "once"),
        (2, "Throttling", 21, 3, "falling"),
        (3, "AccessDenied", 26, 4, "rising"),
    ]
    assert ranked["share"].sum() == pytest.approx(1.0)


def test_an_error_never_seen_before_the_period_is_new(errors_over_four_days):
    ever = errors_over_four_days.group_by("event_source", "event_name", "error_code").agg(
        first_seen_ever=pl.col("first_seen").min()
    ).with_columns(
        first_seen_ever=pl.when(pl.col("error_code") == "AccessDenied")
        .then(pl.col("first_seen_ever") - timedelta(days=30))
        .otherwise(pl.col("first_seen_ever"))
    )
    ranked = transforms.rank_rare_errors(errors_over_four_days, ever, period_start=T0.replace(hour=0))
    assert dict(ranked.select("error_code", "trend").rows()) == {
        "EntityAlreadyExists": "new", "Throttling": "new", "AccessDenied": "rising"
    }


def test_rare_error_codes_can_be_ranked_alone(errors_over_four_days):
    doubled = pl.concat([errors_over_four_days, errors_over_four_days.with_columns(event_source=pl.lit("other"))])
    ranked = transforms.rank_rare_errors(doubled, by=("error_code",))
    assert ranked.columns[:2] == ["rarity_rank", "error_code"]
    assert dict(ranked.select("error_code", "events").rows()) == {"EntityAlreadyExists": 2, "Throttling": 42,
                                                                  "AccessDenied": 52}


def test_no_errors_rank_to_an_empty_table():
    ranked = transforms.rank_rare_errors(pl.DataFrame(schema=queries.ERROR_COUNTS_SCHEMA))
    assert ranked.height == 0 and ranked.columns[0] == "rarity_rank"


@pytest.fixture
def bots_activity() -> pl.DataFrame:
    """A principal's grouped activity: three APIs in two regions, two failed calls."""
    rows = [
        (T0, "ec2", "DescribeInstances", "eu-west-1", 5, 0),
        (T0, "ec2", "RunInstances", "eu-west-1", 2, 2),
        (T0 + timedelta(hours=1), "s3", "ListBuckets", "us-east-1", 3, 0),
    ]
    frame = pl.DataFrame(
        [r + (r[0] + timedelta(minutes=1), r[0] + timedelta(minutes=9)) for r in rows],
        schema=queries.PRINCIPAL_ACTIVITY_SCHEMA,
        orient="row",
    )
    return queries.with_bucket_end(frame, "hour")


def test_principal_summary_counts_the_audit_trail(bots_activity):
    summary = transforms.principal_summary(bots_activity).row(0, named=True)
    assert (summary["events"], summary["failed"], summary["event_names"], summary["regions"]) == (10, 2, 3, 2)
    assert summary["error_rate"] == pytest.approx(0.2)
    assert summary["first_seen"] == T0 + timedelta(minutes=1)
    assert summary["last_seen"] == T0 + timedelta(hours=1, minutes=9)


def test_principal_breakdown_and_timeline(bots_activity):
    by_region = transforms.principal_breakdown(bots_activity, "aws_region")
    assert by_region.select("aws_region", "events", "failed").rows() == [("eu-west-1", 7, 2), ("us-east-1", 3, 0)]
    timeline = transforms.principal_timeline(bots_activity, color="event_source", top=1)
    assert timeline.select("bucket", "event_source", "events").rows() == [
        (T0, "ec2", 7),
        (T0 + timedelta(hours=1), "other", 3),
    ]


def test_top_n_with_other_folds_the_tail_and_keeps_the_total():
    frame = pl.DataFrame({"bucket": [T0] * 4, "event_source": ["a", "b", "c", None], "events": [10, 5, 1, 2]})
    folded = transforms.top_n_with_other(frame, "event_source", 2)
    assert dict(folded.select("event_source", "events").rows()) == {"a": 10, "b": 5, "other": 3}


def events_of(cloudtrail_records: list[dict]) -> pl.DataFrame:
    """CloudTrail records as an events frame, through the parser (as the cache would hold them)."""
    compressor = codec.default_compressor()
    rows = [records.parse_record(record, compressor) for record in cloudtrail_records]
    names = stored_rows.EVENT_COLUMNS[: len(queries.EVENT_SCHEMA)]
    schema = {name: pl.Int64 if name == "read_only" else pl.String for name in names}
    frame = pl.DataFrame([row[: len(names)] for row in rows], schema=schema, orient="row")
    return frame.with_columns(
        pl.col("event_time").str.to_datetime(timefmt.TIME_FORMAT, time_zone="UTC"), pl.col("read_only").cast(pl.Boolean)
    ).select(list(queries.EVENT_SCHEMA))


def corpus_events(corpus) -> pl.DataFrame:
    """Every record of the corpus `events/` folder as an events frame (parsed, not stored)."""
    return events_of([record for path in sorted((corpus / "events").glob("*.json"))
                      for record in json.loads(path.read_text())["Records"]])


@pytest.fixture(scope="module")
def demo_records() -> list[dict]:
    """6,000 demo events: a month of a small company's activity, with network, instance, IP and IAM changes."""
    return demo.generate_records(events=6000, seed=9, end=T0)


def expected_rule_peers(cloudtrail_records: list[dict]) -> Counter:
    """(eventID, peer) of every rule in authorize/revoke requests, counted in plain Python."""
    found = Counter()
    for record in cloudtrail_records:
        if record["eventName"] not in catalog.SECURITY_GROUP_RULE_EVENTS:
            continue
        for item in (record.get("requestParameters") or {}).get("ipPermissions", {}).get("items", []):
            peers = [peer.get("cidrIp") or peer.get("cidrIpv6") or peer.get("groupId") or peer.get("prefixListId")
                     for field in ("ipRanges", "ipv6Ranges", "groups", "prefixListIds")
                     for peer in item.get(field, {}).get("items", [])]
            found.update((record["eventID"], peer) for peer in peers or [None])
    return found


def authorized_world_peers(cloudtrail_records: list[dict], expected: Counter) -> int:
    """How many (call, peer) rules authorize traffic from anywhere: what open_to_world must count."""
    authorize = {r["eventID"] for r in cloudtrail_records if r["eventName"].startswith("Authorize")}
    return sum(n for (event_id, peer), n in expected.items() if event_id in authorize and peer in catalog.WORLD_CIDRS)


def test_every_demo_rule_peer_is_a_row(demo_records):
    rules = transforms.security_group_rules(events_of(demo_records))
    expected = expected_rule_peers(demo_records)
    assert expected and Counter(rules.select("event_id", "peer").rows()) == expected
    assert rules["open_to_world"].sum() == authorized_world_peers(demo_records, expected) > 0


def test_every_demo_instance_touched_is_a_row(demo_records):
    expected = Counter()
    for record in demo_records:
        if record["eventName"] not in catalog.INSTANCE_EVENTS:
            continue
        sets = [(record.get(part) or {}).get("instancesSet", {}).get("items", [])
                for part in ("responseElements", "requestParameters")]
        ids = [item.get("instanceId") for item in (sets[0] or sets[1])] or [
            (record.get("requestParameters") or {}).get("instanceId")]
        expected.update((record["eventID"], instance) for instance in ids)
    changes = transforms.instance_changes(events_of(demo_records))
    assert expected and Counter(changes.select("event_id", "instance_id").rows()) == expected


def test_demo_use_case_tables_have_a_row_per_event(demo_records):
    frame = events_of(demo_records)
    for transform, names in ((transforms.network_changes, catalog.NETWORK_EVENTS),
                             (transforms.elastic_ip_changes, catalog.ELASTIC_IP_EVENTS),
                             (transforms.iam_changes, catalog.IAM_EVENTS)):
        table = transform(frame)
        assert table.height == frame.filter(pl.col("event_name").is_in(names)).height > 0
    eips = transforms.elastic_ip_changes(frame)
    allocations = eips.filter(pl.col("event_name") == "AllocateAddress")
    assert allocations["public_ip"].null_count() == allocations["allocation_id"].null_count() == 0


def test_transforms_read_the_real_corpus(corpus):
    frame = corpus_events(corpus)
    rules = transforms.security_group_rules(frame)
    assert ("sg-03eee825d6bb78f54", "egress", "all", "0.0.0.0/0", True) in rules.select(
        "group_id", "direction", "protocol", "peer", "open_to_world"
    ).rows()
    assert ("sg-003dc7f1f1c686164", "tcp", "22", "208.236.235.254/0") in rules.select(
        "group_id", "protocol", "port_range", "peer"
    ).rows()
    instance_calls = frame.filter(pl.col("event_name").is_in(catalog.INSTANCE_EVENTS)).height
    assert transforms.instance_changes(frame).height >= instance_calls
    assert transforms.network_changes(frame).height == frame.filter(pl.col("event_name").is_in(catalog.NETWORK_EVENTS)).height
    assert transforms.iam_changes(frame).height == frame.filter(pl.col("event_name").is_in(catalog.IAM_EVENTS)).height
    assert transforms.elastic_ip_changes(frame).height == 0  # the corpus has no Elastic IP calls


def test_a_principals_timeline_keeps_its_changes_apart_from_its_reads():
    from datetime import datetime, timezone

    t = datetime(2026, 11, 20, tzinfo=timezone.utc)
    names = [f"Describe{i}" for i in range(12)] + ["ListBuckets", "GetObject", "TerminateInstances",
                                                   "AttachUserPolicy", "ReleaseAddress"]
    activity = pl.DataFrame({"bucket": [t] * len(names), "bucket_end": [t] * len(names), "event_name": names,
                             "events": [100] * 14 + [1, 1, 1], "failed": [0] * len(names)})
    series = set(transforms.principal_timeline(activity, top=4)["event_name"])
    assert {"TerminateInstances", "AttachUserPolicy", "ReleaseAddress", transforms.READS} <= series
    assert transforms.principal_timeline(activity, top=4).filter(
        pl.col("event_name") == transforms.READS)["events"].sum() == 1400
