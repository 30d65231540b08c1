"""Demo data: a month of CloudTrail activity for a small fictional company, with planted security findings.

The app opens on it when nothing is configured, `python -m trailstream demo` imports it, the benchmarks generate a
million events with it, and the detection tests check their findings against PLANTED. The company (three accounts,
its people, roles and networks) is fixed; the seed changes only the background, and the planted events are the same
records for every seed (same eventIDs, placed relative to `end`). Records share constant sub-objects (identities,
tlsDetails, empty filter sets) to stay fast: copy one (copy.deepcopy) before editing it.
"""

from __future__ import annotations

import base64
import gc
import gzip
import hashlib
import json
import random
import time
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import orjson

from trailstream.catalog import PRIVILEGE_CHANGE_EVENTS, UNAUTHORIZED_ERROR_CODES
from trailstream.ingest.records import principal_name
from trailstream.timefmt import TIME_FORMAT, parse_iso_utc

DEMO_SEED = 7
DAY, HOUR, MINUTE = 86_400, 3_600, 60

# --- The company --------------------------------------------------------------------------------------------------

PROD, STAGING, SECURITY = "284716359021", "519273648150", "736182945503"
ACCOUNTS = {PROD: "prod", STAGING: "staging", SECURITY: "security"}
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1")
GLOBAL_REGION = "us-east-1"  # IAM, sign-in and other global services log here
ACCOUNT_REGIONS = {  # where each account works, with relative weights
    PROD: (("us-east-1", 6), ("eu-west-1", 3), ("ap-northeast-1", 1)),
    STAGING: (("us-west-2", 3), ("us-east-1", 1)),
    SECURITY: (("us-east-1", 1),),
}

BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3.1 Safari/605.1.15",
)
CLIS = (
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.3.0 exe/x86_64 prompt/off",
    "aws-cli/2.15.19 Python/3.11.6 Linux/6.5.0-21-generic exe/x86_64.ubuntu.22 prompt/off",
    "aws-cli/2.13.25 Python/3.11.5 Windows/10 exe/AMD64 prompt/off",
    "Boto3/1.34.50 md/Botocore#1.34.50 ua/2.0 os/macos#23.3.0 md/arch#arm64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.50",
)
TERRAFORM_UA = (
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) terraform-provider-aws/5.40.0 "
    "(https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64"
)
SDK_UA = "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.1"
LAMBDA_UA = "Boto3/1.34.42 md/Botocore#1.34.42 ua/2.0 os/linux#5.10.210-220.852.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.2 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.42"
SSM_AGENT_UA = "aws-sdk-go/1.44.260 (go1.20.12; linux; amd64) amazon-ssm-agent/3.2.2222.0"
OLD_CLI_UA = "aws-cli/1.18.69 Python/2.7.18 Linux/4.14.186-146.268.amzn2.x86_64 botocore/1.17.12"
ATTACKER_UA = "aws-cli/1.16.312 Python/3.8.0 Linux/5.4.0-42-generic botocore/1.13.48"
CONSOLE_EC2_UA = "console.ec2.amazonaws.com"
AWS_INTERNAL = "AWS Internal"


@dataclass(frozen=True)
class Person:
    """Someone at the company with an IAM user: works from home-country addresses during local office hours."""

    name: str
    account: str
    country: str
    utc_offset: int
    ips: tuple[str, ...]
    browser: str
    cli: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:user/{self.name}"


# Real public addresses of large ISPs in each person's country (checked with geoip2fast in tests/test_demo.py).
PEOPLE = {
    person.name: person
    for person in (
        Person("alice", PROD, "US", -5, ("73.158.44.21", "73.158.44.90"), BROWSERS[0], CLIS[0]),
        Person("bob", PROD, "US", -8, ("24.6.131.7", "24.6.131.58"), BROWSERS[2], CLIS[1]),
        Person("carlos", PROD, "BR", -3, ("189.1.12.5", "189.1.12.73"), BROWSERS[1], CLIS[2]),
        Person("dana", PROD, "DE", 1, ("80.156.86.78", "80.156.86.141"), BROWSERS[3], CLIS[0]),
        Person("emma", PROD, "GB", 0, ("86.0.14.23", "86.0.14.201"), BROWSERS[0], CLIS[3]),
        Person("kenji", PROD, "JP", 9, ("153.156.20.8", "153.156.20.77"), BROWSERS[1], CLIS[1]),
        Person("liam", PROD, "AU", 10, ("101.160.33.2", "101.160.33.64"), BROWSERS[2], CLIS[1]),
        Person("priya", PROD, "US", -5, ("12.154.8.10", "12.154.8.77"), BROWSERS[0], CLIS[0]),
        Person("jordan", PROD, "US", -6, ("98.207.13.4", "98.207.13.61"), BROWSERS[1], CLIS[2]),
        Person("sofia", STAGING, "DE", 1, ("217.6.10.33", "217.6.10.90"), BROWSERS[3], CLIS[3]),
        Person("tom", STAGING, "US", -5, ("73.170.20.5", "73.170.20.99"), BROWSERS[1], CLIS[1]),
        Person("nina", SECURITY, "GB", 0, ("2.24.17.9", "2.24.17.150"), BROWSERS[2], CLIS[1]),
    )
}
ADMINS = ("alice", "liam")  # who does the slow, legitimate IAM work in the background
TRAVEL_IPS = {"JP": "133.242.0.3", "GB": "81.2.69.142", "SG": "103.4.96.44", "AU": "139.130.4.5", "RU": "45.155.205.12"}
OFFICE_GB = "81.2.69.142"
CI_IPS = ("3.80.12.40", "54.86.120.9")  # build runners on EC2 in us-east-1
GITHUB_IPS = ("20.55.14.9", "40.76.3.2", "52.176.9.8")  # GitHub-hosted runners (Azure, US)
LAMBDA_IPS = ("44.192.7.81", "18.206.5.11")
AUDIT_IP = "52.90.44.3"
LEGACY_IP = "54.86.120.9"


def _stable(label: str, length: int, alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") -> str:
    """An identifier derived from a name, the same in every run (the company does not change with the seed)."""
    digest = hashlib.blake2b(label.encode(), digest_size=64).digest()
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])


def _stable_hex(label: str, length: int = 17) -> str:
    return hashlib.blake2b(label.encode(), digest_size=16).hexdigest()[:length]


def user_id(name: str, account: str) -> str:
    return "AIDA" + _stable(f"user:{account}:{name}", 17)


def access_key(name: str, account: str) -> str:
    return "AKIA" + _stable(f"key:{account}:{name}", 16)


def role_id(name: str, account: str) -> str:
    return "AROA" + _stable(f"role:{account}:{name}", 17)


@dataclass
class Network:
    """One account-region's standing network: a VPC, its subnets and groups, and instances older than the demo."""

    account: str
    region: str
    vpc: str
    cidr: str
    subnets: tuple[str, ...]
    groups: tuple[str, ...]
    fleet: tuple[str, ...]


def _network(account: str, region: str, index: int, fleet_size: int) -> Network:
    label = f"{account}:{region}"
    return Network(
        account,
        region,
        "vpc-" + _stable_hex(label + ":vpc"),
        f"10.{10 + index}.0.0/16",
        tuple("subnet-" + _stable_hex(f"{label}:subnet:{n}") for n in range(3)),
        tuple("sg-" + _stable_hex(f"{label}:sg:{n}") for n in range(3)),
        tuple("i-" + _stable_hex(f"{label}:fleet:{n}") for n in range(fleet_size)),
    )


NETWORKS = {
    (account, region): _network(account, region, index, fleet)
    for index, (account, region, fleet) in enumerate(
        (
            (PROD, "us-east-1", 6),
            (PROD, "eu-west-1", 3),
            (PROD, "ap-northeast-1", 2),
            (STAGING, "us-west-2", 2),
            (STAGING, "us-east-1", 1),
            (SECURITY, "us-east-1", 1),
        )
    )
}
BUCKETS = {
    PROD: ("acme-prod-assets", "acme-data-lake", "acme-prod-logs", "acme-terraform-state"),
    STAGING: ("acme-staging-assets", "acme-staging-terraform-state"),
    SECURITY: ("acme-security-findings", "acme-org-cloudtrail"),
}
TRAIL_NAME = "acme-org-trail"
GROUPS = ("developers", "data-engineers", "readonly", "oncall")
READ_POLICIES = (
    "arn:aws:iam::aws:policy/ReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess",
    "arn:aws:iam::aws:policy/CloudWatchReadOnlyAccess",
)
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
NEW_HIRES = ("maria.garcia", "wei.chen", "olga.petrova", "ahmed.hassan", "lucy.brown", "raj.patel", "ines.silva",
             "jan.kowalski", "yuki.tanaka", "omar.khan", "eva.novak", "paul.martin")
INSTANCE_TYPES = ("t3.micro", "t3.small", "t3.medium", "m6i.large", "c6i.xlarge", "r6i.large")
IMAGES = ("ami-0c7217cdde317cfec", "ami-0440d3b780d96b29d", "ami-07d9b9ddc6cd8dd30")
HOSTILE_STRINGS = ("<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "**bold**",
                   "<script>alert('trailstream')</script>")

# --- Identifiers, times, identities ---------------------------------------------------------------------------------

_VARIANT = "89ab"
_SECONDS = tuple(f"{second:02d}Z" for second in range(60))


class _Ids:
    """Random identifiers in AWS's shapes, all drawn from one seeded generator."""

    __slots__ = ("bits",)

    def __init__(self, rng: random.Random):
        self.bits = rng.getrandbits

    def uuid(self) -> str:
        n = self.bits(128)
        h = "%032x" % n
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[n & 3]}{h[17:20]}-{h[20:]}"

    def resource(self, prefix: str) -> str:
        return "%s-%017x" % (prefix, self.bits(68))

    def key(self, prefix: str = "ASIA") -> str:
        return prefix + base64.b32encode(self.bits(80).to_bytes(10, "big")).decode()

    def s3_request(self) -> str:
        return "%016X" % self.bits(64)

    def token(self, size: int) -> str:
        return base64.urlsafe_b64encode(self.bits(size * 8).to_bytes(size, "big")).decode().rstrip("=")


class _Clock:
    """eventTime text for epoch seconds; formats each minute once."""

    __slots__ = ("minutes",)

    def __init__(self):
        self.minutes: dict[int, str] = {}

    def __call__(self, moment: int) -> str:
        minute, second = divmod(moment, 60)
        prefix = self.minutes.get(minute)
        if prefix is None:
            prefix = self.minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return prefix + _SECONDS[second]


def _iso(moment: int) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(moment))


def _aws_date(moment: int) -> str:
    """The 'Mar 3, 2026 10:12:45 AM' style IAM and STS responses use."""
    return time.strftime("%b %-d, %Y %-I:%M:%S %p", time.gmtime(moment))


def iam_user_identity(person: Person, key: str | None = None, session_start: int | None = None) -> dict:
    identity = {"type": "IAMUser", "principalId": user_id(person.name, person.account), "arn": person.arn,
                "accountId": person.account, "accessKeyId": key or access_key(person.name, person.account),
                "userName": person.name}
    if session_start is not None:  # a console session: temporary credentials
        identity["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                                      "attributes": {"creationDate": _iso(session_start), "mfaAuthenticated": "true"}}
    return identity


def role_identity(account: str, role: str, session: str, created: int, key: str, mfa: bool = False,
                  invoked_by: str | None = None, path: str = "", ec2: bool = False) -> dict:
    rid = role_id(role, account)
    identity = {"type": "AssumedRole", "principalId": f"{rid}:{session}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
                "accessKeyId": key,
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": rid,
                                                     "arn": f"arn:aws:iam::{account}:role/{path}{role}",
                                                     "accountId": account, "userName": role},
                                   "webIdFederationData": {},
                                   "attributes": {"creationDate": _iso(created), "mfaAuthenticated": str(mfa).lower()}}}
    if ec2:
        identity["sessionContext"]["ec2RoleDelivery"] = "2.0"
    if invoked_by:
        identity["invokedBy"] = invoked_by
    return identity


