"""Who acts in the background: machine users, read-only call mixes and the per-actor emitter."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from trailstream.ingest.demo.builder import _Builder, _bucket_host
from trailstream.ingest.demo.company import (
    ACCOUNT_REGIONS, BUCKETS, CI_IPS, DAY, GLOBAL_REGION, LEGACY_IP, NETWORKS, OLD_CLI_UA, PROD, TERRAFORM_UA,
    TRAIL_NAME, _stable_hex, access_key, user_id
)
from trailstream.ingest.demo.identities import Session
from trailstream.ingest.demo.shapes import _items


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
