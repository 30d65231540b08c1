"""Planted positives and their look-alike negatives, the same records for every seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from trailstream.ingest.demo.actors import (
    _DESCRIBE_GROUPS, _DESCRIBE_INSTANCES, _machine_user_identity, build_bot_actor, legacy_actor
)
from trailstream.ingest.demo.builder import (
    _Builder, _bucket_host, _policy, _trust, _unauthorized_message, cli_session, console_session, github_session
)
from trailstream.ingest.demo.company import (
    ADMIN_POLICY, ATTACKER_UA, AWS_INTERNAL, BROWSERS, CI_IPS, CONSOLE_EC2_UA, DAY, GLOBAL_REGION, HOSTILE_STRINGS,
    HOUR, MINUTE, NETWORKS, PEOPLE, PROD, READ_POLICIES, SDK_UA, STAGING, TERRAFORM_UA, TRAIL_NAME, TRAVEL_IPS, Network,
    _stable, _stable_hex, role_id, user_id
)
from trailstream.ingest.demo.identities import (
    Session, _Ids, _aws_date, _epoch, iam_user_identity, role_identity, root_identity
)
from trailstream.ingest.demo.shapes import (
    _items, allocate_address, associate_address, authorize, create_access_key, create_security_group,
    create_user_response, ec2_ok, iam, instance_action, permission, revoke, run_instances
)


_PLANTED_SEED = "trailstream-demo-planted"


def _plant(b: _Builder, end: int) -> dict[str, list[dict]]:
    """Write the planted cases (all in the last 7 days before `end`) and return their descriptions.

    Draws only from its own generator, never branching on time, so eventIDs are the same for every seed and end.
    """
    saved_rng, saved_ids = b.rng, b.ids
    b.rng = random.Random(_PLANTED_SEED)
    b.ids = _Ids(b.rng)
    p = _Planting(b, end)
    batch = _batch_workers(p)
    _hostile_content(p)
    _travel(p)
    _sign_in_failures(p)
    _privilege_changes(p)
    _stolen_key(p)
    _iam_look_alikes(p)
    _refusals(p)
    _sign_ins(p)
    _open_security_groups(p)
    _rare_error(p)
    _batch_retired(p, batch)
    b.rng, b.ids = saved_rng, saved_ids
    return p.cases


@dataclass
class _Planting:
    """The builder, the end the cases are placed before, and the case descriptions written so far."""

    b: _Builder
    end: int
    cases: dict[str, list[dict]] = field(default_factory=dict)

    def case(self, kind: str, principal: str, expected: bool, records: list[dict], **details) -> None:
        details.setdefault("account", records[0]["recipientAccountId"])
        self.cases.setdefault(kind, []).append({
            "principal": principal, "expected": expected, "event_ids": [r["eventID"] for r in records],
            "seconds_before_end": [self.end - _epoch(r["eventTime"]) for r in records], **details})

    def blackout(self, principal: str, start: int, stop: int) -> None:
        """Keep the background away from this principal while its case happens."""
        self.b.blackouts.setdefault(principal, []).append((start, stop))


@dataclass
class _Batch:
    """What the batch-worker cases share: alice's CLI session, the two instances and the Elastic IP."""

    alice_cli: Session
    batch_a: str
    batch_b: str
    allocation: str
    public_ip: str
    terminated_by_root: dict


_PROD_EAST = NETWORKS[(PROD, "us-east-1")]


