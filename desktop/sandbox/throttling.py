"""The stage's route throttling, as API Gateway applies ``DefaultRouteSettings`` to every route.

Each route (``$connect``, ``send``, ``sync``, ``who``, ``ping``, ``$default``) has a token bucket
of its own with the stage's steady rate and burst (the template's ``ThrottlingRateLimit`` and
``ThrottlingBurstLimit``): a flood of ``ping`` uses up ``ping``'s bucket and no other. A frame
past its route's limit is answered at once and never reaches a handler.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RouteThrottle:
    """Token buckets per route: ``rate`` requests a second, up to ``burst`` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = max(0.0, float(rate))
        self.burst = max(0, int(burst))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, route: str) -> bool:
        """Takes a token from ``route``'s bucket; False when it has none (throttled)."""
        now = self._clock()
        bucket = self._buckets.get(route)
        if bucket is None:
            bucket = self._buckets[route] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate
            )
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False
