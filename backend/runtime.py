"""Clients a warm Lambda reuses: the Redis registry and one poster per management endpoint.

Built on first use from ``config.settings()``; ``reset()`` forgets them (tests change the
environment between cold starts). Whatever runs the handlers outside Lambda (the sandbox's
worker processes) makes one ``configure`` call instead: its settings, its poster and where
metric points go, so nothing is read from or written to the environment.
"""

from __future__ import annotations

import threading

from backend import config, observability
from backend.poster import POSTERS, Poster
from backend.registry import Registry

_lock = threading.Lock()
_registry: Registry | None = None
_posters: dict[str, Poster] = {}
# The poster for every endpoint, when one was handed in (``configure``).
_given_poster: Poster | None = None


# Attempts after a timeout or a lost connection. redis-py's default is 10, which at a 3 s
# socket timeout outlasts API Gateway's 29 s (the client would get "Endpoint request timed
# out" instead of ``unavailable``). Retrying a send is safe: it is idempotent by its id.
REDIS_RETRIES = 2


def redis_client(settings: config.Settings):
    """A Redis client for a single node or, with ``REDIS_CLUSTER``, a cluster."""
    options = {
        "decode_responses": True,
        "socket_timeout": 3,
        "socket_connect_timeout": 3,
        "health_check_interval": 30,
    }
    if settings.redis_cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(settings.redis_url, **options)
    import redis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), REDIS_RETRIES)
    return redis.Redis.from_url(settings.redis_url, retry=retry, **options)


def registry() -> Registry:
    global _registry
    with _lock:
        if _registry is None:
            settings = config.settings()
            _registry = Registry(
                redis_client(settings),
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
) -> None:
    """A cold start with these settings instead of the environment's: ``poster`` serves every
    management endpoint, ``metrics`` receives every metric point (instead of EMF on stdout)."""
    global _given_poster
    reset()
    config.use(settings)
    observability.configure(metrics, log_level)
    with _lock:
        _given_poster = poster


def reset() -> None:
    global _registry
    with _lock:
        if _registry is not None:
            _registry.client.close()
        _registry = None
        _posters.clear()
    config.reset()