def _batch_workers(p: _Planting) -> _Batch:
    """Batch workers and an Elastic IP the later cases act on; root signs in and terminates one."""
    b, end = p.b, p.end
    # Instances and an Elastic IP that later planted events act on.
    alice = PEOPLE["alice"]
    t0 = end - 6 * DAY - 20 * HOUR
    alice_cli = cli_session(alice)
    _, (batch_a, batch_b) = run_instances(b, t0, alice_cli, _PROD_EAST, 2, "c6i.xlarge", "batch-worker")
    _, allocation, public_ip = allocate_address(b, t0 + 6 * MINUTE, alice_cli, _PROD_EAST)
    associate_address(b, t0 + 7 * MINUTE, alice_cli, _PROD_EAST, allocation, instance=batch_a)

    # Root: a console sign-in with MFA and an API call (terminating one of the batch workers).
    t = end - 6 * DAY - 2 * HOUR
    login = b.sign_in(t, root_identity(PROD), PROD, alice.ips[0], alice.browser,
                      mfa_device=f"arn:aws:iam::{PROD}:mfa/root-account-mfa-device")
    root_console = Session(root_identity(PROD, b.ids.key(), session_start=t), PROD, alice.ips[0], CONSOLE_EC2_UA,
                           "root", console=True)
    terminated_by_root = instance_action(b, t + 8 * MINUTE, root_console, _PROD_EAST, "TerminateInstances", [batch_b])
    p.case("root_activity", "root", True, [login], ips=[alice.ips[0]], countries=["US"])
    p.case("root_activity", "root", True, [terminated_by_root], instance_ids=[batch_b])
    return _Batch(alice_cli, batch_a, batch_b, allocation, public_ip, terminated_by_root)


def _hostile_content(p: _Planting) -> None:
    """Hostile text in request parameters and the user agent: pages must show it as text."""
    b, end = p.b, p.end
    kenji = PEOPLE["kenji"]
    hostile_session = Session(iam_user_identity(kenji), PROD, kenji.ips[0], f"{HOSTILE_STRINGS[3]} {kenji.cli}", "kenji")
    hostile, _ = create_security_group(
        b, end - 6 * DAY + 3 * HOUR, hostile_session, _PROD_EAST, HOSTILE_STRINGS[2], HOSTILE_STRINGS[0],
        tags=[{"key": "Name", "value": HOSTILE_STRINGS[1]}, {"key": "Note", "value": HOSTILE_STRINGS[3]}])
    p.case("hostile_content", "kenji", True, [hostile], strings=list(HOSTILE_STRINGS))


def _travel(p: _Planting) -> None:
    """Impossible travel, feasible travel, and addresses that are not places."""
    b, end = p.b, p.end
    # Impossible travel: bob signs in from the US, and his access key is used from Japan 30 minutes later.
    bob = PEOPLE["bob"]
    t = end - 5 * DAY + 3 * HOUR
    p.blackout("bob", t - 6 * HOUR, t + 18 * HOUR)
    us_records = [b.sign_in(t, iam_user_identity(bob) | {"accessKeyId": ""}, PROD, bob.ips[0], bob.browser,
                            mfa_device=f"arn:aws:iam::{PROD}:mfa/bob")]
    console = console_session(b, bob, t)
    us_records.append(b.call(t + 2 * MINUTE, console, "us-east-1", "ec2.amazonaws.com", "DescribeInstances", True,
                             _DESCRIBE_INSTANCES))
    jp = cli_session(bob, TRAVEL_IPS["JP"])
    jp_records = [
        b.call(t + 30 * MINUTE, jp, "ap-northeast-1", "sts.amazonaws.com", "GetCallerIdentity", True),
        b.call(t + 31 * MINUTE, jp, GLOBAL_REGION, "s3.amazonaws.com", "ListBuckets", True, {"Host": "s3.amazonaws.com"}),
        b.call(t + 32 * MINUTE, jp, "ap-northeast-1", "ec2.amazonaws.com", "DescribeInstances", True, _DESCRIBE_INSTANCES),
    ]
    p.case("impossible_travel", "bob", True, us_records + jp_records, countries=["US", "JP"],
           ips=[bob.ips[0], TRAVEL_IPS["JP"]], minutes_apart=30)

    # Feasible travel: dana signs in from Germany, then works from London ten hours later.
    dana = PEOPLE["dana"]
    t = end - 4 * DAY - 2 * HOUR
    p.blackout("dana", t - 12 * HOUR, t + 30 * HOUR)
    de_records = [b.sign_in(t, iam_user_identity(dana) | {"accessKeyId": ""}, PROD, dana.ips[0], dana.browser,
                            mfa_device=f"arn:aws:iam::{PROD}:mfa/dana")]
    gb = cli_session(dana, TRAVEL_IPS["GB"])
    gb_records = [
        b.call(t + 10 * HOUR, gb, "eu-west-1", "sts.amazonaws.com", "GetCallerIdentity", True),
        b.call(t + 10 * HOUR + 2 * MINUTE, gb, "eu-west-1", "ec2.amazonaws.com", "DescribeInstances", True,
               _DESCRIBE_INSTANCES),
    ]
    p.case("impossible_travel", "dana", False, de_records + gb_records, countries=["DE", "GB"],
           ips=[dana.ips[0], TRAVEL_IPS["GB"]], minutes_apart=600)

    # Not places: emma's calls arrive from her GB address, from AWS itself, through a service, and from a VPC endpoint.
    emma = PEOPLE["emma"]
    t = end - 3 * DAY - 6 * HOUR
    p.blackout("emma", t - 2 * HOUR, t + 2 * HOUR)
    home = cli_session(emma)
    vpce = Session(home.identity, PROD, "10.10.2.44", SDK_UA, "emma",
                   extra={"vpcEndpointId": "vpce-" + _stable_hex("vpce:prod"), "vpcEndpointAccountId": PROD})
    internal_records = [
        b.call(t, home, GLOBAL_REGION, "s3.amazonaws.com", "ListBuckets", True, {"Host": "s3.amazonaws.com"}),
        b.call(t + 3 * MINUTE, home.via(AWS_INTERNAL), GLOBAL_REGION, "s3.amazonaws.com", "GetBucketLocation", True,
               {"bucketName": "acme-data-lake", "Host": _bucket_host("acme-data-lake"), "location": ""}),
        b.call(t + 5 * MINUTE, home.via("cloudformation.amazonaws.com", invoked_by=True), "us-east-1",
               "ec2.amazonaws.com", "DescribeSecurityGroups", True, _DESCRIBE_GROUPS),
        b.s3_object(t + 8 * MINUTE, vpce, "us-east-1", "GetObject", "acme-data-lake", "curated/orders/2024/part-00000.parquet", 48_211),
    ]
    p.case("impossible_travel", "emma", False, internal_records, countries=["GB"],
           ips=[emma.ips[0], AWS_INTERNAL, "cloudformation.amazonaws.com", "10.10.2.44"])


