"""The deploy engine end to end on moto's server: plan, change set, execute, events, teardown.

moto's CloudFormation does not create API Gateway v2, ElastiCache or alarm resources, so these
tests deploy a small template of resource types moto does create (templates/stack.yaml), and
``moto_cloudformation`` makes moto run stacks the way CloudFormation does (in the background,
one event per resource, rolling back on failure).
"""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import pytest

from desktop.services import deploy
from desktop.services.aws import AwsTarget
from desktop.services.deploy import (
    DOES_NOT_EXIST,
    DeployEngine,
    DeployResult,
    Progress,
    StackEvent,
    load_template,
)
from desktop.services.errors import ConfigurationError, DeployError
from desktop.services.outputs_store import OutputsStore
from tests.desktop.services import moto_cloudformation
from tests.desktop.services.deploy_support import TEMPLATES, copy_backend, stack_name
from tests.waiting import eventually

POLL = 0.2


@pytest.fixture
def target(aws_environment, moto_endpoint, monkeypatch, tmp_path) -> AwsTarget:
    moto_cloudformation.install(monkeypatch)
    monkeypatch.setenv("CLASSROOM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    return AwsTarget(region="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def source_root(tmp_path) -> Path:
    return copy_backend(tmp_path / "src")


@pytest.fixture
def engine(target, source_root) -> DeployEngine:
    return DeployEngine(
        target, stack_name(), TEMPLATES / "stack.yaml", source_root, poll_interval=POLL
    )


def aws(target: AwsTarget, service: str):
    return boto3.client(service, endpoint_url=target.endpoint_url, region_name=target.region)


def run(items) -> tuple[list[StackEvent], list[Progress], DeployResult | None]:
    events, progress, results = [], [], []
    for item in items:
        {StackEvent: events, Progress: progress, DeployResult: results}[type(item)].append(item)
    assert len(results) <= 1
    return events, progress, results[0] if results else None


def deployed(engine: DeployEngine, parameters: dict | None = None) -> DeployResult:
    _, _, result = run(engine.execute(engine.plan(parameters or {})))
    assert result is not None and result.ok, result
    return result


def test_a_template_reads_with_its_short_forms_in_their_long_forms():
    template = load_template(
        """
Resources:
  Inbox:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-inbox"
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dead.Arn
        Source: !GetAtt [Dead, QueueUrl]
      Tags: [{Key: stage, Value: !Join ["-", [!Ref Stage, !Select [0, !GetAZs ""]]]}]
"""
    )
    properties = template["Resources"]["Inbox"]["Properties"]
    assert properties["QueueName"] == {"Fn::Sub": "${AWS::StackName}-inbox"}
    assert properties["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]},
        "Source": {"Fn::GetAtt": ["Dead", "QueueUrl"]},
    }
    assert properties["Tags"][0]["Value"] == {
        "Fn::Join": ["-", [{"Ref": "Stage"}, {"Fn::Select": [0, {"Fn::GetAZs": ""}]}]]
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Resources: [unclosed", "is not valid YAML at line 1"),
        ("Outputs: {}", "has no Resources section"),
    ],
)
def test_a_template_that_is_not_one_is_a_sentence(text, problem):
    with pytest.raises(ConfigurationError, match=f"The stack's template {problem}"):
        load_template(text, "The stack's template")


def test_deploy_shows_the_change_set_then_streams_events_progress_and_outputs(engine, target):
    steps = []
    plan = engine.plan({"Greeting": "hi"}, report=steps.append)
    assert plan.kind == "CREATE" and not plan.empty
    assert plan.change_set_id.startswith("arn:aws:cloudformation:")
    assert {(c.action, c.logical_id, c.resource_type) for c in plan.changes} == {
        ("Add", "Uploads", "AWS::S3::Bucket"),
        ("Add", "Inbox", "AWS::SQS::Queue"),
        ("Add", "Alerts", "AWS::SNS::Topic"),
        ("Add", "FunctionRole", "AWS::IAM::Role"),
        ("Add", "Function", "AWS::Lambda::Function"),
        ("Add", "FunctionLogs", "AWS::Logs::LogGroup"),
    }
    assert plan.artifact_key == f"backend/{plan.artifact_sha256}.zip"
    assert [step.split()[0] for step in steps] == ["Packaging", "Uploading", "Creating"]

    events, progress, result = run(engine.execute(plan))

    first, last = events[0], events[-1]
    assert (first.logical_id, first.status) == (engine.stack_name, "CREATE_IN_PROGRESS")
    assert (last.logical_id, last.status) == (engine.stack_name, "CREATE_COMPLETE")
    assert [e.status for e in events if e.logical_id == "Function"] == [
        "CREATE_IN_PROGRESS",
        "CREATE_COMPLETE",
    ]
    assert not [e for e in events if e.status == "REVIEW_IN_PROGRESS"]  # only events after execute
    assert len({(e.logical_id, e.status, e.timestamp) for e in events}) == len(events)  # no repeats
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert progress[0] == Progress(0, 7) and progress[-1] == Progress(7, 7)
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert len(progress) > 2  # it moved while resources were being created
    assert result.ok and result.stack_status == "CREATE_COMPLETE" and result.failure is None
    assert result.outputs["Greeting"] == "hi"
    assert set(result.outputs) == {"UploadsBucket", "InboxUrl", "FunctionName", "Greeting"}
    function = aws(target, "lambda").get_function(FunctionName=result.outputs["FunctionName"])
    assert function["Configuration"]["Handler"] == "backend.handlers.authorizer.handler"
    assert OutputsStore().load(engine.environment) == result.outputs
    assert engine.remembered_outputs() == result.outputs


def test_a_second_deploy_without_changes_is_empty(engine, target):
    deployed(engine)
    plan = engine.plan({})
    assert plan.empty and plan.kind == "UPDATE"
    assert not plan.artifact_uploaded  # same code, same key: not uploaded again
    _, _, result = run(engine.execute(plan))
    assert result.ok and result.stack_status == "CREATE_COMPLETE"
    summaries = aws(target, "cloudformation").list_change_sets(StackName=engine.stack_name)
    assert not [
        s
        for s in summaries["Summaries"]
        if s["StackName"] == engine.stack_name and s["Status"] == "FAILED"
    ]


def test_an_update_deploys_new_code_and_keeps_previous_parameter_values(
    engine, target, source_root, tmp_path
):
    first = deployed(engine, {"Greeting": "bonjour"})
    tokens = source_root / "backend" / "tokens.py"
    tokens.write_text(tokens.read_text() + "\n# new code\n")
    template = (TEMPLATES / "stack.yaml").read_text()
    updated = tmp_path / "stack.yaml"
    updated.write_text(
        template.replace("Resources:\n", "Resources:\n  Outbox:\n    Type: AWS::SQS::Queue\n", 1)
    )
    engine.template_path = updated

    plan = engine.plan({})
    assert plan.kind == "UPDATE" and not plan.empty
    assert plan.artifact_uploaded
    assert ("Add", "Outbox") in {(c.action, c.logical_id) for c in plan.changes}
    events, progress, result = run(engine.execute(plan))

    assert result.ok and result.stack_status == "UPDATE_COMPLETE"
    assert result.outputs["Greeting"] == "bonjour"  # not given this time: previous value kept
    assert result.outputs["FunctionName"] == first.outputs["FunctionName"]
    assert ("Outbox", "CREATE_COMPLETE") in {(e.logical_id, e.status) for e in events}
    assert progress[-1].done == progress[-1].total
    queues = aws(target, "sqs").list_queues()["QueueUrls"]
    assert [url for url in queues if f"{engine.stack_name}-Outbox" in url]


def test_a_failing_resource_is_reported_with_the_rollback(target, source_root):
    taken = stack_name("taken-bucket")
    aws(target, "s3").create_bucket(Bucket=taken)
    engine = DeployEngine(
        target, stack_name(), TEMPLATES / "failing.yaml", source_root, poll_interval=POLL
    )
    plan = engine.plan({"TakenBucketName": taken})
    events, _, result = run(engine.execute(plan))

    assert not result.ok
    assert result.stack_status == "ROLLBACK_COMPLETE"
    failure = result.failure
    assert (failure.logical_id, failure.resource_type) == ("Uploads", "AWS::S3::Bucket")
    assert "bucket name is not available" in failure.reason
    assert failure.sentence.startswith("Resource Uploads (AWS::S3::Bucket) failed: The requested")
    assert failure.sentence.endswith(". The stack rolled back (ROLLBACK_COMPLETE).")
    assert ("Inbox", "DELETE_COMPLETE") in {(e.logical_id, e.status) for e in events}
    with pytest.raises(DeployError, match="failed to create and rolled back"):
        engine.plan({"TakenBucketName": taken})


def test_abort_stops_watching_but_not_the_deploy(engine):
    plan = engine.plan({})
    abort = threading.Event()
    seen = []
    for item in engine.execute(plan, abort):
        seen.append(item)
        if isinstance(item, StackEvent):
            abort.set()
    assert not [item for item in seen if isinstance(item, DeployResult)]
    assert len([item for item in seen if isinstance(item, StackEvent)]) == 1
    eventually(
        lambda: engine.status().status == "CREATE_COMPLETE",
        interval=POLL,
        message="the stack to finish after the watch stopped",
    )


def test_a_template_too_big_to_send_inline_goes_through_s3(engine, target, monkeypatch):
    monkeypatch.setattr(deploy, "TEMPLATE_BODY_LIMIT", 0)
    result = deployed(engine)
    assert result.stack_status == "CREATE_COMPLETE"
    bucket = f"classroom-console-artifacts-123456789012-{target.region}"
    listing = aws(target, "s3").list_objects_v2(Bucket=bucket, Prefix="templates/")
    assert [item["Key"] for item in listing.get("Contents", [])]


def test_status_of_a_missing_stack_is_a_state_not_an_error(engine):
    status = engine.status()
    assert status.status == DOES_NOT_EXIST and not status.exists
    assert status.outputs == {} and status.last_events == []
    with pytest.raises(DeployError, match=f"Stack {engine.stack_name} does not exist in us-east-1"):
        engine.outputs()


def test_status_shows_outputs_and_latest_events(engine):
    result = deployed(engine)
    status = engine.status()
    assert status.exists and status.status == "CREATE_COMPLETE"
    assert status.outputs == result.outputs == engine.outputs()
    assert status.last_events[-1].status == "CREATE_COMPLETE"
    assert len(status.last_events) <= deploy.RECENT_EVENTS
    assert status.last_updated is not None


def test_destroy_refuses_a_wrong_name(engine):
    deployed(engine)
    with pytest.raises(ConfigurationError, match="nothing was deleted"):
        next(engine.destroy("not-" + engine.stack_name))
    assert engine.status().status == "CREATE_COMPLETE"


def test_destroy_empties_the_stacks_buckets_then_deletes_it(engine, target):
    result = deployed(engine)
    bucket = result.outputs["UploadsBucket"]
    s3 = aws(target, "s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="board.json", Body=b"v1")
    s3.put_object(Bucket=bucket, Key="board.json", Body=b"v2")
    s3.delete_object(Bucket=bucket, Key="board.json")  # leaves two versions and a delete marker

    events, progress, outcome = run(engine.destroy(engine.stack_name))

    emptied = [e for e in events if e.status == deploy.EMPTIED]
    assert [(e.logical_id, e.resource_type) for e in emptied] == [("Uploads", "AWS::S3::Bucket")]
    assert "Deleted 3 object versions" in emptied[0].reason
    assert outcome.ok and outcome.stack_status == "DELETE_COMPLETE" and outcome.outputs == {}
    assert events[-1].status == "DELETE_COMPLETE"
    assert progress[-1].done == progress[-1].total
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert engine.status().status == DOES_NOT_EXIST
    assert engine.remembered_outputs() is None


def test_destroying_a_missing_stack_is_done_at_once(engine):
    _, _, outcome = run(engine.destroy(engine.stack_name))
    assert outcome.ok and outcome.stack_status == DOES_NOT_EXIST


def test_parameters_the_template_does_not_declare_are_refused(engine):
    with pytest.raises(ConfigurationError, match="The template has no parameter Colour"):
        engine.plan({"Colour": "blue"})
    with pytest.raises(ConfigurationError, match="set by the deploy"):
        engine.plan({"ArtifactKey": "mine.zip"})


def test_a_required_parameter_without_a_value_is_named(target, source_root):
    engine = DeployEngine(target, stack_name(), TEMPLATES / "failing.yaml", source_root)
    with pytest.raises(ConfigurationError, match="needs a value for TakenBucketName"):
        engine.plan({})


def test_an_invalid_stack_name_is_refused(target):
    with pytest.raises(ConfigurationError, match="not a valid stack name"):
        DeployEngine(target, "1 bad name")
    with pytest.raises(ConfigurationError, match="not a valid stack name"):
        DeployEngine(target, "classroom\n")
    # The longest function name, "<stack>-authorizer", must fit Lambda's 64 characters.
    assert DeployEngine(target, "s" * 53).stack_name == "s" * 53
    with pytest.raises(ConfigurationError, match="up to 53"):
        DeployEngine(target, "s" * 54)


def test_recovery_explains_what_is_not_possible(engine):
    with pytest.raises(DeployError, match="does not exist, so there is nothing to cancel"):
        engine.cancel()
    deployed(engine)
    with pytest.raises(DeployError, match=r"is not being updated \(CREATE_COMPLETE\)"):
        engine.cancel()
    with pytest.raises(DeployError, match="only a stack whose rollback failed"):
        next(engine.resume())
    with pytest.raises(DeployError, match="can only roll back a stack in CREATE_FAILED"):
        next(engine.rollback())


def test_failure_sentences_say_where_the_stack_ended_up():
    failure = deploy.Failure("Vpc", "AWS::EC2::VPC", "The CIDR is invalid.", "ROLLBACK_COMPLETE")
    assert failure.sentence == (
        "Resource Vpc (AWS::EC2::VPC) failed: The CIDR is invalid. "
        "The stack rolled back (ROLLBACK_COMPLETE)."
    )
    stuck = deploy.Failure(
        "Cache", "AWS::ElastiCache::ReplicationGroup", "x", "UPDATE_ROLLBACK_FAILED"
    )
    assert "The rollback failed too (UPDATE_ROLLBACK_FAILED)" in stuck.sentence


def test_aws_failures_reach_the_caller_as_sentences(aws_environment, source_root, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    target = AwsTarget(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    engine = DeployEngine(target, stack_name(), TEMPLATES / "stack.yaml", source_root)
    with pytest.raises(deploy.ConsoleError, match="Could not reach AWS at http://127.0.0.1:9"):
        engine.plan({})
    with pytest.raises(deploy.ConsoleError, match="Could not reach AWS"):
        engine.status()
