"""Structured JSON logs and CloudWatch metrics in embedded metric format (Powertools).

Every entry point is decorated with ``logger.inject_lambda_context(clear_state=True,
log_event=False)``: each log line carries the Lambda context (``function_request_id``,
``function_name``, ``cold_start``, ...), and the keys one invocation appended are dropped before
the next one. The handler then appends the request's own keys (``request_keys``: connection,
room, route, API Gateway's request id) with ``logger.append_keys``. ``log_event`` is off even
when ``POWERTOOLS_LOGGER_LOG_EVENT`` is set: the authorizer's event carries the token, and
message events carry what students wrote.

Metrics are printed as EMF lines on stdout by ``flush()``, never sent by API calls, so they cost
nothing per message and work the same in Lambda and tests. The sandbox's workers hand the points
to a sink instead (``configure``), and the sandbox serves them on its ``/_metrics`` endpoint.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "classroom")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ClassroomConsole")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

MetricSink = Callable[[str, str, float], None]
# Where metric points go instead of EMF lines on stdout: set by whatever runs the handlers
# outside Lambda (the sandbox's workers hand them to the gateway's /_metrics).
_sink: MetricSink | None = None
# Powertools keeps one metric set per process; tests run handlers on many threads.
_lock = threading.Lock()
_local = threading.local()

COUNT = MetricUnit.Count.value
MILLISECONDS = MetricUnit.Milliseconds.value


def configure(sink: MetricSink | None, log_level: str | None = None) -> None:
    """Send metric points to ``sink`` rather than stdout (None: back to EMF), and log at
    ``log_level`` when given."""
    global _sink
    _sink = sink
    if log_level:
        logger.setLevel(log_level)


# Longer values are cut: the authorizer's keys come from the query string, before validation.
_KEY_LENGTH = 128


def request_keys(event: object) -> dict[str, str]:
    """The keys every log line of this invocation carries, from its event.

    From an API Gateway WebSocket event: ``connectionId``, ``route`` (the ``routeKey``),
    ``requestId`` (API Gateway's, as in its access log), ``room`` and ``userId`` (from the
    authorizer's context, or the room the authorizer's query string asks for). From a direct
    (admin) invocation: ``route`` ``admin:<op>``, and the ``room`` or ``connectionId`` it names.
    Read with ``.get`` throughout: logging never fails an invocation, whatever its event.
    """
    if not isinstance(event, dict):
        return {}
    request = event.get("requestContext")
    if isinstance(request, dict):
        authorizer = _mapping(request.get("authorizer"))
        query = _mapping(event.get("queryStringParameters"))
        keys = {
            "connectionId": request.get("connectionId"),
            "route": request.get("routeKey"),
            "requestId": request.get("requestId"),
            "room": authorizer.get("room") or query.get("room"),
            "userId": authorizer.get("userId"),
        }
    else:
        op = event.get("op")
        keys = {
            "route": f"admin:{op}" if op else "admin",
            "room": event.get("room"),
            "connectionId": event.get("connectionId"),
        }
    return {name: str(value)[:_KEY_LENGTH] for name, value in keys.items() if value}


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def record(name: str, unit: str, value: float) -> None:
    """Add one metric point to this invocation's EMF record, or hand it to the sink.

    Inside ``invocation()`` points are kept per thread and written to the shared Powertools
    metric set only at the end, under the lock.
    """
    sink = _sink
    if sink is not None:
        sink(name, unit, value)
        return
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.append((name, unit, value))
    else:
        with _lock:
            metrics.add_metric(name=name, unit=unit, value=value)


def flush(dimensions: dict[str, str] | None = None, points=()) -> None:
    """Print the metrics as one EMF line (nothing when none were recorded)."""
    with _lock:
        for key, value in (dimensions or {}).items():
            metrics.add_dimension(name=key, value=value)
        for name, unit, value in points:
            metrics.add_metric(name=name, unit=unit, value=value)
        if metrics.metric_set:
            metrics.flush_metrics(raise_on_empty_metrics=False)
        metrics.clear_metrics()


@contextmanager
def invocation(handler_name: str) -> Iterator[None]:
    """Time a handler invocation, then flush its metrics, also when it raised."""
    started = time.perf_counter()
    _local.pending = []
    try:
        yield
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        record("HandlerDuration", MILLISECONDS, elapsed_ms)
        points, _local.pending = _local.pending, None
        if _sink is None:
            flush({"Handler": handler_name}, points)