def _sign_in_failures(p: _Planting) -> None:
    """A burst of failed sign-ins, and two typos that are not one."""
    b, end = p.b, p.end
    # A burst of failed sign-ins for liam, from an Australian address that is not his.
    t = end - 3 * DAY + 9 * HOUR
    p.blackout("liam", t - 2 * HOUR, t + 2 * HOUR)
    failure_identity = {"type": "IAMUser", "principalId": user_id("liam", PROD), "accountId": PROD,
                        "accessKeyId": "", "userName": "liam"}
    failures = [b.sign_in(t + 20 * n, failure_identity, PROD, TRAVEL_IPS["AU"], BROWSERS[1], success=False)
                for n in range(12)]
    p.case("console_login_failure_burst", "liam", True, failures, ips=[TRAVEL_IPS["AU"]], countries=["AU"], window_seconds=220)

    # Two mistyped passwords an hour apart, each followed by a successful sign-in.
    carlos = PEOPLE["carlos"]
    t = end - 2 * DAY + 5 * HOUR
    p.blackout("carlos", t - HOUR, t + 2 * HOUR)
    carlos_failure = {"type": "IAMUser", "principalId": user_id("carlos", PROD), "accountId": PROD,
                      "accessKeyId": "", "userName": "carlos"}
    typos = []
    for offset in (0, HOUR):
        typos.append(b.sign_in(t + offset, carlos_failure, PROD, carlos.ips[0], carlos.browser, success=False))
        b.sign_in(t + offset + 40, iam_user_identity(carlos) | {"accessKeyId": ""}, PROD, carlos.ips[0],
                  carlos.browser, mfa_device=f"arn:aws:iam::{PROD}:mfa/carlos")
    p.case("console_login_failure_burst", "carlos", False, typos, ips=[carlos.ips[0]], countries=["BR"], window_seconds=HOUR)