def root_identity(account: str, key: str = "", session_start: int | None = None) -> dict:
    identity = {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account,
                "accessKeyId": key}
    if session_start is not None:
        identity["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                                      "attributes": {"creationDate": _iso(session_start), "mfaAuthenticated": "true"}}
    return identity


@dataclass(slots=True)
class Session:
    """Who calls, from where, with what: shared by every record of one sign-in or credential lifetime."""

    identity: dict
    account: str
    ip: str
    ua: str
    principal: str
    tls: bool = True
    console: bool = False
    extra: dict | None = None

    def via(self, source: str, invoked_by: bool = False) -> "Session":
        """The same caller seen through AWS itself ('AWS Internal') or a service acting on its behalf."""
        identity = {**self.identity, "invokedBy": source} if invoked_by else self.identity
        return Session(identity, self.account, source, source, self.principal, tls=False)


# --- The record builder ---------------------------------------------------------------------------------------------

_SIGNIN_TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
               "clientProvidedHostHeader": "signin.aws.amazon.com"}
_LOGIN_OK = {"ConsoleLogin": "Success"}
_LOGIN_FAILED = {"ConsoleLogin": "Failure"}
_GLOBAL_HOSTS = {"iam": "iam.amazonaws.com", "cloudfront": "cloudfront.amazonaws.com"}
_S3_AUTH = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0,
            "AuthenticationMethod": "AuthHeader"}
_S3_PUT_RESPONSE = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-bucket-key-enabled": "true"}


class _Builder:
    """Appends CloudTrail records to `out`; everything random comes from `rng` so output is reproducible."""

    def __init__(self, rng: random.Random, start: int, end: int):
        self.rng = rng
        self.ids = _Ids(rng)
        self.clock = _Clock()
        self.start, self.end = start, end
        self.out: list[dict] = []
        self._tls: dict[tuple[str, str], dict] = {}
        self._busy: dict[tuple[str, str], list[int]] = {}
        self.blackouts: dict[str, list[tuple[int, int]]] = {}

    def tls(self, source: str, region: str) -> dict:
        found = self._tls.get((source, region))
        if found is None:
            service = source.split(".", 1)[0]
            host = _GLOBAL_HOSTS.get(service) or f"{service}.{region}.amazonaws.com"
            found = self._tls[(source, region)] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                                                   "clientProvidedHostHeader": host}
        return found

    def call(self, moment: int, s: Session, region: str, source: str, name: str, read_only: bool, req=None, resp=None,
             error: tuple[str, str] | None = None, resources: list | None = None, additional: dict | None = None,
             event_type: str = "AwsApiCall", version: str = "1.09", shared: str | None = None) -> dict:
        ids = self.ids
        request_id = ids.uuid()
        if resp is not None and source == "ec2.amazonaws.com":
            resp = {"requestId": request_id, **resp}
        record = {"eventVersion": version, "userIdentity": s.identity, "eventTime": self.clock(moment),
                  "eventSource": source, "eventName": name, "awsRegion": region, "sourceIPAddress": s.ip,
                  "userAgent": s.ua}
        if error is not None:
            record["errorCode"], record["errorMessage"] = error
        record["requestParameters"] = req
        record["responseElements"] = resp
        if additional is not None:
            record["additionalEventData"] = additional
        record["requestID"] = request_id
        record["eventID"] = ids.uuid()
        record["readOnly"] = read_only
        if resources is not None:
            record["resources"] = resources
        record["eventType"] = event_type
        record["managementEvent"] = True
        record["recipientAccountId"] = s.account
        if shared is not None:
            record["sharedEventID"] = shared
        if s.extra:
            record.update(s.extra)
        record["eventCategory"] = "Management"
        if s.tls:
            record["tlsDetails"] = self._tls.get((source, region)) or self.tls(source, region)
        if s.console:
            record["sessionCredentialFromConsole"] = "true"
        self.out.append(record)
        return record

    def s3_object(self, moment: int, s: Session, region: str, name: str, bucket: str, key: str, size: int) -> dict:
        """An S3 data event (GetObject, PutObject, ...) with the resources S3 reports."""
        ids = self.ids
        read_only = name in ("GetObject", "HeadObject")
        transfer = {**_S3_AUTH, "x-amz-id-2": ids.token(54)}
        if name == "PutObject":
            transfer["bytesTransferredIn"] = size
        transfer["bytesTransferredOut"] = size if read_only else 0
        record = {"eventVersion": "1.10", "userIdentity": s.identity, "eventTime": self.clock(moment),
                  "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": region, "sourceIPAddress": s.ip,
                  "userAgent": s.ua,
                  "requestParameters": {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key},
                  "responseElements": _S3_PUT_RESPONSE if name == "PutObject" else None,
                  "additionalEventData": transfer, "requestID": ids.s3_request(), "eventID": ids.uuid(),
                  "readOnly": read_only,
                  "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                                {"accountId": s.account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
                  "eventType": "AwsApiCall", "managementEvent": False, "recipientAccountId": s.account}
        if s.extra:
            record.update(s.extra)
        record["eventCategory"] = "Data"
        if s.tls:
            record["tlsDetails"] = self.tls(f"{bucket}.s3", region)
        self.out.append(record)
        return record

    def sign_in(self, moment: int, identity: dict, account: str, ip: str, ua: str, success: bool = True,
                mfa: bool = True, mfa_device: str | None = None) -> dict:
        record = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": self.clock(moment),
                  "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "awsRegion": GLOBAL_REGION,
                  "sourceIPAddress": ip, "userAgent": ua}
        if not success:
            record["errorMessage"] = "Failed authentication"
        record["requestParameters"] = None
        record["responseElements"] = _LOGIN_OK if success else _LOGIN_FAILED
        additional = {"LoginTo": "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB_us-east-1",
                      "MobileVersion": "No"}
        if mfa and success and mfa_device:
            additional["MFAIdentifier"] = mfa_device
        additional["MFAUsed"] = "Yes" if mfa else "No"
        record["additionalEventData"] = additional
        record["eventID"] = self.ids.uuid()
        record["readOnly"] = False
        record["eventType"] = "AwsConsoleSignIn"
        record["managementEvent"] = True
        record["recipientAccountId"] = account
        record["eventCategory"] = "Management"
        record["tlsDetails"] = _SIGNIN_TLS
        self.out.append(record)
        return record

    # -- when things may happen --

    def in_blackout(self, principal: str, moment: int, until: int | None = None) -> bool:
        until = moment if until is None else until
        return any(a <= until and moment <= b for a, b in self.blackouts.get(principal, ()))

    def work_time(self, person: Person | None, after: int, principal: str = "") -> int:
        """The first moment at or after `after` when this person is at work (machines: any time) and not blacked out."""
        moment = after
        for _ in range(60):
            if person is not None:
                local = moment + person.utc_offset * HOUR
                day, second = divmod(local, DAY)
                if (day + 3) % 7 >= 5:  # Saturday or Sunday: Monday morning
                    moment += (7 - (day + 3) % 7) * DAY - second + 8 * HOUR + self.rng.randrange(2 * HOUR)
                    continue
                if second < 8 * HOUR:
                    moment += 8 * HOUR - second + self.rng.randrange(HOUR)
                    continue
                if second >= 19 * HOUR:
                    moment += DAY - second + 8 * HOUR + self.rng.randrange(HOUR)
                    continue
            blocking = [b for a, b in self.blackouts.get(principal or (person.name if person else ""), ()) if a <= moment <= b]
            if blocking:
                moment = max(blocking) + 1 + self.rng.randrange(HOUR)
                continue
            return moment
        return moment

    def after(self, person: Person | None, principal: str, moment: int, low: int, high: int) -> int:
        """A random pause of `low` to `high` seconds, then the next moment this caller works."""
        return self.work_time(person, moment + self.rng.randrange(low, high), principal)

    def busy(self, principal: str, kind: str) -> list[int]:
        """Sorted moments of this principal's events of one kind ("privilege", "refused")."""
        return self._busy.setdefault((principal, kind), [])

    def slot(self, person: Person | None, principal: str, after: int, kind: str | None = None, gap: int = 0) -> int:
        """The first moment at or after `after` that suits work_time and, for a `kind` ("privilege", "refused"),
        has no other event of that kind by this principal within `gap` seconds; the moment is then taken."""
        moment = self.work_time(person, after, principal)
        if kind is None:
            return moment
        taken = self.busy(principal, kind)
        while True:
            index = bisect_left(taken, moment)
            if index > 0 and moment - taken[index - 1] < gap:
                moment = self.work_time(person, taken[index - 1] + gap, principal)
            elif index < len(taken) and taken[index] - moment < gap:
                moment = self.work_time(person, taken[index] + gap, principal)
            else:
                taken.insert(index, moment)
                return moment


# --- Who calls: sessions for people and machines ------------------------------------------------------------------

def cli_session(person: Person, ip: str | None = None) -> Session:
    return Session(iam_user_identity(person), person.account, ip or person.ips[0], person.cli, person.name)


def console_session(b: _Builder, person: Person, login: int, ip: str | None = None) -> Session:
    identity = iam_user_identity(person, b.ids.key(), session_start=login)
    return Session(identity, person.account, ip or person.ips[0], person.browser, person.name, console=True)


def role_session(b: _Builder, account: str, role: str, name: str, moment: int, ip: str, ua: str, **options) -> Session:
    created = moment - b.rng.randrange(1, 900)
    identity = role_identity(account, role, name, created, b.ids.key(), **options)
    return Session(identity, account, ip, ua, f"{role}/{name}")


def service_session(account: str, service: str) -> Session:
    return Session({"type": "AWSService", "invokedBy": service}, account, service, service, service, tls=False)


def github_session(b: _Builder, account: str, moment: int) -> Session:
    return role_session(b, account, "GitHubDeploy", f"gha-{b.rng.randrange(7_000_000_000, 8_000_000_000)}", moment,
                        b.rng.choice(GITHUB_IPS), TERRAFORM_UA)


def _bucket_host(bucket: str, region: str = GLOBAL_REGION) -> str:
    return f"{bucket}.s3.{region}.amazonaws.com"


def _policy(actions: list[str], resource: str = "*", effect: str = "Allow") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": actions, "Resource": resource}]},
                      indent=4)


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}, indent=4)


def _unauthorized_message(s: Session, action: str, resource: str, ec2: bool = False) -> str:
    arn = s.identity.get("arn", "")
    text = (f"User: {arn} is not authorized to perform: {action} on resource: {resource} "
            f"because no identity-based policy allows the {action} action")
    if ec2:
        return f"You are not authorized to perform this operation. {text}. Encoded authorization failure message: "
    return text


# --- EC2 shapes shared by scenarios and planted cases --------------------------------------------------------------

def _items(key: str, values) -> dict:
    return {"items": [{key: value} for value in values]}


