"""The ``/{stage}`` WebSocket endpoint with API Gateway's semantics.

A handshake runs the REQUEST authorizer (no ``token``: 401 without calling it, a deny: 403, a
broken authorizer: 500), then ``$connect`` (a non-2xx ``statusCode`` refuses the handshake), and
only then completes the upgrade. Text frames are routed on ``$request.body.action``
(``send``/``sync``/``who``/``ping``, anything else to ``$default``), through the stage's route
throttling; a frame that gets no answer from its integration earns API Gateway's own frame.
Binary frames close with 1003, a message over 128 KB with 1009. ``$disconnect`` runs for every
close: by either side, a dropped TCP connection (1006), the idle timeout or the connection's
maximum lifetime (1001 "Going away").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from desktop.sandbox import connections, events, metrics, policy, throttling
from desktop.sandbox.connections import Connection
from desktop.sandbox.events import Handshake
from desktop.sandbox.invocations import Invoker

if TYPE_CHECKING:
    from desktop.sandbox.gateway import SandboxConfig

MAX_MESSAGE_BYTES = connections.MAX_MESSAGE_BYTES
CLOSE_TIMEOUT = 5.0
MESSAGE_ROUTES = ("send", "sync", "who", "ping")

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_TOO_BIG = 1009

# The frames API Gateway sends a client when a route's integration gives no answer.
THROTTLED = "Too Many Requests"
INTERNAL_ERROR = "Internal server error"
TIMED_OUT = "Endpoint request timed out"

log = logging.getLogger("desktop.sandbox")


def route_key(body: str) -> tuple[str, str | None]:
    """``$request.body.action``: the route a text frame goes to, and the frame's ``id``."""
    try:
        frame = json.loads(body)
    except (ValueError, RecursionError):
        return events.ROUTE_DEFAULT, None
    if not isinstance(frame, dict):
        return events.ROUTE_DEFAULT, None
    frame_id = frame.get("id")
    frame_id = frame_id if isinstance(frame_id, str) else None
    action = frame.get("action")
    if isinstance(action, str) and action in MESSAGE_ROUTES:
        return action, frame_id
    return events.ROUTE_DEFAULT, frame_id