def _privilege_changes(p: _Planting) -> None:
    """A spree of privilege changes, and the same number spread over a day."""
    b, end = p.b, p.end
    emma = PEOPLE["emma"]
    # A privilege-change spree: 25 IAM and security-group changes in under ten minutes.
    jordan = PEOPLE["jordan"]
    t = end - 2 * DAY + 8 * HOUR
    p.blackout("jordan", t - HOUR, t + HOUR)
    spree = _spree(b, t, cli_session(jordan), _PROD_EAST)
    p.case("privilege_change_spree", "jordan", True, spree, window_seconds=_epoch(spree[-1]["eventTime"]) - t)

    # Five changes spread over a day: emma sets up a data pipeline role.
    t = end - 2 * DAY - 20 * HOUR
    slow = _pipeline_changes(b, t, cli_session(emma), 5 * HOUR)
    p.case("privilege_change_spree", "emma", False, slow, window_seconds=20 * HOUR)


def _stolen_key(p: _Planting) -> None:
    """A stolen legacy key: an admin user with a key, then the trail and detectors switched off."""
    b, end = p.b, p.end
    # A stolen legacy key: a new admin user with a key, then CloudTrail, GuardDuty and Config switched off.
    legacy = legacy_actor()
    t = end - 1 * DAY - 3 * HOUR
    p.blackout(legacy.name, t - 30 * HOUR, t + 30 * HOUR)
    attacker = Session(_machine_user_identity(legacy), PROD, TRAVEL_IPS["RU"], ATTACKER_UA, legacy.name)
    b.call(t, attacker, GLOBAL_REGION, "sts.amazonaws.com", "GetCallerIdentity", True)
    iam(b, t + MINUTE, attacker, "ListUsers", None)
    iam(b, t + 3 * MINUTE, attacker, "CreateUser", {"userName": "backup-admin"},
        create_user_response(PROD, "backup-admin", t + 3 * MINUTE))
    foreign_key = create_access_key(b, t + 4 * MINUTE, attacker, "backup-admin")
    admin = iam(b, t + 5 * MINUTE, attacker, "AttachUserPolicy", {"userName": "backup-admin", "policyArn": ADMIN_POLICY})
    trail_arn = f"arn:aws:cloudtrail:us-east-1:{PROD}:trail/{TRAIL_NAME}"
    stop = b.call(t + 9 * MINUTE, attacker, "us-east-1", "cloudtrail.amazonaws.com", "StopLogging", False,
                  {"name": trail_arn})
    delete = b.call(t + 11 * MINUTE, attacker, "us-east-1", "cloudtrail.amazonaws.com", "DeleteTrail", False,
                    {"name": trail_arn})
    detector = b.call(t + 14 * MINUTE, attacker, "us-east-1", "guardduty.amazonaws.com", "DeleteDetector", False,
                      {"detectorId": _stable_hex("guardduty:prod", 32)})
    recorder = b.call(t + 16 * MINUTE, attacker, "us-east-1", "config.amazonaws.com", "StopConfigurationRecorder",
                      False, {"configurationRecorderName": "default"})
    where = {"ips": [TRAVEL_IPS["RU"]], "countries": ["RU"]}
    p.case("access_key_for_other_user", legacy.name, True, [foreign_key], target_user="backup-admin", **where)
    p.case("admin_policy_attached", legacy.name, True, [admin], policy_arn=ADMIN_POLICY, target_user="backup-admin")
    p.case("trail_tampering", legacy.name, True, [stop], trail=trail_arn)
    p.case("trail_tampering", legacy.name, True, [delete], trail=trail_arn)
    p.case("detector_disabled", legacy.name, True, [detector], service="guardduty.amazonaws.com")
    p.case("detector_disabled", legacy.name, True, [recorder], service="config.amazonaws.com")


def _iam_look_alikes(p: _Planting) -> None:
    """IAM changes that look like findings and are fine."""
    b, end = p.b, p.end
    alice = PEOPLE["alice"]
    # Look-alikes that are fine: a read-only policy attached, and a key created by its owner.
    t = end - 1 * DAY + 2 * HOUR
    readonly = iam(b, t, cli_session(alice), "AttachUserPolicy", {"userName": "tom", "policyArn": READ_POLICIES[0]})
    p.case("admin_policy_attached", "alice", False, [readonly], policy_arn=READ_POLICIES[0], target_user="tom")
    priya = PEOPLE["priya"]
    own_key = create_access_key(b, t + 30 * MINUTE, cli_session(priya), "priya")
    p.case("access_key_for_other_user", "priya", False, [own_key], target_user="priya")