def permission(protocol: str, port: int | None, cidrs=(), cidrs6=(), groups=(), account: str = "",
               description: str = "") -> dict:
    """One ipPermissions item as AuthorizeSecurityGroupIngress/Egress requests carry it."""
    item = {"ipProtocol": protocol}
    if port is not None:
        item["fromPort"], item["toPort"] = port, port
    item["groups"] = {"items": [{"groupId": g, "userId": account} for g in groups]} if groups else {}
    ranges = [{"cidrIp": c, **({"description": description} if description else {})} for c in cidrs]
    item["ipRanges"] = {"items": ranges} if ranges else {}
    item["ipv6Ranges"] = {"items": [{"cidrIpv6": c} for c in cidrs6]} if cidrs6 else {}
    item["prefixListIds"] = {}
    return item


def _rule_set(b: _Builder, account: str, group: str, items: list[dict], egress: bool) -> dict:
    rules = []
    for item in items:
        base = {"groupOwnerId": account, "groupId": group, "securityGroupRuleId": b.ids.resource("sgr"),
                "isEgress": egress, "ipProtocol": item["ipProtocol"],
                "fromPort": item.get("fromPort", -1), "toPort": item.get("toPort", -1)}
        for entry in item["ipRanges"].get("items", ()):
            rules.append({**base, "cidrIpv4": entry["cidrIp"]})
        for entry in item["ipv6Ranges"].get("items", ()):
            rules.append({**base, "securityGroupRuleId": b.ids.resource("sgr"), "cidrIpv6": entry["cidrIpv6"]})
        for entry in item["groups"].get("items", ()):
            rules.append({**base, "securityGroupRuleId": b.ids.resource("sgr"),
                          "referencedGroupInfo": {"groupId": entry["groupId"], "userId": account}})
    return {"items": rules}


def create_security_group(b: _Builder, moment: int, s: Session, net: Network, name: str, description: str,
                          tags: list[dict] | None = None) -> tuple[dict, str]:
    group = b.ids.resource("sg")
    req = {"groupName": name, "groupDescription": description, "vpcId": net.vpc}
    if tags:
        req["tagSpecificationSet"] = {"items": [{"resourceType": "security-group", "tags": tags}]}
    resp = {"_return": True, "groupId": group,
            "securityGroupArn": f"arn:aws:ec2:{net.region}:{net.account}:security-group/{group}"}
    return b.call(moment, s, net.region, "ec2.amazonaws.com", "CreateSecurityGroup", False, req, resp), group


def authorize(b: _Builder, moment: int, s: Session, net: Network, group: str, items: list[dict],
              egress: bool = False) -> dict:
    name = "AuthorizeSecurityGroupEgress" if egress else "AuthorizeSecurityGroupIngress"
    resp = {"_return": True, "securityGroupRuleSet": _rule_set(b, net.account, group, items, egress)}
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False,
                  {"groupId": group, "ipPermissions": {"items": items}}, resp)


def revoke(b: _Builder, moment: int, s: Session, net: Network, group: str, items: list[dict], egress: bool = False):
    name = "RevokeSecurityGroupEgress" if egress else "RevokeSecurityGroupIngress"
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False,
                  {"groupId": group, "ipPermissions": {"items": items}}, {"_return": True})


def _private_ip(b: _Builder, net: Network) -> str:
    second = net.cidr.split(".")[1]
    return f"10.{second}.{b.rng.randrange(1, 4)}.{b.rng.randrange(4, 250)}"


def run_instances(b: _Builder, moment: int, s: Session, net: Network, count: int, instance_type: str,
                  name: str, error: tuple[str, str] | None = None) -> tuple[dict, list[str]]:
    rng, ids = b.rng, b.ids
    subnet, group, image = rng.choice(net.subnets), net.groups[1], rng.choice(IMAGES)
    zone = net.region + "abc"[net.subnets.index(subnet)]
    tags = [{"key": "Name", "value": name}]
    req = {"instancesSet": {"items": [{"imageId": image, "minCount": count, "maxCount": count}]},
           "instanceType": instance_type, "blockDeviceMapping": {}, "monitoring": {"enabled": False},
           "disableApiTermination": False, "disableApiStop": False, "clientToken": ids.uuid(), "subnetId": subnet,
           "groupSet": _items("groupId", [group]),
           "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": tags}]},
           "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}
    if error is not None:
        return b.call(moment, s, net.region, "ec2.amazonaws.com", "RunInstances", False, req, None, error=error), []
    launched, items = [], []
    for index in range(count):
        instance, private_ip = ids.resource("i"), _private_ip(b, net)
        launched.append(instance)
        items.append({
            "instanceId": instance, "imageId": image, "instanceState": {"code": 0, "name": "pending"},
            "privateDnsName": f"ip-{private_ip.replace('.', '-')}.ec2.internal", "amiLaunchIndex": index,
            "productCodes": {}, "instanceType": instance_type, "launchTime": moment * 1000,
            "placement": {"availabilityZone": zone, "tenancy": "default"}, "monitoring": {"state": "disabled"},
            "subnetId": subnet, "vpcId": net.vpc, "privateIpAddress": private_ip,
            "stateReason": {"code": "pending", "message": "pending"}, "architecture": "x86_64",
            "rootDeviceType": "ebs", "rootDeviceName": "/dev/xvda", "blockDeviceMapping": {},
            "virtualizationType": "hvm", "hypervisor": "xen", "groupSet": _items("groupId", [group]),
            "networkInterfaceSet": {"items": [{
                "networkInterfaceId": ids.resource("eni"), "subnetId": subnet, "vpcId": net.vpc,
                "ownerId": net.account, "status": "in-use", "privateIpAddress": private_ip, "sourceDestCheck": True,
                "interfaceType": "interface", "groupSet": _items("groupId", [group]),
                "attachment": {"attachmentId": ids.resource("eni-attach"), "deviceIndex": 0, "networkCardIndex": 0,
                               "status": "attaching", "attachTime": moment * 1000, "deleteOnTermination": True},
                "ipv6AddressesSet": {}, "tagSet": {}}]},
            "ebsOptimized": False, "enaSupport": True, "sourceDestCheck": True,
            "metadataOptions": {"state": "pending", "httpTokens": "required", "httpPutResponseHopLimit": 2,
                                "httpEndpoint": "enabled"},
            "tagSet": {"items": tags}})
    resp = {"reservationId": ids.resource("r"), "ownerId": net.account, "groupSet": {},
            "instancesSet": {"items": items}}
    return b.call(moment, s, net.region, "ec2.amazonaws.com", "RunInstances", False, req, resp), launched


_STATES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
_TRANSITIONS = {"StopInstances": ("running", "stopping"), "StartInstances": ("stopped", "pending"),
                "TerminateInstances": ("running", "shutting-down")}


def instance_action(b: _Builder, moment: int, s: Session, net: Network, name: str, instances: list[str],
                    previous: str | None = None) -> dict:
    """Start/Stop/Reboot/TerminateInstances with the request and state-change response EC2 logs."""
    req = {"instancesSet": _items("instanceId", instances)}
    if name == "RebootInstances":
        return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False, req, {"_return": True})
    before, after = _TRANSITIONS[name]
    before = previous or before
    if name == "StopInstances":
        req["force"] = False
    items = [{"instanceId": i, "currentState": {"code": _STATES[after], "name": after},
              "previousState": {"code": _STATES[before], "name": before}} for i in instances]
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False, req, {"instancesSet": {"items": items}})


def allocate_address(b: _Builder, moment: int, s: Session, net: Network) -> tuple[dict, str, str]:
    allocation = b.ids.resource("eipalloc")
    public_ip = f"{b.rng.choice((3, 18, 34, 44, 52, 54))}.{b.rng.randrange(1, 255)}.{b.rng.randrange(256)}.{b.rng.randrange(1, 255)}"
    resp = {"publicIp": public_ip, "domain": "vpc", "allocationId": allocation, "publicIpv4Pool": "amazon",
            "networkBorderGroup": net.region}
    return (b.call(moment, s, net.region, "ec2.amazonaws.com", "AllocateAddress", False, {"domain": "vpc"}, resp),
            allocation, public_ip)


def associate_address(b: _Builder, moment: int, s: Session, net: Network, allocation: str, instance: str | None = None,
                      interface: str | None = None) -> tuple[dict, str]:
    association = b.ids.resource("eipassoc")
    req = {"allocationId": allocation, "allowReassociation": False}
    if instance:
        req["instanceId"] = instance
    else:
        req["networkInterfaceId"] = interface
    record = b.call(moment, s, net.region, "ec2.amazonaws.com", "AssociateAddress", False, req,
                    {"_return": True, "associationId": association})
    return record, association


def ec2_ok(b: _Builder, moment: int, s: Session, net: Network, name: str, req: dict, resp: dict | None = None) -> dict:
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False, req, resp if resp is not None else {"_return": True})


def iam(b: _Builder, moment: int, s: Session, name: str, req: dict | None, resp: dict | None = None,
        error: tuple[str, str] | None = None) -> dict:
    read_only = name.startswith(("Get", "List"))
    return b.call(moment, s, GLOBAL_REGION, "iam.amazonaws.com", name, read_only, req, resp, error=error)


def create_user_response(account: str, name: str, moment: int) -> dict:
    return {"user": {"path": "/", "userName": name, "userId": user_id(name, account),
                     "arn": f"arn:aws:iam::{account}:user/{name}", "createDate": _aws_date(moment)}}


def create_access_key(b: _Builder, moment: int, s: Session, owner: str, name_in_request: bool = True) -> dict:
    key = b.ids.key("AKIA")
    resp = {"accessKey": {"userName": owner, "accessKeyId": key, "status": "Active", "createDate": _aws_date(moment)}}
    return iam(b, moment, s, "CreateAccessKey", {"userName": owner} if name_in_request else None, resp)


# --- Planted cases ------------------------------------------------------------------------------------------------

_PLANTED_SEED = "trailstream-demo-planted"


