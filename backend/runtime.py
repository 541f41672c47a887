"""Clients a warm Lambda reuses: the Redis registry and one poster per management endpoint.

Built on first use from ``config.settings()``; ``reset()`` forgets them (tests change the
environment between cold starts). Whatever runs the handlers outside Lambda (the sandbox's
worker processes) makes one ``configure`` call instead: its settings, its poster and where
metric points go, so nothing is read from or written to the environment.

The Redis AUTH token is a secret (``REDIS_AUTH_SECRET_ARN``), read through ``backend.secret``
and so read again once ``secret.MAX_AGE`` old. When the value read differs from the one the
registry's client was built with, the registry gets a new client (the old one is closed): after
a rotation, every connection a client opens again must use the new token.
"""

from __future__ import annotations

import threading

from backend import config, observability, secret
from backend.poster import POSTERS, Poster
from backend.registry import Registry

_lock = threading.Lock()
_registry: Registry | None = None
_registry_auth: str | None = None  # the AUTH token the registry's client was built with
_posters: dict[str, Poster] = {}
# The poster for every endpoint, when one was handed in (``configure``).
_given_poster: Poster | None = None


# Attempts after a timeout or a lost connection. redis-py's default is 10, which at a 3 s
# socket timeout outlasts API Gateway's 29 s (the client would get "Endpoint request timed
# out" instead of ``unavailable``). Retrying a send is safe: it is idempotent by its id.
REDIS_RETRIES = 2


def redis_client(settings: config.Settings, password: str | None = None):
    """A Redis client for a single node or, with ``REDIS_CLUSTER``, a cluster; ``password`` is
    the AUTH token (a password in the URL wins)."""
    options: dict = {
        "decode_responses": True,
        "socket_timeout": 3,
        "socket_connect_timeout": 3,
        "health_check_interval": 30,
    }
    if password is not None:
        options["password"] = password
    if settings.redis_cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(settings.redis_url, **options)
    import redis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), REDIS_RETRIES)
    return redis.Redis.from_url(settings.redis_url, retry=retry, **options)


def redis_auth_token() -> str | None:
    """The Redis AUTH token's current value, or None when no ``REDIS_AUTH_SECRET_ARN`` is set."""
    settings = config.settings()
    arn = settings.redis_auth_secret_arn
    return secret.value_of(arn, settings.region) if arn else None


def registry() -> Registry:
    global _registry, _registry_auth
    auth = redis_auth_token()
    with _lock:
        if _registry is not None and auth != _registry_auth:
            observability.logger.info("the Redis AUTH token changed; connecting with the new one")
            _registry.client.close()
            _registry = None
        if _registry is None:
            settings = config.settings()
            _registry_auth = auth
            _registry = Registry(
                redis_client(settings, auth),
                connection_ttl=settings.connection_ttl_seconds,
                log_max_messages=settings.log_max_messages,
                log_retention_seconds=settings.log_retention_seconds,
                rate_limit_per_second=settings.rate_limit_per_second,
                gone_grace_seconds=settings.gone_grace_seconds,
            )
        return _registry


def poster(endpoint_url: str) -> Poster:
    with _lock:
        if _given_poster is not None:
            return _given_poster
        found = _posters.get(endpoint_url)
        if found is None:
            settings = config.settings()
            kind = POSTERS.get(settings.poster, POSTERS["lean"])
            found = kind(endpoint_url, settings.region, concurrency=settings.fanout_concurrency)
            _posters[endpoint_url] = found
        return found


def configure(
    settings: config.Settings,
    *,
    poster: Poster | None = None,
    metrics: observability.MetricSink | None = None,
    log_level: str | None = None,
    secrets_client=None,
    clock: secret.Clock | None = None,
) -> None:
    """A cold start with these settings instead of the environment's: ``poster`` serves every
    management endpoint, ``metrics`` receives every metric point (instead of EMF on stdout),
    secrets named by ARN are read with ``secrets_client`` and their age measured on ``clock``."""
    global _given_poster
    reset()
    config.use(settings)
    observability.configure(metrics, log_level)
    secret.use(secrets_client, clock)
    with _lock:
        _given_poster = poster


def reset() -> None:
    global _registry, _registry_auth
    with _lock:
        if _registry is not None:
            _registry.client.close()
        _registry = None
        _registry_auth = None
        _posters.clear()
    secret.reset()
    config.reset()
