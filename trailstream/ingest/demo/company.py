"""The fixed company: accounts, regions, people, machines' addresses, networks and buckets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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