def _plant(b: _Builder, end: int) -> dict[str, list[dict]]:
    """Write the planted cases (all in the last 7 days before `end`) and return their descriptions.

    Draws only from its own generator, never branching on time, so eventIDs are the same for every seed and end.
    """
    saved_rng, saved_ids = b.rng, b.ids
    b.rng = random.Random(_PLANTED_SEED)
    b.ids = _Ids(b.rng)
    cases: dict[str, list[dict]] = {}
    people = PEOPLE

    def case(kind: str, principal: str, expected: bool, records: list[dict], **details) -> None:
        details.setdefault("account", records[0]["recipientAccountId"])
        cases.setdefault(kind, []).append({
            "principal": principal, "expected": expected, "event_ids": [r["eventID"] for r in records],
            "seconds_before_end": [end - _epoch(r["eventTime"]) for r in records], **details})

    def blackout(principal: str, start: int, stop: int) -> None:
        b.blackouts.setdefault(principal, []).append((start, stop))

    prod_east = NETWORKS[(PROD, "us-east-1")]

    # Instances and an Elastic IP that later planted events act on.
    alice = people["alice"]
    t0 = end - 6 * DAY - 20 * HOUR
    alice_cli = cli_session(alice)
    _, (batch_a, batch_b) = run_instances(b, t0, alice_cli, prod_east, 2, "c6i.xlarge", "batch-worker")
    _, allocation, public_ip = allocate_address(b, t0 + 6 * MINUTE, alice_cli, prod_east)
    associate_address(b, t0 + 7 * MINUTE, alice_cli, prod_east, allocation, instance=batch_a)

    # Root: a console sign-in with MFA and an API call (terminating one of the batch workers).
    t = end - 6 * DAY - 2 * HOUR
    login = b.sign_in(t, root_identity(PROD), PROD, alice.ips[0], alice.browser,
                      mfa_device=f"arn:aws:iam::{PROD}:mfa/root-account-mfa-device")
    root_console = Session(root_identity(PROD, b.ids.key(), session_start=t), PROD, alice.ips[0], CONSOLE_EC2_UA,
                           "root", console=True)
    terminated_by_root = instance_action(b, t + 8 * MINUTE, root_console, prod_east, "TerminateInstances", [batch_b])
    case("root_activity", "root", True, [login], ips=[alice.ips[0]], countries=["US"])
    case("root_activity", "root", True, [terminated_by_root], instance_ids=[batch_b])

    # Hostile text in request parameters and the user agent: pages must show it as text.
    kenji = people["kenji"]
    hostile_session = Session(iam_user_identity(kenji), PROD, kenji.ips[0], f"{HOSTILE_STRINGS[3]} {kenji.cli}", "kenji")
    hostile, _ = create_security_group(
        b, end - 6 * DAY + 3 * HOUR, hostile_session, prod_east, HOSTILE_STRINGS[2], HOSTILE_STRINGS[0],
        tags=[{"key": "Name", "value": HOSTILE_STRINGS[1]}, {"key": "Note", "value": HOSTILE_STRINGS[3]}])
    case("hostile_content", "kenji", True, [hostile], strings=list(HOSTILE_STRINGS))

    # Impossible travel: bob signs in from the US, and his access key is used from Japan 30 minutes later.
    bob = people["bob"]
    t = end - 5 * DAY + 3 * HOUR
    blackout("bob", t - 6 * HOUR, t + 18 * HOUR)
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
    case("impossible_travel", "bob", True, us_records + jp_records, countries=["US", "JP"],
         ips=[bob.ips[0], TRAVEL_IPS["JP"]], minutes_apart=30)

    # Feasible travel: dana signs in from Germany, then works from London ten hours later.
    dana = people["dana"]
    t = end - 4 * DAY - 2 * HOUR
    blackout("dana", t - 12 * HOUR, t + 30 * HOUR)
    de_records = [b.sign_in(t, iam_user_identity(dana) | {"accessKeyId": ""}, PROD, dana.ips[0], dana.browser,
                            mfa_device=f"arn:aws:iam::{PROD}:mfa/dana")]
    gb = cli_session(dana, TRAVEL_IPS["GB"])
    gb_records = [
        b.call(t + 10 * HOUR, gb, "eu-west-1", "sts.amazonaws.com", "GetCallerIdentity", True),
        b.call(t + 10 * HOUR + 2 * MINUTE, gb, "eu-west-1", "ec2.amazonaws.com", "DescribeInstances", True,
               _DESCRIBE_INSTANCES),
    ]
    case("impossible_travel", "dana", False, de_records + gb_records, countries=["DE", "GB"],
         ips=[dana.ips[0], TRAVEL_IPS["GB"]], minutes_apart=600)

    # Not places: emma's calls arrive from her GB address, from AWS itself, through a service, and from a VPC endpoint.
    emma = people["emma"]
    t = end - 3 * DAY - 6 * HOUR
    blackout("emma", t - 2 * HOUR, t + 2 * HOUR)
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
    case("impossible_travel", "emma", False, internal_records, countries=["GB"],
         ips=[emma.ips[0], AWS_INTERNAL, "cloudformation.amazonaws.com", "10.10.2.44"])

    # A burst of failed sign-ins for liam, from an Australian address that is not his.
    t = end - 3 * DAY + 9 * HOUR
    blackout("liam", t - 2 * HOUR, t + 2 * HOUR)
    failure_identity = {"type": "IAMUser", "principalId": user_id("liam", PROD), "accountId": PROD,
                        "accessKeyId": "", "userName": "liam"}
    failures = [b.sign_in(t + 20 * n, failure_identity, PROD, TRAVEL_IPS["AU"], BROWSERS[1], success=False)
                for n in range(12)]
    case("console_login_failure_burst", "liam", True, failures, ips=[TRAVEL_IPS["AU"]], countries=["AU"], window_seconds=220)

    # Two mistyped passwords an hour apart, each followed by a successful sign-in.
    carlos = people["carlos"]
    t = end - 2 * DAY + 5 * HOUR
    blackout("carlos", t - HOUR, t + 2 * HOUR)
    carlos_failure = {"type": "IAMUser", "principalId": user_id("carlos", PROD), "accountId": PROD,
                      "accessKeyId": "", "userName": "carlos"}
    typos = []
    for offset in (0, HOUR):
        typos.append(b.sign_in(t + offset, carlos_failure, PROD, carlos.ips[0], carlos.browser, success=False))
        b.sign_in(t + offset + 40, iam_user_identity(carlos) | {"accessKeyId": ""}, PROD, carlos.ips[0],
                  carlos.browser, mfa_device=f"arn:aws:iam::{PROD}:mfa/carlos")
    case("console_login_failure_burst", "carlos", False, typos, ips=[carlos.ips[0]], countries=["BR"], window_seconds=HOUR)

    # A privilege-change spree: 25 IAM and security-group changes in under ten minutes.
    jordan = people["jordan"]
    t = end - 2 * DAY + 8 * HOUR
    blackout("jordan", t - HOUR, t + HOUR)
    spree = _spree(b, t, cli_session(jordan), prod_east)
    case("privilege_change_spree", "jordan", True, spree, window_seconds=_epoch(spree[-1]["eventTime"]) - t)

    # Five changes spread over a day: emma sets up a data pipeline role.
    t = end - 2 * DAY - 20 * HOUR
    slow = _pipeline_changes(b, t, cli_session(emma), 5 * HOUR)
    case("privilege_change_spree", "emma", False, slow, window_seconds=20 * HOUR)

    # A stolen legacy key: a new admin user with a key, then CloudTrail, GuardDuty and Config switched off.
    legacy = legacy_actor()
    t = end - 1 * DAY - 3 * HOUR
    blackout(legacy.name, t - 30 * HOUR, t + 30 * HOUR)
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
    case("access_key_for_other_user", legacy.name, True, [foreign_key], target_user="backup-admin", **where)
    case("admin_policy_attached", legacy.name, True, [admin], policy_arn=ADMIN_POLICY, target_user="backup-admin")
    case("trail_tampering", legacy.name, True, [stop], trail=trail_arn)
    case("trail_tampering", legacy.name, True, [delete], trail=trail_arn)
    case("detector_disabled", legacy.name, True, [detector], service="guardduty.amazonaws.com")
    case("detector_disabled", legacy.name, True, [recorder], service="config.amazonaws.com")

    # Look-alikes that are fine: a read-only policy attached, and a key created by its owner.
    t = end - 1 * DAY + 2 * HOUR
    readonly = iam(b, t, cli_session(alice), "AttachUserPolicy", {"userName": "tom", "policyArn": READ_POLICIES[0]})
    case("admin_policy_attached", "alice", False, [readonly], policy_arn=READ_POLICIES[0], target_user="tom")
    priya = people["priya"]
    own_key = create_access_key(b, t + 30 * MINUTE, cli_session(priya), "priya")
    case("access_key_for_other_user", "priya", False, [own_key], target_user="priya")

    # A burst of refused calls from the CI user, and three refusals spread over a day for kenji.
    bot = build_bot_actor()
    t = end - 2 * DAY - 4 * HOUR
    blackout(bot.name, t - 2 * HOUR, t + 2 * HOUR)
    burst = _refusal_burst(b, t, Session(_machine_user_identity(bot), PROD, CI_IPS[0], TERRAFORM_UA, bot.name), prod_east)
    case("unauthorized_burst", bot.name, True, burst, window_seconds=_epoch(burst[-1]["eventTime"]) - t)
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
    case("unauthorized_burst", "kenji", False, scattered, window_seconds=7 * HOUR)

    # Sign-ins: one without MFA; an SSO role sign-in (MFA happens at the identity provider, so "No" is normal).
    tom = people["tom"]
    t = end - 1 * DAY - 8 * HOUR
    no_mfa = b.sign_in(t, iam_user_identity(tom) | {"accessKeyId": ""}, STAGING, tom.ips[0], tom.browser, mfa=False)
    case("console_login_without_mfa", "tom", True, [no_mfa], ips=[tom.ips[0]], countries=["US"])
    sso_role = "AWSReservedSSO_AdministratorAccess_4f2a9c0e1b7d3a65"
    sso_identity = role_identity(STAGING, sso_role, "sofia@acme.example", t + 2 * HOUR, "",
                                 path="aws-reserved/sso.amazonaws.com/")
    sso = b.sign_in(t + 2 * HOUR, sso_identity, STAGING, people["sofia"].ips[0], people["sofia"].browser, mfa=False)
    case("console_login_without_mfa", f"{sso_role}/sofia@acme.example", False, [sso],
         note="federated (role) sign-ins report MFAUsed 'No': MFA happens at the identity provider")

    # A first sign-in from a new country: sofia always signs in from Germany, once from Singapore.
    sofia = people["sofia"]
    t = end - 3 * DAY + 12 * HOUR
    blackout("sofia", t - 36 * HOUR, t + 36 * HOUR)
    abroad = b.sign_in(t, iam_user_identity(sofia) | {"accessKeyId": ""}, STAGING, TRAVEL_IPS["SG"], sofia.browser,
                       mfa_device=f"arn:aws:iam::{STAGING}:mfa/sofia")
    case("new_country_sign_in", "sofia", True, [abroad], ips=[TRAVEL_IPS["SG"]], countries=["SG"], home_country="DE")
    t = end - 4 * DAY + 20 * HOUR
    at_home = b.sign_in(t, iam_user_identity(kenji) | {"accessKeyId": ""}, PROD, kenji.ips[1], kenji.browser,
                        mfa_device=f"arn:aws:iam::{PROD}:mfa/kenji")
    case("new_country_sign_in", "kenji", False, [at_home], ips=[kenji.ips[1]], countries=["JP"], home_country="JP")

    # Security groups: SSH and RDP opened to the internet (admin ports), HTTPS opened to it (fine), egress (fine).
    t = end - 1 * DAY + 5 * HOUR
    priya_console = Session(console_session(b, priya, t - 10 * MINUTE).identity, PROD, priya.ips[0], CONSOLE_EC2_UA,
                            "priya", console=True)
    _, bastion = create_security_group(b, t, priya_console, prod_east, "bastion-ssh", "SSH bastion")
    ssh = authorize(b, t + 2 * MINUTE, priya_console, prod_east, bastion,
                    [permission("tcp", 22, cidrs=["0.0.0.0/0"], description="temporary")])
    _, jump = create_security_group(b, t + 20 * MINUTE, priya_console, prod_east, "windows-jump", "RDP jump host")
    rdp = authorize(b, t + 22 * MINUTE, priya_console, prod_east, jump, [permission("tcp", 3389, cidrs6=["::/0"])])
    case("security_group_open_to_world", "priya", True, [ssh], group_id=bastion, port=22, cidr="0.0.0.0/0")
    case("security_group_open_to_world", "priya", True, [rdp], group_id=jump, port=3389, cidr="::/0")
    closed = revoke(b, t + 3 * HOUR, cli_session(alice), prod_east, bastion,
                    [permission("tcp", 22, cidrs=["0.0.0.0/0"])])
    case("security_group_open_to_world", "alice", False, [closed], group_id=bastion, port=22, cidr="0.0.0.0/0",
         note="a revoke closes the rule")
    t = end - 5 * DAY + 7 * HOUR
    deploy = github_session(b, PROD, t)
    _, web = create_security_group(b, t, deploy, prod_east, "web-alb", "Public load balancer")
    https = authorize(b, t + 20, deploy, prod_east, web,
                      [permission("tcp", 443, cidrs=["0.0.0.0/0"], cidrs6=["::/0"]),
                       permission("tcp", 80, cidrs=["0.0.0.0/0"])])
    egress = authorize(b, t + 40, deploy, prod_east, web, [permission("-1", None, cidrs=["0.0.0.0/0"])], egress=True)
    case("security_group_open_to_world", deploy.principal, False, [https], group_id=web, port=443, cidr="0.0.0.0/0",
         note="web ports open to the world are expected; only admin ports count")
    case("security_group_open_to_world", deploy.principal, False, [egress], group_id=web, port=None, cidr="0.0.0.0/0",
         note="egress to the world is normal")

    # An error code seen exactly once.
    t = end - 2 * DAY + 15 * HOUR
    rare_session = github_session(b, PROD, t)
    rare, _ = run_instances(b, t, rare_session, NETWORKS[(PROD, "ap-northeast-1")], 4, "p4d.24xlarge", "ml-training",
                            error=("Server.InsufficientInstanceCapacity",
                                   "We currently do not have sufficient p4d.24xlarge capacity in the Availability "
                                   "Zone you requested (ap-northeast-1a)."))
    case("rare_error", rare_session.principal, True, [rare], error_code="Server.InsufficientInstanceCapacity")

    # The surviving batch worker: its Elastic IP released, then the instance terminated.
    t = end - 1 * DAY + 3 * HOUR
    detach = ec2_ok(b, t, alice_cli, prod_east, "DisassociateAddress", {"allocationId": allocation})
    release = ec2_ok(b, t + MINUTE, alice_cli, prod_east, "ReleaseAddress", {"allocationId": allocation})
    case("elastic_ip_released", "alice", True, [release], allocation_id=allocation, public_ip=public_ip,
         disassociate_event_id=detach["eventID"])
    terminated = instance_action(b, t + HOUR, alice_cli, prod_east, "TerminateInstances", [batch_a])
    case("instance_terminated", "alice", True, [terminated], instance_ids=[batch_a])
    case("instance_terminated", "root", True, [terminated_by_root], instance_ids=[batch_b])

    b.rng, b.ids = saved_rng, saved_ids
    return cases


