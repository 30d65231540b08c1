"""AWS I/O: sessions, SQS receive/delete, S3 fetch/list. The only module that imports boto3.

Every AWS error leaves here as a `SourceError` whose text is for people and whose `transient` flag says
whether trying again later may work (throttling, 5xx, network) or not (missing, denied).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

import boto3
import botocore.exceptions
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials, create_assume_role_refresher

from trailstream.config import AwsAccess
from trailstream.ingest.errors import SourceError  # noqa: F401 (aws.SourceError, as every caller spells it)

SESSION_NAME = "trailstream"
MAX_RECEIVE = 10  # SQS's limit per ReceiveMessage

_THROTTLING_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "RequestThrottled",
    "TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException", "EC2ThrottledException",
}
_TRANSIENT_CODES = {
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError", "InternalFailure",
    "ServiceUnavailable", "IDPCommunicationError",
}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404", "NoSuchBucket", "QueueDoesNotExist",
                    "AWS.SimpleQueueService.NonExistentQueue"}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "AllAccessDisabled",
                 "KMS.AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
                 "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId"}
_NETWORK_ERRORS = (
    botocore.exceptions.ConnectionError,  # includes EndpointConnectionError and ConnectTimeoutError
    botocore.exceptions.HTTPClientError,  # includes ReadTimeoutError, ConnectionClosedError, ResponseStreamingError
    botocore.exceptions.IncompleteReadError,
)
_QUEUE_ARN = re.compile(r"^arn:aws[a-z-]*:sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[\w.-]+)$")
_QUEUE_URL_REGION = re.compile(r"^https?://sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")


def error_code(exc: BaseException) -> tuple[str, int | None]:
    """The AWS error code and HTTP status of a botocore ClientError ('' and None for other errors)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        response = exc.response or {}
        return str(response.get("Error", {}).get("Code", "")), response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return "", None


def _is_denied(code: str, status: int | None) -> bool:
    """Permission refused; a bare 403 (HEAD responses carry no code) counts, other 403 codes such as clock skew do not."""
    return code in _DENIED_CODES or (status == 403 and not code)


