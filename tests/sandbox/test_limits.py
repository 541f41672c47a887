"""API Gateway's time limits, shortened: the idle timeout and the maximum connection lifetime."""

from __future__ import annotations

import time

import pytest
import websocket

from desktop.sandbox.gateway import SandboxConfig
from tests.sandbox.conftest import SECRET

IDLE = 1.0
LIFETIME = 2.5


@pytest.fixture(scope="module")
def sandbox_config(redis_server: str) -> SandboxConfig:
    return SandboxConfig(
        port=0,
        redis_url=redis_server,
        token_secret=SECRET,
        idle_timeout=IDLE,
        max_lifetime=LIFETIME,
    )


def ping_until(member, wanted: str, limit: float) -> dict | tuple[int, str]:
    """Keeps ``member`` active with ``ping`` until a ``wanted`` frame, or the close frame."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        member.send({"action": "ping"})
        try:
            member.ws.settimeout(0.3)
            frame = member.ws.recv_frame()
        except websocket.WebSocketTimeoutException:
            continue
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode()
        if wanted in frame.data.decode():
            return frame
    raise AssertionError(f"no {wanted} within {limit} s")


def test_a_silent_member_is_closed_at_the_idle_timeout_and_leaves(classroom):
    quiet = classroom("student-1")
    started = time.monotonic()
    teacher = classroom("teacher-1", "teacher")

    leave = ping_until(teacher, '"leave"', IDLE + 3)  # the teacher stays active meanwhile
    assert b'"userId":"student-1"' in leave.data
    assert time.monotonic() - started >= IDLE * 0.9
    assert quiet.wait_closed() == (1001, "Going away")


def test_an_active_member_is_closed_at_the_maximum_lifetime(classroom):
    member = classroom("student-1")
    started = time.monotonic()
    assert ping_until(member, "never", LIFETIME + 3) == (1001, "Going away")
    assert time.monotonic() - started >= LIFETIME - 0.5
