"""The one AWS session factory, and the one place AWS failures become sentences.

Every AWS call the console makes uses a client from ``client(target, service)`` inside
``aws_errors(target)``: credentials come from the user's AWS profiles or SSO (the console never
stores them), and no botocore exception reaches a user, only a ``ConsoleError`` that says what
to do next.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
import boto3.exceptions
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigParseError,
    ConnectionClosedError,
    ConnectionError,
    CredentialRetrievalError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)
from botocore.parsers import ResponseParserError

from desktop.services.errors import (
    AwsError,
    ConfigurationError,
    ConsoleError,
    CredentialsError,
)

CLIENT_CONFIG = Config(connect_timeout=10, read_timeout=60, user_agent_extra="classroom-console")

ACCESS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "AuthorizationErrorException",
        "Forbidden",
        "403",
        "UnauthorizedAccess",
        "UnauthorizedOperation",
    }
)
THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
    }
)
EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"})
CLOCK_SKEW = frozenset({"RequestExpired", "RequestTimeTooSkewed", "RequestInTheFuture"})
REJECTED_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "InvalidAccessKeyId",
        "AuthFailure",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
DENIED_ACTION = re.compile(r"(?:perform|allows? the)[: ]+([A-Za-z0-9-]+:[A-Za-z0-9*]+)")


@dataclass(frozen=True)
class AwsTarget:
    """Where AWS calls go: a profile (None: the default chain), a region, an endpoint override."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def profile_label(self) -> str:
        """The profile name a sentence should mention, as the AWS CLI would resolve it."""
        return self.profile or os.environ.get("AWS_PROFILE") or "default"


@dataclass(frozen=True)
class CallerIdentity:
    account: str
    arn: str
    user_id: str


@dataclass(frozen=True)
class AwsProfile:
    """A profile from the user's AWS config; ``sso`` profiles need `aws sso login`."""

    name: str
    region: str | None
    sso: bool
    sso_start_url: str | None = None


def session_for(target: AwsTarget) -> boto3.Session:
    """A fresh session for ``target``; sessions are cheap and not safe to share across threads."""
    with aws_errors(target):
        return boto3.Session(profile_name=target.profile, region_name=target.region)


def client(target: AwsTarget, service: str):
    """A botocore client for ``service`` at ``target``, honouring its endpoint override."""
    session = session_for(target)
    with aws_errors(target):
        return session.client(service, endpoint_url=target.endpoint_url, config=CLIENT_CONFIG)


def region_of(target: AwsTarget) -> str:
    """The region calls go to: the target's, else the profile's or the environment's."""
    region = target.region or session_for(target).region_name
    if not region:
        raise translate(NoRegionError(), target)
    return region


def caller_identity(target: AwsTarget, sts=None) -> CallerIdentity:
    """Who the credentials belong to; the cheapest call that proves they work."""
    with aws_errors(target):
        sts = sts or client(target, "sts")
        answer = sts.get_caller_identity()
    return CallerIdentity(account=answer["Account"], arn=answer["Arn"], user_id=answer["UserId"])


def list_profiles() -> list[AwsProfile]:
    """Profiles from ``~/.aws/config`` and ``~/.aws/credentials``, ``default`` first."""
    config = _full_config()
    profiles = []
    for name, values in config.get("profiles", {}).items():
        start_url = values.get("sso_start_url")
        sso_session = values.get("sso_session")
        if sso_session and not start_url:
            start_url = config.get("sso_sessions", {}).get(sso_session, {}).get("sso_start_url")
        sso = bool(start_url or sso_session)
        profiles.append(AwsProfile(name, values.get("region"), sso, start_url if sso else None))
    return sorted(profiles, key=lambda profile: (profile.name != "default", profile.name))


def _full_config() -> dict:
    try:
        return botocore.session.Session().full_config
    except ConfigParseError as error:
        raise ConfigurationError(
            f"Your AWS config file {error.kwargs.get('path', '')} could not be read.",
            hint="Fix its syntax; `aws configure list` shows where the problem is.",
        ) from error


def _is_sso_profile(name: str) -> bool:
    try:
        values = botocore.session.Session().full_config.get("profiles", {}).get(name, {})
    except BotoCoreError:
        return False
    return bool(values.get("sso_start_url") or values.get("sso_session"))


