"""Secrets read through Powertools' parameters against moto's Secrets Manager (server mode): a
rotation takes effect once ``MAX_AGE`` has passed on the clock handed in, never before, and
without a cold start; for the token secret and for the Redis AUTH token."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
import redis

from backend import config, runtime, secret, tokens
from backend.handlers import admin, authorizer
from tests.backend.conftest import SECRET, LambdaContext, load_event
from tests.conftest import start_redis

ROOM = "physics-101"


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def secrets_manager(aws_environment, moto_endpoint):
    """A Secrets Manager client on moto's server, counting the GetSecretValue calls it makes."""
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.reads = 0  # type: ignore[attr-defined]

    def count(**_):
        client.reads += 1  # type: ignore[attr-defined]

    client.meta.events.register("before-call.secrets-manager.GetSecretValue", count)
    return client


def new_secret(client, value: str) -> str:
    return client.create_secret(Name=f"classroom-{uuid.uuid4()}", SecretString=value)["ARN"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cold_start(secrets_manager, clock) -> Iterator[Callable[[dict], None]]:
    """A cold start with settings from the given environment, reading secrets from moto on
    ``clock``: what the sandbox's workers do with ``runtime.configure``."""

    def start(environment: dict) -> None:
        runtime.configure(
            config.load({"AWS_REGION": "us-east-1", **environment}),
            secrets_client=secrets_manager,
            clock=clock,
        )

    yield start
    runtime.reset()
    config.use(None)
    secret.use()


def test_max_age_is_five_minutes():
    assert secret.MAX_AGE == 300


def test_a_secret_is_read_again_once_max_age_old_and_not_before(secrets_manager, clock):
    arn = new_secret(secrets_manager, "first")
    found = secret.Secret(arn, secret.provider("us-east-1", secrets_manager), clock=clock)
    assert found.value() == "first"
    secrets_manager.put_secret_value(SecretId=arn, SecretString="second")
    clock.advance(secret.MAX_AGE - 1)
    assert found.value() == "first"  # from Powertools' cache: no call
    assert secrets_manager.reads == 1
    clock.advance(1)
    assert found.value() == "second"
    assert found.value() == "second"
    assert secrets_manager.reads == 2


def authorize(signed: str, connection_id: str = "C1") -> str:
    event = load_event("authorizer", connectionId=connection_id)
    event["queryStringParameters"] = {"room": ROOM, "token": signed}
    answer = authorizer.handler(event, LambdaContext(function_name="classroom-authorizer"))
    return answer["policyDocument"]["Statement"][0]["Effect"]


def test_a_rotated_token_secret_refuses_tokens_signed_with_the_old_one(
    cold_start, secrets_manager, clock, redis_server
):
    old, new = "old-" + SECRET, "new-" + SECRET
    arn = new_secret(secrets_manager, old)
    cold_start({"TOKEN_SECRET_ARN": arn, "REDIS_URL": redis_server})
    signed_old = tokens.mint(old, sub="student-1", role="student", rooms=[ROOM])
    signed_new = tokens.mint(new, sub="student-1", role="student", rooms=[ROOM])
    assert authorize(signed_old) == "Allow"

    secrets_manager.put_secret_value(SecretId=arn, SecretString=new)
    clock.advance(secret.MAX_AGE - 1)
    assert authorize(signed_old) == "Allow"  # the warm container's value, as read
    assert authorize(signed_new) == "Deny"

    clock.advance(1)
    assert authorize(signed_old) == "Deny"
    assert authorize(signed_new) == "Allow"
    # The admin function mints support tokens with the new secret too.
    answer = admin.handler(
        {"op": "support_token", "staff": "support-1", "room": ROOM}, LambdaContext()
    )
    assert tokens.verify(answer["token"], ROOM, new).user_id == "support-1"
    assert authorize(answer["token"]) == "Allow"


def test_a_plain_token_secret_wins_and_secrets_manager_is_never_called(cold_start, secrets_manager):
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:not-there-AbCdEf"
    cold_start({"TOKEN_SECRET": SECRET, "TOKEN_SECRET_ARN": missing})
    assert config.settings().token_secret == SECRET
    assert authorize(tokens.mint(SECRET, sub="s", role="student", rooms=[ROOM])) == "Allow"
    assert secrets_manager.reads == 0


def test_the_lambda_cold_start_reads_the_secret_its_environment_names(
    monkeypatch, secrets_manager, moto_endpoint, backend_env
):
    # In Lambda nothing is handed in: boto3's own client, pointed at moto as AWS_ENDPOINT_URL_*
    # points any boto3 client.
    arn = new_secret(secrets_manager, "lambda-" + SECRET)
    monkeypatch.delenv("TOKEN_SECRET")
    monkeypatch.setenv("TOKEN_SECRET_ARN", arn)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    runtime.reset()
    signed = tokens.mint("lambda-" + SECRET, sub="s", role="student", rooms=[ROOM])
    assert authorize(signed) == "Allow"
    assert authorize(signed, "C2") == "Allow"


@pytest.fixture
def guarded_redis(tmp_path) -> Iterator[tuple[int, redis.Redis]]:
    """A redis-server of its own requiring the AUTH token ``first-token``; yields its port and
    a client authenticated on it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port, process = start_redis(binary, str(tmp_path))
    redis.Redis(port=port).config_set("requirepass", "first-token")
    operator = redis.Redis(port=port, password="first-token")
    try:
        yield port, operator
    finally:
        operator.close()
        process.terminate()
        process.wait(timeout=10)


def test_a_rotated_redis_auth_token_reconnects_the_registry(
    cold_start, secrets_manager, clock, guarded_redis
):
    port, operator = guarded_redis
    arn = new_secret(secrets_manager, "first-token")
    cold_start(
        {
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "REDIS_AUTH_SECRET_ARN": arn,
            "TOKEN_SECRET": SECRET,
        }
    )
    first = runtime.registry()
    assert first.client.ping()

    # Rotated: Redis takes only the new token from now on (as after ElastiCache's SET).
    operator.config_set("requirepass", "second-token")
    secrets_manager.put_secret_value(SecretId=arn, SecretString="second-token")
    clock.advance(secret.MAX_AGE - 1)
    assert runtime.registry() is first

    clock.advance(1)
    second = runtime.registry()
    assert second is not first
    assert second.client.ping()  # a new connection, authenticated with the new token
    assert runtime.registry() is second
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, password="first-token").ping()


def test_without_an_auth_secret_the_registry_is_built_once(cold_start, redis_server):
    cold_start({"REDIS_URL": redis_server, "TOKEN_SECRET": SECRET})
    assert runtime.registry() is runtime.registry()
    assert runtime.redis_auth_token() is None
