"""Settings from the environment, as the template sets them."""

from __future__ import annotations

import boto3

from backend import config


def test_defaults():
    settings = config.load({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.log_max_messages == 1000
    assert settings.log_retention_seconds == 86400
    assert settings.connection_ttl_seconds == 7200
    assert settings.fanout_concurrency == 128
    assert settings.poster == "lean"


def test_redis_url_from_host_port_tls_and_auth_token():
    settings = config.load(
        {
            "REDIS_HOST": "master.cache.amazonaws.com",
            "REDIS_PORT": "6380",
            "REDIS_TLS": "true",
            "REDIS_AUTH_TOKEN": "p@ss/word",
            "REDIS_CLUSTER": "true",
        }
    )
    assert settings.redis_url == "rediss://:p%40ss%2Fword@master.cache.amazonaws.com:6380/0"
    assert settings.redis_cluster is True


def test_redis_url_wins_over_parts():
    assert (
        config.load({"REDIS_URL": "redis://x:1/2", "REDIS_HOST": "y"}).redis_url == "redis://x:1/2"
    )


def test_token_secret_is_read_from_secrets_manager_once(
    monkeypatch, aws_environment, moto_endpoint
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    arn = client.create_secret(Name="classroom-token-secret-test", SecretString="s3cret")["ARN"]
    settings = config.load({"TOKEN_SECRET_ARN": arn, "AWS_REGION": "us-east-1"})
    assert settings.token_secret == "s3cret"
    client.put_secret_value(SecretId=arn, SecretString="rotated")
    assert settings.token_secret == "s3cret"  # read once per cold start
