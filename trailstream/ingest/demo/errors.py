"""The background's failed calls: each error code's record and how often it appears."""

from __future__ import annotations

from trailstream.ingest.demo.builder import _Builder, _bucket_host, _unauthorized_message, cli_session, github_session
from trailstream.ingest.demo.company import (
    ACCOUNT_REGIONS, BUCKETS, DAY, GLOBAL_REGION, HOUR, MINUTE, NETWORKS, PEOPLE, PROD, STAGING, _stable_hex
)
from trailstream.ingest.demo.identities import Session
from trailstream.ingest.demo.scenarios import _PRIVILEGE_GAP
from trailstream.ingest.demo.shapes import _items, iam, run_instances


def _error_cases(b: _Builder, s: Session, region: str) -> dict:
    """How to build each background error code's record for this caller: (build(moment), is a refusal)."""
    net = NETWORKS.get((s.account, region)) or NETWORKS[(s.account, ACCOUNT_REGIONS[s.account][0][0])]
    arn_region = net.region
    instance = net.fleet[0] if net.fleet else "i-" + _stable_hex("missing")

    def ec2_denied(name: str, req: dict, action: str, code: str):
        message = _unauthorized_message(s, action, f"arn:aws:ec2:{arn_region}:{s.account}:instance/*", ec2=True)
        return lambda t: b.call(t, s, net.region, "ec2.amazonaws.com", name, False, req,
                                error=(code, message + b.ids.token(120)))

    return {
        "AccessDenied": (lambda t: iam(b, t, s, "ListRoles", None, error=(
            "AccessDenied", _unauthorized_message(s, "iam:ListRoles", f"arn:aws:iam::{s.account}:role/"))), True),
        "Client.UnauthorizedOperation": (ec2_denied(
            "StopInstances", {"instancesSet": _items("instanceId", [instance]), "force": False},
            "ec2:StopInstances", "Client.UnauthorizedOperation"), True),
        "UnauthorizedOperation": (ec2_denied(
            "DescribeSnapshotAttribute", {"snapshotId": "snap-" + _stable_hex("snap:" + s.account), "attribute": "createVolumePermission"},
            "ec2:DescribeSnapshotAttribute", "UnauthorizedOperation"), True),
        "AccessDeniedException": (lambda t: b.call(
            t, s, net.region, "secretsmanager.amazonaws.com", "GetSecretValue", True,
            {"secretId": f"arn:aws:secretsmanager:{net.region}:{s.account}:secret:prod/payments-Q1w2E3"},
            error=("AccessDeniedException", _unauthorized_message(
                s, "secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{net.region}:{s.account}:secret:prod/payments-Q1w2E3"))), True),
        "NoSuchBucketPolicy": (lambda t: b.call(
            t, s, GLOBAL_REGION, "s3.amazonaws.com", "GetBucketPolicy", True,
            {"bucketName": BUCKETS[s.account][0], "Host": _bucket_host(BUCKETS[s.account][0]), "policy": ""},
            error=("NoSuchBucketPolicy", "The bucket policy does not exist")), False),
        "ServerSideEncryptionConfigurationNotFoundError": (lambda t: b.call(
            t, s, GLOBAL_REGION, "s3.amazonaws.com", "GetBucketEncryption", True,
            {"bucketName": BUCKETS[s.account][-1], "Host": _bucket_host(BUCKETS[s.account][-1]), "encryption": ""},
            error=("ServerSideEncryptionConfigurationNotFoundError", "The server side encryption configuration was not found")), False),
        "Client.InvalidInstanceID.NotFound": (lambda t: b.call(
            t, s, net.region, "ec2.amazonaws.com", "DescribeInstances", True,
            {"instancesSet": _items("instanceId", ["i-0" + "%016x" % b.rng.getrandbits(64)]), "filterSet": {}},
            error=("Client.InvalidInstanceID.NotFound", "The instance ID does not exist")), False),
        "Client.DryRunOperation": (lambda t: b.call(
            t, s, net.region, "ec2.amazonaws.com", "TerminateInstances", False,
            {"instancesSet": _items("instanceId", [instance]), "dryRun": True},
            error=("Client.DryRunOperation", "Request would have succeeded, but DryRun flag is set.")), False),
        "ResourceNotFoundException": (lambda t: b.call(
            t, s, net.region, "lambda.amazonaws.com", "GetFunction20150331v2", True, {"functionName": "image-resizer"},
            error=("ResourceNotFoundException",
                   f"Function not found: arn:aws:lambda:{net.region}:{s.account}:function:image-resizer"), version="1.08"), False),
        "ParameterNotFound": (lambda t: b.call(
            t, s, net.region, "ssm.amazonaws.com", "GetParameter", True, {"name": "/app/legacy-flag", "withDecryption": True},
            error=("ParameterNotFound", "Parameter /app/legacy-flag not found.")), False),
        "InvalidParameterValue": (lambda t: b.call(
            t, s, net.region, "ec2.amazonaws.com", "CreateTags", False,
            {"resourcesSet": _items("resourceId", [instance]), "tagSet": {"items": [{"key": "aws:owner", "value": "x"}]}},
            error=("InvalidParameterValue", "Value ( aws:owner ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use")), False),
        "Client.InstanceLimitExceeded": (lambda t: run_instances(
            b, t, s, net, 25, "c6i.4xlarge", "load-test", error=(
                "Client.InstanceLimitExceeded",
                "You have requested more instances (25) than your current instance limit of 20 allows for the specified "
                "instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."))[0], False),
        "ThrottlingException": (lambda t: b.call(
            t, s, net.region, "cloudtrail.amazonaws.com", "LookupEvents", True, {"maxResults": 50},
            error=("ThrottlingException", "Rate exceeded")), False),
        "NoSuchEntity": (lambda t: iam(b, t, s, "GetUser", {"userName": "former-contractor"}, error=(
            "NoSuchEntity", "The user with name former-contractor cannot be found.")), False),
    }


