"""Everyday activity: people and machines reading, deploying, syncing and auditing."""

from __future__ import annotations

import random
import time

from trailstream.ingest.demo.actors import (
    APP, AUDIT, CI, CONFIG, DATA_SYNC, FEDERATED, HUMAN, IAM_READS, LEGACY, _Emitter, _decrypt, _machine_user_identity,
    build_bot_actor, legacy_actor
)
from trailstream.ingest.demo.builder import (
    _Builder, cli_session, console_session, github_session, role_session, service_session
)
from trailstream.ingest.demo.company import (
    ACCOUNTS, ACCOUNT_REGIONS, AUDIT_IP, AWS_INTERNAL, CI_IPS, DAY, GLOBAL_REGION, HOUR, LAMBDA_IPS, LAMBDA_UA,
    LEGACY_IP, MINUTE, NETWORKS, OFFICE_GB, OLD_CLI_UA, PEOPLE, PROD, REGIONS, SDK_UA, SSM_AGENT_UA, STAGING,
    TERRAFORM_UA, _stable_hex, access_key, user_id
)
from trailstream.ingest.demo.identities import Session, _aws_date, _iso, iam_user_identity, role_identity
from trailstream.ingest.demo.shapes import _private_ip


def _begin(b: _Builder, room: int = HOUR) -> int:
    """A random session start that leaves an hour before the first and `room` before the last moment."""
    return b.start + HOUR + b.rng.randrange(max(1, b.end - b.start - HOUR - room))


