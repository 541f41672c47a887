"""The management API's front door (``desktop.sandbox.management``), on a real sandbox and raw
sockets: what it serves itself, what it hands to aiohttp, and that a client sees no seam.

boto3's and the backend's own clients are covered by the other modules' tests (every fan-out
goes through the door); these send the bytes by hand, so each shape of request is certain.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websocket
from aiohttp import web

from desktop.sandbox import management
from tests.sandbox.test_gateway import connection_id_of

RECEIVE_TIMEOUT = 5.0


class RawClient:
    """A keep-alive HTTP/1.1 connection written and read byte by byte."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=RECEIVE_TIMEOUT)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self.buffer += chunk

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The next answer: status, headers (lower-case names) and body."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100:
            return self.answer()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: localhost", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
def raw(sandbox):
    opened: list[RawClient] = []

    def connect() -> RawClient:
        client = RawClient(sandbox.port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def member(classroom, sandbox, room):
    """A connected member and the path that posts to it."""
    joined = classroom("member-1")
    path = f"/local/@connections/{connection_id_of(sandbox, room, 'member-1')}"
    return joined, path


def test_pipelined_posts_in_one_write_are_answered_and_delivered_in_order(raw, member):
    joined, path = member
    client = raw()
    client.send(b"".join(post(path, json.dumps({"n": n}).encode()) for n in range(5)))
    answers = [client.answer() for _ in range(5)]
    assert [status for status, _, _ in answers] == [200] * 5
    ids = {headers["x-amzn-requestid"] for _, headers, _ in answers}
    assert len(ids) == 5  # one request id each, shaped like AWS's
    assert all(len(i) == 36 and i.count("-") == 4 for i in ids)
    assert [joined.receive() for _ in range(5)] == [{"n": n} for n in range(5)]


def test_a_request_dribbled_byte_by_byte_is_answered_once_whole(raw, member):
    joined, path = member
    client = raw()
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in post(path, b'{"slow":true}'):
        client.send(bytes([byte]))
    assert client.answer()[0] == 200
    assert joined.receive() == {"slow": True}


def test_a_large_body_in_many_small_pieces_arrives_whole(raw, member):
    joined, path = member
    client = raw()
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    text = "y" * (100 * 1024)
    request = post(path, text.encode())
    for offset in range(0, len(request), 1000):
        client.send(request[offset : offset + 1000])
    assert client.answer()[0] == 200
    joined.ws.settimeout(RECEIVE_TIMEOUT)
    assert joined.ws.recv_data()[1].decode() == text


def test_frames_of_every_length_encoding_arrive_intact(raw, member):
    joined, path = member
    client = raw()
    # 7-bit, 16-bit and 64-bit payload lengths, at their edges, up to the 128 KB limit.
    for size in (0, 125, 126, 65535, 65536, 128 * 1024):
        text = "x" * size
        client.send(post(path, text.encode()))
        assert client.answer()[0] == 200
        joined.ws.settimeout(RECEIVE_TIMEOUT)
        opcode, data = joined.ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        assert data.decode() == text


def test_a_body_that_is_not_utf8_arrives_as_a_binary_frame(raw, member):
    joined, path = member
    client = raw()
    client.send(post(path, b"\xff\xfe\x00binary"))
    assert client.answer()[0] == 200
    joined.ws.settimeout(RECEIVE_TIMEOUT)
    opcode, data = joined.ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY and data == b"\xff\xfe\x00binary"


def test_errors_are_the_management_apis_with_their_error_types(raw, member, sandbox):
    _, path = member
    client = raw()
    gone = "/local/@connections/bm90QUNvbm5lY3Q="
    client.send(post(gone, b"{}"))
    status, headers, body = client.answer()
    assert (status, headers["x-amzn-errortype"], json.loads(body)) == (
        410,
        "GoneException",
        {"message": "Gone"},
    )
    client.send(post(path.replace("/local/", "/prod/"), b"{}"))
    assert client.answer()[0] == 403
    client.send(f"GET {gone} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert client.answer()[0] == 410
    client.send(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    status, headers, _ = client.answer()
    assert (status, headers["x-amzn-errortype"]) == (405, "MethodNotAllowedException")


def test_get_and_delete_answer_at_the_door(raw, member):
    joined, path = member
    client = raw()
    client.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, headers, body = client.answer()
    assert status == 200 and headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"connectedAt", "identity", "lastActiveAt"}
    client.send(f"DELETE {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, headers, body = client.answer()
    assert (status, body) == (204, b"") and "content-length" not in headers
    assert joined.wait_closed()[0] == 1000


@pytest.mark.parametrize(
    "shape",
    [
        "chunked",
        "expect-continue",
        "http/1.0",
        "connection-close",
        "query-string",
    ],
)
def test_other_shapes_of_request_are_served_by_aiohttp_with_the_same_answers(raw, member, shape):
    joined, path = member
    client = raw()
    body = b'{"shape":"%s"}' % shape.encode()
    if shape == "chunked":
        request = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
    elif shape == "expect-continue":
        request = post(path, body, "Expect: 100-continue")
    elif shape == "http/1.0":
        request = post(path, body).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    elif shape == "connection-close":
        request = post(path, body, "Connection: close")
    else:
        request = post(path + "?x=1", body)
    client.send(request)
    status, headers, _ = client.answer()
    assert status == 200 and "x-amzn-requestid" in headers
    assert joined.receive() == {"shape": shape}
    if shape in ("http/1.0", "connection-close"):
        assert client.closed_by_peer()


def test_a_connection_handed_over_mid_stream_keeps_its_order(raw, member, sandbox):
    """A door-served POST, then a request only aiohttp serves, then POSTs again, pipelined in
    one write: aiohttp takes the connection from the first byte not yet answered."""
    joined, path = member
    client = raw()
    client.send(
        post(path, b'{"n":1}')
        + b"GET /_metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        + post(path, b'{"n":2}')
        + post(path, b'{"n":3}')
    )
    first, metrics_answer, second, third = (client.answer() for _ in range(4))
    assert first[0] == second[0] == third[0] == 200
    assert metrics_answer[0] == 200 and isinstance(json.loads(metrics_answer[2]), dict)
    assert [joined.receive() for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_over_the_limit_and_malformed_requests_are_refused_by_aiohttp(raw, member):
    _, path = member
    client = raw()
    client.send(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {128 * 1024 + 1}\r\n\r\n".encode()
    )
    status, headers, _ = client.answer()
    assert (status, headers["x-amzn-errortype"]) == (413, "PayloadTooLargeException")
    assert client.closed_by_peer()  # the body is not waited for
    malformed = raw()
    malformed.send(
        f"POST {path} HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".encode()
    )
    assert malformed.answer()[0] == 400


@pytest.mark.parametrize(
    "head",
    [
        "POST {path} HTTP/1.1\nHost: x\nContent-Length: 2\n\n{{}}",
        "GET {path} HTTP/1.1\r\nHost: x\n\r\n",
        "GET /_admin HTTP/1.1\nHost: x\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX: y\r\n\r\r\n",
    ],
)
def test_a_head_with_a_bare_line_feed_or_return_is_answered_not_left_waiting(raw, member, head):
    _, path = member
    client = raw()
    client.send(head.format(path=path).encode())
    status, _, body = client.answer()
    assert status == 400, body  # aiohttp refuses it; the door did not sit waiting for CRLF


def test_a_websocket_handshake_on_a_connection_that_began_at_the_door(sandbox, room):
    """The door decides per request, so even an upgrade after a management request works."""
    from tests.sandbox.conftest import mint

    token = mint("late-joiner", rooms=[room])
    client = RawClient(sandbox.port)
    try:
        client.send(post("/local/@connections/bm90QUNvbm5lY3Q=", b"{}"))
        assert client.answer()[0] == 410
        client.send(
            (
                f"GET /local?room={room}&token={token} HTTP/1.1\r\nHost: x\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in client.buffer:
            client._fill()
        assert client.buffer.startswith(b"HTTP/1.1 101")
    finally:
        client.close()


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """Windows runs the gateway on asyncio's own loop, Linux and macOS on uvloop."""
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed on Windows")
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def through_a_door(
    kind: str, requests: bytes, answers: int, *, then: bytes = b"", small_buffers: bool = False
) -> tuple[list, list[tuple[int, bytes]]]:
    """Sends ``requests`` in one write to a front door with aiohttp behind it, on an event loop
    of ``kind``, and once their ``answers`` are in, the request ``then``; returns what the door
    served and the answers (status, body) in order.

    With ``small_buffers`` the sockets' buffers are tiny and the client reads nothing for half
    a second, so the door's answers back up while it still has requests to read."""
    seen: list[tuple[str, str, str, bytes]] = []

    def serve(method: str, stage: str, connection_id: str, body: bytes) -> management.Answer:
        seen.append((method, stage, connection_id, body))
        return management.Answer(200, {"echo": body.decode()})

    async def fallback(request: web.BaseRequest) -> web.Response:
        return web.Response(text=f"aiohttp {request.method} {request.path}")

    async def exchange() -> list[tuple[int, bytes]]:
        server = web.Server(fallback, access_log=None)
        door = management.FrontDoor(serve, server, 1024)
        listening = socket.socket()
        client = socket.socket()
        if small_buffers:  # accepted sockets inherit the listener's
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        listener = await loop.create_server(door, sock=listening)
        client.connect(listening.getsockname())
        reader, writer = await asyncio.open_connection(sock=client)
        writer.write(requests)
        if small_buffers:
            await asyncio.sleep(0.5)
        received: list[tuple[int, bytes]] = []
        expected = answers
        while len(received) < expected:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            received.append((int(head.split(b" ", 2)[1]), await reader.readexactly(length)))
            if len(received) == answers and then:
                writer.write(then)
                expected += 1
        writer.close()
        door.close()
        listener.close()
        await server.shutdown(1.0)
        return received

    loop = new_loop(kind)
    failures: list[dict] = []  # what the loop would log: a protocol callback that raised
    loop.set_exception_handler(lambda _, context: failures.append(context))
    try:
        received = loop.run_until_complete(asyncio.wait_for(exchange(), 20))
    finally:
        loop.close()
    assert failures == []
    return seen, received


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_the_door_and_its_hand_over_on_each_event_loop(loop_kind):
    seen, answers = through_a_door(
        loop_kind,
        post("/s/@connections/a%3D", b"one")
        + b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n"
        + post("/s/@connections/b", b"two"),
        3,
    )
    assert seen == [("POST", "s", "a=", b"one")]
    assert answers[0] == (200, b'{"echo": "one"}')
    # From the first request it did not serve, aiohttp has the connection, POSTs included.
    assert answers[1:] == [
        (200, b"aiohttp GET /elsewhere"),
        (200, b"aiohttp POST /s/@connections/b"),
    ]


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_hand_over_waits_until_answers_backed_up_have_drained(loop_kind):
    """aiohttp is given the connection only when it can read from it: handed over while the
    door had paused reading, the connection would never be read again."""
    count = 1500
    seen, answers = through_a_door(
        loop_kind,
        post("/s/@connections/a", b"x") * count
        + b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n"
        + post("/s/@connections/a", b"after"),
        count + 2,
        then=b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n",  # read from the socket by aiohttp
        small_buffers=True,
    )
    assert len(seen) == count
    assert answers[:count] == [(200, b'{"echo": "x"}')] * count
    assert answers[count:] == [
        (200, b"aiohttp GET /elsewhere"),
        (200, b"aiohttp POST /s/@connections/a"),
        (200, b"aiohttp GET /later"),
    ]


def test_request_ids_are_unique_and_shaped_like_aws():
    ids = {management.request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 36 and [len(p) for p in i.split("-")] == [8, 4, 4, 4, 12] for i in ids)


def plain(*lines: str) -> bytes:
    """A head the door serves, with ``lines`` changed or added."""
    head = "POST /s/@connections/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1"
    return head.encode() + b"".join(b"\r\n" + line.encode("latin-1") for line in lines)


def test_the_door_serves_the_plain_shape_boto3_and_the_lean_poster_send():
    for head in (plain(), plain("X-Amz-Date: 20261130T000000Z", "Authorization: AWS4 a=b, c=d")):
        buffer = head + b"\r\n\r\nx"
        method, stage, connection_id, body_start, body_end = management._plain_request(
            buffer, 0, buffer.index(b"\r\n\r\n"), 1024
        )
        assert (method, stage, connection_id) == ("POST", "s", "a")
        assert buffer[body_start:body_end] == b"x"
    quoted = b"DELETE /st%61ge/@connections/AbC%3D HTTP/1.1\r\nhOsT: x\r\n\r\n"
    served = management._plain_request(quoted, 0, quoted.index(b"\r\n\r\n"), 1024)
    assert served[:3] == ("DELETE", "stage", "AbC=") and served[3] == served[4]


@pytest.mark.parametrize(
    "head",
    [
        plain("Transfer-Encoding: chunked"),
        plain("Content-Length: 1"),
        plain().replace(b"Length: 1", b"Length: +1"),
        plain().replace(b"Length: 1", b"Length: \x0b1"),
        plain().replace(b"Content-Length:", b"Content-Length :"),
        plain().replace(b"Content-Length:", b"Content Length:"),
        plain("X-Folded: a", " b"),
        plain("X-Nul: a\x00b"),
        plain("X-Bare: a\nContent-Length: 90"),
        plain("X-Bare: a\rb"),
        plain("X-Long: " + "a" * 8200),
        plain(*(f"X-{n}: {n}" for n in range(120))),
        plain().replace(b"Host: x\r\n", b""),
        plain("Host: y"),
        plain().replace(b"HTTP/1.1", b"HTTP/1.0"),
        plain().replace(b"POST", b"post"),
        plain().replace(b"POST", b"HEAD"),
        plain().replace(b"/a ", b"/a?x "),
        plain().replace(b"/a ", b"/a\x01 "),
        plain().replace(b" /s/", b" http://h/s/"),
        plain().replace(b"/a ", b"/ "),
        plain().replace(b"@connections", b"other"),
        plain().replace(b"Length: 1", b"Length: 1025"),
        plain("Upgrade: h2c"),
        plain("Expect: 100-continue"),
        plain("Connection: keep-alive"),
    ],
)
def test_the_door_leaves_every_other_shape_to_aiohttp(head):
    buffer = head + b"\r\n\r\n"
    assert management._plain_request(buffer, 0, buffer.index(b"\r\n\r\n"), 1024) is None


def test_a_smuggled_request_is_not_served_as_a_second_one(raw, member):
    """A bare LF hides the Content-Length from a CRLF-only reader; aiohttp refuses the lot."""
    joined, path = member
    hidden = post(path, b'{"smuggled":true}')
    client = raw()
    client.send(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Note: a\nContent-Length: {len(hidden)}"
        "\r\n\r\n".encode()
        + hidden
    )
    assert client.answer()[0] == 400
    assert client.closed_by_peer()
    joined.ws.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        joined.ws.recv_data()


def test_a_client_that_does_not_read_its_answers_is_served_in_order_when_it_does(sandbox):
    """Answers back up, the door stops reading; a request for aiohttp in the backlog is handed
    over only once they drain, and everything is answered in order."""
    count = 20_000  # about 5 MB of 410 answers: more than the sockets' buffers hold

    async def exchange() -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
        gone = post("/local/@connections/bm90QUNvbm5lY3Q=", b"{}")
        writer.write(gone * count + b"GET /_metrics HTTP/1.1\r\nHost: x\r\n\r\n" + gone)
        await asyncio.sleep(1.0)  # not reading: the gateway's buffer for us fills
        statuses = []
        for _ in range(count + 2):
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split(b" ", 2)[1]))
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        writer.close()
        return statuses

    statuses = asyncio.run(asyncio.wait_for(exchange(), 60))
    assert statuses == [410] * count + [200, 410]


def test_websocket_frame_headers_follow_rfc_6455():
    assert management.websocket_frame(b"hi", binary=False) == b"\x81\x02hi"
    assert management.websocket_frame(b"\x00", binary=True) == b"\x82\x01\x00"
    assert management.websocket_frame(b"x" * 126, binary=False)[:4] == b"\x81\x7e\x00\x7e"
    assert management.websocket_frame(b"x" * 65536, binary=False)[:10] == (
        b"\x81\x7f" + (65536).to_bytes(8, "big")
    )


def test_answers_carry_api_gateways_headers():
    encoded = management.encode(management.error(410, "GoneException", "Gone"))
    head, _, body = encoded.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 410 Gone"
    names = {line.split(":")[0] for line in lines[1:]}
    assert {"Date", "x-amzn-RequestId", "x-amzn-ErrorType", "Content-Type"} <= names
    assert json.loads(body) == {"message": "Gone"}
    assert f"Content-Length: {len(body)}" in lines
