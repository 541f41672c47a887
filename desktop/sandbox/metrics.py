"""Per-minute metrics for ``/_metrics``: API Gateway's WebSocket metrics and the handlers' own.

The console graphs the sandbox as it graphs CloudWatch, so points are one-minute statistics
(sum, count, min, max) under CloudWatch's names and units. What the gateway counts:

- ``ConnectCount``: ``$connect`` integrations invoked (after the authorizer allowed).
- ``MessageCount``: frames from clients plus frames posted to clients through ``@connections``.
- ``ClientError``: requests the gateway refused before any integration ran: no token (401), an
  authorizer deny (403), an unknown stage (403), a frame over 128 KB (close 1009), a binary
  frame (close 1003).
- ``IntegrationError``: an integration (``$connect``, ``$disconnect``, a message route) raised,
  returned something that is not an object, or answered with a 4xx/5xx ``statusCode``.
- ``ExecutionError``: the gateway could not get an answer at all: the authorizer raised or
  returned an unusable policy (500), or an integration ran past the 29 s integration timeout.
- ``IntegrationLatency``: milliseconds each integration took (not the authorizer).

Handler custom metrics arrive through ``backend.observability``'s listener with their own names
and units. Points older than three hours are dropped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

GATEWAY_NAMESPACE = "AWS/ApiGateway"
PERIOD = 60
RETENTION_SECONDS = 3 * 3600

CONNECT_COUNT = "ConnectCount"
MESSAGE_COUNT = "MessageCount"
CLIENT_ERROR = "ClientError"
INTEGRATION_ERROR = "IntegrationError"
EXECUTION_ERROR = "ExecutionError"
INTEGRATION_LATENCY = "IntegrationLatency"
COUNT = "Count"
MILLISECONDS = "Milliseconds"
GATEWAY_METRICS = (
    (CONNECT_COUNT, COUNT),
    (MESSAGE_COUNT, COUNT),
    (CLIENT_ERROR, COUNT),
    (INTEGRATION_ERROR, COUNT),
    (EXECUTION_ERROR, COUNT),
    (INTEGRATION_LATENCY, MILLISECONDS),
)


@dataclass
class _Point:
    sum: float
    count: int
    min: float
    max: float

    def add(self, value: float, times: int = 1) -> None:
        self.sum += value * times
        self.count += times
        self.min = min(self.min, value)
        self.max = max(self.max, value)


_GATEWAY_UNITS = dict(GATEWAY_METRICS)


class MetricsBoard:
    """Thread-safe per-minute statistics; the loop records, the console may read from another thread."""

    def __init__(self, handler_namespace: str = "ClassroomConsole", clock=time.time) -> None:
        self.handler_namespace = handler_namespace
        self._clock = clock
        self._lock = threading.Lock()
        # (namespace, name, unit) -> {minute epoch seconds -> point}
        self._series: dict[tuple[str, str, str], dict[int, _Point]] = {
            (GATEWAY_NAMESPACE, name, unit): {} for name, unit in GATEWAY_METRICS
        }

    def _add(self, key: tuple[str, str, str], value: float, times: int = 1) -> None:
        minute = int(self._clock() // PERIOD * PERIOD)
        with self._lock:
            points = self._series.setdefault(key, {})
            point = points.get(minute)
            if point is None:
                point = points[minute] = _Point(value, 1, value, value)
                self._drop_old(points, minute)
                times -= 1
            if times > 0:
                point.add(value, times)

    @staticmethod
    def _drop_old(points: dict[int, _Point], minute: int) -> None:
        oldest = minute - RETENTION_SECONDS
        for stale in [m for m in points if m <= oldest]:
            del points[stale]

    def gateway(self, name: str, value: float = 1.0, times: int = 1) -> None:
        """Record one of API Gateway's own metrics (``GATEWAY_METRICS``), ``times`` over."""
        unit = _GATEWAY_UNITS[name]
        self._add((GATEWAY_NAMESPACE, name, unit), value, times)

    def handler_metric(self, name: str, unit: str, value: float) -> None:
        """A point a handler recorded (relayed from its worker process)."""
        self._add((self.handler_namespace, name, unit), float(value))

    def snapshot(self) -> dict:
        """The ``/_metrics`` document: every series, its points oldest first."""
        now_minute = int(self._clock() // PERIOD * PERIOD)
        metrics = []
        with self._lock:
            for (namespace, name, unit), points in self._series.items():
                self._drop_old(points, now_minute)
                metrics.append(
                    {
                        "namespace": namespace,
                        "name": name,
                        "unit": unit,
                        "points": [
                            {
                                "timestamp": minute,
                                "sum": point.sum,
                                "count": point.count,
                                "min": point.min,
                                "max": point.max,
                            }
                            for minute, point in sorted(points.items())
                        ],
                    }
                )
        return {"namespace": GATEWAY_NAMESPACE, "period": PERIOD, "metrics": metrics}
