"""Classroom members for console tests: real WebSocket clients on the console's own sandbox."""

from __future__ import annotations

import contextlib
import json

import websocket

from backend import tokens
from desktop.sandbox.gateway import Sandbox

RECEIVE_TIMEOUT = 5.0


class Member:
    """One member connected to a sandbox the console started."""

    def __init__(self, sandbox: Sandbox, room: str, sub: str, role: str = "student") -> None:
        assert sandbox is not None, "the console's sandbox is not running"
        token = tokens.mint(sandbox.token_secret, sub=sub, role=role, rooms=[room])
        self.ws = websocket.create_connection(
            f"{sandbox.websocket_url}?room={room}&token={token}", timeout=RECEIVE_TIMEOUT
        )

    def ping(self) -> dict:
        """A round trip through the handlers: ``ping`` answered by ``pong``."""
        self.ws.send(json.dumps({"action": "ping"}))
        while True:
            frame = json.loads(self.ws.recv())
            if frame.get("event") == "pong":
                return frame

    def wait_closed(self) -> int:
        """Reads until the gateway closes the connection; returns the close code."""
        while True:
            frame = self.ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                with contextlib.suppress(OSError, websocket.WebSocketException):
                    self.ws.send_close()
                return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else 1005

    def close(self) -> None:
        if self.ws.connected:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self.ws.close(timeout=RECEIVE_TIMEOUT)
