"""Deterministic CloudTrail data of the shapes a real organisation produces, written as gzip log files in the S3 key
layout (`AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/..._CloudTrail_...json.gz`), for the benchmarks.

Shapes (issue 12): **demo** (the built-in demo company), **roaming** (a few dozen IAM users, every call from a random
public IPv4 address anywhere) and **many-sessions** (~80% of calls by ~100 service roles, each call with its own
session name and ASIA key from AWS addresses or `AWS Internal`; people from 1-3 home addresses, sometimes travelling;
CI roles; call-specific request parameters; 3% errors). All over the 24 hours before `end`, three accounts, several
regions. The same arguments give the same files.

Run on demand: `python benchmarks/shapes.py SHAPE FOLDER [--events 200000] [--seed 1] [--end 2026-11-01T00:00:00Z]`.
From code: `write_shape(shape, folder, events, seed, end)`; `shape_records(...)` yields the records hour by hour.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trailstream.ingest import demo  # noqa: E402
from trailstream.timefmt import TIME_FORMAT, parse_iso_utc  # noqa: E402

SHAPES = ("demo", "roaming", "many-sessions")
ACCOUNTS = ("284716359021", "519273648150", "736182945503")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2")
REGION_WEIGHTS = (10, 3, 6, 2, 1, 1)  # most work in two regions, a little elsewhere
RECORDS_PER_FILE = 1000  # a busy account-region's five minutes; CloudTrail splits larger deliveries
HOURS = 24
AWS_PREFIXES = ("3.", "13.", "18.", "34.", "35.", "44.", "52.", "54.")  # where AWS's own addresses are
BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
)
CLIS = (
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.3.0 exe/x86_64 prompt/off",
    "aws-cli/2.15.19 Python/3.11.6 Linux/6.5.0-21-generic exe/x86_64.ubuntu.22 prompt/off",
    "Boto3/1.34.50 md/Botocore#1.34.50 ua/2.0 os/macos#23.3.0 md/arch#arm64 lang/python#3.11.8 md/pyimpl#CPython Botocore/1.34.50",
)
TERRAFORM_UA = "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) terraform-provider-aws/5.40.0"
SDK_UA = "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.1"
LAMBDA_UA = ("Boto3/1.34.42 md/Botocore#1.34.42 ua/2.0 os/linux#5.10.210-220.852.amzn2.x86_64 md/arch#x86_64 "
             "lang/python#3.12.2 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.42")
USER_AGENTS = BROWSERS + CLIS + (TERRAFORM_UA, SDK_UA, LAMBDA_UA)
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


# --- Small random values ------------------------------------------------------------------------------------------


def public_ipv4(rng: random.Random) -> str:
    """A random globally routable IPv4 address (anywhere in the world)."""
    while True:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global and not address.is_multicast:
            return str(address)


def aws_ipv4(rng: random.Random) -> str:
    return f"{rng.choice(AWS_PREFIXES)}{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def access_key(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(_KEY_ALPHABET) for _ in range(16))


def event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random, length: int) -> str:
    return f"{rng.getrandbits(4 * length):0{length}x}"


# --- Calls: (eventSource, eventName, readOnly, requestParameters builder) -------------------------------------------


def _s3_object(rng, account, region):
    return {"bucketName": f"data-{account}-{region}", "key": f"ingest/{_hex(rng, 12)}/part-{rng.randrange(9999):04}.parquet",
            "Host": f"data-{account}-{region}.s3.{region}.amazonaws.com"}


def _dynamo_item(rng, account, region):
    return {"tableName": rng.choice(("orders", "sessions", "inventory", "customers")),
            "key": {"pk": {"S": f"ORDER#{_hex(rng, 10)}"}, "sk": {"S": f"V#{rng.randrange(100)}"}}}


def _kms_decrypt(rng, account, region):
    return {"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "encryptionContext": {"aws:lambda:FunctionArn": f"arn:aws:lambda:{region}:{account}:function:fn-{rng.randrange(60)}",
                                  "request": _hex(rng, 16)}}


def _sqs_send(rng, account, region):
    return {"queueUrl": f"https://sqs.{region}.amazonaws.com/{account}/jobs-{rng.randrange(20)}",
            "messageGroupId": _hex(rng, 8), "messageDeduplicationId": _hex(rng, 20)}


def _ssm_param(rng, account, region):
    return {"name": f"/app/{rng.choice(('db', 'api', 'queue'))}/{rng.choice(('url', 'token', 'timeout'))}", "withDecryption": True}


def _assume_role(rng, account, region):
    return {"roleArn": f"arn:aws:iam::{account}:role/svc-{rng.randrange(100):03}",
            "roleSessionName": f"session-{_hex(rng, 16)}", "durationSeconds": 900}


def _describe_instances(rng, account, region):
    return {"instancesSet": {"items": [{"instanceId": f"i-{_hex(rng, 17)}"}]}, "filterSet": {}}


def _logs_put(rng, account, region):
    return {"logGroupName": f"/aws/lambda/fn-{rng.randrange(60)}",
            "logStreamName": f"2026/11/01/[$LATEST]{_hex(rng, 32)}"}


def _none(rng, account, region):
    return None


CALLS: tuple[tuple[str, str, bool, Callable], ...] = (
    ("s3.amazonaws.com", "GetObject", True, _s3_object),
    ("s3.amazonaws.com", "PutObject", False, _s3_object),
    ("dynamodb.amazonaws.com", "GetItem", True, _dynamo_item),
    ("dynamodb.amazonaws.com", "PutItem", False, _dynamo_item),
    ("kms.amazonaws.com", "Decrypt", True, _kms_decrypt),
    ("sqs.amazonaws.com", "SendMessage", False, _sqs_send),
    ("ssm.amazonaws.com", "GetParameter", True, _ssm_param),
    ("sts.amazonaws.com", "AssumeRole", True, _assume_role),
    ("ec2.amazonaws.com", "DescribeInstances", True, _describe_instances),
    ("logs.amazonaws.com", "CreateLogStream", False, _logs_put),
    ("sts.amazonaws.com", "GetCallerIdentity", True, _none),
)
ERRORS = (("AccessDenied", "User is not authorized to perform this operation"),
          ("ThrottlingException", "Rate exceeded"),
          ("ResourceNotFoundException", "Requested resource not found"))


def _record(rng: random.Random, moment: datetime, identity: dict, ip: str, agent: str, error_share: float) -> dict:
    """One API call record with call-specific request parameters."""
    account = identity["accountId"]
    region = rng.choices(REGIONS, REGION_WEIGHTS)[0]
    source, name, read_only, params = rng.choice(CALLS)
    record = {
        "eventVersion": "1.09", "userIdentity": identity, "eventTime": moment.strftime(TIME_FORMAT),
        "eventSource": source, "eventName": name, "awsRegion": region, "sourceIPAddress": ip, "userAgent": agent,
        "requestParameters": params(rng, account, region), "responseElements": None,
        "requestID": event_id(rng), "eventID": event_id(rng), "readOnly": read_only, "eventType": "AwsApiCall",
        "managementEvent": source not in ("s3.amazonaws.com", "dynamodb.amazonaws.com"),
        "recipientAccountId": account,
        "eventCategory": "Management" if source not in ("s3.amazonaws.com", "dynamodb.amazonaws.com") else "Data",
    }
    if rng.random() < error_share:
        record["errorCode"], record["errorMessage"] = rng.choice(ERRORS)
    if ip not in ("AWS Internal",) and not ip.endswith(".amazonaws.com"):
        record["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                                "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"}
    return record


# --- Who calls ------------------------------------------------------------------------------------------------------


def iam_user(rng: random.Random, name: str, account: str) -> dict:
    return {"type": "IAMUser", "principalId": "AIDA" + access_key(rng, "")[:17], "arn": f"arn:aws:iam::{account}:user/{name}",
            "accountId": account, "accessKeyId": access_key(rng, "AKIA"), "userName": name}


def assumed_role(rng: random.Random, role: str, account: str, session: str, created: datetime) -> dict:
    """A role session: its own session name and temporary ASIA key, issued by the role."""
    role_id = "AROA" + access_key(rng, "")[:17]
    return {"type": "AssumedRole", "principalId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
            "accessKeyId": access_key(rng, "ASIA"),
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": role_id,
                                                 "arn": f"arn:aws:iam::{account}:role/{role}", "accountId": account,
                                                 "userName": role},
                               "webIdFederationData": {},
                               "attributes": {"creationDate": created.strftime(TIME_FORMAT), "mfaAuthenticated": "false"}}}


class Roaming:
    """A few dozen IAM users; every call from a random public IPv4 address anywhere."""

    def __init__(self, rng: random.Random):
        self.users = [iam_user(rng, f"user{n:02}", ACCOUNTS[n % 3]) for n in range(40)]

    def call(self, rng: random.Random, moment: datetime) -> dict:
        return _record(rng, moment, rng.choice(self.users), public_ipv4(rng), rng.choice(USER_AGENTS), 0.02)


class ManySessions:
    """~100 service roles (a new session and key per call, ~80%), people at home or travelling, CI roles."""

    def __init__(self, rng: random.Random):
        self.roles = [(f"svc-{name}-{n:03}", ACCOUNTS[n % 3]) for n, name in
                      enumerate(rng.choice(("orders", "billing", "etl", "api", "worker")) for _ in range(100))]
        self.people = [(iam_user(rng, f"person{n:02}", ACCOUNTS[n % 3]),
                        [public_ipv4(rng) for _ in range(rng.randint(1, 3))]) for n in range(30)]
        self.ci_roles = [(f"ci-deploy-{n}", ACCOUNTS[n % 3]) for n in range(6)]

    def call(self, rng: random.Random, moment: datetime) -> dict:
        draw = rng.random()
        if draw < 0.8:
            role, account = rng.choice(self.roles)
            session = rng.choice(("", "botocore-session-", "lambda-")) + _hex(rng, 16)
            identity = assumed_role(rng, role, account, session, moment - timedelta(seconds=rng.randrange(900)))
            ip = "AWS Internal" if rng.random() < 0.3 else aws_ipv4(rng)
            return _record(rng, moment, identity, ip, rng.choice((LAMBDA_UA, SDK_UA, "AWS Internal")), 0.03)
        if draw < 0.95:
            identity, homes = rng.choice(self.people)
            ip = public_ipv4(rng) if rng.random() < 0.05 else rng.choice(homes)
            return _record(rng, moment, identity, ip, rng.choice(BROWSERS + CLIS), 0.03)
        role, account = rng.choice(self.ci_roles)
        identity = assumed_role(rng, role, account, f"GitHubActions-{rng.randrange(10**9)}", moment)
        return _record(rng, moment, identity, public_ipv4(rng), TERRAFORM_UA, 0.03)


def _synthetic_hours(actors, events: int, seed: int, end: datetime) -> Iterator[list[dict]]:
    rng = random.Random(seed)
    cast = actors(rng)
    start = end - timedelta(hours=HOURS)
    for hour in range(HOURS):
        count = events * (hour + 1) // HOURS - events * hour // HOURS
        opened = start + timedelta(hours=hour)
        seconds = sorted(rng.randrange(3600) for _ in range(count))
        yield [cast.call(rng, opened + timedelta(seconds=second)) for second in seconds]


def _demo_slices(events: int, seed: int, end: datetime) -> Iterator[list[dict]]:
    """The demo company's day, generated in slices so memory stays flat (planted cases once)."""
    chunk = 250_000
    for index, first in enumerate(range(0, events, chunk)):
        yield demo.generate_records(events=min(chunk, events - first), seed=seed + index, end=end, days=1,
                                    planted=index == 0)


