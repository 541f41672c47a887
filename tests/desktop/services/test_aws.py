"""The AWS session factory and the sentences AWS failures become, against real HTTP endpoints."""

from __future__ import annotations

import hashlib
import json
import socket

import botocore.credentials
import botocore.tokens
import pytest
from botocore.exceptions import ClientError, NoRegionError

from desktop.services import aws
from desktop.services.aws import AwsTarget, aws_errors, caller_identity, list_profiles, translate
from desktop.services.errors import AwsError, ConfigurationError, ConsoleError, CredentialsError
from tests.desktop.services.error_endpoint import (
    ACCESS_DENIED,
    EXPIRED_TOKEN,
    PROXY_ERROR_PAGE,
    THROTTLING,
    ErrorEndpoint,
)

SSO_CONFIG = """\
[default]
region = us-east-1

[profile legacy-sso]
sso_start_url = https://example.awsapps.com/start
sso_region = us-east-1
sso_account_id = 123456789012
sso_role_name = Support
region = eu-west-1

[profile school]
sso_session = school
sso_account_id = 123456789012
sso_role_name = Support
region = eu-central-1

[profile keys]
region = us-west-2

[sso-session school]
sso_start_url = https://school.awsapps.com/start
sso_region = us-east-1
sso_registration_scopes = sso:account:access
"""


