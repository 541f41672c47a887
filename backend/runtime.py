"""Clients a warm Lambda reuses: the Redis registry and one poster per management endpoint.

Built on first use from ``config.settings()``; ``reset()`` forgets them (the sandbox and tests
change the environment between runs).
"""

from __future__ import annotations

import threading

from backend import config
from backend.poster import POSTERS, Poster
from backend.registry import Registry

_lock = threading.Lock()
_registry: Registry | None = None
_posters: dict[str, Poster] = {}
_credentials = None


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

    return redis.Redis.from_url(settings.redis_url, **options)


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
        found = _posters.get(endpoint_url)
        if found is None:
            settings = config.settings()
            kind = POSTERS.get(settings.poster, POSTERS["lean"])
            found = kind(
                endpoint_url,
                settings.region,
                concurrency=settings.fanout_concurrency,
                credentials=_credentials,
            )
            _posters[endpoint_url] = found
        return found


def sign_with(credentials) -> None:
    """Sign management API calls with these credentials instead of the process's AWS identity.

    The sandbox uses stand-in keys, so that running it never changes what credentials the
    console's own AWS calls use; ``None`` goes back to the process's identity.
    """
    global _credentials
    with _lock:
        _credentials = credentials
        _posters.clear()


def reset() -> None:
    global _registry
    with _lock:
        if _registry is not None:
            _registry.client.close()
        _registry = None
        _posters.clear()
    config.reset()