def _refusals(p: _Planting) -> None:
    """A burst of refused calls, and refusals spread over a day."""
    b, end = p.b, p.end
    kenji = PEOPLE["kenji"]
    # A burst of refused calls from the CI user, and three refusals spread over a day for kenji.
    bot = build_bot_actor()
    t = end - 2 * DAY - 4 * HOUR
    p.blackout(bot.name, t - 2 * HOUR, t + 2 * HOUR)
    burst = _refusal_burst(b, t, Session(_machine_user_identity(bot), PROD, CI_IPS[0], TERRAFORM_UA, bot.name), _PROD_EAST)
    p.case("unauthorized_burst", bot.name, True, burst, window_seconds=_epoch(burst[-1]["eventTime"]) - t)
    t = end - 4 * DAY + HOUR
    kenji_cli = cli_session(kenji)
    scattered = [
        iam(b, t, kenji_cli, "ListRoles", None,
            error=("AccessDenied", _unauthorized_message(kenji_cli, "iam:ListRoles", f"arn:aws:iam::{PROD}:role/"))),
        b.call(t + 3 * HOUR, kenji_cli, "ap-northeast-1", "ec2.amazonaws.com", "StopInstances", False,
               {"instancesSet": _items("instanceId", [NETWORKS[(PROD, "ap-northeast-1")].fleet[0]]), "force": False},
               error=("Client.UnauthorizedOperation", _unauthorized_message(
                   kenji_cli, "ec2:StopInstances", f"arn:aws:ec2:ap-northeast-1:{PROD}:instance/*", ec2=True)
                      + b.ids.token(120))),
        b.call(t + 7 * HOUR, kenji_cli, GLOBAL_REGION, "s3.amazonaws.com", "GetBucketPolicy", True,
               {"bucketName": "acme-prod-logs", "Host": _bucket_host("acme-prod-logs"), "policy": ""},
               error=("AccessDenied", "Access Denied")),
    ]
    p.case("unauthorized_burst", "kenji", False, scattered, window_seconds=7 * HOUR)


def _sign_ins(p: _Planting) -> None:
    """Sign-ins without MFA and from a new country, with their look-alikes."""
    b, end = p.b, p.end
    kenji = PEOPLE["kenji"]
    # Sign-ins: one without MFA; an SSO role sign-in (MFA happens at the identity provider, so "No" is normal).
    tom = PEOPLE["tom"]
    t = end - 1 * DAY - 8 * HOUR
    no_mfa = b.sign_in(t, iam_user_identity(tom) | {"accessKeyId": ""}, STAGING, tom.ips[0], tom.browser, mfa=False)
    p.case("console_login_without_mfa", "tom", True, [no_mfa], ips=[tom.ips[0]], countries=["US"])
    sso_role = "AWSReservedSSO_AdministratorAccess_4f2a9c0e1b7d3a65"
    sso_identity = role_identity(STAGING, sso_role, "sofia@acme.example", t + 2 * HOUR, "",
                                 path="aws-reserved/sso.amazonaws.com/")
    sso = b.sign_in(t + 2 * HOUR, sso_identity, STAGING, PEOPLE["sofia"].ips[0], PEOPLE["sofia"].browser, mfa=False)
    p.case("console_login_without_mfa", f"{sso_role}/sofia@acme.example", False, [sso],
           note="federated (role) sign-ins report MFAUsed 'No': MFA happens at the identity provider")

    # A first sign-in from a new country: sofia always signs in from Germany, once from Singapore.
    sofia = PEOPLE["sofia"]
    t = end - 3 * DAY + 12 * HOUR
    p.blackout("sofia", t - 36 * HOUR, t + 36 * HOUR)
    abroad = b.sign_in(t, iam_user_identity(sofia) | {"accessKeyId": ""}, STAGING, TRAVEL_IPS["SG"], sofia.browser,
                       mfa_device=f"arn:aws:iam::{STAGING}:mfa/sofia")
    p.case("new_country_sign_in", "sofia", True, [abroad], ips=[TRAVEL_IPS["SG"]], countries=["SG"], home_country="DE")
    t = end - 4 * DAY + 20 * HOUR
    at_home = b.sign_in(t, iam_user_identity(kenji) | {"accessKeyId": ""}, PROD, kenji.ips[1], kenji.browser,
                        mfa_device=f"arn:aws:iam::{PROD}:mfa/kenji")
    p.case("new_country_sign_in", "kenji", False, [at_home], ips=[kenji.ips[1]], countries=["JP"], home_country="JP")