def _is_not_found(code: str, status: int | None) -> bool:
    return code in _NOT_FOUND_CODES or status == 404


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, connection errors and timeouts may pass; anything else will fail again."""
    if isinstance(exc, SourceError):
        return exc.transient
    if isinstance(exc, _NETWORK_ERRORS):
        return True
    code, status = error_code(exc)
    return code in _THROTTLING_CODES or code in _TRANSIENT_CODES or (status is not None and (status >= 500 or status == 429))


def describe_error(exc: BaseException, what: str) -> SourceError:
    """Turn a botocore exception raised while doing `what` into a SourceError people can act on."""
    code, status = error_code(exc)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        message = ("no AWS credentials found: set a profile on Sources & settings, run `aws configure`, "
                   "or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    elif isinstance(exc, (botocore.exceptions.PartialCredentialsError, botocore.exceptions.CredentialRetrievalError,
                          botocore.exceptions.TokenRetrievalError, botocore.exceptions.SSOError)):
        message = f"AWS credentials could not be loaded ({exc}); check the profile, or run `aws sso login`"
    elif isinstance(exc, botocore.exceptions.NoRegionError):
        message = "no AWS region set: choose one on Sources & settings or set AWS_DEFAULT_REGION"
    elif isinstance(exc, botocore.exceptions.EndpointConnectionError):
        message = f"cannot reach AWS while {what} ({exc}): check the region name and the network"
    elif isinstance(exc, _NETWORK_ERRORS):
        message = f"network error while {what} ({type(exc).__name__})"
    elif _is_not_found(code, status):
        message = f"not found while {what} ({code or status})"
    elif _is_denied(code, status):
        message = f"access denied while {what} ({code or status}): the credentials lack permission"
    elif is_transient(exc):
        message = f"temporary AWS error while {what} ({code or status})"
    elif code:
        message = f"AWS error while {what}: {code}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    else:
        message = f"error while {what}: {type(exc).__name__}: {exc}"
    return SourceError(message, transient=is_transient(exc), code=code or None)


@contextmanager
def calling_aws(what: str):
    """Turn any botocore error raised inside the block into a SourceError about `what`."""
    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise describe_error(exc, what) from None


class _AssumeRoleProvider(CredentialProvider):
    METHOD = "assume-role"
    CANONICAL_NAME = "custom-assume-role"

    def __init__(self, refresh):
        self._refresh = refresh

    def load(self):
        return DeferredRefreshableCredentials(refresh_using=self._refresh, method=self.METHOD)


def make_session(access: AwsAccess, region: str | None = None) -> boto3.Session:
    """A boto3 session from the default chain or a profile; with a role, that role's credentials, renewed as they expire.
    `region` overrides the access's region (e.g. a queue URL's)."""
    profile, role_arn, external_id = access.profile, access.role_arn, access.external_id
    try:
        session = boto3.Session(profile_name=profile or None, region_name=region or access.region or None)
    except botocore.exceptions.ProfileNotFound:
        raise SourceError(f'AWS profile "{profile}" not found in ~/.aws/config or ~/.aws/credentials: '
                          "check the name on Sources & settings") from None
    if not role_arn:
        return session
    params = {"RoleArn": role_arn, "RoleSessionName": SESSION_NAME}
    if external_id:
        params["ExternalId"] = external_id
    refresh = create_assume_role_refresher(session.client("sts"), params)
    role_core = botocore.session.get_session()
    role_core.get_component("credential_provider").insert_before("env", _AssumeRoleProvider(refresh))
    return boto3.Session(botocore_session=role_core, region_name=session.region_name)


def make_client(session: boto3.Session, service: str, pool_size: int = 10):
    """A client sized for `pool_size` concurrent calls, with botocore's standard retries."""
    with calling_aws(f"connecting to {service.upper()}"):
        return session.client(service, config=Config(max_pool_connections=pool_size, retries={"mode": "standard"}))


def queue_region(name_or_url: str) -> str | None:
    """The region named by a queue URL or ARN, so a queue in another region works without setting one."""
    match = _QUEUE_ARN.match(name_or_url) or _QUEUE_URL_REGION.match(name_or_url)
    return match.group("region") if match else None


def resolve_queue_url(sqs, name_or_url: str) -> str:
    """The queue URL for a name, ARN or URL; a missing queue is a SourceError naming the region."""
    if name_or_url.startswith(("https://", "http://")):
        return name_or_url
    arn = _QUEUE_ARN.match(name_or_url)
    params = {"QueueName": arn.group("name"), "QueueOwnerAWSAccountId": arn.group("account")} if arn else {
        "QueueName": name_or_url}
    try:
        return sqs.get_queue_url(**params)["QueueUrl"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code, status = error_code(exc)
        if _is_not_found(code, status):
            raise SourceError(f'queue "{params["QueueName"]}" not found in {sqs.meta.region_name}: '
                              "check the name and region on Sources & settings", code=code) from None
        raise describe_error(exc, f'looking up queue "{name_or_url}"') from None


def fetch_queue_visibility(sqs, queue_url: str) -> int:
    """The queue's visibility timeout in seconds: how long a received message stays ours."""
    with calling_aws("reading the queue's attributes"):
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
    return int(attributes.get("Attributes", {}).get("VisibilityTimeout", 30))


def receive_messages(sqs, queue_url: str, wait_seconds: int = 20, max_messages: int = MAX_RECEIVE) -> list[dict]:
    """Long-poll for up to 10 messages; each has Body, ReceiptHandle, MessageId and Attributes.ApproximateReceiveCount."""
    with calling_aws("receiving messages from the queue"):
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(MAX_RECEIVE, max_messages)),
            WaitTimeSeconds=max(0, min(20, wait_seconds)),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
    return response.get("Messages", [])


def delete_message(sqs, queue_url: str, receipt_handle: str) -> None:
    """Acknowledge a message: call only once everything it announced is stored or recorded."""
    with calling_aws("deleting a processed message"):
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)


def _batch_per_message(call, queue_url: str, receipt_handles: list[str], what: str, **fields) -> list[str]:
    """One SQS batch call about up to ten messages; returns the receipt handles SQS refused."""
    entries = [{"Id": str(number), "ReceiptHandle": handle, **fields} for number, handle in enumerate(receipt_handles)]
    with calling_aws(what):
        response = call(QueueUrl=queue_url, Entries=entries)
    return [receipt_handles[int(failure["Id"])] for failure in response.get("Failed", [])]


def delete_messages(sqs, queue_url: str, receipt_handles: list[str]) -> list[str]:
    """Acknowledge up to ten messages in one call; returns the receipt handles SQS could not delete."""
    return _batch_per_message(sqs.delete_message_batch, queue_url, receipt_handles, "deleting processed messages")


def extend_visibility(sqs, queue_url: str, receipt_handles: list[str], seconds: int) -> list[str]:
    """Keep up to ten messages hidden from other consumers while their files are still being processed; returns
    the receipt handles SQS refused."""
    return _batch_per_message(sqs.change_message_visibility_batch, queue_url, receipt_handles,
                              "extending messages' visibility timeout", VisibilityTimeout=seconds)


def fetch_object(s3, bucket: str, key: str) -> tuple[bytes, str | None, int]:
    """Download one object whole: (bytes, etag without quotes, size)."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
        data = response["Body"].read()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code, status = error_code(exc)
        if code == "NoSuchBucket":
            raise SourceError(f'bucket "{bucket}" does not exist: check the bucket name', code=code) from None
        if _is_not_found(code, status):
            raise SourceError("object not found in S3 (deleted, expired by a lifecycle rule, or never written)",
                              code=code) from None
        if _is_denied(code, status):
            raise SourceError(f"access denied reading the object: the credentials need s3:GetObject on "
                              f"arn:aws:s3:::{bucket}/* (and kms:Decrypt if the trail uses SSE-KMS)", code=code) from None
        raise describe_error(exc, "downloading the object") from None
    etag = (response.get("ETag") or "").strip('"') or None
    return data, etag, len(data)


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str | None
    size: int


def list_folders(s3, bucket: str, prefix: str) -> list[str]:
    """The sub-folders ("common prefixes", ending in '/') directly under prefix; one level, never the whole bucket."""
    folders = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            folders.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise _listing_error(exc, bucket, prefix) from None
    return folders


def list_partition_keys(s3, bucket: str, prefix: str) -> list[ListedObject]:
    """Objects directly in one date partition (prefix ends in 'YYYY/MM/DD/'), with etag and size."""
    found = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            found.extend(ListedObject(item["Key"], (item.get("ETag") or "").strip('"') or None, item.get("Size", 0))
                         for item in page.get("Contents", []))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise _listing_error(exc, bucket, prefix) from None
    return found


def _listing_error(exc, bucket: str, prefix: str) -> SourceError:
    code, _ = error_code(exc)
    if code == "NoSuchBucket":
        return SourceError(f'bucket "{bucket}" does not exist: check the bucket name', code=code)
    return describe_error(exc, f"listing s3://{bucket}/{prefix}")


@dataclass(frozen=True)
class LogPrefix:
    """One account/region folder of log files, e.g. 'AWSLogs/o-x/111122223333/CloudTrail/us-east-1/'."""

    account: str
    region: str
    prefix: str


_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
LOG_FOLDERS = ("CloudTrail", "CloudTrail-Insight", "CloudTrail-Digest")  # digests go to the integrity tables


def _last_folder(prefix: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1]


def find_log_prefixes(s3, bucket: str, prefix: str = "", accounts=None, regions=None) -> list[LogPrefix]:
    """Account/region log folders under PREFIX/AWSLogs/[o-ORG/]ACCOUNT/CloudTrail[-Insight]/REGION/, walked with Delimiter='/'.

    The prefix may be the trail's custom prefix, or go down to its AWSLogs/, organization or account folder.
    """
    parts = [part for part in prefix.split("/") if part]
    if "AWSLogs" not in parts:
        parts.append("AWSLogs")
    below = parts[max(i for i, part in enumerate(parts) if part == "AWSLogs") + 1:]
    shape = ["org" if _ORG.match(p) else "account" if _ACCOUNT.match(p) else "other" for p in below]
    if shape not in ([], ["org"], ["account"], ["org", "account"]):
        raise SourceError(f'prefix "{prefix}" should stop at the trail\'s prefix (the folder holding AWSLogs/), '
                          "or at its AWSLogs/, organization or account folder")
    base = "/".join(parts) + "/"
    if below and _ACCOUNT.match(below[-1]):
        account_folders = [base]
    else:
        account_folders = []
        for folder in list_folders(s3, bucket, base):
            name = _last_folder(folder)
            if _ORG.match(name) and not below:
                account_folders += [f for f in list_folders(s3, bucket, folder) if _ACCOUNT.match(_last_folder(f))]
            elif _ACCOUNT.match(name):
                account_folders.append(folder)
    found = []
    for account_folder in account_folders:
        account = _last_folder(account_folder)
        if accounts and account not in accounts:
            continue
        for kind in LOG_FOLDERS:
            for region_folder in list_folders(s3, bucket, f"{account_folder}{kind}/"):
                region = _last_folder(region_folder)
                if not regions or region in regions:
                    found.append(LogPrefix(account, region, region_folder))
    return found


def _in_range(parts: tuple[int, ...], since: date | None, until: date | None) -> bool:
    """Whether a year, (year, month) or (year, month, day) folder overlaps since..until."""
    low = since and (since.year, since.month, since.day)[: len(parts)]
    high = until and (until.year, until.month, until.day)[: len(parts)]
    return (not low or parts >= low) and (not high or parts <= high)


def list_log_objects(s3, bucket: str, log_prefix: str, since: date | None, until: date | None) -> list[ListedObject]:
    """Log objects under one account/region folder whose YYYY/MM/DD partition lies in since..until."""
    found = []
    folders = [(folder, ()) for folder in list_folders(s3, bucket, log_prefix)]
    while folders:
        folder, parents = folders.pop(0)
        name = _last_folder(folder)
        if not name.isdigit() or not _in_range(parts := parents + (int(name),), since, until):
            continue
        if len(parts) == 3:
            found.extend(list_partition_keys(s3, bucket, folder))
        else:
            folders.extend((child, parts) for child in list_folders(s3, bucket, folder))
    return found


@dataclass
class ConnectionCheck:
    """The answer to "Test connection": ok, and one message per check, for people."""

    ok: bool
    message: str
    details: list[str] = field(default_factory=list)


def check_connection(access: AwsAccess, queue: str | None = None, buckets=()) -> ConnectionCheck:
    """Try the credentials, the queue and each bucket; never raises, so the UI can show the answer as is."""
    details: list[str] = []
    try:
        session = make_session(access, access.region or (queue_region(queue) if queue else None))
        identity = _check_identity(session)
        details.append(f"signed in as {identity}")
        if queue:
            details.append(_check_queue(session, queue))
        for bucket in [buckets] if isinstance(buckets, str) else buckets:
            details.append(_check_bucket(session, bucket))
    except SourceError as exc:
        return ConnectionCheck(False, str(exc), details)
    except Exception as exc:  # the button must answer, whatever botocore raises
        return ConnectionCheck(False, str(describe_error(exc, "testing the connection")), details)
    return ConnectionCheck(True, "connection OK: " + "; ".join(details), details)


def _check_identity(session: boto3.Session) -> str:
    if session.region_name is None:
        raise SourceError("no AWS region set: choose one on Sources & settings or set AWS_DEFAULT_REGION")
    try:
        return session.client("sts").get_caller_identity()["Arn"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code, status = error_code(exc)
        if _is_denied(code, status):
            raise SourceError(f"AWS rejected the credentials ({code}): they are wrong, expired, or the role "
                              "cannot be assumed; check the profile or keys", code=code) from None
        raise describe_error(exc, "checking the AWS credentials") from None


def _check_queue(session: boto3.Session, queue: str) -> str:
    sqs = session.client("sqs")
    url = resolve_queue_url(sqs, queue)
    try:
        visibility = fetch_queue_visibility(sqs, url)
    except SourceError as exc:
        if exc.code in _DENIED_CODES:
            raise SourceError(f'access denied to queue "{queue}": the credentials need sqs:ReceiveMessage, '
                              "sqs:DeleteMessage, sqs:ChangeMessageVisibility and sqs:GetQueueAttributes") from None
        raise
    return f'queue "{queue}" reachable (visibility timeout {visibility}s)'


def _check_bucket(session: boto3.Session, bucket: str) -> str:
    s3 = session.client("s3")
    try:
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code, status = error_code(exc)
        headers = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
        actual = headers.get("x-amz-bucket-region")
        if code == "NoSuchBucket" or status == 404:
            raise SourceError(f'bucket "{bucket}" not found: check the bucket name', code=code) from None
        if actual and actual != s3.meta.region_name and status in (301, 400):
            raise SourceError(f'bucket "{bucket}" is in {actual}, not {s3.meta.region_name}: '
                              "set that region on Sources & settings", code=code) from None
        if _is_denied(code, status):
            raise SourceError(f'access denied to bucket "{bucket}": the credentials need s3:ListBucket '
                              "and s3:GetObject on it", code=code) from None
        raise describe_error(exc, f'checking bucket "{bucket}"') from None
    return f'bucket "{bucket}" readable'


# Event history (LookupEvents) and the regions it is read in.

LOOKUP_PAGE_SIZE = 50  # the most LookupEvents returns per page
_EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}


def make_regional_client(session: boto3.Session, service: str, region: str, attempts: int = 8):
    """A client for one region whose standard retries back off longer: for paced APIs that throttle (LookupEvents)."""
    with calling_aws(f"connecting to {service.upper()} in {region}"):
        return session.client(service, region_name=region,
                              config=Config(retries={"mode": "standard", "max_attempts": attempts}))


def explain_error(exc: BaseException, what: str) -> SourceError:
    """Like describe_error, with the sentences long reads need: expired credentials and throttling that outlasted retries."""
    code, _ = error_code(exc)
    if code in _EXPIRED_CODES:
        return SourceError(f"the AWS credentials expired while {what} ({code}): renew them (`aws sso login`, or new "
                           "keys) and run again; it resumes where it stopped", code=code)
    if code in _THROTTLING_CODES:
        return SourceError(f"AWS kept throttling {what} ({code}) after several retries: run again later; "
                           "it resumes where it stopped", transient=True, code=code)
    return describe_error(exc, what)


def fetch_account_id(session: boto3.Session) -> str:
    """The 12-digit account the credentials belong to (sts:GetCallerIdentity needs no permission)."""
    try:
        return session.client("sts").get_caller_identity()["Account"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise explain_error(exc, "checking the AWS credentials") from None


def fetch_region_status(session: boto3.Session) -> dict[str, str]:
    """Every region AWS knows for this account and its opt-in status ('opt-in-not-required', 'opted-in', 'not-opted-in')."""
    try:
        regions = session.client("ec2").describe_regions(AllRegions=True)["Regions"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise explain_error(exc, "listing the account's regions (ec2:DescribeRegions)") from None
    return {item["RegionName"]: item.get("OptInStatus", "opt-in-not-required") for item in regions}


def region_problem(status: dict[str, str], region: str) -> str | None:
    """Why a region cannot be used by this account (unknown, or an opt-in region not enabled), as a sentence; else None."""
    if region not in status:
        return f'"{region}" is not an AWS region this account knows; check the spelling (e.g. eu-west-1)'
    if status[region] == "not-opted-in":
        return (f"region {region} is not enabled for this account: enable it under Account settings in the AWS "
                "console, or leave it out")
    return None


def fetch_event_history_page(cloudtrail, start, end, category: str | None = None,
                             next_token: str | None = None) -> tuple[list[dict], str | None]:
    """One page (newest first, up to 50) of Event history between start and end; category 'insight' for Insights."""
    params = {"StartTime": start, "EndTime": end, "MaxResults": LOOKUP_PAGE_SIZE}
    if category == "insight":
        params["EventCategory"] = "insight"
    if next_token:
        params["NextToken"] = next_token
    try:
        response = cloudtrail.lookup_events(**params)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise explain_error(exc, f"reading Event history in {cloudtrail.meta.region_name}") from None
    return response.get("Events", []), response.get("NextToken")


def fetch_object_metadata(s3, bucket: str, key: str) -> dict[str, str]:
    """An object's user metadata: a CloudTrail digest's signature lives there, not in the file."""
    with calling_aws(f"reading the metadata of s3://{bucket}/{key}"):
        return dict(s3.head_object(Bucket=bucket, Key=key).get("Metadata") or {})


def fetch_public_keys(session, region: str, start, end) -> list[dict]:
    """CloudTrail's digest-signing public keys valid in start..end in one region (DER bytes, fingerprint, validity)."""
    keys = []
    with calling_aws(f"listing CloudTrail public keys in {region}"):
        client = session.client("cloudtrail", region_name=region, config=Config(retries={"mode": "standard"}))
        for page in client.get_paginator("list_public_keys").paginate(StartTime=start, EndTime=end):
            keys += [{"fingerprint": item["Fingerprint"], "value": item["Value"], "region": region,
                      "validity_start": item.get("ValidityStartTime"), "validity_end": item.get("ValidityEndTime")}
                     for item in page.get("PublicKeyList", [])]
    return keys


