"""`setup` wires an existing trail to a queue, on moto's server: end to end, idempotent, merging, failing in sentences."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from trailstream import cli
from trailstream.config import AwsAccess
from trailstream.ingest import aws_sync, setup

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
QUEUE = "trailstream-main"


@pytest.fixture
def trail(aws):
    """An existing trail "main" writing to bucket ct-logs under prefix org/, with no notifications yet."""
    boto3.client("s3").create_bucket(Bucket="ct-logs")
    return boto3.client("cloudtrail").create_trail(Name="main", S3BucketName="ct-logs", S3KeyPrefix="org")


def run_setup(capsys, *options) -> tuple[int, str, str]:
    code = cli.main(["setup", "--trail", "main", "--region", "us-east-1", *options])
    out = capsys.readouterr()
    return code, out.out, out.err


def queue_policy_statements() -> list[dict]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    return json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])[
        "Statement"]


def test_setup_wires_the_trail_and_a_delivered_log_file_reaches_the_cache(trail, corpus, db_path, capsys):
    code, out, err = run_setup(capsys)
    assert code == 0, err
    topic = boto3.client("cloudtrail").get_trail(Name="main")["Trail"]["SnsTopicARN"]
    assert topic == "arn:aws:sns:us-east-1:123456789012:trailstream-main"
    facts = json.loads((corpus / "expected.json").read_text())["events"]["awsdocs-cloudtrail-user-guide_console-sign-in-events.json"]
    key = "org/AWSLogs/111122223333/CloudTrail/us-east-1/2022/11/10/" + Path(facts["gz_copy"]).name
    boto3.client("s3").put_object(Bucket="ct-logs", Key=key, Body=(corpus / facts["gz_copy"]).read_bytes())
    # what CloudTrail publishes after delivering a log file; SNS carries it to the subscribed queue
    boto3.client("sns").publish(TopicArn=topic, Message=json.dumps({"s3Bucket": "ct-logs", "s3ObjectKey": [key]}))
    queue_url = boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    assert f'queue = "{queue_url}"' in out
    result = aws_sync.sync_queue(db_path, queue_url, ["ct-logs"], AwsAccess(region="us-east-1"), wait_seconds=1)
    assert result.succeeded, result.failures
    assert result.new_events == facts["distinct_eventIDs"]


def test_running_setup_twice_changes_nothing(trail, capsys):
    run_setup(capsys, "--create-role")
    first = setup.setup_trail(AwsAccess(region="us-east-1"), "main", create_role=True)
    assert first.changed == 0
    assert all(step.startswith("kept ") for step in first.steps)
    code, out, _ = run_setup(capsys, "--create-role")
    assert code == 0 and "nothing to change: already wired" in out


def test_dry_run_prints_the_plan_and_creates_nothing(trail, capsys):
    code, out, _ = run_setup(capsys, "--dry-run")
    assert code == 0
    assert "would create SQS queue trailstream-main" in out and "nothing was changed" in out
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []
    assert boto3.client("sns").list_topics()["Topics"] == []
    assert "SnsTopicARN" not in boto3.client("cloudtrail").get_trail(Name="main")["Trail"]


def test_an_existing_queue_policy_keeps_its_other_statements(trail, capsys):
    other = {"Sid": "OpsTeamReads", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": "sqs:ReceiveMessage", "Resource": f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"}
    boto3.client("sqs").create_queue(QueueName=QUEUE, Attributes={
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": [other]})})
    assert run_setup(capsys)[0] == 0
    statements = queue_policy_statements()
    assert other in statements
    assert [s["Sid"] for s in statements] == ["OpsTeamReads", setup.SEND_SID]
    assert statements[1]["Condition"] == {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:trailstream-main"}}


def test_a_setup_left_half_made_is_finished_by_the_next_run(trail, capsys):
    run_setup(capsys)
    sns = boto3.client("sns")
    topic = sns.list_topics()["Topics"][0]["TopicArn"]
    for subscription in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    again = setup.setup_trail(AwsAccess(region="us-east-1"), "main")
    assert again.changed == 1 and "created the queue's subscription to the topic" in again.steps
    assert len(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == 1


def test_create_role_makes_a_reader_role_scoped_to_the_queue_prefix_and_nothing_else(trail, capsys):
    assert run_setup(capsys, "--create-role")[0] == 0
    document = boto3.client("iam").get_role_policy(RoleName=setup.READER_ROLE, PolicyName=setup.READER_POLICY)[
        "PolicyDocument"]
    by_sid = {statement["Sid"]: statement for statement in document["Statement"]}
    assert by_sid["ReadTrailQueue"]["Resource"] == f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"
    assert by_sid["ReadTrailLogs"]["Resource"] == "arn:aws:s3:::ct-logs/org/AWSLogs/*"
    assert by_sid["ListTrailLogs"]["Condition"] == {"StringLike": {"s3:prefix": ["org/AWSLogs/*"]}}
    assert "*" not in json.dumps([s["Action"] for s in document["Statement"]])


def test_a_missing_trail_is_a_sentence(aws, capsys):
    code, out, err = run_setup(capsys)
    assert code == 1
    assert err.startswith('setup stopped: trail "main" not found in us-east-1: check the name')
    assert "Traceback" not in err


def test_merge_statement_replaces_only_its_own_statement():
    old = {"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Deny"}, {"Sid": "Mine", "Effect": "Allow"}]}
    policy, changed = setup.merge_statement(json.dumps(old), {"Sid": "Mine", "Effect": "Allow", "Action": "x"})
    assert changed and policy["Statement"] == [{"Sid": "A", "Effect": "Deny"},
                                                {"Sid": "Mine", "Effect": "Allow", "Action": "x"}]
    assert setup.merge_statement(json.dumps(policy), {"Sid": "Mine", "Effect": "Allow", "Action": "x"})[1] is False


def test_the_cloudformation_template_passes_cfn_lint():
    cfn_lint = shutil.which("cfn-lint") or pytest.fail("cfn-lint is in requirements-dev.txt; install it")
    completed = subprocess.run([cfn_lint, str(DEPLOY / "trailstream-sqs.yaml")], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_a_region_not_enabled_is_a_sentence(aws, capsys):
    code = cli.main(["setup", "--trail", "main", "--region", "ap-east-1"])
    assert code == 1
    assert "region ap-east-1 is not enabled for this account" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Tried to parse")  # moto skips the policies and subscription; the queues are what it checks
def test_the_cloudformation_template_makes_the_same_queue_on_moto(aws):
    boto3.client("cloudformation").create_stack(
        StackName="trailstream", TemplateBody=(DEPLOY / "trailstream-sqs.yaml").read_text(),
        Parameters=[{"ParameterKey": "TrailName", "ParameterValue": "main"},
                    {"ParameterKey": "TrailBucket", "ParameterValue": "ct-logs"}], Capabilities=["CAPABILITY_NAMED_IAM"])
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == str(setup.VISIBILITY_SECONDS)
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == setup.MAX_RECEIVES


def test_connect_aws_on_sources_and_settings_wires_the_trail_and_adds_its_queue(trail, app_empty_cache):
    from tests.conftest import open_page
    from trailstream import config

    at = open_page("pages/sources.py")
    at.text_input(key="connect-trail").set_value("main")
    at.text_input(key="connect-region").set_value("us-east-1")
    next(button for button in at.button if button.label == "Show the plan").click().run()
    assert not at.exception, [exception.value for exception in at.exception]
    assert any("would create SQS queue trailstream-main" in text.value for text in at.text)
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []
    next(button for button in at.button if button.label == "Connect").click().run()
    assert not at.exception, [exception.value for exception in at.exception]
    [source] = config.load_settings().sources
    assert (source.kind, source.queue, source.buckets) == (
        "sqs", boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"], ["ct-logs"])


def test_connect_aws_says_why_it_stopped(aws, app_empty_cache):
    from tests.conftest import open_page

    at = open_page("pages/sources.py")
    at.text_input(key="connect-trail").set_value("nope")
    at.text_input(key="connect-region").set_value("us-east-1")
    next(button for button in at.button if button.label == "Connect").click().run()
    assert not at.exception
    assert any('trail "nope" not found in us-east-1' in text.value for text in at.text)
