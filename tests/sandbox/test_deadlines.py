"""Head and body deadlines: what aiohttp 3.14's ``keepalive_timeout`` cuts (and what it does not),
and ``Deadline`` in a protocol of our own, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from aiohttp import WSMsgType, web

from desktop.sandbox.deadlines import Deadline

TIMEOUT = 0.3
PATIENCE = 3.0  # an upper bound on waits that end as soon as the server acts
NOT_CUT = TIMEOUT * 4  # a connection still open then was not cut at TIMEOUT


async def _handle(request: web.BaseRequest) -> web.StreamResponse:
    if request.path == "/ws":
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                await socket.send_str(message.data)
        return socket
    if request.path == "/bounded":
        try:
            async with asyncio.timeout(TIMEOUT):
                await request.read()
        except TimeoutError:
            return web.Response(status=408, text="the body did not arrive in time")
    elif request.method == "POST":
        await request.read()
    return web.Response(text="ok")


async def _serve(factory):
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if it kept the connection open."""
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    except ConnectionResetError:
        return b""
    except TimeoutError:
        return None


async def _trickle(writer: asyncio.StreamWriter, data: bytes, gap: float) -> None:
    for byte in data:
        if writer.is_closing():
            return
        writer.write(bytes([byte]))
        await asyncio.sleep(gap)  # the scenario itself: a client that sends a byte at a time


def _aiohttp(coroutine):
    async def run():
        handler = web.Server(_handle, access_log=None, keepalive_timeout=TIMEOUT)
        server, port = await _serve(handler)
        try:
            return await coroutine(*await asyncio.open_connection("127.0.0.1", port))
        finally:
            server.close()
            await handler.shutdown(0.5)

    return asyncio.run(run())


HALF_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
STALLED_BODY = b"POST /%s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"


@pytest.mark.parametrize("sent", [b"", HALF_HEAD, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + HALF_HEAD])
def test_aiohttps_keepalive_timeout_cuts_a_head_that_does_not_arrive(sent):
    async def client(reader, writer):
        writer.write(sent)
        return await _closed_within(reader, PATIENCE)

    answered = _aiohttp(client)
    assert answered is not None  # cut, after answering the whole request if there was one
    assert answered.count(b"HTTP/1.1 200") == sent.count(b"\r\n\r\n")


def test_aiohttps_keepalive_timeout_is_not_moved_by_a_trickle():
    async def client(reader, writer):
        trickling = asyncio.create_task(_trickle(writer, HALF_HEAD * 10, TIMEOUT / 5))
        try:
            return await _closed_within(reader, PATIENCE)
        finally:
            trickling.cancel()

    assert _aiohttp(client) == b""


def test_aiohttp_never_cuts_a_body_that_stops_coming():
    async def client(reader, writer):
        writer.write(STALLED_BODY % b"unbounded")
        return await _closed_within(reader, NOT_CUT)

    assert _aiohttp(client) is None


def test_a_handler_bounds_its_body_read_itself():
    async def client(reader, writer):
        writer.write(STALLED_BODY % b"bounded")
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE)

    assert _aiohttp(client).startswith(b"HTTP/1.1 408")


def test_an_upgraded_websocket_outlives_keepalive_timeout():
    key = base64.b64encode(os.urandom(16))
    handshake = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )

    async def client(reader, writer):
        writer.write(handshake)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        assert await _closed_within(reader, NOT_CUT) is None
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"still here"))
        writer.write(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + payload)
        return await asyncio.wait_for(reader.readexactly(12), PATIENCE)

    assert _aiohttp(client) == b"\x81\x0astill here"


class _LineDoor(asyncio.Protocol):
    """A protocol of our own, as the front door is: answers each line, keeps a Deadline."""

    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""
        self.deadline = Deadline(TIMEOUT, transport.abort)
        self.deadline.restart()

    def data_received(self, data):
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self.transport.write(line.upper() + b"\n")
        if lines:
            self.deadline.restart()

    def connection_lost(self, exc):
        self.deadline.cancel()


def _door(coroutine):
    async def run():
        server, port = await _serve(_LineDoor)
        try:
            return await coroutine(*await asyncio.open_connection("127.0.0.1", port))
        finally:
            server.close()

    return asyncio.run(run())


@pytest.mark.parametrize("sent", [b"", b"half a line", b"a line\nhalf"])
def test_a_deadline_cuts_a_silent_or_half_sent_client(sent):
    async def client(reader, writer):
        writer.write(sent)
        return await _closed_within(reader, PATIENCE)

    assert _door(client) == sent.upper().rpartition(b"\n")[0] + (b"\n" if b"\n" in sent else b"")


def test_a_deadline_moves_with_every_answer():
    async def client(reader, writer):
        for number in range(6):  # 6 x TIMEOUT/2: longer than TIMEOUT, each within it
            writer.write(b"line %d\n" % number)
            assert await asyncio.wait_for(reader.readline(), PATIENCE) == b"LINE %d\n" % number
            await asyncio.sleep(TIMEOUT / 2)
        return await _closed_within(reader, PATIENCE)

    assert _door(client) == b""


def test_a_cancelled_deadline_never_fires():
    async def run():
        fired = []
        deadline = Deadline(0.01, lambda: fired.append(True))
        deadline.restart()
        assert deadline.active
        deadline.cancel()
        deadline.restart()
        assert not deadline.active
        await asyncio.sleep(0.05)
        return fired

    assert asyncio.run(run()) == []


def test_a_deadline_fires_once_when_it_is_due():
    async def run():
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        deadline = Deadline(0.05, lambda: fired.set_result(loop.time()))
        started = loop.time()
        deadline.restart()
        await asyncio.sleep(0.03)
        deadline.restart()  # due 0.05 from now: the first timer fires early and re-arms
        moved = loop.time()
        at = await asyncio.wait_for(fired, PATIENCE)
        return at - started, at - moved, deadline.active

    total, since_moved, active = asyncio.run(run())
    assert since_moved >= 0.049 and total >= 0.079
    assert not active
