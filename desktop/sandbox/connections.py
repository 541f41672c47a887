"""The ``@connections`` management API: deliver a frame to a connection, describe it, close it.

One set of rules for both ways a frame reaches a member: a handler's fan-out over its worker's
channel (``post_many``, every post of it in one message) and ``/{stage}/@connections/{id}`` over
HTTP, which aiohttp parses and which boto3's ``apigatewaymanagementapi`` client (and any other)
uses unchanged: POST sends a frame, GET describes the connection, DELETE closes it, and an
unknown or closing connection answers 410 ``GoneException``. A connection is only known once its
upgrade is complete, so a post to it from its own ``$connect`` is 410, as in AWS.

Frames are written by aiohttp's WebSocket writer. Its writer limit is set past the client buffer
limit, so a write never waits for a slow member: a member whose buffer is past
``CLIENT_BUFFER_LIMIT`` gets no more and the poster sees 429, as API Gateway answers when a
client cannot keep up.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from desktop.sandbox import events, metrics
from desktop.sandbox.events import Handshake

MAX_MESSAGE_BYTES = 128 * 1024
# The management API answers 429 when a client is this far behind (its buffer is full).
CLIENT_BUFFER_LIMIT = 8 * 1024 * 1024
# aiohttp's writer waits for the transport to drain after this many bytes; past the buffer
# limit, so that a write never waits (a full buffer is answered 429 before it gets there).
WRITER_LIMIT = 2 * CLIENT_BUFFER_LIMIT

OK = 200
NO_CONTENT = 204
GONE = 410
TOO_LARGE = 413
BUFFER_FULL = 429

CLOSE_NORMAL = 1000


@dataclass(eq=False)
class Connection:
    """An open client connection as the gateway tracks it."""

    handshake: Handshake
    authorizer: dict
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None = None
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    last_active_ms: int = field(default_factory=events.now_ms)
    # (close code, reason) for $disconnect, set by whoever closes the connection first.
    disconnect: tuple[int, str] | None = None

    @property
    def connection_id(self) -> str:
        return self.handshake.connection_id

    @property
    def closing(self) -> bool:
        return self.disconnect is not None or self.ws.closed

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_ms = events.now_ms()

    def describe(self) -> str:
        who = self.authorizer
        return (
            f"user={who.get('userId', '?')} role={who.get('role', '?')} room={who.get('room', '?')}"
        )


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the management API."""

    status: int
    document: object = None  # a JSON body, or None for an empty one
    error_type: str | None = None  # x-amzn-ErrorType, which botocore turns into its exception

    def response(self) -> web.Response:
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        if self.error_type:
            headers["x-amzn-ErrorType"] = self.error_type
        if self.document is None:
            return web.Response(status=self.status, headers=headers)
        return web.json_response(self.document, status=self.status, headers=headers)


def error(status: int, error_type: str, message: str) -> Answer:
    """An error the way the management API sends it, so botocore raises the named exception."""
    return Answer(status, {"message": message}, error_type)


ANSWERS = {
    OK: Answer(OK),
    NO_CONTENT: Answer(NO_CONTENT),
    GONE: error(GONE, "GoneException", "Gone"),
    TOO_LARGE: error(TOO_LARGE, "PayloadTooLargeException", "Message payload size exceeds 128 KB"),
    BUFFER_FULL: error(BUFFER_FULL, "LimitExceededException", "Client buffer is full"),
}
FORBIDDEN = error(403, "ForbiddenException", "Forbidden")
NOT_ALLOWED = error(405, "MethodNotAllowedException", "Method not allowed")


def target(path: str) -> tuple[str, str] | None:
    """``(stage, connection id)`` of a ``/{stage}/@connections/{id}`` path, or None."""
    parts = path.split("/")
    if len(parts) == 4 and parts[0] == "" and parts[2] == "@connections" and parts[3]:
        return unquote(parts[1]), unquote(parts[3])
    return None


