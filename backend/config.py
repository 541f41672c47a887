"""Settings of the backend, read from the environment once per cold start.

Every handler calls ``settings()``; in Lambda the first call reads the environment (and Secrets
Manager for the token secret when only its ARN is given) and later warm invocations reuse it.
Anything else that runs the handlers (the sandbox's workers) hands its settings in with
``backend.runtime.configure`` instead, and the environment is never read.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Settings:
    redis_url: str
    redis_cluster: bool
    token_secret_value: str | None
    token_secret_arn: str | None
    log_max_messages: int
    log_retention_seconds: int
    connection_ttl_seconds: int
    fanout_concurrency: int
    rate_limit_per_second: int
    gone_grace_seconds: int
    management_endpoint_url: str | None
    poster: str
    region: str

    @functools.cached_property
    def token_secret(self) -> str:
        """The HS256 secret; fetched from Secrets Manager once when only its ARN is set."""
        if self.token_secret_value:
            return self.token_secret_value
        if not self.token_secret_arn:
            raise RuntimeError("TOKEN_SECRET or TOKEN_SECRET_ARN must be set")
        import boto3

        client = boto3.client("secretsmanager", region_name=self.region)
        return client.get_secret_value(SecretId=self.token_secret_arn)["SecretString"]


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    return int(raw) if raw not in (None, "") else default


def _flag(env: dict, name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def redis_url_from(env: dict) -> str:
    """``REDIS_URL`` as given, or one built from host, port, TLS and auth token."""
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    host = env.get("REDIS_HOST", "127.0.0.1")
    port = env.get("REDIS_PORT", "6379")
    scheme = "rediss" if _flag(env, "REDIS_TLS") else "redis"
    token = env.get("REDIS_AUTH_TOKEN")
    auth = f":{quote(token, safe='')}@" if token else ""
    return f"{scheme}://{auth}{host}:{port}/0"


def load(env: dict | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    return Settings(
        redis_url=redis_url_from(env),
        redis_cluster=_flag(env, "REDIS_CLUSTER"),
        token_secret_value=env.get("TOKEN_SECRET") or None,
        token_secret_arn=env.get("TOKEN_SECRET_ARN") or None,
        log_max_messages=_int(env, "LOG_MAX_MESSAGES", 1000),
        log_retention_seconds=_int(env, "LOG_RETENTION_SECONDS", 24 * 3600),
        connection_ttl_seconds=_int(env, "CONNECTION_TTL_SECONDS", 2 * 3600),
        fanout_concurrency=max(1, _int(env, "FANOUT_CONCURRENCY", 128)),
        rate_limit_per_second=max(0, _int(env, "RATE_LIMIT_PER_SECOND", 50)),
        gone_grace_seconds=max(0, _int(env, "GONE_GRACE_SECONDS", 10)),
        management_endpoint_url=env.get("MANAGEMENT_ENDPOINT_URL") or None,
        poster=env.get("MANAGEMENT_POSTER", "lean"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


_given: Settings | None = None


def settings() -> Settings:
    """The settings handed in with ``use``, else the environment's, read once."""
    return _given if _given is not None else _from_environment()


@functools.lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return load()


def use(given: Settings | None) -> None:
    """Settings handed in by whatever runs the handlers; None goes back to the environment."""
    global _given
    _given = given


def reset() -> None:
    """Forget the cached settings (tests change the environment between cold starts)."""
    _from_environment.cache_clear()
