"""The sandbox's ``@connections`` management API on the wire: its answers, and the front door.

Every classroom delivery is one ``POST /{stage}/@connections/{id}``: a message to a class of 30
is 31 of them (the ack and 30 members), so this is the gateway's busiest path by far. aiohttp
took about 65 us of the gateway's CPU for each (request objects, a task per request, header
multidicts), two thirds of what a delivery cost, while the member's frame itself is one write.

So the listening socket's connections meet a **front door** first (``FrontDoor``). A request it
recognises at once (``POST``, ``GET`` or ``DELETE`` to ``/{stage}/@connections/{id}``, HTTP/1.1,
a ``Content-Length`` body within the limit, no ``Transfer-Encoding``, ``Expect``, ``Upgrade`` or
``Connection`` header) is answered here, from the gateway's own rules, and the connection stays
with the door for the next one: that is what boto3 and the backend's ``LeanPoster`` send,
request after request on kept-alive connections. At the first request it does not recognise, the
door hands the connection, with every byte not yet answered, to aiohttp's server, which then
serves it for the rest of its life: WebSocket handshakes, ``/_admin``, ``/_metrics``, and any
``@connections`` request in another shape (chunked, ``Expect: 100-continue``, a body over the
limit, a malformed head, which aiohttp refuses with 400). Both paths answer ``@connections``
through the same function, so they cannot disagree. Nothing here touches a thread: it all runs
on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import random
import re
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

from aiohttp import web

# A head longer than this without its blank line goes to aiohttp, which refuses it.
HEAD_LIMIT = 64 * 1024
# aiohttp's own limits on a request line or header line, and on the number of headers.
LINE_LIMIT = 8190
HEADER_LIMIT = 100
METHODS = frozenset((b"POST", b"GET", b"DELETE"))
# Headers after which the request is no longer the plain shape the door serves.
UNUSUAL_HEADERS = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"connection"))

_REQUEST_IDS = itertools.count(random.getrandbits(48))
_REQUEST_ID_PREFIX = str(uuid.uuid4())[:24]


def request_id() -> str:
    """An ``x-amzn-RequestId`` shaped like AWS's (a UUID), unique in this process: a random
    prefix per process and a counter, as every POST of every fan-out answers with one."""
    return f"{_REQUEST_ID_PREFIX}{next(_REQUEST_IDS) & 0xFFFFFFFFFFFF:012x}"


@dataclass(frozen=True)
class Answer:
    """One management API answer, before it is written by either path."""

    status: int
    document: object = None  # a JSON body, or None for an empty one
    error_type: str | None = None  # x-amzn-ErrorType, which botocore turns into its exception


def error(status: int, error_type: str, message: str) -> Answer:
    """An error the way the management API sends it, so botocore raises the named exception."""
    return Answer(status, {"message": message}, error_type)


OK = Answer(200)
NO_CONTENT = Answer(204)


def target(path: str) -> tuple[str, str] | None:
    """``(stage, connection id)`` of a ``/{stage}/@connections/{id}`` path, or None."""
    parts = path.split("/")
    if len(parts) == 4 and parts[0] == "" and parts[2] == "@connections" and parts[3]:
        return unquote(parts[1]), unquote(parts[3])
    return None


def response(answer: Answer) -> web.Response:
    """The answer as aiohttp's response, for requests aiohttp serves."""
    headers = {"x-amzn-RequestId": request_id()}
    if answer.error_type:
        headers["x-amzn-ErrorType"] = answer.error_type
    if answer.document is None:
        return web.Response(status=answer.status, headers=headers)
    return web.json_response(answer.document, status=answer.status, headers=headers)


_date = (0, "")


def _http_date() -> str:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True))
    return _date[1]


def encode(answer: Answer) -> bytes:
    """The answer as HTTP/1.1 bytes, with the headers API Gateway sends."""
    body = b"" if answer.document is None else json.dumps(answer.document).encode()
    status = answer.status
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Date: {_http_date()}",
        f"x-amzn-RequestId: {request_id()}",
    ]
    if answer.error_type:
        lines.append(f"x-amzn-ErrorType: {answer.error_type}")
    if body:
        lines.append("Content-Type: application/json")
    if status != 204:  # no body, and no length either (RFC 9110 8.6)
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def websocket_frame(payload: bytes, *, binary: bool) -> bytes:
    """One unmasked, unfragmented WebSocket data frame (RFC 6455 5.2), as a server sends it."""
    first = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        return _SHORT.pack(first, size) + payload
    if size < 65536:
        return _MEDIUM.pack(first, 126, size) + payload
    return _LONG.pack(first, 127, size) + payload