def _iso8601(epoch_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class ConnectionsApi:
    """The ``@connections`` operations over the gateway's open connections.

    ``close`` closes a connection from the gateway's side (DELETE); ``authorized`` checks an
    HTTP request's signature as API Gateway checks IAM.
    """

    def __init__(
        self,
        stage: str,
        connections: dict[str, Connection],
        board: metrics.MetricsBoard,
        close: Callable[[Connection], None],
        authorized: Callable[[web.BaseRequest, bytes], Awaitable[bool]] | None = None,
    ) -> None:
        self.stage = stage
        self.connections = connections
        self.board = board
        self.close = close
        self.authorized = authorized

    def _open(self, connection_id: str) -> Connection | None:
        connection = self.connections.get(connection_id)
        if connection is None or connection.closing:
            return None
        transport = connection.transport
        if transport is None or transport.is_closing():
            return None
        return connection

    async def post_many(self, posts: list[tuple[str, bytes]]) -> list[int]:
        """Writes each (connection id, frame) and returns each post's status."""
        statuses = []
        kinds: dict[int, WSMsgType] = {}  # a fan-out posts the same bytes object to everyone
        delivered = 0
        for connection_id, data in posts:
            connection = self._open(connection_id)
            if connection is None:
                statuses.append(GONE)
                continue
            if len(data) > MAX_MESSAGE_BYTES:
                statuses.append(TOO_LARGE)
                continue
            if connection.transport.get_write_buffer_size() > CLIENT_BUFFER_LIMIT:  # type: ignore[union-attr]
                statuses.append(BUFFER_FULL)
                continue
            kind = kinds.get(id(data))
            if kind is None:
                kind = kinds[id(data)] = WSMsgType.TEXT if _is_text(data) else WSMsgType.BINARY
            try:
                await connection.ws.send_frame(data, kind)
            except (ConnectionError, RuntimeError):
                statuses.append(GONE)
                continue
            statuses.append(OK)
            delivered += 1
        if delivered:
            self.board.gateway(metrics.MESSAGE_COUNT, times=delivered)
        return statuses

    def get(self, connection_id: str) -> tuple[int, dict | None]:
        connection = self._open(connection_id)
        if connection is None:
            return GONE, None
        handshake = connection.handshake
        return OK, {
            "connectedAt": _iso8601(handshake.connected_at),
            "identity": {"sourceIp": handshake.source_ip, "userAgent": handshake.user_agent},
            "lastActiveAt": _iso8601(connection.last_active_ms),
        }

    def delete(self, connection_id: str) -> int:
        connection = self._open(connection_id)
        if connection is None:
            return GONE
        connection.disconnect = (CLOSE_NORMAL, "Connection deleted through @connections")
        self.close(connection)
        return NO_CONTENT

    async def serve(self, request: web.BaseRequest, stage: str, connection_id: str) -> web.Response:
        """One ``@connections`` request over HTTP."""
        method = request.method
        if method not in ("POST", "GET", "DELETE"):
            return NOT_ALLOWED.response()
        body = b""
        if method == "POST":
            # A declared length over the limit is refused unread; a chunked body once read.
            if (request.content_length or 0) > MAX_MESSAGE_BYTES:
                return ANSWERS[TOO_LARGE].response()
            body = await request.read()
            if len(body) > MAX_MESSAGE_BYTES:
                return ANSWERS[TOO_LARGE].response()
        if stage != self.stage:
            return FORBIDDEN.response()
        if self.authorized is not None and not await self.authorized(request, body):
            return FORBIDDEN.response()
        if method == "POST":
            (status,) = await self.post_many([(connection_id, body)])
            return ANSWERS[status].response()
        if method == "GET":
            status, document = self.get(connection_id)
            if document is None:
                return ANSWERS[status].response()
            return Answer(OK, document).response()
        return ANSWERS[self.delete(connection_id)].response()
