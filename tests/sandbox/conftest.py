"""A running sandbox on the session's real Redis, and classroom clients that talk to it.

The sandbox is module-scoped (one per process at a time: the handlers' settings live in the
environment); a module that needs other limits overrides ``sandbox_config``. Clients are real
WebSocket clients (websocket-client) that wait on frames with receive timeouts, never sleeps.
"""

from __future__ import annotations

import contextlib
import json
import struct
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from backend import tokens
from desktop.sandbox.gateway import Sandbox, SandboxConfig

HERE = Path(__file__).resolve().parent
SECRET = "sandbox-test-secret-0123456789abcdef0123456789abcdef0123456789abcdef"
ADMIN_KEY = "sandbox-test-admin-key-0123456789abcdef"
RECEIVE_TIMEOUT = 5.0
USER_AGENT = "classroom-tests/1.0"


@pytest.fixture(scope="module")
def sandbox_config(redis_server: str) -> SandboxConfig:
    return SandboxConfig(
        host="127.0.0.1", port=0, redis_url=redis_server, token_secret=SECRET, admin_key=ADMIN_KEY
    )


@pytest.fixture(scope="module")
def sandbox(sandbox_config: SandboxConfig) -> Iterator[Sandbox]:
    running = Sandbox(sandbox_config)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def room() -> str:
    """A classroom of its own for each test, so tests share the sandbox but not state."""
    return f"room-{uuid.uuid4().hex[:12]}"


def mint(sub: str, role: str = "student", rooms: list[str] | None = None, **options) -> str:
    return tokens.mint(options.pop("secret", SECRET), sub=sub, role=role, rooms=rooms, **options)


def console_request(
    sandbox: Sandbox, url: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict]:
    """A request to a console endpoint as the console makes it (the admin key, JSON); returns
    the status and the JSON answer. ``headers`` adds to or replaces the console's."""
    sent = {"Authorization": f"Bearer {sandbox.admin_key}"}
    if body is not None:
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    request = urllib.request.Request(
        url, data=body, method="POST" if body is not None else "GET", headers=sent
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def admin(sandbox: Sandbox, request: dict | bytes, headers: dict | None = None) -> tuple[int, dict]:
    """POSTs to the sandbox's ``/_admin``; returns the status and the JSON answer."""
    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    return console_request(sandbox, sandbox.admin_url, body, headers)


def metrics_document(sandbox: Sandbox) -> dict:
    status, document = console_request(sandbox, sandbox.metrics_url)
    assert status == 200, document
    return document


class ClassroomSocket:
    """One member's connection: send protocol frames, receive them as dicts."""

    def __init__(self, sandbox: Sandbox, room: str, sub: str, role: str = "student") -> None:
        self.sub = sub
        self.role = role
        self.room = room
        token = mint(sub, role, [room], secret=sandbox.token_secret)  # whoever started it
        self.ws = websocket.create_connection(
            f"{sandbox.websocket_url}?room={room}&token={token}",
            timeout=RECEIVE_TIMEOUT,
            header=[f"User-Agent: {USER_AGENT}"],
        )

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame))

    def send_raw(self, text: str) -> None:
        self.ws.send(text)

    def receive(self, timeout: float = RECEIVE_TIMEOUT) -> dict:
        self.ws.settimeout(timeout)
        opcode, data = self.ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT, f"expected a text frame, got opcode {opcode}"
        return json.loads(data)

    def receive_event(self, event: str, timeout: float = RECEIVE_TIMEOUT) -> dict:
        """The next frame, which must be ``event``."""
        frame = self.receive(timeout)
        assert frame.get("event") == event, frame
        return frame

    def ping(self) -> dict:
        """A round trip through the handlers: the ``pong``, past whatever came before it
        (``join`` of later members, say)."""
        self.send({"action": "ping"})
        while (frame := self.receive()).get("event") != "pong":
            pass
        return frame

    def request(self, frame: dict, answer: str) -> dict:
        self.send(frame)
        return self.receive_event(answer)

    def wait_closed(self, timeout: float = RECEIVE_TIMEOUT) -> tuple[int, str]:
        """Reads until the gateway's close frame; returns its code and reason."""
        self.ws.settimeout(timeout)
        while True:
            frame = self.ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                # Answer it as clients do; the gateway may already have reset the TCP
                # connection (it does after a frame over the limit, whose bytes it never reads).
                with contextlib.suppress(OSError, websocket.WebSocketException):
                    self.ws.send_close()
                data = frame.data
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                return code, data[2:].decode("utf-8", "replace")

    def close(self) -> None:
        if self.ws.connected:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self.ws.close(timeout=RECEIVE_TIMEOUT)


@pytest.fixture
def classroom(sandbox: Sandbox, room: str) -> Iterator[callable]:
    """Opens members of ``room`` and closes whatever is left open after the test."""
    opened: list[ClassroomSocket] = []

    def join(sub: str, role: str = "student", in_room: str | None = None) -> ClassroomSocket:
        member = ClassroomSocket(sandbox, in_room or room, sub, role)
        opened.append(member)
        return member

    yield join
    for member in opened:
        member.close()