def _open_security_groups(p: _Planting) -> None:
    """Admin ports opened to the world, and web ports and egress (fine)."""
    b, end = p.b, p.end
    alice, priya = PEOPLE["alice"], PEOPLE["priya"]
    # Security groups: SSH and RDP opened to the internet (admin ports), HTTPS opened to it (fine), egress (fine).
    t = end - 1 * DAY + 5 * HOUR
    priya_console = Session(console_session(b, priya, t - 10 * MINUTE).identity, PROD, priya.ips[0], CONSOLE_EC2_UA,
                            "priya", console=True)
    _, bastion = create_security_group(b, t, priya_console, _PROD_EAST, "bastion-ssh", "SSH bastion")
    ssh = authorize(b, t + 2 * MINUTE, priya_console, _PROD_EAST, bastion,
                    [permission("tcp", 22, cidrs=["0.0.0.0/0"], description="temporary")])
    _, jump = create_security_group(b, t + 20 * MINUTE, priya_console, _PROD_EAST, "windows-jump", "RDP jump host")
    rdp = authorize(b, t + 22 * MINUTE, priya_console, _PROD_EAST, jump, [permission("tcp", 3389, cidrs6=["::/0"])])
    p.case("security_group_open_to_world", "priya", True, [ssh], group_id=bastion, port=22, cidr="0.0.0.0/0")
    p.case("security_group_open_to_world", "priya", True, [rdp], group_id=jump, port=3389, cidr="::/0")
    closed = revoke(b, t + 3 * HOUR, cli_session(alice), _PROD_EAST, bastion,
                    [permission("tcp", 22, cidrs=["0.0.0.0/0"])])
    p.case("security_group_open_to_world", "alice", False, [closed], group_id=bastion, port=22, cidr="0.0.0.0/0",
           note="a revoke closes the rule")
    t = end - 5 * DAY + 7 * HOUR
    deploy = github_session(b, PROD, t)
    _, web = create_security_group(b, t, deploy, _PROD_EAST, "web-alb", "Public load balancer")
    https = authorize(b, t + 20, deploy, _PROD_EAST, web,
                      [permission("tcp", 443, cidrs=["0.0.0.0/0"], cidrs6=["::/0"]),
                       permission("tcp", 80, cidrs=["0.0.0.0/0"])])
    egress = authorize(b, t + 40, deploy, _PROD_EAST, web, [permission("-1", None, cidrs=["0.0.0.0/0"])], egress=True)
    p.case("security_group_open_to_world", deploy.principal, False, [https], group_id=web, port=443, cidr="0.0.0.0/0",
           note="web ports open to the world are expected; only admin ports count")
    p.case("security_group_open_to_world", deploy.principal, False, [egress], group_id=web, port=None, cidr="0.0.0.0/0",
           note="egress to the world is normal")


def _rare_error(p: _Planting) -> None:
    """An error code seen exactly once."""
    b, end = p.b, p.end
    t = end - 2 * DAY + 15 * HOUR
    rare_session = github_session(b, PROD, t)
    rare, _ = run_instances(b, t, rare_session, NETWORKS[(PROD, "ap-northeast-1")], 4, "p4d.24xlarge", "ml-training",
                            error=("Server.InsufficientInstanceCapacity",
                                   "We currently do not have sufficient p4d.24xlarge capacity in the Availability "
                                   "Zone you requested (ap-northeast-1a)."))
    p.case("rare_error", rare_session.principal, True, [rare], error_code="Server.InsufficientInstanceCapacity")


def _batch_retired(p: _Planting, batch: _Batch) -> None:
    """The surviving batch worker: its Elastic IP released, then the instance terminated."""
    b, end = p.b, p.end
    alice_cli, allocation, public_ip, batch_a = batch.alice_cli, batch.allocation, batch.public_ip, batch.batch_a
    t = end - 1 * DAY + 3 * HOUR
    detach = ec2_ok(b, t, alice_cli, _PROD_EAST, "DisassociateAddress", {"allocationId": allocation})
    release = ec2_ok(b, t + MINUTE, alice_cli, _PROD_EAST, "ReleaseAddress", {"allocationId": allocation})
    p.case("elastic_ip_released", "alice", True, [release], allocation_id=allocation, public_ip=public_ip,
           disassociate_event_id=detach["eventID"])
    terminated = instance_action(b, t + HOUR, alice_cli, _PROD_EAST, "TerminateInstances", [batch_a])
    p.case("instance_terminated", "alice", True, [terminated], instance_ids=[batch_a])
    p.case("instance_terminated", "root", True, [batch.terminated_by_root], instance_ids=[batch.batch_b])