_ERROR_MIX = (  # code, share of the background's errors (0: a fixed handful, the rare codes)
    ("AccessDenied", 6), ("Client.UnauthorizedOperation", 4), ("UnauthorizedOperation", 2), ("AccessDeniedException", 2),
    ("NoSuchBucketPolicy", 8), ("ServerSideEncryptionConfigurationNotFoundError", 3),
    ("Client.InvalidInstanceID.NotFound", 3), ("Client.DryRunOperation", 2), ("ResourceNotFoundException", 3),
    ("ParameterNotFound", 2), ("InvalidParameterValue", 0), ("Client.InstanceLimitExceeded", 0),
    ("ThrottlingException", 0), ("NoSuchEntity", 0),
)
_RARE_ERROR_COUNT = 3
_UNAUTHORIZED_GAP = 30 * MINUTE
_NO_ERRORS = {"kenji", "build-bot", "svc-legacy"}  # planted cases own these principals' refusals
_PLANTED_SIGN_IN_FAILURES = {"liam", "carlos"}  # and these people's failed sign-ins
_PRIVILEGE_ERRORS = {"InvalidParameterValue"}  # a refused change still counts as one: spaced like the others


def _errors(b: _Builder, budget: int) -> None:
    """Failed calls: every code at least twice in the last 7 days; refusals at most two at a time per principal."""
    rng = b.rng
    common = sum(share for _, share in _ERROR_MIX)
    spare = budget - _RARE_ERROR_COUNT * sum(1 for _, share in _ERROR_MIX if not share)
    counts = [max(2, int(spare * share / common)) if share else _RARE_ERROR_COUNT for _, share in _ERROR_MIX]
    callers = [p for p in PEOPLE.values() if p.name not in _NO_ERRORS]
    recent = max(b.start, b.end - 7 * DAY)
    for (code, _), count in zip(_ERROR_MIX, counts):
        for n in range(count):
            lower = recent if n < 2 else b.start + HOUR
            for _ in range(20):  # near the end a caller may have no free moment left: try another
                moment = lower + rng.randrange(max(1, b.end - lower - 2 * HOUR))
                if rng.random() < 0.7:
                    person = rng.choice(callers)
                    s = cli_session(person, rng.choice(person.ips))
                    region = rng.choices(*zip(*ACCOUNT_REGIONS[person.account]))[0]
                else:
                    person = None
                    account = rng.choice((PROD, STAGING))
                    s = github_session(b, account, moment)
                    region = ACCOUNT_REGIONS[account][0][0]
                build, unauthorized = _error_cases(b, s, region)[code]
                kind = "refused" if unauthorized else "privilege" if code in _PRIVILEGE_ERRORS else None
                moment = b.slot(person, s.principal, moment, kind, _UNAUTHORIZED_GAP if unauthorized else _PRIVILEGE_GAP)
                if moment < b.end:
                    build(moment)
                    break
