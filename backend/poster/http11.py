"""Reading the management API's HTTP/1.1 answers off a socket: just what the lean poster needs.

Status line (interim 1xx answers skipped), the headers that matter (``Content-Length``,
``Transfer-Encoding``, ``Connection``, ``x-amzn-ErrorType``), then the body by length, chunked,
or up to the end of the connection. Anything malformed is ``BadAnswer``; socket errors and
timeouts are left to the caller (the connection pool), which knows what the connection was for.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from backend.poster.errors import BadAnswer

RECV_SIZE = 65536
_MAX_HEAD = 65536


class Answer(NamedTuple):
    status: int
    body: bytes
    error_type: str  # x-amzn-ErrorType, up to its first ':'
    keep_alive: bool


def _more(sock: socket.socket, data: bytes) -> bytes:
    chunk = sock.recv(RECV_SIZE)
    if not chunk:
        raise BadAnswer("the management API closed the connection in the middle of an answer")
    return data + chunk


def _find(sock: socket.socket, data: bytes, marker: bytes, too_long: str) -> tuple[bytes, int]:
    """Reads until ``marker`` is in ``data``; returns the data and where the marker starts."""
    end = data.find(marker)
    while end < 0:
        if len(data) > _MAX_HEAD:
            raise BadAnswer(too_long)
        data = _more(sock, data)
        end = data.find(marker)
    return data, end


def read_answer(sock: socket.socket, data: bytes, method: str) -> Answer:
    """One HTTP/1.x response whose first bytes are ``data``: status, headers, then a body by
    ``Content-Length``, chunked, or up to the end of the connection."""
    while True:
        data, end = _find(
            sock, data, b"\r\n\r\n", "the management API's answer has too long a head"
        )
        lines = data[:end].decode("latin-1").split("\r\n")
        data = data[end + 4 :]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not (version.startswith("HTTP/1.") and code.isdigit()):
            raise BadAnswer(f"not an HTTP answer: {lines[0][:80]!r}")
        status = int(code)
        if status >= 200:
            break  # 1xx answers are interim: the final one follows

    length = -1
    chunked = False
    keep_alive = version != "HTTP/1.0"
    error_type = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            try:
                length = int(value)
            except ValueError:
                raise BadAnswer(f"bad Content-Length: {value.strip()[:40]!r}") from None
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            tokens = value.lower()
            if "close" in tokens:
                keep_alive = False
            elif "keep-alive" in tokens:
                keep_alive = True
        elif name == "x-amzn-errortype":
            error_type = value.strip().partition(":")[0]

    if method == "HEAD" or status in (204, 304):
        body = b""
    elif chunked:
        body, data = _read_chunked(sock, data)
    elif length >= 0:
        while len(data) < length:
            data = _more(sock, data)
        body, data = data[:length], data[length:]
    else:  # the body ends with the connection
        parts = [data]
        while chunk := sock.recv(RECV_SIZE):
            parts.append(chunk)
        body, data, keep_alive = b"".join(parts), b"", False
    if data:  # bytes beyond the answer: the connection is not in a known state
        keep_alive = False
    return Answer(status, body, error_type, keep_alive)


def _read_chunked(sock: socket.socket, data: bytes) -> tuple[bytes, bytes]:
    body = bytearray()
    while True:
        data, end = _find(sock, data, b"\r\n", "bad chunk size line in the management API's answer")
        try:
            size = int(data[:end].partition(b";")[0].strip(), 16)
        except ValueError:
            raise BadAnswer("bad chunk size in the management API's answer") from None
        data = data[end + 2 :]
        if size == 0:
            break
        while len(data) < size + 2:
            data = _more(sock, data)
        if data[size : size + 2] != b"\r\n":
            raise BadAnswer("a chunk of the management API's answer does not end with CRLF")
        body += data[:size]
        data = data[size + 2 :]
    while True:  # trailers, up to an empty line
        data, end = _find(sock, data, b"\r\n", "too long trailers in the management API's answer")
        line, data = data[:end], data[end + 2 :]
        if not line:
            return bytes(body), data
