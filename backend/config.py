"""Settings of the backend, read from the environment once per cold start.

Every handler calls ``settings()``; in Lambda the first call reads the environment and later
warm invocations reuse it. Secret values are not kept in the settings: the environment names
them by ARN (``TOKEN_SECRET_ARN``, ``REDIS_AUTH_SECRET_ARN``) and they are read through
``backend.secret``, again whenever they are older than its ``MAX_AGE``. Anything else
that runs the handlers (the sandbox's workers) hands its settings in with
``backend.runtime.configure`` instead, and the environment is never read.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from backend import secret


@dataclass(frozen=True)
class Settings:
    redis_url: str
    redis_cluster: bool
    # The Redis AUTH token's secret; None when the URL carries the password, or Redis needs none.
    redis_auth_secret_arn: str | None
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

    @property
    def token_secret(self) -> str:
        """The HS256 secret: ``TOKEN_SECRET`` as given, else ``TOKEN_SECRET_ARN``'s current value
        (read again once ``secret.MAX_AGE`` old, so a rotation needs no cold start)."""
        if self.token_secret_value:
            return self.token_secret_value
        if not self.token_secret_arn:
            raise RuntimeError("TOKEN_SECRET or TOKEN_SECRET_ARN must be set")
        return secret.value_of(self.token_secret_arn, self.region)


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    return int(raw) if raw not in (None, "") else default


def _flag(env: dict, name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def redis_url_from(env: dict) -> str:
    """``REDIS_URL`` as given, or one built from host, port and TLS (the AUTH token is a secret,
    ``REDIS_AUTH_SECRET_ARN``, handed to the client apart from the URL)."""
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    host = env.get("REDIS_HOST", "127.0.0.1")
    port = env.get("REDIS_PORT", "6379")
    scheme = "rediss" if _flag(env, "REDIS_TLS") else "redis"
    return f"{scheme}://{host}:{port}/0"


def load(env: dict | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    return Settings(
        redis_url=redis_url_from(env),
        redis_cluster=_flag(env, "REDIS_CLUSTER"),
        redis_auth_secret_arn=env.get("REDIS_AUTH_SECRET_ARN") or None,
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