def _spree(b: _Builder, t: int, s: Session, net: Network) -> list[dict]:
    """25 IAM and security-group changes, 23 seconds apart: contractors onboarded in a hurry."""
    step = iter(range(t, t + 25 * 23, 23))
    records = [
        iam(b, next(step), s, "CreateGroup", {"groupName": "contractors"},
            {"group": {"path": "/", "groupName": "contractors", "groupId": "AGPA" + _stable("group:contractors", 17),
                       "arn": f"arn:aws:iam::{PROD}:group/contractors", "createDate": _aws_date(t)}}),
        iam(b, next(step), s, "AttachGroupPolicy", {"groupName": "contractors", "policyArn": READ_POLICIES[0]}),
    ]
    for name in ("contractor-ana", "contractor-ben", "contractor-cy", "contractor-dev"):
        moment = next(step)
        records.append(iam(b, moment, s, "CreateUser", {"userName": name}, create_user_response(PROD, name, moment)))
        moment = next(step)
        records.append(iam(b, moment, s, "CreateLoginProfile", {"userName": name, "passwordResetRequired": True},
                           {"loginProfile": {"userName": name, "createDate": _aws_date(moment),
                                             "passwordResetRequired": True}}))
        records.append(iam(b, next(step), s, "AddUserToGroup", {"groupName": "contractors", "userName": name}))
    role = "contractor-deploy"
    moment = next(step)
    records.append(iam(b, moment, s, "CreateRole", {"roleName": role, "assumeRolePolicyDocument": _trust("ec2.amazonaws.com")},
                       {"role": {"path": "/", "roleName": role, "roleId": role_id(role, PROD),
                                 "arn": f"arn:aws:iam::{PROD}:role/{role}", "createDate": _aws_date(moment)}}))
    records.append(iam(b, next(step), s, "AttachRolePolicy", {"roleName": role, "policyArn": READ_POLICIES[1]}))
    records.append(iam(b, next(step), s, "PutRolePolicy", {"roleName": role, "policyName": "deploy-artifacts",
                                                           "policyDocument": _policy(["s3:PutObject"], "arn:aws:s3:::acme-prod-assets/*")}))
    policy_arn = f"arn:aws:iam::{PROD}:policy/contractor-boundary"
    moment = next(step)
    records.append(iam(b, moment, s, "CreatePolicy", {"policyName": "contractor-boundary",
                                                      "policyDocument": _policy(["ec2:Describe*", "s3:Get*"])},
                       {"policy": {"policyName": "contractor-boundary", "policyId": "ANPA" + _stable("policy:cb", 17),
                                   "arn": policy_arn, "path": "/", "defaultVersionId": "v1", "attachmentCount": 0,
                                   "isAttachable": True, "createDate": _aws_date(moment), "updateDate": _aws_date(moment)}}))
    moment = next(step)
    records.append(iam(b, moment, s, "CreatePolicyVersion", {"policyArn": policy_arn, "setAsDefault": False,
                                                             "policyDocument": _policy(["ec2:Describe*", "s3:*"])},
                       {"policyVersion": {"versionId": "v2", "isDefaultVersion": False, "createDate": _aws_date(moment)}}))
    records.append(iam(b, next(step), s, "SetDefaultPolicyVersion", {"policyArn": policy_arn, "versionId": "v2"}))
    record, group = create_security_group(b, next(step), s, net, "contractor-db", "Contractor database access")
    records.append(record)
    records.append(authorize(b, next(step), s, net, group, [permission("tcp", 5432, cidrs=["10.10.0.0/16"])]))
    records.append(authorize(b, next(step), s, net, group, [permission("tcp", 443, cidrs=["10.10.0.0/16"])], egress=True))
    records.append(revoke(b, next(step), s, net, group, [permission("-1", None, cidrs=["0.0.0.0/0"])], egress=True))
    records.append(authorize(b, next(step), s, net, group,
                             [permission("tcp", 8080, groups=[net.groups[1]], account=net.account)]))
    return records