def _spread(rng: random.Random, start: int, length: int, n: int) -> list[int]:
    return [start + int(rng.random() * length) for _ in range(n)]


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` split into `parts` positive-ish sizes that add up exactly."""
    if parts <= 0:
        return []
    weights = [0.5 + rng.random() for _ in range(parts)]
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    for index in range(total - sum(sizes)):
        sizes[index % parts] += 1
    return sizes


def _human_background(b: _Builder, budget: int, no_failures: set[str]) -> None:
    """Work sessions for every person: a console sign-in (or CLI use) from home, then reads and a few writes."""
    rng = b.rng
    people = list(PEOPLE.values())
    shares = _split(rng, budget, len(people))
    span_days = max(1, (b.end - b.start) // DAY)
    for person, share in zip(people, shares):
        emitter = _Emitter(b, HUMAN, person.account)
        sessions = max(2, min(int(span_days * 1.3), share // 6))
        regions = tuple(r for r, _ in ACCOUNT_REGIONS[person.account])
        weights = tuple(w for _, w in ACCOUNT_REGIONS[person.account])
        for size in _split(rng, share, sessions):
            if size <= 0:
                continue
            length = rng.randrange(20 * MINUTE, 6 * HOUR)
            for _ in range(30):
                begin = b.work_time(person, _begin(b, length), person.name)
                if begin + length < b.end and not b.in_blackout(person.name, begin - HOUR, begin + length + HOUR):
                    break
            else:
                continue
            ip = rng.choice(person.ips)
            if rng.random() < 0.7:
                if person.name not in no_failures and rng.random() < 0.04:
                    failure = {"type": "IAMUser", "principalId": user_id(person.name, person.account),
                               "accountId": person.account, "accessKeyId": "", "userName": person.name}
                    b.sign_in(begin - 50, failure, person.account, ip, person.browser, success=False)
                    size -= 1
                b.sign_in(begin, iam_user_identity(person) | {"accessKeyId": ""}, person.account, ip, person.browser,
                          mfa_device=f"arn:aws:iam::{person.account}:mfa/{person.name}")
                session = console_session(b, person, begin, ip)
                size -= 1
            else:
                session = cli_session(person, ip)
            if size <= 0:
                continue
            times = _spread(rng, begin + 30, length, size)
            internal = sum(rng.random() < 0.02 for _ in range(size))  # console pages AWS calls for itself
            via = session.via(AWS_INTERNAL)
            for moment in times[:internal]:
                source, name, req, _ = rng.choice(IAM_READS)
                b.call(moment, via, GLOBAL_REGION, source, name, True, req)
            emitter.emit(session, times[internal:], regions, weights)


def _machine_background(b: _Builder, budget: int) -> None:
    """CI jobs, deploys, application instances, a Lambda, the auditor, AWS Config, a federated portal, cron."""
    rng = b.rng
    plan = (  # (share, producer)
        (0.08, _ci_jobs), (0.10, _deploys), (0.30, _app_instances), (0.20, _data_sync), (0.10, _audits),
        (0.05, _config_recorder), (0.07, _service_calls), (0.05, _federated), (0.03, _legacy_cron),
    )
    total = sum(share for share, _ in plan)
    remaining = budget
    for index, (share, producer) in enumerate(plan):
        part = remaining if index == len(plan) - 1 else int(budget * share / total)
        remaining -= part
        if part > 0:
            producer(b, part, rng)


def _sessions(rng: random.Random, part: int, typical: int, most: int) -> list[int]:
    return [size for size in _split(rng, part, max(1, min(most, part // typical))) if size > 0]


def _ci_jobs(b: _Builder, part: int, rng: random.Random) -> None:
    bot = build_bot_actor()
    emitter = _Emitter(b, CI, PROD)
    identity = _machine_user_identity(bot)
    for size in _sessions(rng, part, 25, 3000):
        begin = b.work_time(None, _begin(b, 2 * HOUR), bot.name)
        session = Session(identity, PROD, bot.ips[0], TERRAFORM_UA if rng.random() < 0.5 else SDK_UA, bot.name)
        emitter.emit(session, _spread(rng, begin, rng.randrange(2, 12) * MINUTE, size), ("us-east-1",), (1,))


def _deploys(b: _Builder, part: int, rng: random.Random) -> None:
    """Terraform runs from GitHub Actions: AssumeRoleWithWebIdentity, then a refresh of everything."""
    emitters = {account: _Emitter(b, CI, account) for account in (PROD, STAGING)}
    for size in _sessions(rng, part, 40, 4000):
        account = PROD if rng.random() < 0.6 else STAGING
        begin = _begin(b)
        session = github_session(b, account, begin)
        subject = "repo:acme/infrastructure:ref:refs/heads/main"
        provider = f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"
        web = Session({"type": "WebIdentityUser", "principalId": f"{provider}:sts.amazonaws.com:{subject}",
                       "userName": subject, "identityProvider": provider}, account, session.ip, "aws-sdk-nodejs/2.1551.0 linux/v20.11.1 configure-aws-credentials-for-github-actions",
                      subject)
        role_arn = f"arn:aws:iam::{account}:role/GitHubDeploy"
        b.call(begin - 5, web, "us-east-1", "sts.amazonaws.com", "AssumeRoleWithWebIdentity", True,
               {"roleArn": role_arn, "roleSessionName": session.principal.split("/")[1], "durationSeconds": 3600},
               {"credentials": {"accessKeyId": session.identity["accessKeyId"], "expiration": _aws_date(begin + HOUR)},
                "subjectFromWebIdentityToken": subject, "provider": provider, "audience": "sts.amazonaws.com",
                "assumedRoleUser": {"assumedRoleId": session.identity["principalId"], "arn": session.identity["arn"]}},
               resources=[{"accountId": account, "type": "AWS::IAM::Role", "ARN": role_arn}], version="1.08",
               shared=b.ids.uuid())
        regions = tuple(r for r, _ in ACCOUNT_REGIONS[account])
        weights = tuple(w for _, w in ACCOUNT_REGIONS[account])
        if size > 1:
            emitters[account].emit(session, _spread(rng, begin, rng.randrange(2, 9) * MINUTE, size - 1), regions, weights)


def _app_instances(b: _Builder, part: int, rng: random.Random) -> None:
    """The application fleet's instance role: hourly credentials (ec2 assumes the role), SSM, S3, KMS."""
    fleets = [net for net in NETWORKS.values() if net.account in (PROD, STAGING) and net.fleet]
    emitters = {account: _Emitter(b, APP, account) for account in (PROD, STAGING)}
    hours = max(1, (b.end - b.start) // HOUR)
    for size in _sessions(rng, part, 30, hours * 10):
        net = rng.choice(fleets)
        instance = rng.choice(net.fleet)
        begin = b.start + rng.randrange(hours) * HOUR + rng.randrange(60, 600)
        ip = _private_ip(b, net) if rng.random() < 0.6 else rng.choice(CI_IPS)
        session = role_session(b, net.account, "web-app", instance, begin, ip, SSM_AGENT_UA, ec2=True)
        if ip.startswith("10."):
            session.extra = {"vpcEndpointId": "vpce-" + _stable_hex(f"vpce:{net.account}:{net.region}"),
                             "vpcEndpointAccountId": net.account}
        service = service_session(net.account, "ec2.amazonaws.com")
        role_arn = f"arn:aws:iam::{net.account}:role/web-app"
        b.call(begin - 30, service, net.region, "sts.amazonaws.com", "AssumeRole", True,
               {"roleArn": role_arn, "roleSessionName": instance},
               {"credentials": {"accessKeyId": session.identity["accessKeyId"], "expiration": _aws_date(begin + 6 * HOUR)}},
               resources=[{"accountId": net.account, "type": "AWS::IAM::Role", "ARN": role_arn}], version="1.08",
               shared=b.ids.uuid())
        if size > 1:
            emitters[net.account].emit(session, _spread(rng, begin, HOUR - 660, size - 1), (net.region,), (1,))


def _data_sync(b: _Builder, part: int, rng: random.Random) -> None:
    emitter = _Emitter(b, DATA_SYNC, PROD)
    slots = max(1, (b.end - b.start) // (15 * MINUTE))
    for size in _sessions(rng, part, 20, slots):
        begin = b.start + rng.randrange(slots) * 15 * MINUTE + rng.randrange(5, 60)
        session = role_session(b, PROD, "data-sync-role", "data-sync", begin, rng.choice(LAMBDA_IPS), LAMBDA_UA)
        emitter.emit(session, _spread(rng, begin, 4 * MINUTE, size), ("us-east-1",), (1,))


def _audits(b: _Builder, part: int, rng: random.Random) -> None:
    """A nightly security scan of every account and region, plus nina's ad-hoc checks."""
    emitters = {account: _Emitter(b, AUDIT, account) for account in ACCOUNTS}
    days = max(1, (b.end - b.start) // DAY)
    scans = [(day, account) for day in range(days) for account in ACCOUNTS]
    for size, (day, account) in zip(_split(rng, part, len(scans)), scans):
        begin = b.start + day * DAY + 3 * HOUR + rng.randrange(HOUR)
        if size <= 0 or begin >= b.end - HOUR:
            continue
        session = role_session(b, account, "SecurityAudit", f"prowler-{time.strftime('%Y%m%d', time.gmtime(begin))}",
                               begin, AUDIT_IP, "Boto3/1.34.50 md/Botocore#1.34.50 ua/2.0 prowler/3.16.0")
        emitters[account].emit(session, _spread(rng, begin, 40 * MINUTE, size), REGIONS, (4, 2, 2, 1))


def _config_recorder(b: _Builder, part: int, rng: random.Random) -> None:
    """AWS Config reading resources through its service-linked role (invokedBy config.amazonaws.com)."""
    for account in ACCOUNTS:
        emitter = _Emitter(b, CONFIG, account)
        regions = tuple(r for r, _ in ACCOUNT_REGIONS[account])
        weights = tuple(w for _, w in ACCOUNT_REGIONS[account])
        for size in _sessions(rng, part // len(ACCOUNTS), 15, 2000):
            begin = _begin(b)
            identity = role_identity(account, "AWSServiceRoleForConfig", "AWSConfig-Describe", begin - 60, b.ids.key(),
                                     invoked_by="config.amazonaws.com", path="aws-service-role/config.amazonaws.com/")
            session = Session(identity, account, "config.amazonaws.com", "config.amazonaws.com",
                              "AWSServiceRoleForConfig/AWSConfig-Describe", tls=False)
            emitter.emit(session, _spread(rng, begin, 10 * MINUTE, size), regions, weights)


def _service_calls(b: _Builder, part: int, rng: random.Random) -> None:
    """AWS services working for the account: Lambda assuming roles, KMS rotating keys, S3 using KMS."""
    for n in range(part):
        account = PROD if rng.random() < 0.7 else STAGING
        moment = _begin(b, 0)
        region = rng.choices(*zip(*ACCOUNT_REGIONS[account]))[0]
        if n % 200 == 199:
            key = f"arn:aws:kms:{region}:{account}:key/{b.ids.uuid()}"
            s = Session({"accountId": account, "invokedBy": "kms.amazonaws.com"}, account, "kms.amazonaws.com",
                        "kms.amazonaws.com", "kms.amazonaws.com", tls=False)
            b.call(moment, s, region, "kms.amazonaws.com", "RotateKey", False, None, None,
                   resources=[{"accountId": account, "type": "AWS::KMS::Key", "ARN": key}],
                   event_type="AwsServiceEvent", version="1.08")
        elif rng.random() < 0.5:
            role = rng.choice(("data-sync-role", "thumbnailer-role", "webhook-relay-role"))
            role_arn = f"arn:aws:iam::{account}:role/{role}"
            b.call(moment, service_session(account, "lambda.amazonaws.com"), region, "sts.amazonaws.com", "AssumeRole",
                   True, {"roleArn": role_arn, "roleSessionName": role.removesuffix("-role")},
                   {"credentials": {"accessKeyId": b.ids.key(), "expiration": _aws_date(moment + 12 * HOUR)}},
                   resources=[{"accountId": account, "type": "AWS::IAM::Role", "ARN": role_arn}], version="1.08",
                   shared=b.ids.uuid())
        else:
            _decrypt(b, moment, service_session(account, "s3.amazonaws.com"), region)


def _federated(b: _Builder, part: int, rng: random.Random) -> None:
    """The reporting portal: GetFederationToken by its IAM user, then reads as a federated user from the GB office."""
    issuer = {"type": "IAMUser", "principalId": user_id("report-svc", PROD), "arn": f"arn:aws:iam::{PROD}:user/report-svc",
              "accountId": PROD, "userName": "report-svc"}
    portal = Session(issuer | {"accessKeyId": access_key("report-svc", PROD)}, PROD, OFFICE_GB, SDK_UA, "report-svc")
    emitter = _Emitter(b, FEDERATED, PROD)
    for size in _sessions(rng, part, 12, 1500):
        viewer = rng.choice(("report-viewer", "finance-viewer"))
        begin = min(b.work_time(PEOPLE["emma"], _begin(b), "report-svc"), b.end - HOUR)
        key = b.ids.key()
        b.call(begin - 2, portal, "us-east-1", "sts.amazonaws.com", "GetFederationToken", True,
               {"name": viewer, "durationSeconds": 3600},
               {"credentials": {"accessKeyId": key, "expiration": _aws_date(begin + HOUR)},
                "federatedUser": {"federatedUserId": f"{PROD}:{viewer}", "arn": f"arn:aws:sts::{PROD}:federated-user/{viewer}"}})
        identity = {"type": "FederatedUser", "principalId": f"{PROD}:{viewer}",
                    "arn": f"arn:aws:sts::{PROD}:federated-user/{viewer}", "accountId": PROD, "accessKeyId": key,
                    "sessionContext": {"sessionIssuer": issuer, "webIdFederationData": {},
                                       "attributes": {"creationDate": _iso(begin - 2), "mfaAuthenticated": "false"}}}
        if size > 1:
            emitter.emit(Session(identity, PROD, OFFICE_GB, SDK_UA, viewer), _spread(rng, begin, 30 * MINUTE, size - 1),
                         ("us-east-1",), (1,))


def _legacy_cron(b: _Builder, part: int, rng: random.Random) -> None:
    """A forgotten nightly backup job still running on an old IAM user key."""
    legacy = legacy_actor()
    session = Session(_machine_user_identity(legacy), PROD, LEGACY_IP, OLD_CLI_UA, legacy.name)
    emitter = _Emitter(b, LEGACY, PROD)
    days = max(1, (b.end - b.start) // DAY)
    carried = 0
    for day, size in enumerate(_split(rng, part, days)):
        begin = b.start + day * DAY + 2 * HOUR + rng.randrange(600)
        size += carried
        if begin < b.end - HOUR and not b.in_blackout(legacy.name, begin, begin + HOUR):
            emitter.emit(session, _spread(rng, begin, 20 * MINUTE, size), ("us-east-1",), (1,))
            carried = 0
        else:  # the job did not run (the key was busy elsewhere): its work waits for the next night
            carried = size