def _epoch(event_time: str) -> int:
    return int(parse_iso_utc(event_time).timestamp())


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


# --- Actors of the background -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Machine:
    """An automated caller with an IAM user and a long-lived access key."""

    name: str
    account: str
    ips: tuple[str, ...]
    ua: str


def build_bot_actor() -> Machine:
    return Machine("build-bot", PROD, CI_IPS[:1], TERRAFORM_UA)


def legacy_actor() -> Machine:
    return Machine("svc-legacy", PROD, (LEGACY_IP,), OLD_CLI_UA)


def _machine_user_identity(machine: Machine) -> dict:
    return {"type": "IAMUser", "principalId": user_id(machine.name, machine.account),
            "arn": f"arn:aws:iam::{machine.account}:user/{machine.name}", "accountId": machine.account,
            "accessKeyId": access_key(machine.name, machine.account), "userName": machine.name}


# Read-only calls: (eventSource, eventName, requestParameters, global). Constant parameters are shared dicts.
_DESCRIBE_INSTANCES = {"instancesSet": {}, "filterSet": {}}
_DESCRIBE_GROUPS = {"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}}
EC2_READS = (
    ("ec2.amazonaws.com", "DescribeInstances", _DESCRIBE_INSTANCES, False),
    ("ec2.amazonaws.com", "DescribeInstanceStatus", {"instancesSet": {}, "filterSet": {}, "includeAllInstances": False}, False),
    ("ec2.amazonaws.com", "DescribeSecurityGroups", _DESCRIBE_GROUPS, False),
    ("ec2.amazonaws.com", "DescribeSecurityGroupRules", {"securityGroupRuleIdSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeVpcs", {"vpcSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeSubnets", {"subnetSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeRouteTables", {"routeTableIdSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeNetworkAcls", {"networkAclIdSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeAddresses", {"publicIpsSet": {}, "allocationIdsSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeVolumes", {"volumeSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeImages", {"executableBySet": {}, "imagesSet": {}, "ownersSet": {"items": [{"owner": "self"}]}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeKeyPairs", {"keySet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeInternetGateways", {"internetGatewayIdSet": {}, "filterSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeNatGateways", {"DescribeNatGatewaysRequest": {}}, False),
    ("ec2.amazonaws.com", "DescribeAvailabilityZones", {"availabilityZoneSet": {}, "availabilityZoneIdSet": {}}, False),
    ("ec2.amazonaws.com", "DescribeRegions", {"regionSet": {}}, False),
)
IAM_READS = (
    ("iam.amazonaws.com", "ListUsers", None, True),
    ("iam.amazonaws.com", "ListRoles", None, True),
    ("iam.amazonaws.com", "ListGroups", None, True),
    ("iam.amazonaws.com", "ListPolicies", {"scope": "Local", "onlyAttached": False}, True),
    ("iam.amazonaws.com", "GetAccountSummary", None, True),
    ("iam.amazonaws.com", "GetAccountPasswordPolicy", None, True),
    ("iam.amazonaws.com", "ListAccountAliases", None, True),
    ("iam.amazonaws.com", "GetRole", {"roleName": "GitHubDeploy"}, True),
    ("iam.amazonaws.com", "ListAttachedRolePolicies", {"roleName": "web-app"}, True),
)
OTHER_READS = (
    ("s3.amazonaws.com", "ListBuckets", {"Host": "s3.amazonaws.com"}, True),
    ("sts.amazonaws.com", "GetCallerIdentity", None, False),
    ("cloudtrail.amazonaws.com", "DescribeTrails", {"trailNameList": [], "includeShadowTrails": True}, False),
    ("cloudtrail.amazonaws.com", "LookupEvents", {"maxResults": 50}, False),
    ("monitoring.amazonaws.com", "DescribeAlarms", {"maxRecords": 100}, False),
    ("monitoring.amazonaws.com", "GetMetricData", {"maxDatapoints": 1440, "scanBy": "TimestampDescending"}, False),
    ("logs.amazonaws.com", "DescribeLogGroups", {"limit": 50}, False),
    ("lambda.amazonaws.com", "ListFunctions20150331", None, False),
    ("rds.amazonaws.com", "DescribeDBInstances", None, False),
    ("elasticloadbalancing.amazonaws.com", "DescribeLoadBalancers", None, False),
    ("autoscaling.amazonaws.com", "DescribeAutoScalingGroups", None, False),
    ("kms.amazonaws.com", "ListAliases", None, False),
    ("ssm.amazonaws.com", "DescribeInstanceInformation", {"maxResults": 50}, False),
    ("health.amazonaws.com", "DescribeEventAggregates", {"aggregateField": "eventTypeCategory", "filter": {"eventStatusCodes": ["open", "upcoming"]}}, True),
    ("dynamodb.amazonaws.com", "ListTables", None, False),
    ("ecr.amazonaws.com", "DescribeRepositories", None, False),
    ("secretsmanager.amazonaws.com", "ListSecrets", None, False),
)
SECURITY_READS = (
    ("guardduty.amazonaws.com", "ListDetectors", None, False),
    ("guardduty.amazonaws.com", "ListFindings", {"maxResults": 50}, False),
    ("config.amazonaws.com", "DescribeConfigurationRecorders", None, False),
    ("config.amazonaws.com", "DescribeConfigurationRecorderStatus", None, False),
    ("config.amazonaws.com", "DescribeComplianceByConfigRule", None, False),
    ("cloudtrail.amazonaws.com", "GetTrailStatus", {"name": f"arn:aws:cloudtrail:us-east-1:{PROD}:trail/{TRAIL_NAME}"}, False),
    ("access-analyzer.amazonaws.com", "ListAnalyzers", None, False),
    ("securityhub.amazonaws.com", "GetFindings", {"maxResults": 100}, False),
)


def _bucket_reads(account: str) -> tuple:
    reads = []
    for bucket in BUCKETS[account]:
        host = _bucket_host(bucket)
        for name, field_name in (("GetBucketLocation", "location"), ("GetBucketAcl", "acl"),
                                 ("GetBucketVersioning", "versioning"), ("GetBucketEncryption", "encryption"),
                                 ("GetBucketPublicAccessBlock", "publicAccessBlock"), ("GetBucketTagging", "tagging")):
            reads.append(("s3.amazonaws.com", name, {"bucketName": bucket, "Host": host, field_name: ""}, True))
    return tuple(reads)


BUCKET_READS = {account: _bucket_reads(account) for account in BUCKETS}


@dataclass
class _Profile:
    """What one kind of caller does: weighted read tables, writes and S3 object traffic, and where."""

    reads: tuple
    read_weight: float
    writes: tuple = ()  # (weight, function(b, moment, session, region))
    s3: float = 0.0  # share of S3 object events
    s3_buckets: tuple = ()
    put_share: float = 0.3


def _tag_instance(b: _Builder, moment: int, s: Session, region: str):
    net = NETWORKS.get((s.account, region)) or NETWORKS[(s.account, ACCOUNT_REGIONS[s.account][0][0])]
    instance = b.rng.choice(net.fleet)
    return b.call(moment, s, net.region, "ec2.amazonaws.com", "CreateTags", False,
                  {"resourcesSet": _items("resourceId", [instance]),
                   "tagSet": {"items": [{"key": "Owner", "value": s.principal.split("/")[-1]}]}}, {"_return": True})


def _put_parameter(b: _Builder, moment: int, s: Session, region: str):
    version = b.rng.randrange(2, 400)
    return b.call(moment, s, region, "ssm.amazonaws.com", "PutParameter", False,
                  {"name": "/app/feature-flags", "type": "String", "overwrite": True, "tier": "Standard"},
                  {"version": version, "tier": "Standard"})


def _update_function(b: _Builder, moment: int, s: Session, region: str):
    name = b.rng.choice(("data-sync", "thumbnailer", "webhook-relay"))
    return b.call(moment, s, region, "lambda.amazonaws.com", "UpdateFunctionCode20150331v2", False,
                  {"functionName": name, "publish": True, "dryRun": False, "architectures": ["arm64"]},
                  {"functionName": name, "functionArn": f"arn:aws:lambda:{region}:{s.account}:function:{name}",
                   "runtime": "python3.12", "handler": "app.handler", "codeSize": b.rng.randrange(10_000, 900_000),
                   "lastUpdateStatus": "InProgress", "state": "Active"}, version="1.08")


def _update_service(b: _Builder, moment: int, s: Session, region: str):
    cluster = f"arn:aws:ecs:{region}:{s.account}:cluster/web"
    return b.call(moment, s, region, "ecs.amazonaws.com", "UpdateService", False,
                  {"cluster": cluster, "service": "web-app", "forceNewDeployment": True,
                   "taskDefinition": f"web-app:{b.rng.randrange(100, 900)}"}, None)


def _put_image(b: _Builder, moment: int, s: Session, region: str):
    tag = "%040x" % b.rng.getrandbits(160)
    return b.call(moment, s, region, "ecr.amazonaws.com", "PutImage", False,
                  {"repositoryName": "web-app", "imageTag": tag[:12], "registryId": s.account,
                   "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json"},
                  {"image": {"registryId": s.account, "repositoryName": "web-app",
                             "imageId": {"imageDigest": "sha256:" + tag + tag[:24], "imageTag": tag[:12]}}})


def _ssm_heartbeat(b: _Builder, moment: int, s: Session, region: str):
    instance = s.principal.split("/")[-1]
    return b.call(moment, s, region, "ssm.amazonaws.com", "UpdateInstanceInformation", False,
                  {"instanceId": instance, "agentVersion": "3.2.2222.0", "agentStatus": "Active",
                   "platformType": "Linux", "platformName": "Amazon Linux", "platformVersion": "2023",
                   "agentName": "amazon-ssm-agent"}, None)


def _create_log_stream(b: _Builder, moment: int, s: Session, region: str):
    return b.call(moment, s, region, "logs.amazonaws.com", "CreateLogStream", False,
                  {"logGroupName": "/acme/web-app", "logStreamName": f"{s.principal.split('/')[-1]}/{moment // DAY}"}, None)


@lru_cache(maxsize=None)
def kms_key(account: str, region: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{_stable_hex(f'kms:{account}:{region}', 8)}-2f1c-4b5e-9a7d-{_stable_hex(f'kms:{region}', 12)}"


def _decrypt(b: _Builder, moment: int, s: Session, region: str):
    key = kms_key(s.account, region)
    return b.call(moment, s, region, "kms.amazonaws.com", "Decrypt", True,
                  {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}, None,
                  resources=[{"accountId": s.account, "type": "AWS::KMS::Key", "ARN": key}])


def _generate_data_key(b: _Builder, moment: int, s: Session, region: str):
    key = kms_key(s.account, region)
    return b.call(moment, s, region, "kms.amazonaws.com", "GenerateDataKey", True,
                  {"keyId": key, "keySpec": "AES_256", "encryptionContext": {"aws:s3:arn": "arn:aws:s3:::acme-data-lake"}},
                  None, resources=[{"accountId": s.account, "type": "AWS::KMS::Key", "ARN": key}])


def _get_parameter(b: _Builder, moment: int, s: Session, region: str):
    name = b.rng.choice(("/app/db-url", "/app/feature-flags", "/app/api-endpoint"))
    return b.call(moment, s, region, "ssm.amazonaws.com", "GetParameter", True, {"name": name, "withDecryption": True})


def _get_secret(b: _Builder, moment: int, s: Session, region: str):
    return b.call(moment, s, region, "secretsmanager.amazonaws.com", "GetSecretValue", True,
                  {"secretId": f"arn:aws:secretsmanager:{region}:{s.account}:secret:web-app/db-AbCdEf"})


HUMAN = _Profile(EC2_READS * 3 + IAM_READS + OTHER_READS * 2, 0.9,
                 ((3, _tag_instance), (2, _put_parameter), (1, _update_function)), s3=0.03,
                 s3_buckets=("acme-prod-assets", "acme-data-lake"))
CI = _Profile(EC2_READS + IAM_READS + OTHER_READS, 0.45,
              ((4, _put_image), (3, _update_service), (2, _update_function), (1, _tag_instance)), s3=0.25,
              s3_buckets=("acme-terraform-state",), put_share=0.5)
APP = _Profile((("sts.amazonaws.com", "GetCallerIdentity", None, False),
                ("ec2.amazonaws.com", "DescribeInstances", _DESCRIBE_INSTANCES, False),
                ("ec2.amazonaws.com", "DescribeTags", {"filterSet": {}}, False)), 0.08,
               ((40, _ssm_heartbeat), (10, _decrypt), (6, _get_parameter), (3, _get_secret), (6, _create_log_stream)),
               s3=0.32, s3_buckets=("acme-prod-assets",), put_share=0.5)
DATA_SYNC = _Profile((("sts.amazonaws.com", "GetCallerIdentity", None, False),), 0.02,
                     ((1, _generate_data_key), (1, _decrypt)), s3=0.78, s3_buckets=("acme-data-lake",), put_share=0.65)
AUDIT = _Profile(EC2_READS + IAM_READS + OTHER_READS + SECURITY_READS * 2, 1.0)
CONFIG = _Profile(EC2_READS + (("iam.amazonaws.com", "GetRole", {"roleName": "web-app"}, True),
                               ("iam.amazonaws.com", "ListAttachedRolePolicies", {"roleName": "web-app"}, True)), 1.0)
FEDERATED = _Profile((("s3.amazonaws.com", "ListBuckets", {"Host": "s3.amazonaws.com"}, True),), 0.2, s3=0.8,
                     s3_buckets=("acme-prod-assets",), put_share=0.0)
LEGACY = _Profile((("sts.amazonaws.com", "GetCallerIdentity", None, False),
                   ("s3.amazonaws.com", "ListBuckets", {"Host": "s3.amazonaws.com"}, True),
                   ("ec2.amazonaws.com", "DescribeVolumes", {"volumeSet": {}, "filterSet": {}}, False)), 0.6,
                  s3=0.4, s3_buckets=("acme-prod-logs",), put_share=1.0)


class _Emitter:
    """Turns a profile into records quickly: choices are drawn in bulk per session."""

    def __init__(self, b: _Builder, profile: _Profile, account: str):
        self.b = b
        self.profile = profile
        reads = profile.reads + BUCKET_READS[account] if any(r[1] == "ListBuckets" for r in profile.reads) else profile.reads
        self.reads = reads
        self.writes = [w[1] for w in profile.writes]
        self.write_weights = [w[0] for w in profile.writes]

    def emit(self, s: Session, times: list[int], regions: tuple[str, ...], weights: tuple[int, ...]) -> None:
        b, rng, profile = self.b, self.b.rng, self.profile
        n = len(times)
        region_list = rng.choices(regions, weights, k=n) if len(regions) > 1 else [regions[0]] * n
        draws = [rng.random() for _ in range(n)]
        read_table, writes = self.reads, self.writes
        s3_cut, read_cut = profile.s3, profile.s3 + profile.read_weight * (1 - profile.s3)
        buckets = profile.s3_buckets
        call, s3_object = b.call, b.s3_object
        for moment, region, draw in zip(times, region_list, draws):
            if draw < s3_cut:
                put = rng.random() < profile.put_share
                bucket = buckets[0] if len(buckets) == 1 else rng.choice(buckets)
                key = f"{'uploads' if put else 'objects'}/{moment // DAY}/{b.ids.token(6)}.json"
                s3_object(moment, s, GLOBAL_REGION, "PutObject" if put else "GetObject", bucket, key,
                          rng.randrange(200, 4_000_000))
            elif draw < read_cut or not writes:
                source, name, req, is_global = read_table[int(rng.random() * len(read_table))]
                call(moment, s, GLOBAL_REGION if is_global else region, source, name, True, req)
            else:
                rng.choices(writes, self.write_weights)[0](b, moment, s, region)


# --- The background -------------------------------------------------------------------------------------------------

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


# --- Use-case scenarios: instances, Elastic IPs, security groups, networks, IAM -----------------------------------

@dataclass
class _Instance:
    net: Network
    instance_id: str
    launched: int
    gone: int  # terminated (or the end of the demo)
    interface: str = ""


@dataclass
class _Scenarios:
    """Actors allowed to change things in each account, and what exists (so later events name real resources)."""

    b: _Builder
    instances: dict[tuple[str, str], list[_Instance]] = field(default_factory=dict)

    def operator(self, account: str, moment: int) -> tuple[Session, Person | None]:
        """Someone who may change this account: a person, an admin's OpsAdmin role session, or a Terraform deploy."""
        b, rng = self.b, self.b.rng
        people = [p for p in PEOPLE.values() if p.account == account and p.name not in _RESERVED_OPERATORS]
        if (rng.random() < 0.35 or not people) and account != SECURITY:
            return github_session(b, account, moment), None
        if account != PROD and rng.random() < 0.4:
            admin = PEOPLE[rng.choice(ADMINS)]
            return role_session(b, account, "OpsAdmin", admin.name, moment, admin.ips[0], admin.cli, mfa=True), admin
        person = rng.choice(people or [PEOPLE["alice"]])
        return cli_session(person, rng.choice(person.ips)), person

    def start(self, room: int) -> tuple[Network, Session, Person | None, int]:
        """Where and by whom a scenario happens, and its first moment: at work, at least `room` before the end."""
        b = self.b
        net = _net_for(b.rng)
        moment = _begin(b, room)
        s, person = self.operator(net.account, moment)
        return net, s, person, b.work_time(person, moment, s.principal)


_IAM_KINDS = ("onboard", "rotate", "role", "offboard", "policy", "onboard", "rotate", "group")
_RESERVED_OPERATORS = {"jordan", "emma", "kenji", "svc-legacy", "build-bot"}
_PRIVILEGE_GAP = 6 * MINUTE


def _net_for(rng: random.Random) -> Network:
    nets = list(NETWORKS.values())
    return rng.choices(nets, (6, 3, 1, 3, 1, 1))[0]


def _instance_lifecycles(sc: _Scenarios, count: int) -> None:
    """RunInstances, then stop/start/modify/reboot/terminate of the same instance IDs by whoever operates them."""
    b, rng = sc.b, sc.b.rng
    span = b.end - b.start
    for _ in range(count):
        net = _net_for(rng)
        autoscaling = rng.random() < 0.2 and net.account != SECURITY
        moment = _begin(b, int(span * 0.05))
        if autoscaling:
            person = None
            identity = role_identity(net.account, "AWSServiceRoleForAutoScaling", "AutoScaling", moment - 30, b.ids.key(),
                                     invoked_by="autoscaling.amazonaws.com",
                                     path="aws-service-role/autoscaling.amazonaws.com/")
            s = Session(identity, net.account, "autoscaling.amazonaws.com", "autoscaling.amazonaws.com",
                        "AWSServiceRoleForAutoScaling/AutoScaling", tls=False)
        else:
            s, person = sc.operator(net.account, moment)
            moment = b.work_time(person, moment, s.principal)
        if moment >= b.end:
            continue
        _, launched = run_instances(b, moment, s, net, rng.choice((1, 1, 1, 2, 3)), rng.choice(INSTANCE_TYPES),
                                    rng.choice(("web", "worker", "batch", "api", "bastion", "etl")) + f"-{rng.randrange(100)}")
        for instance_id in launched:
            instance = _Instance(net, instance_id, moment, b.end)
            sc.instances.setdefault((net.account, net.region), []).append(instance)
            state, t = "running", moment
            for _ in range(rng.randrange(0, 6)):
                t += rng.randrange(20 * MINUTE, 3 * DAY)
                actor, actor_person = (s, person) if rng.random() < 0.6 or autoscaling else sc.operator(net.account, t)
                t = b.work_time(actor_person, t, actor.principal)
                if t >= b.end:
                    break
                if state == "running":
                    action = rng.choices(("StopInstances", "RebootInstances", "TerminateInstances", "ModifyInstanceAttribute"),
                                         (4, 2, 2, 1))[0]
                else:
                    action = rng.choices(("StartInstances", "ModifyInstanceAttribute", "TerminateInstances"), (5, 3, 1))[0]
                if action == "ModifyInstanceAttribute":
                    req = ({"instanceId": instance_id, "instanceType": {"value": rng.choice(INSTANCE_TYPES)}}
                           if state == "stopped" else {"instanceId": instance_id, "disableApiTermination": {"value": True}})
                    ec2_ok(b, t, actor, net, action, req)
                    continue
                instance_action(b, t, actor, net, action, [instance_id], previous=state)
                if action == "StopInstances":
                    state = "stopped"
                elif action == "StartInstances":
                    state = "running"
                elif action == "TerminateInstances":
                    instance.gone = t
                    break


def _elastic_ips(sc: _Scenarios, count: int) -> None:
    """AllocateAddress, AssociateAddress to a live instance (or an interface), DisassociateAddress, ReleaseAddress."""
    b, rng = sc.b, sc.b.rng
    for _ in range(count):
        net, s, person, moment = sc.start((b.end - b.start) // 10)
        if moment >= b.end:
            continue
        _, allocation, _ = allocate_address(b, moment, s, net)
        t = b.after(person, s.principal, moment, MINUTE, 2 * HOUR)
        live = [i for i in sc.instances.get((net.account, net.region), ()) if i.launched < t < i.gone - HOUR]
        if t >= b.end or rng.random() < 0.15:
            continue
        if live and rng.random() < 0.8:
            target = rng.choice(live)
            _, association = associate_address(b, t, s, net, allocation, instance=target.instance_id)
            until = target.gone
        else:
            _, association = associate_address(b, t, s, net, allocation, interface=b.ids.resource("eni"))
            until = b.end
        t = b.after(person, s.principal, t, HOUR, 5 * DAY)
        if t < min(until, b.end) and rng.random() < 0.6:
            ec2_ok(b, t, s, net, "DisassociateAddress", {"associationId": association})
            t = b.after(person, s.principal, t, MINUTE, DAY)
            if t < b.end and rng.random() < 0.7:
                ec2_ok(b, t, s, net, "ReleaseAddress", {"allocationId": allocation})


def _security_groups(sc: _Scenarios, count: int) -> None:
    """Groups created, rules added (web ports from anywhere, admin ports only from private or office ranges), revoked, deleted."""
    b, rng = sc.b, sc.b.rng
    for _ in range(count):
        net, s, person, moment = sc.start((b.end - b.start) // 20)

        def step(after: int) -> int:
            return b.slot(person, s.principal, after, "privilege", _PRIVILEGE_GAP)

        t = step(moment)
        if t >= b.end:
            continue
        kind = rng.choice(("web", "db", "admin", "internal"))
        _, group = create_security_group(b, t, s, net, f"{kind}-{rng.randrange(1000)}", f"{kind} tier")
        office = (person.ips[0] + "/32") if person else net.cidr
        rules = {
            "web": [permission("tcp", 443, cidrs=["0.0.0.0/0"], cidrs6=["::/0"], description="HTTPS"),
                    permission("tcp", 80, cidrs=["0.0.0.0/0"])],
            "db": [permission("tcp", rng.choice((5432, 3306)), groups=[net.groups[1]], account=net.account)],
            "admin": [permission("tcp", 22, cidrs=[office], description="office SSH"),
                      permission("tcp", 3389, cidrs=[net.cidr])],
            "internal": [permission("tcp", 8080, cidrs=[net.cidr]), permission("udp", 8125, cidrs=[net.cidr])],
        }[kind]
        added = []
        for rule in rules:
            t = step(t + rng.randrange(20, 10 * MINUTE))
            if t >= b.end:
                break
            authorize(b, t, s, net, group, [rule])
            added.append(rule)
        if rng.random() < 0.3:
            t = step(t + rng.randrange(MINUTE, HOUR))
            if t < b.end:
                authorize(b, t, s, net, group, [permission("tcp", 443, cidrs=[net.cidr])], egress=True)
        if added and rng.random() < 0.4:
            t = step(t + rng.randrange(HOUR, 4 * DAY))
            if t < b.end:
                revoke(b, t, s, net, group, [added[0]])
        if rng.random() < 0.3:
            t = step(t + rng.randrange(HOUR, 5 * DAY))
            if t < b.end:
                ec2_ok(b, t, s, net, "DeleteSecurityGroup", {"groupId": group}, {"_return": True, "groupId": group})


def _networks(sc: _Scenarios, count: int) -> None:
    """A VPC built end to end (subnets, gateways, routes, ACL entries, NAT with an Elastic IP, peering), sometimes torn down."""
    b, rng = sc.b, sc.b.rng
    for index in range(count):
        base, s, person, t = sc.start(8 * DAY)  # room for the build, a weekend and a teardown before the end

        def run(plan: list[tuple[str, dict, dict | None]], pause: tuple[int, int] = (2, 40)) -> bool:
            """Make the calls one after another; False once the demo's end is reached."""
            nonlocal t
            for name, req, resp in plan:
                if t >= b.end:
                    return False
                ec2_ok(b, t, s, base, name, req, resp)
                t = b.after(person, s.principal, t, *(pause if name != "DeleteNatGateway" else (60, 600)))
            return t < b.end

        region, account = base.region, base.account
        octet = 100 + (index * 7 + rng.randrange(7)) % 150
        cidr = f"10.{octet}.0.0/16"
        vpc, igw = b.ids.resource("vpc"), b.ids.resource("igw")
        steps: list[tuple[str, dict, dict | None]] = []
        steps.append(("CreateVpc", {"cidrBlock": cidr, "instanceTenancy": "default", "amazonProvidedIpv6CidrBlock": False},
                      {"vpc": {"vpcId": vpc, "state": "pending", "ownerId": account, "cidrBlock": cidr,
                               "cidrBlockAssociationSet": {"items": [{"cidrBlock": cidr, "associationId": b.ids.resource("vpc-cidr-assoc"),
                                                                     "cidrBlockState": {"state": "associated"}}]},
                               "ipv6CidrBlockAssociationSet": {}, "dhcpOptionsId": b.ids.resource("dopt"),
                               "instanceTenancy": "default", "tagSet": {}, "isDefault": False}}))
        subnets = [b.ids.resource("subnet") for _ in range(2)]
        for n, subnet in enumerate(subnets):
            block = f"10.{octet}.{n}.0/24"
            steps.append(("CreateSubnet", {"vpcId": vpc, "cidrBlock": block, "availabilityZone": region + "ab"[n]},
                          {"subnet": {"subnetId": subnet, "state": "pending", "vpcId": vpc, "cidrBlock": block,
                                      "availableIpAddressCount": 251, "availabilityZone": region + "ab"[n],
                                      "defaultForAz": False, "mapPublicIpOnLaunch": False, "ownerId": account,
                                      "subnetArn": f"arn:aws:ec2:{region}:{account}:subnet/{subnet}"}}))
        steps.append(("CreateInternetGateway", {}, {"internetGateway": {"internetGatewayId": igw, "ownerId": account,
                                                                         "attachmentSet": {}, "tagSet": {}}}))
        steps.append(("AttachInternetGateway", {"internetGatewayId": igw, "vpcId": vpc}, None))
        public_rt, private_rt = b.ids.resource("rtb"), b.ids.resource("rtb")
        for table in (public_rt, private_rt):
            steps.append(("CreateRouteTable", {"vpcId": vpc},
                          {"routeTable": {"routeTableId": table, "vpcId": vpc, "ownerId": account,
                                          "routeSet": {"items": [{"destinationCidrBlock": cidr, "gatewayId": "local",
                                                                  "state": "active", "origin": "CreateRouteTable"}]},
                                          "associationSet": {}, "propagatingVgwSet": {}, "tagSet": {}}}))
        steps.append(("CreateRoute", {"routeTableId": public_rt, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": igw}, None))
        for table, subnet in zip((public_rt, private_rt), subnets):
            steps.append(("AssociateRouteTable", {"routeTableId": table, "subnetId": subnet},
                          {"associationId": b.ids.resource("rtbassoc"), "associationState": {"state": "associated"}}))
        acl = b.ids.resource("acl")
        steps.append(("CreateNetworkAcl", {"vpcId": vpc},
                      {"networkAcl": {"networkAclId": acl, "vpcId": vpc, "isDefault": False, "ownerId": account,
                                      "entrySet": {}, "associationSet": {}, "tagSet": {}}}))
        for number, egress, block, ports, protocol in ((100, False, "0.0.0.0/0", (443, 443), "6"),
                                                      (110, False, "0.0.0.0/0", (1024, 65535), "6"),
                                                      (120, False, cidr, (22, 22), "6"),
                                                      (100, True, "0.0.0.0/0", None, "-1")):
            entry = {"networkAclId": acl, "ruleNumber": number, "egress": egress, "ruleAction": "allow",
                     "icmpTypeCode": {}, "portRange": {"from": ports[0], "to": ports[1]} if ports else {},
                     "aclProtocol": protocol, "cidrBlock": block}
            steps.append(("CreateNetworkAclEntry", entry, None))
        if not run(steps):
            continue
        _, allocation, _ = allocate_address(b, t, s, base)
        nat = b.ids.resource("nat")
        t = b.after(person, s.principal, t, 2, 30)
        gateway = [("CreateNatGateway",
                    {"CreateNatGatewayRequest": {"SubnetId": subnets[0], "AllocationId": allocation,
                                                 "ClientToken": b.ids.uuid(), "ConnectivityType": "public"}},
                    {"CreateNatGatewayResponse": {"natGateway": {
                        "natGatewayId": nat, "subnetId": subnets[0], "vpcId": vpc, "state": "pending",
                        "connectivityType": "public", "natGatewayAddressSet": {"item": {"allocationId": allocation}}}}}),
                   ("CreateRoute", {"routeTableId": private_rt, "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": nat}, None)]
        if not run(gateway, (60, 300)):
            continue
        if rng.random() < 0.5:
            peering = b.ids.resource("pcx")
            t = b.after(person, s.principal, t, 60, 3 * HOUR)
            run([("CreateVpcPeeringConnection", {"vpcId": vpc, "peerVpcId": base.vpc, "peerOwnerId": account},
                  {"vpcPeeringConnection": {
                      "vpcPeeringConnectionId": peering,
                      "requesterVpcInfo": {"ownerId": account, "vpcId": vpc, "cidrBlock": cidr, "region": region},
                      "accepterVpcInfo": {"ownerId": account, "vpcId": base.vpc, "region": region},
                      "status": {"code": "initiating-request", "message": f"Initiating Request to {account}"},
                      "tagSet": {}}}),
                 ("AcceptVpcPeeringConnection", {"vpcPeeringConnectionId": peering},
                  {"vpcPeeringConnection": {"vpcPeeringConnectionId": peering,
                                            "status": {"code": "provisioning", "message": "Provisioning"}}})],
                (30, 600))
        if rng.random() < 0.35:  # an experiment torn down again
            t = b.after(person, s.principal, t, HOUR, 4 * DAY)
            teardown = [("DeleteNatGateway", {"DeleteNatGatewayRequest": {"NatGatewayId": nat}},
                         {"DeleteNatGatewayResponse": {"natGatewayId": nat}}),
                        ("ReleaseAddress", {"allocationId": allocation}, None),
                        ("DetachInternetGateway", {"internetGatewayId": igw, "vpcId": vpc}, None),
                        ("DeleteInternetGateway", {"internetGatewayId": igw}, None),
                        ("DeleteNetworkAclEntry", {"networkAclId": acl, "ruleNumber": 120, "egress": False}, None),
                        ("DeleteNetworkAcl", {"networkAclId": acl}, None),
                        *(("DeleteSubnet", {"subnetId": subnet}, None) for subnet in subnets),
                        ("DeleteRouteTable", {"routeTableId": private_rt}, None),
                        ("DeleteVpc", {"vpcId": vpc}, None)]
            run(teardown, (2, 30))


def _iam_changes(sc: _Scenarios, count: int) -> None:
    """Slow, legitimate IAM work: onboarding and offboarding, key rotation, roles and policies."""
    b, rng = sc.b, sc.b.rng
    hires = iter(NEW_HIRES * (count // len(NEW_HIRES) + 1))
    onboarded: list[tuple[str, str, int]] = []
    for n in range(count):
        account = rng.choices((PROD, STAGING, SECURITY), (6, 3, 1))[0]
        moment = _begin(b, (b.end - b.start) // 20)
        kind = _IAM_KINDS[n % len(_IAM_KINDS)]
        if kind == "offboard":
            if not onboarded:
                continue
            account, user, created = onboarded.pop(0)
            moment = created + rng.randrange(HOUR, 5 * DAY)
        if kind == "rotate":
            person = rng.choice([p for p in PEOPLE.values() if p.name not in _RESERVED_OPERATORS])
            s = cli_session(person)
            account = person.account
        elif kind == "role":
            person = None
            s = github_session(b, account, moment) if account != SECURITY else role_session(
                b, account, "OpsAdmin", "liam", moment, PEOPLE["liam"].ips[0], PEOPLE["liam"].cli, mfa=True)
        elif account == PROD:
            person = PEOPLE[rng.choice(ADMINS)]
            s = cli_session(person)
        else:
            person = PEOPLE[rng.choice(ADMINS)]
            s = role_session(b, account, "OpsAdmin", person.name, moment, person.ips[0], person.cli, mfa=True)

        def step() -> int:
            nonlocal moment
            moment = b.slot(person, s.principal, moment + rng.randrange(30, 20 * MINUTE), "privilege", _PRIVILEGE_GAP)
            return moment

        def act(name: str, req, resp=None) -> bool:
            t = step()
            if t >= b.end:
                return False
            iam(b, t, s, name, req, resp)
            return True

        if kind == "onboard":
            user = f"{next(hires)}-{n}" if n >= len(NEW_HIRES) else next(hires)
            t = step()
            if t >= b.end:
                continue
            iam(b, t, s, "CreateUser", {"userName": user, "tags": [{"key": "team", "value": rng.choice(GROUPS)}]},
                create_user_response(account, user, t))
            onboarded.append((account, user, t))
            (act("CreateLoginProfile", {"userName": user, "passwordResetRequired": True},
                 {"loginProfile": {"userName": user, "createDate": _aws_date(moment), "passwordResetRequired": True}})
             and act("AddUserToGroup", {"groupName": rng.choice(GROUPS), "userName": user})
             and act("AttachUserPolicy", {"userName": user, "policyArn": rng.choice(READ_POLICIES)})
             and act("CreateVirtualMFADevice", {"virtualMFADeviceName": user, "path": "/"},
                     {"virtualMFADevice": {"serialNumber": f"arn:aws:iam::{account}:mfa/{user}"}})
             and act("EnableMFADevice", {"userName": user, "serialNumber": f"arn:aws:iam::{account}:mfa/{user}",
                                         "authenticationCode1": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                         "authenticationCode2": "HIDDEN_DUE_TO_SECURITY_REASONS"}))
        elif kind == "offboard":
            (act("DetachUserPolicy", {"userName": user, "policyArn": READ_POLICIES[0]})
             and act("RemoveUserFromGroup", {"groupName": GROUPS[0], "userName": user})
             and act("DeleteLoginProfile", {"userName": user})
             and act("DeactivateMFADevice", {"userName": user, "serialNumber": f"arn:aws:iam::{account}:mfa/{user}"})
             and act("DeleteVirtualMFADevice", {"serialNumber": f"arn:aws:iam::{account}:mfa/{user}"})
             and act("DeleteUser", {"userName": user}))
        elif kind == "rotate":
            owner = s.principal
            t = step()
            if t >= b.end:
                continue
            create_access_key(b, t, s, owner, name_in_request=rng.random() < 0.5)
            old = b.ids.key("AKIA")
            (act("UpdateAccessKey", {"userName": owner, "accessKeyId": old, "status": "Inactive"})
             and act("DeleteAccessKey", {"userName": owner, "accessKeyId": old}))
        elif kind == "role":
            role = f"{rng.choice(('etl', 'api', 'reports', 'ingest', 'backup'))}-{rng.randrange(100)}-role"
            t = step()
            if t >= b.end:
                continue
            iam(b, t, s, "CreateRole", {"roleName": role, "assumeRolePolicyDocument": _trust("lambda.amazonaws.com"),
                                        "maxSessionDuration": 3600},
                {"role": {"path": "/", "roleName": role, "roleId": role_id(role, account),
                          "arn": f"arn:aws:iam::{account}:role/{role}", "createDate": _aws_date(t)}})
            (act("AttachRolePolicy", {"roleName": role, "policyArn": rng.choice(READ_POLICIES)})
             and act("PutRolePolicy", {"roleName": role, "policyName": "logs",
                                       "policyDocument": _policy(["logs:CreateLogStream", "logs:PutLogEvents"])})
             and (rng.random() < 0.5 or act("DetachRolePolicy", {"roleName": role, "policyArn": READ_POLICIES[0]})))
        elif kind == "policy":
            name = f"{rng.choice(('s3', 'kms', 'sqs', 'logs'))}-access-{rng.randrange(1000)}"
            arn = f"arn:aws:iam::{account}:policy/{name}"
            t = step()
            if t >= b.end:
                continue
            iam(b, t, s, "CreatePolicy", {"policyName": name, "policyDocument": _policy(["s3:GetObject"], "arn:aws:s3:::acme-prod-assets/*")},
                {"policy": {"policyName": name, "policyId": "ANPA" + b.ids.key("")[:17], "arn": arn, "path": "/",
                            "defaultVersionId": "v1", "attachmentCount": 0, "isAttachable": True,
                            "createDate": _aws_date(t), "updateDate": _aws_date(t)}})
            (act("CreatePolicyVersion", {"policyArn": arn, "setAsDefault": True,
                                         "policyDocument": _policy(["s3:GetObject", "s3:ListBucket"], "*")},
                 {"policyVersion": {"versionId": "v2", "isDefaultVersion": True, "createDate": _aws_date(moment)}})
             and act("PutUserPolicy", {"userName": rng.choice([p.name for p in PEOPLE.values() if p.account == account] or ["ops"]),
                                       "policyName": name, "policyDocument": _policy(["sqs:SendMessage"])}))
        else:
            members = [p.name for p in PEOPLE.values() if p.account == account]
            if members:
                act("AddUserToGroup", {"groupName": rng.choice(GROUPS), "userName": rng.choice(members)})


# --- Errors ---------------------------------------------------------------------------------------------------------

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


# --- Putting it together --------------------------------------------------------------------------------------------

def _end_moment(end: datetime | None) -> int:
    if end is None:
        end = datetime.now(timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    return int(end.timestamp()) // 60 * 60


def generate_records(events: int = 20_000, seed: int = DEMO_SEED, end: datetime | None = None,
                     days: int = 30, planted: bool = True) -> list[dict]:
    """`events` CloudTrail records (exactly, beyond the ~300 the planted cases and smallest scenarios need) over the
    `days` days before `end` (default: now, to the minute), sorted by eventTime. The same arguments give the same
    records; PLANTED's cases always lie in the last 7 days (`planted=False` leaves them out, for extra slices)."""
    collecting = gc.isenabled()
    gc.disable()  # a million small dicts make the cycle collector rescan the heap for nothing
    try:
        return _generate(events, seed, _end_moment(end), days, planted)
    finally:
        if collecting:
            gc.enable()


def _generate(events: int, seed: int, stop: int, days: int, planted: bool) -> list[dict]:
    b = _Builder(random.Random(seed), stop - days * DAY, stop)
    if planted:
        _plant(b, stop)
    for record in b.out:  # the background's spacing rules count the planted events too
        refused = record.get("errorCode") in UNAUTHORIZED_ERROR_CODES
        if refused or record["eventName"] in PRIVILEGE_CHANGE_EVENTS:
            taken = b.busy(principal_name(record["userIdentity"]) or "", "refused" if refused else "privilege")
            insort(taken, _epoch(record["eventTime"]))
    sc = _Scenarios(b)
    scale = max(events, 1)
    _instance_lifecycles(sc, _clamp(scale // 500, 6, 2500))
    _elastic_ips(sc, _clamp(scale // 2500, 4, 400))
    _security_groups(sc, _clamp(scale // 4000, 4, 300))
    _networks(sc, _clamp(scale // 40_000, 2, 40))
    _iam_changes(sc, _clamp(scale // 5000, 6, 250))
    _errors(b, _clamp(scale // 80, 30, 20_000))
    remaining = events - len(b.out)
    if remaining > 0:
        _human_background(b, int(remaining * 0.32), no_failures=_PLANTED_SIGN_IN_FAILURES)
        _machine_background(b, events - len(b.out))
    if len(b.out) < events:  # sessions that found no free slot: the Lambda ran a little more
        _data_sync(b, events - len(b.out), b.rng)
    records = b.out
    records.sort(key=_event_time)
    return records


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _event_time(record: dict) -> str:
    return record["eventTime"]


# Planted cases per finding type (plus "rare_error", "instance_terminated", "elastic_ip_released", "hostile_content"):
# principal, expected (False: a look-alike that must not be flagged), event_ids, seconds_before_end (one per event),
# account, and details such as countries, ips, port, cidr, note. The same for every seed and end.
PLANTED: dict[str, list[dict]] = _plant(_Builder(random.Random(0), 0, 30 * DAY), 30 * DAY)


# --- Delivery: files as CloudTrail writes them to S3 ----------------------------------------------------------------

_UNIQUE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def iter_log_files(records: list[dict], records_per_file: int = 500,
                   window_minutes: int = 5) -> Iterator[tuple[str, bytes]]:
    """Group records as CloudTrail delivers them (per account and region, one delivery per `window_minutes`, at most
    `records_per_file` per file) and yield (S3 key, gzipped {"Records": [...]}) in delivery order."""
    window = window_minutes * MINUTE
    minutes: dict[str, int] = {}
    groups: dict[tuple[int, str, str], list[dict]] = {}
    for record in records:
        stamp = record["eventTime"][:16]
        minute = minutes.get(stamp)
        if minute is None:
            minute = minutes[stamp] = _epoch(stamp + ":00Z")
        account = record.get("recipientAccountId") or record.get("userIdentity", {}).get("accountId") or "000000000000"
        groups.setdefault((minute - minute % window, account, record.get("awsRegion") or GLOBAL_REGION), []).append(record)
    for (opened, account, region), members in sorted(groups.items()):
        delivered = time.gmtime(opened + window)
        folder, stamp = time.strftime("%Y/%m/%d", delivered), time.strftime("%Y%m%dT%H%MZ", delivered)
        for first in range(0, len(members), records_per_file):
            chunk = members[first:first + records_per_file]
            digest = hashlib.blake2b("".join(r.get("eventID", "") for r in chunk).encode(), digest_size=16).digest()
            unique = "".join(_UNIQUE_ALPHABET[byte % 62] for byte in digest)
            key = f"AWSLogs/{account}/CloudTrail/{region}/{folder}/{account}_CloudTrail_{region}_{stamp}_{unique}.json.gz"
            yield key, gzip.compress(orjson.dumps({"Records": chunk}), compresslevel=6, mtime=0)


def write_log_files(directory: Path, records: list[dict], records_per_file: int = 500,
                    window_minutes: int = 5) -> list[Path]:
    """Write iter_log_files under `directory` (creating folders); returns the paths written."""
    paths = []
    for key, data in iter_log_files(records, records_per_file, window_minutes):
        path = Path(directory) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths
