"""`setup`: wire an existing trail to an SQS queue in one command, and say which least-privilege role reads it.

For the trail: an SNS topic CloudTrail may publish to, the trail's notifications pointed at it, a queue (with a
dead-letter queue) subscribed with a policy scoped to that topic, and a reader policy scoped to the queue, the
trail's log prefix and its KMS key. Every step looks before it writes, so a second run changes nothing and a run
stopped half-way is finished by the next one; policies are merged by statement ID, never replaced whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from trailstream.config import AwsAccess
from trailstream.ingest import aws
from trailstream.ingest.aws import SourceError

RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest: a week-long outage of TrailStream loses nothing
VISIBILITY_SECONDS = 300  # a message's files are fetched and stored well within five minutes
MAX_RECEIVES = 5  # then the message moves to the dead-letter queue, where it can be inspected
READER_ROLE = "TrailStreamReader"
READER_POLICY = "TrailStreamRead"
PUBLISH_SID = "TrailStreamCloudTrailPublish"
SEND_SID = "TrailStreamTopicToQueue"
EVENTS_SID = "TrailStreamEventBridgeToQueue"
EVENTS_TARGET_ID = "trailstream-queue"
_MISSING = {"TrailNotFoundException", "NotFound", "NotFoundException", "NoSuchEntity", "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue"}


@dataclass
class SetupResult:
    """What setup did (or, dry, would do): one line per resource, and what TrailStream needs to read the queue."""

    dry_run: bool
    steps: list[str] = field(default_factory=list)
    changed: int = 0
    queue_url: str = ""
    bucket: str = ""
    reader_policy: dict = field(default_factory=dict)
    role_arn: str = ""

    def step(self, done: bool, verb: str, what: str) -> None:
        """Record a step: `done` False means it was already as wanted."""
        self.changed += done
        self.steps.append(f"{('would ' + verb) if self.dry_run else verb + 'd'} {what}" if done else f"kept {what}")


@dataclass(frozen=True)
class _Names:
    region: str
    account: str
    partition: str = "aws"

    def arn(self, service: str, name: str) -> str:
        """The ARN a resource of this account and region has, known before it exists (for --dry-run)."""
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{name}"


def _missing(exc: SourceError) -> bool:
    """A resource that does not exist yet: setup makes it, so this is no failure."""
    return exc.code in _MISSING


def merge_statement(policy_text: str | None, statement: dict) -> tuple[dict, bool]:
    """The policy with `statement` in place of any with its Sid, every other statement kept; and whether it changed."""
    policy = json.loads(policy_text) if policy_text else {"Version": "2012-10-17", "Statement": []}
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else list(statements)
    if statement in statements:
        return policy, False
    policy["Statement"] = [item for item in statements if item.get("Sid") != statement["Sid"]] + [statement]
    return policy, True


def setup_trail(access: AwsAccess, trail_name: str, dry_run: bool = False, create_role: bool = False,
                eventbridge: bool = False, read_only_events: bool = False) -> SetupResult:
    """Wire the trail to a queue (and, with `eventbridge`, CloudTrail's EventBridge events too, for alerts in
    seconds); a SourceError with a sentence when AWS refuses, and the next run finishes."""
    session = aws.make_session(access)
    region = session.region_name
    if not region:
        raise SourceError("no AWS region set: pass --region (the trail's home region) or set AWS_DEFAULT_REGION")
    names = _Names(region, aws.fetch_account_id(session))
    _check_region(session, region)
    clients = {service: aws.make_regional_client(session, service, region, attempts=5)
               for service in ("cloudtrail", "sns", "sqs")}
    trail = _fetch_trail(clients["cloudtrail"], trail_name, region)
    result = SetupResult(dry_run, bucket=trail["S3BucketName"])
    topic_arn = _ensure_topic(clients["sns"], names, trail, result)
    _point_trail(clients["cloudtrail"], trail, topic_arn, result)
    queue_arn = _ensure_queues(clients["sqs"], names, trail["Name"], topic_arn, result)
    _ensure_subscription(clients["sns"], topic_arn, queue_arn, result)
    result.reader_policy = reader_policy(queue_arn, trail, names)
    if eventbridge:
        events = aws.make_regional_client(session, "events", region, attempts=5)
        ensure_eventbridge_rule(events, clients["sqs"], names, trail["Name"], queue_arn, read_only_events, result)
    if create_role:
        _ensure_role(aws.make_regional_client(session, "iam", region, attempts=5), names, result)
    return result


def _check_region(session, region: str) -> None:
    """An opt-in region not enabled (or a misspelt one) is said up front instead of as a credentials error."""
    try:
        status = aws.fetch_region_status(session)
    except SourceError:  # without ec2:DescribeRegions the calls that follow say what is wrong
        return
    if problem := aws.region_problem(status, region):
        raise SourceError(problem)


def _fetch_trail(cloudtrail, name: str, region: str) -> dict:
    """The existing trail; its topic must live in its home region, so setup runs there."""
    try:
        trail = aws.call(cloudtrail, "get_trail", f'reading trail "{name}"', Name=name)["Trail"]
    except SourceError as exc:
        if _missing(exc):
            raise SourceError(f'trail "{name}" not found in {region}: check the name (`aws cloudtrail describe-trails`)'
                              " and pass the trail's home region with --region") from None
        raise
    if trail.get("HomeRegion") and trail["HomeRegion"] != region:
        raise SourceError(f'trail "{name}" belongs to {trail["HomeRegion"]}: run setup again with '
                          f'--region {trail["HomeRegion"]}')
    return trail


def _ensure_topic(sns, names: _Names, trail: dict, result: SetupResult) -> str:
    """The trail's own topic if it has one, else trailstream-<trail>; its policy lets this trail publish."""
    topic_arn = trail.get("SnsTopicARN") or names.arn("sns", f"trailstream-{trail['Name']}")
    try:
        policy_text = aws.call(sns, "get_topic_attributes", "reading the SNS topic",
                               TopicArn=topic_arn)["Attributes"].get("Policy")
        result.step(False, "create", f"SNS topic {topic_arn}")
    except SourceError as exc:
        if not _missing(exc):
            raise
        if not result.dry_run:
            topic_arn = aws.call(sns, "create_topic", "creating the SNS topic",
                                 Name=topic_arn.rsplit(":", 1)[1])["TopicArn"]
        result.step(True, "create", f"SNS topic {topic_arn}")
        policy_text = None
    statement = {"Sid": PUBLISH_SID, "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
                 "Action": "SNS:Publish", "Resource": topic_arn,
                 "Condition": {"StringEquals": {"aws:SourceArn": trail["TrailARN"]}}}
    policy, changed = merge_statement(policy_text, statement)
    if changed and not result.dry_run:
        aws.call(sns, "set_topic_attributes", "setting the SNS topic's policy", TopicArn=topic_arn,
                 AttributeName="Policy", AttributeValue=json.dumps(policy))
    result.step(changed, "update", "the topic policy letting CloudTrail publish")
    return topic_arn


def _point_trail(cloudtrail, trail: dict, topic_arn: str, result: SetupResult) -> None:
    """CloudTrail publishes a notification per delivered log file to the topic the trail names."""
    changed = trail.get("SnsTopicARN") != topic_arn
    if changed and not result.dry_run:
        aws.call(cloudtrail, "update_trail", "pointing the trail's notifications at the topic",
                 Name=trail["Name"], SnsTopicName=topic_arn.rsplit(":", 1)[1])  # a topic of this account and region
    result.step(changed, "update", f'trail "{trail["Name"]}" notifications to the topic')


def _ensure_queues(sqs, names: _Names, trail_name: str, topic_arn: str, result: SetupResult) -> str:
    """The dead-letter queue, then the queue (redrive to it) with a policy letting only the topic send."""
    dead_arn = _ensure_queue(sqs, names, f"trailstream-{trail_name}-dlq",
                             {"MessageRetentionPeriod": str(RETENTION_SECONDS)}, result)[1]
    redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": MAX_RECEIVES})
    url, queue_arn, attributes = _ensure_queue(sqs, names, f"trailstream-{trail_name}", {
        "MessageRetentionPeriod": str(RETENTION_SECONDS), "VisibilityTimeout": str(VISIBILITY_SECONDS),
        "ReceiveMessageWaitTimeSeconds": "20", "RedrivePolicy": redrive}, result)
    result.queue_url = url
    statement = {"Sid": SEND_SID, "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                 "Action": "sqs:SendMessage", "Resource": queue_arn,
                 "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}
    policy, changed = merge_statement(attributes.get("Policy"), statement)
    wanted = {"Policy": json.dumps(policy)} if changed else {}
    if "RedrivePolicy" not in attributes:
        wanted["RedrivePolicy"] = redrive
    if wanted and not result.dry_run:
        aws.call(sqs, "set_queue_attributes", "setting the queue's policy", QueueUrl=url, Attributes=wanted)
    result.step(changed, "update", "the queue policy letting only the topic send (other statements kept)")
    return queue_arn


def ensure_eventbridge_rule(events, sqs, names: _Names, trail_name: str, queue_arn: str, read_only_events: bool,
                            result: SetupResult) -> None:
    """An EventBridge rule sending this region's CloudTrail events (every CloudTrail detail-type) to the queue, and
    the queue policy statement letting only that rule send (merged, other statements kept). Read-only management
    events reach a rule only in state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS, so they are opt-in."""
    from trailstream.ingest.messages import CLOUDTRAIL_DETAIL_TYPES

    name = f"trailstream-{trail_name}-cloudtrail"
    state = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" if read_only_events else "ENABLED"
    pattern = {"source": [{"prefix": "aws."}], "detail-type": list(CLOUDTRAIL_DETAIL_TYPES)}
    try:
        current = aws.call(events, "describe_rule", f'reading EventBridge rule "{name}"', Name=name)
    except SourceError as exc:
        if not _missing(exc) and exc.code != "ResourceNotFoundException":
            raise
        current = {}
    rule_arn = current.get("Arn") or names.arn("events", f"rule/{name}")
    changed = (current.get("State") != state or not current.get("EventPattern")
               or json.loads(current["EventPattern"]) != pattern)
    if changed and not result.dry_run:
        rule_arn = aws.call(events, "put_rule", f'writing EventBridge rule "{name}"', Name=name, State=state,
                            EventPattern=json.dumps(pattern),
                            Description="TrailStream: CloudTrail events to its queue, for alerts in seconds")["RuleArn"]
    result.step(changed, "update" if current else "create", f"EventBridge rule {name} ({state})")
    targets = [] if not current else aws.call(events, "list_targets_by_rule", "listing the rule's targets",
                                              Rule=name).get("Targets", [])
    changed = not any(target.get("Arn") == queue_arn for target in targets)
    if changed and not result.dry_run:
        aws.call(events, "put_targets", "pointing the EventBridge rule at the queue", Rule=name,
                 Targets=[{"Id": EVENTS_TARGET_ID, "Arn": queue_arn}])
    result.step(changed, "create", "the rule's target: the queue")
    _allow_rule_to_send(sqs, queue_arn, rule_arn, result)


def _allow_rule_to_send(sqs, queue_arn: str, rule_arn: str, result: SetupResult) -> None:
    """The queue policy statement letting the EventBridge rule (and nothing else new) send, merged by its Sid."""
    statement = {"Sid": EVENTS_SID, "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                 "Action": "sqs:SendMessage", "Resource": queue_arn,
                 "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}
    url = "" if result.dry_run and not result.queue_url else result.queue_url
    attributes = {} if not url else aws.call(sqs, "get_queue_attributes", "reading the queue's policy", QueueUrl=url,
                                             AttributeNames=["Policy"]).get("Attributes", {})
    policy, changed = merge_statement(attributes.get("Policy"), statement)
    if changed and not result.dry_run:
        aws.call(sqs, "set_queue_attributes", "letting the EventBridge rule send to the queue", QueueUrl=url,
                 Attributes={"Policy": json.dumps(policy)})
    result.step(changed, "update", "the queue policy letting the EventBridge rule send (other statements kept)")


def _ensure_queue(sqs, names: _Names, name: str, attributes: dict, result: SetupResult) -> tuple[str, str, dict]:
    """(url, arn, current attributes) of a queue, created with `attributes` when missing; an existing one is kept."""
    try:
        url = aws.call(sqs, "get_queue_url", f'looking up queue "{name}"', QueueName=name)["QueueUrl"]
    except SourceError as exc:
        if not _missing(exc):
            raise
        if not result.dry_run:
            url = aws.call(sqs, "create_queue", f'creating queue "{name}"', QueueName=name,
                           Attributes=attributes)["QueueUrl"]
        result.step(True, "create", f"SQS queue {name}")
        return ("" if result.dry_run else url), names.arn("sqs", name), {} if result.dry_run else attributes
    current = aws.call(sqs, "get_queue_attributes", f'reading queue "{name}"', QueueUrl=url,
                       AttributeNames=["All"]).get("Attributes", {})
    result.step(False, "create", f"SQS queue {name}")
    return url, current.get("QueueArn", names.arn("sqs", name)), current


def _ensure_subscription(sns, topic_arn: str, queue_arn: str, result: SetupResult) -> None:
    """The queue subscribed to the topic once: a second subscription would deliver every notification twice."""
    subscriptions = _subscriptions(sns, topic_arn, result)
    changed = not any(item.get("Protocol") == "sqs" and item.get("Endpoint") == queue_arn for item in subscriptions)
    if changed and not result.dry_run:
        aws.call(sns, "subscribe", "subscribing the queue to the topic", TopicArn=topic_arn, Protocol="sqs",
                 Endpoint=queue_arn)
    result.step(changed, "create", "the queue's subscription to the topic")


def _subscriptions(sns, topic_arn: str, result: SetupResult) -> list[dict]:
    """The topic's subscriptions; none for a topic a dry run has not made."""
    try:
        return aws.call(sns, "list_subscriptions_by_topic", "listing the topic's subscriptions",
                        TopicArn=topic_arn).get("Subscriptions", [])
    except SourceError as exc:
        if result.dry_run and _missing(exc):  # the topic itself is still to be made
            return []
        raise


def reader_policy(queue_arn: str, trail: dict, names: _Names) -> dict:
    """Exactly what a sync needs: the queue's messages, the trail's log objects under its prefix, and its key."""
    prefix = f"{trail['S3KeyPrefix'].strip('/')}/AWSLogs/" if trail.get("S3KeyPrefix") else "AWSLogs/"
    bucket_arn = f"arn:{names.partition}:s3:::{trail['S3BucketName']}"
    statements = [
        {"Sid": "ReadTrailQueue", "Effect": "Allow", "Resource": queue_arn,
         "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]},
        {"Sid": "ReadTrailLogs", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/{prefix}*"},
        {"Sid": "ListTrailLogs", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
    ]
    if trail.get("KmsKeyId"):
        key = trail["KmsKeyId"]
        key_arn = key if key.startswith("arn:") else names.arn("kms", f"key/{key}")
        statements.append({"Sid": "DecryptTrailLogs", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn})
    return {"Version": "2012-10-17", "Statement": statements}


def _ensure_role(iam, names: _Names, result: SetupResult) -> None:
    """The reader role (assumable from this account) with the reader policy inline, updated only when it differs."""
    result.role_arn = f"arn:{names.partition}:iam::{names.account}:role/{READER_ROLE}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:{names.partition}:iam::{names.account}:root"}}]}
    try:
        aws.call(iam, "get_role", "reading the reader role", RoleName=READER_ROLE)
        result.step(False, "create", f"IAM role {READER_ROLE}")
    except SourceError as exc:
        if not _missing(exc):
            raise
        if not result.dry_run:
            aws.call(iam, "create_role", "creating the reader role", RoleName=READER_ROLE,
                     AssumeRolePolicyDocument=json.dumps(trust),
                     Description="TrailStream: reads the trail's queue, log files and key, nothing else")
        result.step(True, "create", f"IAM role {READER_ROLE}")
    current = None
    try:
        current = aws.call(iam, "get_role_policy", "reading the reader policy", RoleName=READER_ROLE,
                           PolicyName=READER_POLICY)["PolicyDocument"]
    except SourceError as exc:
        if not _missing(exc):
            raise
    current = json.loads(current) if isinstance(current, str) else current
    changed = current != result.reader_policy
    if changed and not result.dry_run:
        aws.call(iam, "put_role_policy", "writing the reader policy", RoleName=READER_ROLE, PolicyName=READER_POLICY,
                 PolicyDocument=json.dumps(result.reader_policy))
    result.step(changed, "update", f"inline policy {READER_POLICY} of role {READER_ROLE}")


def describe_setup(result: SetupResult, trail_name: str, region: str) -> str:
    """What setup did, the reader policy, and the [[sources]] entry that syncs the queue: text for the terminal."""
    import tomlkit

    from trailstream.config import SqsSource, source_table

    lines = [*result.steps, ""]
    if result.dry_run:
        lines.append(f"dry run: {result.changed} change(s) planned, nothing was changed")
    else:
        lines.append(f"{result.changed} change(s) made" if result.changed else "nothing to change: already wired")
    lines += ["", f"Least-privilege reader policy{' (inline on ' + result.role_arn + ')' if result.role_arn else ''}:",
              json.dumps(result.reader_policy, indent=2)]
    if result.queue_url:
        source = SqsSource(name=f"trail-{trail_name}", queue=result.queue_url, buckets=[result.bucket], region=region)
        lines += ["", "Add to trailstream.toml (or on Sources & settings), then run `python -m trailstream sync`:",
                  tomlkit.dumps({"sources": [source_table(source)]}).strip()]
    return "\n".join(lines)
