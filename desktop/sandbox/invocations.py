"""Invoking the handlers as API Gateway invokes a route's Lambda integration.

Each invocation runs in a worker process (``desktop.sandbox.processes``) with a Lambda context
of its own, and is read as API Gateway reads an integration: its status code, and the metrics
it counts (``IntegrationLatency``, ``IntegrationError``, ``ExecutionError``). A refusal by the
full queue counts as a throttled request (``ClientError``), as a throttled route does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from desktop.sandbox import events, metrics
from desktop.sandbox.processes import Overloaded, WorkerDied, WorkerPool
from desktop.sandbox.workers import BACKEND_HANDLERS

INTEGRATION_TIMEOUT = 29.0

log = logging.getLogger("desktop.sandbox")


@dataclass
class Integrations:
    """The Lambda entry points the gateway invokes, as ``module:function`` references that the
    worker processes import; a test names another to simulate a failing Lambda.

    The gateway reads the reference at each invocation, so replacing one takes effect at once.
    """

    authorizer: str = BACKEND_HANDLERS["authorizer"]
    connect: str = BACKEND_HANDLERS["connect"]
    disconnect: str = BACKEND_HANDLERS["disconnect"]
    messages: str = BACKEND_HANDLERS["messages"]
    admin: str = BACKEND_HANDLERS["admin"]


FUNCTION_NAMES = {
    "authorizer": "classroom-authorizer",
    "connect": "classroom-connect",
    "disconnect": "classroom-disconnect",
    "messages": "classroom-messages",
    "admin": "classroom-admin",
}


@dataclass
class Invocation:
    """How one handler invocation went: its result, or the exception, or no answer at all."""

    result: object = None
    error: BaseException | None = None
    timed_out: bool = False
    # The worker process running it died: no answer at all, as when a Lambda runtime exits.
    crashed: bool = False
    # Refused at once: the queue for a worker was full.
    throttled: bool = False
    elapsed_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None or self.timed_out or self.throttled


class Invoker:
    """Runs the integrations of ``integrations`` in ``pool`` (set once the gateway's loop runs),
    recording API Gateway's metrics and the handlers' own on ``board``."""

    def __init__(self, integrations: Integrations, board: metrics.MetricsBoard, region: str):
        self.integrations = integrations
        self.board = board
        self.region = region
        self.pool: WorkerPool | None = None

    async def invoke(self, name: str, event: object) -> Invocation:
        """One handler invocation in a worker process, with its own Lambda context."""
        reference = getattr(self.integrations, name)
        context = events.LambdaContext(FUNCTION_NAMES[name], self.region, INTEGRATION_TIMEOUT)
        started = time.perf_counter()
        outcome = Invocation()
        try:
            result, error, points = await self.pool.invoke(  # type: ignore[union-attr]
                reference, event, context, INTEGRATION_TIMEOUT
            )
        except Overloaded:
            outcome.throttled = True
        except TimeoutError:
            outcome.timed_out = True
        except WorkerDied as died:
            outcome.error, outcome.crashed = died, True
        else:
            for point in points:
                self.board.handler_metric(*point)
            if error is not None:
                outcome.error = error
            else:
                outcome.result = result
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000.0
        return outcome

    async def integrate(self, name: str, event: dict) -> tuple[Invocation, int]:
        """A route integration with API Gateway's metrics; returns it and its status code."""
        outcome = await self.invoke(name, event)
        route = event["requestContext"]["routeKey"]
        if outcome.throttled:
            self.board.gateway(metrics.CLIENT_ERROR)
            return outcome, 429
        self.board.gateway(metrics.INTEGRATION_LATENCY, outcome.elapsed_ms)
        if outcome.timed_out:
            self.board.gateway(metrics.EXECUTION_ERROR)
            log.error("%s integration timed out after %.0f s", route, INTEGRATION_TIMEOUT)
            return outcome, 504
        if outcome.crashed:
            self.board.gateway(metrics.EXECUTION_ERROR)
            log.error("%s handler's worker process died: %s", route, outcome.error)
            return outcome, 500
        if outcome.error is not None:
            self.board.gateway(metrics.INTEGRATION_ERROR)
            log.error("%s handler raised", route, exc_info=outcome.error)
            return outcome, 500
        if not isinstance(outcome.result, dict):
            self.board.gateway(metrics.INTEGRATION_ERROR)
            log.error("%s handler returned %s, not an object", route, type(outcome.result).__name__)
            outcome.error = TypeError("the handler did not return an object")
            return outcome, 500
        status = outcome.result.get("statusCode", 200)
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            self.board.gateway(metrics.INTEGRATION_ERROR)
            log.error("%s handler returned statusCode %r", route, status)
            return outcome, 500
        if status >= 400:
            self.board.gateway(metrics.INTEGRATION_ERROR)
        return outcome, status