def refusal(status: int) -> web.Response:
    """A refused handshake: API Gateway's status with its ``{"message": ...}`` body."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status == 500:
        phrase = INTERNAL_ERROR
    return web.json_response({"message": phrase}, status=status)


class WebSocketEndpoint:
    """The classroom connections of one sandbox, from handshake to ``$disconnect``.

    ``track`` runs a task the sandbox waits for at stop; ``port`` and ``stopping`` are read
    from the sandbox when needed.
    """

    def __init__(
        self,
        config: SandboxConfig,
        api_id: str,
        invoker: Invoker,
        board: metrics.MetricsBoard,
        track: Callable[..., asyncio.Task],
        port: Callable[[], int | None],
        stopping: Callable[[], bool],
    ) -> None:
        self.config = config
        self.api_id = api_id
        self.invoker = invoker
        self.board = board
        self.track = track
        self.port = port
        self.stopping = stopping
        self.throttle = throttling.RouteThrottle(config.throttle_rate, config.throttle_burst)
        self.connections: dict[str, Connection] = {}
        self.pending_ids: set[str] = set()
        # The request handlers of WebSocket connections, from handshake to $disconnect.
        self.sessions: set[asyncio.Task] = set()

    def _new_connection_id(self) -> str:
        while True:
            candidate = events.gateway_id()
            if candidate not in self.connections and candidate not in self.pending_ids:
                self.pending_ids.add(candidate)
                return candidate

    def _handshake(self, request: web.BaseRequest, connection_id: str) -> Handshake:
        peer = request.remote or ""
        headers = list(request.headers.items())
        headers += [
            ("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"),
            ("X-Forwarded-For", peer),
            ("X-Forwarded-Port", str(self.port())),
            ("X-Forwarded-Proto", "http"),
        ]
        return Handshake(
            connection_id=connection_id,
            api_id=self.api_id,
            stage=self.config.stage,
            region=self.config.region,
            domain_name=request.host,
            source_ip=peer,
            user_agent=request.headers.get("User-Agent", ""),
            headers=headers,
            query=list(request.query.items()),
        )

    async def serve(self, request: web.BaseRequest, stage: str) -> web.StreamResponse:
        if stage != self.config.stage:
            self.board.gateway(metrics.CLIENT_ERROR)
            return refusal(403)
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE_BYTES + 1,  # aiohttp refuses sizes >= its limit
            compress=False,
            autoping=True,
            timeout=CLOSE_TIMEOUT,
            writer_limit=connections.WRITER_LIMIT,
        )
        if not ws.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)
        if self.stopping():
            return refusal(503)
        connection_id = self._new_connection_id()
        session = asyncio.current_task()
        assert session is not None
        self.sessions.add(session)
        try:
            return await self._open(request, ws, self._handshake(request, connection_id))
        finally:
            self.pending_ids.discard(connection_id)
            self.sessions.discard(session)

    def _logrefusal(self, handshake: Handshake, status: int, why: str) -> None:
        room = (handshake.query_value("room") or "")[:64]
        log.info("refused    %s room=%r status=%d (%s)", handshake.connection_id, room, status, why)

    async def _authorize(self, handshake: Handshake) -> tuple[int, dict | None]:
        """The authorizer's verdict as API Gateway applies it: status and request context."""
        if not handshake.query_value("token"):
            self.board.gateway(metrics.CLIENT_ERROR)
            self._logrefusal(handshake, 401, "no token")
            return 401, None
        if not self.throttle.allow(events.ROUTE_CONNECT):
            self.board.gateway(metrics.CLIENT_ERROR)
            self._logrefusal(handshake, 429, "$connect throttled")
            return 429, None
        outcome = await self.invoker.invoke("authorizer", events.authorizer_event(handshake))
        if outcome.throttled:
            self.board.gateway(metrics.CLIENT_ERROR)
            self._logrefusal(handshake, 429, "every handler worker is busy")
            return 429, None
        if outcome.timed_out or outcome.error is not None:
            if outcome.error is not None and str(outcome.error) == "Unauthorized":
                # Lambda authorizers raise Exception("Unauthorized") to answer 401.
                self.board.gateway(metrics.CLIENT_ERROR)
                self._logrefusal(handshake, 401, "authorizer answered Unauthorized")
                return 401, None
            self.board.gateway(metrics.EXECUTION_ERROR)
            log.error("the authorizer failed: %s", outcome.error or "timed out")
            self._logrefusal(handshake, 500, "authorizer failed")
            return 500, None
        try:
            decision = policy.evaluate(outcome.result, handshake.method_arn)
        except policy.MalformedPolicy as error:
            self.board.gateway(metrics.EXECUTION_ERROR)
            log.error("the authorizer's answer is unusable: %s", error)
            self._logrefusal(handshake, 500, "authorizer answer unusable")
            return 500, None
        if not decision.allowed:
            self.board.gateway(metrics.CLIENT_ERROR)
            self._logrefusal(handshake, 403, "authorizer denied")
            return 403, None
        context = dict(decision.context)
        context["principalId"] = decision.principal_id
        context["integrationLatency"] = int(outcome.elapsed_ms)
        return 200, context

    async def _open(
        self, request: web.BaseRequest, ws: web.WebSocketResponse, handshake: Handshake
    ) -> web.StreamResponse:
        status, authorizer = await self._authorize(handshake)
        if authorizer is None:
            return refusal(status)
        self.board.gateway(metrics.CONNECT_COUNT)
        _, status = await self.invoker.integrate(
            "connect", events.connect_event(handshake, authorizer)
        )
        if not 200 <= status < 300:
            self._logrefusal(handshake, status, "$connect refused")
            return refusal(status)
        connection = Connection(handshake, authorizer, ws, request.transport)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            # The client left while $connect ran: the registration it made is undone.
            connection.disconnect = (CLOSE_ABNORMAL, "Connection closed during the handshake")
            await asyncio.shield(self.track(self._disconnect(connection)))
            return ws
        self.connections[handshake.connection_id] = connection
        log.info(
            "connect    %s %s status=%d", connection.connection_id, connection.describe(), status
        )
        watchdog = self.track(self._watch(connection))
        try:
            if self.stopping():
                await self.close(connection, CLOSE_GOING_AWAY, "Going away")
            await self._read_frames(connection)
        finally:
            watchdog.cancel()
            self.connections.pop(handshake.connection_id, None)
            await asyncio.shield(self.track(self._disconnect(connection)))
        return ws

    async def _read_frames(self, connection: Connection) -> None:
        """Routes frames until the connection ends; leaves the close code and reason on it."""
        ws = connection.ws
        while True:
            message = await ws.receive()
            kind = message.type
            if kind is WSMsgType.TEXT:
                connection.touch()
                self.board.gateway(metrics.MESSAGE_COUNT)
                self.track(self._route(connection, message.data))
            elif kind is WSMsgType.BINARY:
                self.board.gateway(metrics.CLIENT_ERROR)
                await self.close(connection, CLOSE_UNSUPPORTED, "Binary frames are not supported")
            elif kind is WSMsgType.CLOSE:
                code = message.data or CLOSE_NO_STATUS
                reason = message.extra or (
                    "Client-side close frame status not set" if code == CLOSE_NO_STATUS else ""
                )
                if connection.disconnect is None:
                    connection.disconnect = (code, reason)
                return
            elif kind is WSMsgType.ERROR:
                error = message.data
                if isinstance(error, WebSocketError) and error.code == CLOSE_TOO_BIG:
                    self.board.gateway(metrics.CLIENT_ERROR)
                    if connection.disconnect is None:
                        connection.disconnect = (CLOSE_TOO_BIG, "Message too big")
                elif connection.disconnect is None:
                    code = getattr(error, "code", CLOSE_ABNORMAL)
                    connection.disconnect = (code, f"Connection error: {error}")
                return
            else:  # CLOSING or CLOSED: we closed it, or the TCP connection dropped.
                if connection.disconnect is None:
                    connection.disconnect = (
                        CLOSE_ABNORMAL,
                        "Connection closed abnormally (no close frame)",
                    )
                return

    async def close(self, connection: Connection, code: int, reason: str) -> None:
        """Closes from the gateway's side; the first reason given is the one $disconnect gets."""
        if connection.disconnect is None:
            connection.disconnect = (code, reason)
        if not connection.ws.closed:
            with contextlib.suppress(Exception):
                await connection.ws.close(code=code, message=reason.encode("utf-8")[:123])

    def close_later(self, connection: Connection) -> None:
        """A DELETE through ``@connections``: the connection closes with 1000."""
        self.track(self.close(connection, connections.CLOSE_NORMAL, ""))

    async def _watch(self, connection: Connection) -> None:
        """Closes the connection at the idle timeout or at its maximum lifetime (1001)."""
        config = self.config
        while not connection.closing:
            deadline = min(
                connection.last_active + config.idle_timeout,
                connection.opened + config.max_lifetime,
            )
            wait = deadline - time.monotonic()
            if wait <= 0:
                await self.close(connection, CLOSE_GOING_AWAY, "Going away")
                return
            await asyncio.sleep(wait)

    async def _answer(self, connection: Connection, request_id: str, message: str, frame_id):
        """API Gateway's frame for a route that gave no answer, plus the client's frame id so a
        client can tell which of its frames it was (the sandbox's addition; see docs)."""
        frame = {"message": message, "connectionId": connection.connection_id}
        frame["requestId"] = request_id
        if frame_id is not None:
            frame["id"] = frame_id
        if not connection.closing:
            with contextlib.suppress(Exception):
                await connection.ws.send_str(json.dumps(frame))

    async def _route(self, connection: Connection, body: str) -> None:
        """One text frame through its route's integration; a failure earns API Gateway's frame."""
        route, frame_id = route_key(body)
        if not self.throttle.allow(route):  # refused before any event is built, as in AWS
            self.board.gateway(metrics.CLIENT_ERROR)
            await self._answer(connection, events.gateway_id(), THROTTLED, frame_id)
            return
        event = events.message_event(connection.handshake, connection.authorizer, route, body)
        request_id = event["requestContext"]["requestId"]
        outcome, _ = await self.invoker.integrate("messages", event)
        if outcome.throttled:
            await self._answer(connection, request_id, THROTTLED, frame_id)
        elif outcome.failed:
            message = TIMED_OUT if outcome.timed_out else INTERNAL_ERROR
            await self._answer(connection, request_id, message, frame_id)

    async def _disconnect(self, connection: Connection) -> None:
        code, reason = connection.disconnect or (CLOSE_ABNORMAL, "Connection closed abnormally")
        event = events.disconnect_event(connection.handshake, connection.authorizer, code, reason)
        _, status = await self.invoker.integrate("disconnect", event)
        log.info(
            "disconnect %s %s status=%d reason=%r handler=%d",
            connection.connection_id,
            connection.describe(),
            code,
            reason,
            status,
        )