def call(client, operation: str, what: str, **params) -> dict:
    """One AWS call by operation name (e.g. "create_topic"); any error leaves as a SourceError about `what`, code kept."""
    try:
        return getattr(client, operation)(**params)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise explain_error(exc, what) from None


# --- Athena ----------------------------------------------------------------------------------


def start_athena_query(athena, sql: str, workgroup: str, database: str, output_location: str = "") -> str:
    """Start one statement in a workgroup; returns its execution ID (the workgroup's limits apply)."""
    params = {"QueryString": sql, "WorkGroup": workgroup, "QueryExecutionContext": {"Database": database}}
    if output_location:
        params["ResultConfiguration"] = {"OutputLocation": output_location}
    with calling_aws(f"starting a query in Athena workgroup {workgroup}"):
        return athena.start_query_execution(**params)["QueryExecutionId"]


def fetch_athena_state(athena, execution_id: str) -> tuple[str, str, int]:
    """(state, Athena's reason when it failed or was cancelled, bytes scanned so far) of one execution."""
    with calling_aws("reading the state of an Athena query"):
        execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    status = execution.get("Status", {})
    return (status.get("State", "QUEUED"), status.get("StateChangeReason", ""),
            int(execution.get("Statistics", {}).get("DataScannedInBytes", 0)))


def fetch_athena_rows(athena, execution_id: str) -> tuple[list[tuple[str, str]], list[list[str | None]]]:
    """A finished query's (column name, Athena type) and rows (as text, NULL as None), every page of them."""
    columns, rows = [], []
    with calling_aws("reading an Athena query's results"):
        for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id):
            result = page["ResultSet"]
            columns = columns or [(c["Name"], c.get("Type", "varchar"))
                                  for c in result.get("ResultSetMetadata", {}).get("ColumnInfo", [])]
            rows += [[cell.get("VarCharValue") for cell in row.get("Data", [])] for row in result.get("Rows", [])]
    return columns, rows