def _pipeline_changes(b: _Builder, t: int, s: Session, spacing: int) -> list[dict]:
    role, policy = "etl-pipeline", f"arn:aws:iam::{PROD}:policy/etl-lake-access"
    return [
        iam(b, t, s, "CreateRole", {"roleName": role, "assumeRolePolicyDocument": _trust("glue.amazonaws.com")},
            {"role": {"path": "/", "roleName": role, "roleId": role_id(role, PROD),
                      "arn": f"arn:aws:iam::{PROD}:role/{role}", "createDate": _aws_date(t)}}),
        iam(b, t + spacing, s, "AttachRolePolicy", {"roleName": role, "policyArn": READ_POLICIES[1]}),
        iam(b, t + 2 * spacing, s, "CreatePolicy",
            {"policyName": "etl-lake-access", "policyDocument": _policy(["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::acme-data-lake/*")},
            {"policy": {"policyName": "etl-lake-access", "arn": policy, "path": "/", "defaultVersionId": "v1",
                        "policyId": "ANPA" + _stable("policy:etl", 17), "attachmentCount": 0, "isAttachable": True,
                        "createDate": _aws_date(t + 2 * spacing), "updateDate": _aws_date(t + 2 * spacing)}}),
        iam(b, t + 3 * spacing, s, "AttachRolePolicy", {"roleName": role, "policyArn": policy}),
        iam(b, t + 4 * spacing, s, "PutRolePolicy", {"roleName": role, "policyName": "glue-logs",
                                                     "policyDocument": _policy(["logs:PutLogEvents"])}),
    ]


def _refusal_burst(b: _Builder, t: int, s: Session, net: Network) -> list[dict]:
    """40 refused calls 7 seconds apart: someone probing what a stolen CI key may do."""
    probes = [
        ("iam.amazonaws.com", "ListUsers", None, "AccessDenied", "iam:ListUsers", f"arn:aws:iam::{PROD}:user/"),
        ("iam.amazonaws.com", "ListRoles", None, "AccessDenied", "iam:ListRoles", f"arn:aws:iam::{PROD}:role/"),
        ("iam.amazonaws.com", "GetAccountAuthorizationDetails", None, "AccessDenied",
         "iam:GetAccountAuthorizationDetails", "*"),
        ("ec2.amazonaws.com", "DescribeInstances", _DESCRIBE_INSTANCES, "Client.UnauthorizedOperation",
         "ec2:DescribeInstances", "*"),
        ("ec2.amazonaws.com", "CreateKeyPair", {"keyName": "maint"}, "Client.UnauthorizedOperation",
         "ec2:CreateKeyPair", f"arn:aws:ec2:{net.region}:{PROD}:key-pair/maint"),
        ("ec2.amazonaws.com", "DescribeSnapshotAttribute", {"snapshotId": "snap-" + _stable_hex("snap"), "attribute": "createVolumePermission"},
         "UnauthorizedOperation", "ec2:DescribeSnapshotAttribute", "*"),
        ("secretsmanager.amazonaws.com", "ListSecrets", None, "AccessDenied", "secretsmanager:ListSecrets", "*"),
        ("s3.amazonaws.com", "GetBucketPolicy", {"bucketName": "acme-data-lake", "Host": _bucket_host("acme-data-lake"), "policy": ""},
         "AccessDenied", "s3:GetBucketPolicy", "arn:aws:s3:::acme-data-lake"),
    ]
    records = []
    for n in range(40):
        source, name, req, code, action, resource = probes[n % len(probes)]
        ec2 = source == "ec2.amazonaws.com"
        message = _unauthorized_message(s, action, resource, ec2=ec2) + (b.ids.token(120) if ec2 else "")
        region = GLOBAL_REGION if source in ("iam.amazonaws.com", "s3.amazonaws.com") else net.region
        records.append(b.call(t + 7 * n, s, region, source, name, name.startswith(("Describe", "List", "Get")), req,
                              error=(code, message)))
    return records
