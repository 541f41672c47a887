"""Settings from the environment, as the template sets them."""

from __future__ import annotations

from backend import config


def test_defaults():
    settings = config.load({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.log_max_messages == 1000
    assert settings.log_retention_seconds == 86400
    assert settings.connection_ttl_seconds == 7200
    assert settings.fanout_concurrency == 128
    assert settings.poster == "lean"


def test_redis_url_from_host_port_and_tls_the_auth_token_a_secret_apart():
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-auth-AbCdEf"
    settings = config.load(
        {
            "REDIS_HOST": "master.cache.amazonaws.com",
            "REDIS_PORT": "6380",
            "REDIS_TLS": "true",
            "REDIS_AUTH_SECRET_ARN": arn,
            "REDIS_CLUSTER": "true",
        }
    )
    assert settings.redis_url == "rediss://master.cache.amazonaws.com:6380/0"
    assert settings.redis_auth_secret_arn == arn
    assert settings.redis_cluster is True


def test_redis_url_wins_over_parts():
    assert (
        config.load({"REDIS_URL": "redis://x:1/2", "REDIS_HOST": "y"}).redis_url == "redis://x:1/2"
    )