def shape_records(shape: str, events: int, seed: int, end: datetime) -> Iterator[list[dict]]:
    """The records of one shape, in slices (an hour, or a demo slice) sorted by time within each."""
    if shape == "demo":
        return _demo_slices(events, seed, end)
    if shape == "roaming":
        return _synthetic_hours(Roaming, events, seed, end)
    if shape == "many-sessions":
        return _synthetic_hours(ManySessions, events, seed, end)
    raise ValueError(f"unknown shape {shape!r}; pick one of {', '.join(SHAPES)}")


def write_shape(shape: str, folder: Path, events: int, seed: int = 1, end: datetime | None = None) -> list[Path]:
    """Write the shape's gzip log files under `folder`; returns their paths."""
    end = end or datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    paths = []
    for records in shape_records(shape, events, seed, end):
        paths += demo.write_log_files(folder, records, records_per_file=RECORDS_PER_FILE)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=SHAPES)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", help="end of the 24 hours (UTC, e.g. 2026-11-01T00:00:00Z); default: this hour")
    args = parser.parse_args()
    end = parse_iso_utc(args.end) if args.end else None
    paths = write_shape(args.shape, args.folder, args.events, args.seed, end)
    print(f"{args.shape}: {args.events:,} events in {len(paths):,} files under {args.folder}")


if __name__ == "__main__":
    main()
