"""The Lambda zip: reproducible, complete, runnable, and uploaded once to a private bucket."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest

from desktop.services import packaging
from desktop.services.aws import AwsTarget
from desktop.services.errors import ConfigurationError
from tests.desktop.services.deploy_support import copy_backend

# What the Lambda Python runtime provides, so the zip may rely on it.
LAMBDA_RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "six", "urllib3")

RUN_FROM_ZIP = """
import json, os, sys
from backend import tokens
token = tokens.mint("zip-secret", sub="alice", role="teacher", rooms=["r1"])
identity = tokens.verify(token, "r1", "zip-secret")
import aws_lambda_powertools, jwt, redis, typing_extensions
modules = (aws_lambda_powertools, jwt, redis, typing_extensions, tokens)
result = {
    "identity": [identity.user_id, identity.role, identity.room],
    "origins": {module.__name__: module.__file__ for module in modules},
}
if os.path.exists(os.path.join(sys.argv[1], "backend", "handlers", "authorizer.py")):
    from backend.handlers import authorizer
    event = {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect",
        "queryStringParameters": {"token": token, "room": "r1"},
    }
    class Context:  # what Powertools' inject_lambda_context reads of Lambda's context
        function_name = "classroom-authorizer"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:classroom-authorizer"
        aws_request_id = "3f7f1f3e-5b8e-4c1e-9d1a-2b8f0f6e7a11"
    answer = authorizer.handler(event, Context())
    result["authorizer"] = [answer["policyDocument"]["Statement"][0]["Effect"], answer["context"]]
print("RESULT " + json.dumps(result))
"""


@pytest.fixture
def source_root(tmp_path: Path) -> Path:
    return copy_backend(tmp_path / "src")


@pytest.fixture
def s3_target(aws_environment, moto_endpoint) -> AwsTarget:
    return AwsTarget(region="us-east-1", endpoint_url=moto_endpoint)


def test_identical_code_gives_byte_identical_zips(source_root, tmp_path):
    first = packaging.build_artifact(source_root, tmp_path / "one")
    second = packaging.build_artifact(source_root, tmp_path / "two")
    assert first.path != second.path
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.size == first.path.stat().st_size


def test_a_changed_file_changes_the_hash(source_root, tmp_path):
    before = packaging.build_artifact(source_root, tmp_path / "before")
    tokens = source_root / "backend" / "tokens.py"
    tokens.write_text(tokens.read_text() + "\n# a change\n")
    after = packaging.build_artifact(source_root, tmp_path / "after")
    assert after.sha256 != before.sha256


def test_zip_holds_the_backend_and_its_pure_python_dependencies(source_root, tmp_path):
    (source_root / "backend" / "__pycache__").mkdir(exist_ok=True)
    (source_root / "backend" / "__pycache__" / "tokens.cpython-311.pyc").write_bytes(b"stale")
    artifact = packaging.build_artifact(source_root, tmp_path)
    with zipfile.ZipFile(artifact.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {"backend/__init__.py", "backend/tokens.py", "jwt/__init__.py"} <= set(names)
    assert {
        "redis/__init__.py",
        "aws_lambda_powertools/__init__.py",
        "jmespath/__init__.py",
    } <= set(names)
    assert "backend/template.yaml" not in names
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n or ".dist-info" in n]
    assert not [n for n in names if n.split("/")[0] in ("boto3", "botocore", "s3transfer")]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}


def test_the_zip_imports_and_runs_the_backend(source_root, tmp_path):
    artifact = packaging.build_artifact(source_root, tmp_path)
    task = tmp_path / "task"  # where Lambda unpacks the zip
    with zipfile.ZipFile(artifact.path) as archive:
        archive.extractall(task)
    runtime = tmp_path / "runtime"  # what the Lambda runtime adds: boto3 and its dependencies
    runtime.mkdir()
    for name in LAMBDA_RUNTIME_MODULES:
        module = __import__(name)
        origin = Path(module.__file__)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    environment = {
        **os.environ,
        "PYTHONPATH": f"{task}{os.pathsep}{runtime}",
        "TOKEN_SECRET": "zip-secret",
        "AWS_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [sys.executable, "-S", "-c", RUN_FROM_ZIP, str(task)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["identity"] == ["alice", "teacher", "r1"]
    for name, origin in result["origins"].items():
        assert origin.startswith(str(task)), f"{name} came from {origin}, not the zip"
    if "authorizer" in result:
        effect, context = result["authorizer"]
        assert effect == "Allow"
        assert context["userId"] == "alice"


def test_a_missing_backend_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="There is no backend package"):
        packaging.build_artifact(tmp_path)


def test_the_artifacts_bucket_is_private_encrypted_and_versioned(s3_target, moto_endpoint):
    name = packaging.ensure_bucket(s3_target)
    assert name == "classroom-console-artifacts-123456789012-us-east-1"
    assert packaging.ensure_bucket(s3_target) == name  # idempotent
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"


def test_the_artifacts_bucket_lives_in_the_target_region(aws_environment, moto_endpoint):
    target = AwsTarget(region="eu-west-1", endpoint_url=moto_endpoint)
    name = packaging.ensure_bucket(target)
    assert name.endswith("-eu-west-1")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"


def test_an_unchanged_backend_is_uploaded_once(s3_target, moto_endpoint, tmp_path):
    source = copy_backend(tmp_path / "src", unique=True)
    artifact = packaging.build_artifact(source, tmp_path / "zip")
    first = packaging.upload(s3_target, artifact)
    again = packaging.upload(s3_target, packaging.build_artifact(source, tmp_path / "again"))
    assert first.uploaded is True
    assert again.uploaded is False
    assert first.key == again.key == f"backend/{artifact.sha256}.zip"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    stored = s3.get_object(Bucket=first.bucket, Key=first.key)["Body"].read()
    assert stored == artifact.path.read_bytes()