def _sentence(text: object) -> str:
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def translate(error: BaseException, target: AwsTarget) -> ConsoleError:
    """The ``ConsoleError`` a support person sees for a botocore/boto3 ``error`` at ``target``."""
    if isinstance(error, ConsoleError):
        return error
    profile = target.profile_label
    login = f"Run `aws sso login --profile {profile}` and try again."
    if isinstance(error, ClientError):
        return _translate_client_error(error, target)
    if isinstance(error, UnauthorizedSSOTokenError | TokenRetrievalError):
        return CredentialsError(
            f"Your AWS SSO session for profile {profile} has expired.", hint=login
        )
    if isinstance(error, SSOTokenLoadError):
        return CredentialsError(
            f"You are not logged in to AWS SSO for profile {profile}.", hint=login
        )
    if isinstance(error, ProfileNotFound):
        return CredentialsError(
            f"The AWS profile {error.kwargs.get('profile', profile)} is not in your AWS config.",
            hint="Check its spelling, or create it with `aws configure sso`.",
        )
    if isinstance(error, NoCredentialsError):
        return CredentialsError(
            f"No AWS credentials were found for profile {profile}.",
            hint="Choose another profile, or set this one up with `aws configure sso` "
            "(or `aws configure` for access keys).",
        )
    if isinstance(error, PartialCredentialsError):
        return CredentialsError(
            f"The AWS credentials for profile {profile} are incomplete "
            f"({error.kwargs.get('cred_var', 'a value')} is missing).",
            hint="Fix the profile with `aws configure`, or choose another profile.",
        )
    if isinstance(error, CredentialRetrievalError):
        return CredentialsError(
            f"Could not get AWS credentials for profile {profile} from "
            f"{error.kwargs.get('provider', 'its credential source')}: "
            f"{_sentence(error.kwargs.get('error_msg', error))}",
            hint="Log in again for that profile, or choose another profile.",
        )
    if isinstance(error, NoRegionError):
        return ConfigurationError(
            f"No AWS region is set for profile {profile}.",
            hint="Pass a region (--region), or set `region` in the profile.",
        )
    if isinstance(error, InvalidRegionError):
        return ConfigurationError(
            f"{error.kwargs.get('region_name', target.region)!r} is not a valid AWS region name.",
            hint="Use a name like eu-west-1.",
        )
    if isinstance(error, ConfigParseError):
        return ConfigurationError(
            f"Your AWS config file {error.kwargs.get('path', '')} could not be read.",
            hint="Fix its syntax; `aws configure list` shows where the problem is.",
        )
    if isinstance(error, ConnectionError | ConnectionClosedError | ReadTimeoutError):
        where = error.kwargs.get("endpoint_url") or target.endpoint_url or "its endpoint"
        return AwsError(
            f"Could not reach AWS at {where}.",
            hint="Check your network connection, VPN or proxy, and that the region "
            f"({target.region or 'from your profile'}) is right, then try again.",
        )
    if isinstance(error, ResponseParserError):
        where = target.endpoint_url or "AWS"
        return AwsError(
            f"{where} answered with something that is not an AWS response (often a server "
            "error page).",
            hint="Try again in a minute; if it persists, the service or endpoint is failing.",
        )
    if isinstance(error, BotoCoreError):
        return AwsError(f"The AWS request failed: {_sentence(error)}")
    return AwsError(f"The AWS request failed ({type(error).__name__}): {_sentence(error)}")


def _translate_client_error(error: ClientError, target: AwsTarget) -> ConsoleError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    message = str(details.get("Message") or "").strip()
    operation = getattr(error, "operation_name", None) or "the request"
    profile = target.profile_label
    if code in ACCESS_DENIED:
        match = DENIED_ACTION.search(message)
        action = match.group(1) if match else operation
        return AwsError(
            f"Your AWS identity (profile {profile}) is not allowed to perform {action}.",
            hint="Ask your AWS administrator to grant it, or choose a profile that has it.",
        )
    if code in THROTTLING:
        return AwsError(
            f"AWS is throttling requests ({code} on {operation}) and still refused after retries.",
            hint="Wait a minute and try again; if it keeps happening, another tool may be "
            "calling the same API in a loop.",
        )
    if code in EXPIRED:
        from_environment = target.profile is None and "AWS_PROFILE" not in os.environ
        if from_environment and os.environ.get("AWS_ACCESS_KEY_ID"):
            return CredentialsError(
                "The AWS credentials in this environment (AWS_ACCESS_KEY_ID and "
                "AWS_SESSION_TOKEN) have expired.",
                hint="Get fresh ones and try again.",
            )
        if _is_sso_profile(profile):
            return CredentialsError(
                f"Your AWS SSO session for profile {profile} has expired.",
                hint=f"Run `aws sso login --profile {profile}` and try again.",
            )
        return CredentialsError(
            f"Your AWS session for profile {profile} has expired.",
            hint=f"Run `aws sso login --profile {profile}` (or refresh the profile's "
            "credentials) and try again.",
        )
    if code in CLOCK_SKEW:
        return CredentialsError(
            "AWS rejected the request because this computer's clock is wrong.",
            hint="Set the clock to update automatically, then try again.",
        )
    if code in REJECTED_CREDENTIALS:
        return CredentialsError(
            f"AWS did not accept the credentials of profile {profile} ({code}).",
            hint=f"Log in again (`aws sso login --profile {profile}`) or fix the profile's "
            "access keys, then try again.",
        )
    detail = f": {_sentence(message)}" if message else "."
    return AwsError(f"AWS refused {operation} ({code}){detail}")


@contextmanager
def aws_errors(target: AwsTarget) -> Iterator[None]:
    """Re-raise any botocore/boto3 failure inside the block as its translated ``ConsoleError``."""
    try:
        yield
    except ConsoleError:
        raise
    except (BotoCoreError, ClientError, ResponseParserError, boto3.exceptions.Boto3Error) as error:
        raise translate(error, target) from error