@pytest.fixture
def aws_config(aws_environment, tmp_path, monkeypatch):
    """An AWS config with SSO and key profiles, and a home whose SSO tokens have expired."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / "aws-config").write_text(SSO_CONFIG)
    (tmp_path / "aws-credentials").write_text(
        "[keys]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\n"
        "aws_session_token = token\n\n[ci]\naws_access_key_id = AKIACI\n"
        "aws_secret_access_key = secret\n"
    )
    cache = tmp_path / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True)
    # botocore resolves ~/.aws/sso/cache when it is imported, so HOME alone does not move it
    monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(botocore.tokens.SSOTokenProvider, "_SSO_TOKEN_CACHE_DIR", str(cache))
    expired = {"accessToken": "x", "region": "us-east-1", "expiresAt": "2020-01-01T00:00:00Z"}
    for key in ("https://example.awsapps.com/start", "school"):
        name = hashlib.sha1(key.encode()).hexdigest()
        (cache / f"{name}.json").write_text(json.dumps({**expired, "startUrl": key}))
    return tmp_path


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_client_honours_the_target_endpoint_and_region(aws_environment, moto_endpoint):
    target = AwsTarget(region="eu-west-1", endpoint_url=moto_endpoint)
    cloudformation = aws.client(target, "cloudformation")
    assert cloudformation.meta.endpoint_url == moto_endpoint
    assert cloudformation.meta.region_name == "eu-west-1"
    assert aws.region_of(AwsTarget()) == "us-east-1"  # from AWS_DEFAULT_REGION


def test_caller_identity_names_the_account(aws_environment, moto_endpoint):
    identity = caller_identity(AwsTarget(endpoint_url=moto_endpoint))
    assert identity.account == "123456789012"
    assert identity.arn.startswith("arn:aws:")


def test_list_profiles_marks_sso_profiles(aws_config):
    profiles = {profile.name: profile for profile in list_profiles()}
    assert list(profiles)[0] == "default"
    assert set(profiles) == {"default", "legacy-sso", "school", "keys", "ci"}
    assert profiles["legacy-sso"].sso and profiles["school"].sso
    assert profiles["school"].sso_start_url == "https://school.awsapps.com/start"
    assert profiles["school"].region == "eu-central-1"
    assert not profiles["keys"].sso and not profiles["ci"].sso and not profiles["default"].sso


def test_list_profiles_reports_a_broken_config(aws_environment, tmp_path):
    (tmp_path / "aws-config").write_text("[profile broken\nregion = x\n")
    with pytest.raises(ConfigurationError, match="could not be read"):
        list_profiles()


@pytest.mark.parametrize("profile", ["legacy-sso", "school"])
def test_an_expired_sso_session_says_how_to_log_in(aws_config, profile):
    with pytest.raises(CredentialsError) as caught:
        caller_identity(AwsTarget(profile=profile, region="us-east-1"))
    assert str(caught.value) == (
        f"Your AWS SSO session for profile {profile} has expired. "
        f"Run `aws sso login --profile {profile}` and try again."
    )


def test_an_unknown_profile_is_named(aws_config):
    with pytest.raises(CredentialsError, match="The AWS profile nope is not in your AWS config"):
        aws.session_for(AwsTarget(profile="nope"))


def test_no_credentials_says_how_to_set_them_up(aws_config, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(CredentialsError, match="No AWS credentials were found for profile default"):
        caller_identity(AwsTarget(region="us-east-1", endpoint_url=closed_port_url()))


def test_access_denied_names_the_action(aws_environment):
    with ErrorEndpoint(*ACCESS_DENIED) as endpoint, pytest.raises(AwsError) as caught:
        target = AwsTarget(region="us-east-1", endpoint_url=endpoint.url)
        with aws_errors(target):
            aws.client(target, "cloudformation").describe_stacks(StackName="classroom")
    assert str(caught.value) == (
        "Your AWS identity (profile default) is not allowed to perform "
        "cloudformation:DescribeStacks. Ask your AWS administrator to grant it, or choose a "
        "profile that has it."
    )
    assert isinstance(caught.value.__cause__, ClientError)


def test_access_denied_without_an_action_names_the_operation():
    error = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
    assert "not allowed to perform HeadObject" in str(translate(error, AwsTarget("ops")))


def test_expired_credentials_of_a_profile_say_to_log_in_again(aws_config):
    with ErrorEndpoint(*EXPIRED_TOKEN) as endpoint, pytest.raises(CredentialsError) as caught:
        caller_identity(AwsTarget(profile="keys", region="us-east-1", endpoint_url=endpoint.url))
    assert str(caught.value).startswith("Your AWS session for profile keys has expired.")
    assert "`aws sso login --profile keys`" in str(caught.value)


def test_expired_token_of_an_sso_profile_is_the_sso_sentence(aws_config):
    error = ClientError({"Error": {"Code": "ExpiredToken", "Message": "expired"}}, "DescribeStacks")
    assert str(translate(error, AwsTarget(profile="school"))) == (
        "Your AWS SSO session for profile school has expired. "
        "Run `aws sso login --profile school` and try again."
    )


def test_expired_environment_credentials_say_so(aws_environment):
    with ErrorEndpoint(*EXPIRED_TOKEN) as endpoint, pytest.raises(CredentialsError) as caught:
        caller_identity(AwsTarget(region="us-east-1", endpoint_url=endpoint.url))
    assert "credentials in this environment" in str(caught.value)
    assert "have expired" in str(caught.value)


def test_throttling_is_retried_then_explained(aws_environment, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with ErrorEndpoint(*THROTTLING) as endpoint, pytest.raises(AwsError) as caught:
        target = AwsTarget(region="us-east-1", endpoint_url=endpoint.url)
        with aws_errors(target):
            aws.client(target, "cloudformation").describe_stack_events(StackName="classroom")
    assert endpoint.requests == 2  # botocore retried before giving up
    assert str(caught.value).startswith(
        "AWS is throttling requests (Throttling on DescribeStackEvents)"
    )
    assert "Wait a minute and try again" in str(caught.value)


def test_a_server_error_page_is_a_sentence(aws_environment, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with (
        ErrorEndpoint(500, "", "", page=PROXY_ERROR_PAGE) as endpoint,
        pytest.raises(AwsError) as caught,
    ):
        target = AwsTarget(region="us-east-1", endpoint_url=endpoint.url)
        with aws_errors(target):
            aws.client(target, "cloudformation").describe_stacks(StackName="classroom")
    assert str(caught.value).startswith(
        f"{endpoint.url} answered with something that is not an AWS"
    )


def test_an_unreachable_endpoint_names_it(aws_environment, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = closed_port_url()
    with pytest.raises(AwsError, match=f"Could not reach AWS at {url}"):
        caller_identity(AwsTarget(region="us-east-1", endpoint_url=url))


def test_a_missing_region_is_a_configuration_error(aws_environment, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="No AWS region is set for profile default"):
        aws.region_of(AwsTarget())
    assert isinstance(translate(NoRegionError(), AwsTarget()), ConfigurationError)


def test_other_client_errors_keep_the_aws_message():
    error = ClientError(
        {"Error": {"Code": "LimitExceededException", "Message": "Too many stacks"}}, "CreateStack"
    )
    assert str(translate(error, AwsTarget())) == (
        "AWS refused CreateStack (LimitExceededException): Too many stacks."
    )


def test_console_errors_pass_through_unchanged():
    original = CredentialsError("already a sentence.")
    with pytest.raises(ConsoleError) as caught, aws_errors(AwsTarget()):
        raise original
    assert caught.value is original