# (method, stage, connection id, body) -> the answer
Serve = Callable[[str, str, str, bytes], Answer]


@dataclass(frozen=True)
class _Request:
    method: str
    stage: str
    connection_id: str
    body_start: int
    body_end: int


# The whole head of a request the door serves, strictly (RFC 9112): a request line, then header
# lines of a token, a colon and a value of visible characters, spaces and tabs. Anything looser
# (a bare CR or LF, a NUL, a space in a name, an over-long line) is aiohttp's to judge, so the
# door never splits a byte stream into requests differently from it.
_HEAD = re.compile(
    rb"(POST|GET|DELETE) (/[\x21-\x7e]{1,%d}) HTTP/1\.1"
    rb"((?:\r\n[-!#$%%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*){0,%d})"
    % (LINE_LIMIT, HEADER_LIMIT)
)


def _plain_request(buffer: bytes, start: int, head_end: int, max_body: int) -> _Request | None:
    """The request whose head is ``buffer[start:head_end]`` if it is one the door serves."""
    head = _HEAD.fullmatch(buffer, start, head_end)
    if head is None:
        return None
    path = head[2].decode("ascii")  # visible ASCII, as the pattern says
    where = None if "?" in path or "#" in path else target(path)
    if where is None:
        return None
    length = 0
    seen_length = hosts = 0
    for line in head[3].split(b"\r\n")[1:]:
        if len(line) > LINE_LIMIT:
            return None
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            value = value.strip(b" \t")
            if seen_length or not value.isdigit():
                return None
            seen_length = True
            length = int(value)
        elif name == b"host":
            hosts += 1
        elif name in UNUSUAL_HEADERS:
            return None
    if hosts != 1 or length > max_body:
        return None  # aiohttp refuses them: 400 without a Host, 413 over the limit, unread
    body_start = head_end + 4
    return _Request(head[1].decode(), where[0], where[1], body_start, body_start + length)


class FrontDoor:
    """The listening socket's protocol factory: serves plain ``@connections`` requests, and hands
    any other connection to aiohttp's server (``fallback``, a ``web.Server``)."""

    def __init__(
        self, serve: Serve, fallback: Callable[[], asyncio.Protocol], max_body: int
    ) -> None:
        self.serve = serve
        self.fallback = fallback
        self.max_body = max_body
        self.open: set[_Door] = set()

    def __call__(self) -> asyncio.Protocol:
        return _Door(self)

    def close(self) -> None:
        """Cuts the connections still at the door (aiohttp closes the ones it was given): a
        client not reading its answers must not keep one open past the gateway's loop."""
        for door in list(self.open):
            door.transport.abort()


class _Door(asyncio.Protocol):
    def __init__(self, front: FrontDoor) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        # The client sends faster than it reads its answers: nothing more is read or answered
        # (and the connection is not handed over) until they drain.
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.front.open.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.front.open.discard(self)

    def pause_writing(self) -> None:
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        self.transport.resume_reading()
        if self.pending:
            self._answer()

    def data_received(self, data: bytes) -> None:
        self.pending = self.pending + data if self.pending else data
        if not self.paused:
            self._answer()

    def _answer(self) -> None:
        """Answers every whole request in ``pending``, keeping the rest for later."""
        buffer, front, start = self.pending, self.front, 0
        while not self.paused:
            head_end = buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                # A head ended by bare line feeds never gets its CRLF CRLF: aiohttp judges it.
                if len(buffer) - start > HEAD_LIMIT or buffer.find(b"\n\n", start) >= 0:
                    return self._hand_over(buffer[start:])
                break
            request = _plain_request(buffer, start, head_end, front.max_body)
            if request is None:
                return self._hand_over(buffer[start:])
            if request.body_end > len(buffer):
                break
            answer = front.serve(
                request.method,
                request.stage,
                request.connection_id,
                buffer[request.body_start : request.body_end],
            )
            self.transport.write(encode(answer))
            start = request.body_end
        self.pending = buffer[start:]

    def _hand_over(self, unanswered: bytes) -> None:
        """aiohttp's server takes the connection, from the first byte not yet answered."""
        self.front.open.discard(self)
        transport, self.transport, self.pending = self.transport, None, b""
        protocol = self.front.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if unanswered:
            protocol.data_received(unanswered)
