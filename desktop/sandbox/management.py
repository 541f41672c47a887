"""The sandbox's ``@connections`` management API on the wire: its answers, and the front door.

Every classroom delivery is one ``POST /{stage}/@connections/{id}``: a message to a class of 30
is 31 of them (the ack and 30 members), so this is the gateway's busiest path by far. aiohttp
took about 65 us of the gateway's CPU for each (request objects, a task per request, header
multidicts), two thirds of what a delivery cost, while the member's frame itself is one write.

So the listening socket's connections meet a **front door** first (``FrontDoor``). A request it
recognises at once (``POST``, ``GET`` or ``DELETE`` to ``/{stage}/@connections/{id}``, HTTP/1.1,
one ``Host``, a ``Content-Length`` body within the limit, no ``Transfer-Encoding``, ``Expect``,
``Upgrade`` or ``Connection`` header, and a head that follows HTTP's grammar strictly) is
answered here, from the gateway's own rules, and the connection stays
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
import functools
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

# A head longer than this without its blank line goes to aiohttp, which judges it.
HEAD_LIMIT = 64 * 1024
# aiohttp's own limits on a request line or header line, and on the number of headers.
LINE_LIMIT = 8190
HEADER_LIMIT = 100

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

    @functools.cached_property
    def body(self) -> bytes:
        """The JSON body, as both paths send it."""
        return b"" if self.document is None else json.dumps(self.document).encode()

    @functools.cached_property
    def wire(self) -> tuple[bytes, bytes]:
        """The status line, and what follows the Date and request id headers: the same for
        every POST's answer, so worked out once."""
        body = self.body
        status = self.status
        lines = []
        if self.error_type:
            lines.append(f"x-amzn-ErrorType: {self.error_type}\r\n")
        if body:
            lines.append("Content-Type: application/json\r\n")
        if status != 204:  # no body, and no length either (RFC 9110 8.6)
            lines.append(f"Content-Length: {len(body)}\r\n")
        status_line = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        return status_line.encode("ascii"), "".join(lines).encode("latin-1") + b"\r\n" + body


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
    if not answer.body:
        return web.Response(status=answer.status, headers=headers)
    return web.Response(
        status=answer.status, body=answer.body, content_type="application/json", headers=headers
    )


_date = (0, b"")


def _http_date() -> bytes:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True).encode("ascii"))
    return _date[1]


def encode(answer: Answer) -> bytes:
    """The answer as HTTP/1.1 bytes, with the headers API Gateway sends."""
    status_line, rest = answer.wire
    request = request_id().encode("ascii")
    return b"%sDate: %s\r\nx-amzn-RequestId: %s\r\n%s" % (status_line, _http_date(), request, rest)


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


# The whole head of a request the door serves, strictly (RFC 9112): a request line whose target
# is /{stage}/@connections/{id}, then header lines of a token, a colon and a value of visible
# characters, spaces and tabs. Anything looser (a bare CR or LF, a NUL, a space in a name, an
# over-long line) is aiohttp's to judge, so the door never splits a byte stream into requests
# differently from it.
_SEGMENT = rb"[\x21\x22\x24-\x2e\x30-\x3e\x40-\x7e]{1,%d}" % LINE_LIMIT  # no / ? or #
_HEAD = re.compile(
    rb"(POST|GET|DELETE) /(%s)/@connections/(%s) HTTP/1\.1"
    rb"(?:\r\n[-!#$%%&'*+.^_`|~0-9A-Za-z]{1,256}:[\t\x20-\x7e\x80-\xff]{0,%d}){0,%d}"
    % (_SEGMENT, _SEGMENT, LINE_LIMIT, HEADER_LIMIT)
)
# In the lower-cased head: the headers after which it is not the plain shape, and the length.
_UNUSUAL = re.compile(rb"\r\n(?:transfer-encoding|expect|upgrade|connection):")
_LENGTH = re.compile(rb"\r\ncontent-length:([^\r]*)")

# (method, stage, connection id, body start, body end)
_Request = tuple[str, str, str, int, int]


def _plain_request(buffer: bytes, start: int, head_end: int, max_body: int) -> _Request | None:
    """The request whose head is ``buffer[start:head_end]`` if it is one the door serves.

    Every POST of every fan-out comes through here, so it is a few scans in C rather than a
    loop over the headers: about 2 us a request, against 8 for the loop."""
    head = _HEAD.fullmatch(buffer, start, head_end)
    if head is None:
        return None
    lower = buffer[start:head_end].lower()
    if _UNUSUAL.search(lower) is not None or lower.count(b"\r\nhost:") != 1:
        return None  # aiohttp's: a body in another shape; a missing or second Host is a 400
    lengths = _LENGTH.findall(lower)
    length = 0
    if lengths:
        value = lengths[0].strip(b" \t")
        if len(lengths) > 1 or not value.isdigit():
            return None
        length = int(value)
        if length > max_body:
            return None  # aiohttp refuses it with 413, unread
    body_start = head_end + 4
    return (
        head[1].decode(),
        _unquoted(head[2]),
        _unquoted(head[3]),
        body_start,
        body_start + length,
    )


@functools.lru_cache(maxsize=4096)
def _unquoted(segment: bytes) -> str:
    """A path segment, percent-decoded: the same few connection ids (a classroom's members,
    ending ``%3D``) come again and again, and ``unquote`` took as long as the rest of the head."""
    return unquote(segment.decode("ascii"))


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
        # Bytes received and not yet answered. A request's head is parsed again only when it
        # could have ended (a line feed or carriage return arrived), and its body is waited for by length, so a
        # request that arrives in many pieces costs what it costs in one.
        self.pending = bytearray()
        self.body_end = 0  # the length ``pending`` must reach for the first request's body
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
            self._answer(bytes(self.pending))

    def data_received(self, data: bytes) -> None:
        pending = self.pending
        if not pending and not self.paused:
            return self._answer(data)  # the usual case: whole requests in one read
        pending += data
        if self.paused:
            return
        if self.body_end:
            if len(pending) < self.body_end:
                return
        elif b"\n" not in data and b"\r" not in data and len(pending) <= HEAD_LIMIT:
            return  # no head can have ended, nor gone wrong
        self._answer(bytes(pending))

    def _answer(self, buffer: bytes) -> None:
        """Answers every whole request in ``buffer`` (all that is pending), keeping the rest."""
        front, start = self.front, 0
        self.body_end = 0
        while not self.paused:
            head_end = buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                # A bare LF or CR (not the last byte, which may be half of a CRLF) may mean the
                # head never gets its CRLF CRLF: aiohttp judges it, and refuses it at once.
                line_ends = buffer.count(b"\r\n", start)
                if (
                    len(buffer) - start > HEAD_LIMIT
                    or buffer.count(b"\n", start) != line_ends
                    or buffer.count(b"\r", start, len(buffer) - 1) != line_ends
                ):
                    return self._hand_over(buffer[start:])
                break
            request = _plain_request(buffer, start, head_end, front.max_body)
            if request is None:
                return self._hand_over(buffer[start:])
            method, stage, connection_id, body_start, body_end = request
            if body_end > len(buffer):
                self.body_end = body_end - start
                break
            answer = front.serve(method, stage, connection_id, buffer[body_start:body_end])
            self.transport.write(encode(answer))
            start = body_end
        self.pending = bytearray(buffer[start:])

    def _hand_over(self, unanswered: bytes) -> None:
        """aiohttp's server takes the connection, from the first byte not yet answered."""
        self.front.open.discard(self)
        transport, self.transport, self.pending = self.transport, None, bytearray()
        protocol = self.front.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if unanswered:
            protocol.data_received(unanswered)
