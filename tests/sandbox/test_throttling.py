"""The stage's route throttling: every route its own bucket, a throttled frame answered at once
with API Gateway's frame (and its ``id``), a throttled handshake refused with 429."""

from __future__ import annotations

import pytest
import websocket

from desktop.sandbox.gateway import Sandbox, SandboxConfig
from desktop.sandbox.throttling import RouteThrottle
from tests.sandbox.conftest import ADMIN_KEY, SECRET, ClassroomSocket, mint


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_route_has_a_bucket_of_the_stages_burst_refilled_at_its_rate():
    clock = Clock()
    throttle = RouteThrottle(rate=10, burst=3, clock=clock)
    assert [throttle.allow("ping") for _ in range(4)] == [True, True, True, False]
    assert throttle.allow("send")  # a flood of ping leaves send alone
    clock.now += 0.15  # a token and a half back at 10 a second
    assert throttle.allow("ping") and not throttle.allow("ping")
    clock.now += 60
    assert [throttle.allow("ping") for _ in range(4)] == [True, True, True, False]  # the burst caps


def test_a_zero_limit_throttles_everything_as_api_gateway_does():
    throttle = RouteThrottle(rate=0, burst=0)
    assert not throttle.allow("send")


@pytest.fixture(scope="module")
def sandbox_config(redis_server: str) -> SandboxConfig:
    return SandboxConfig(
        port=0,
        redis_url=redis_server,
        token_secret=SECRET,
        admin_key=ADMIN_KEY,
        throttle_rate=0.01,  # the burst, and then next to nothing
        throttle_burst=5,
    )


def test_frames_past_their_routes_limit_are_answered_at_once_and_say_which(classroom):
    member = classroom("student-1")
    for n in range(8):
        member.send({"action": "ping", "id": f"p{n}"})
    answers = [member.receive() for _ in range(8)]
    pongs = [a for a in answers if a.get("event") == "pong"]
    throttled = [a for a in answers if a.get("message") == "Too Many Requests"]
    assert len(pongs) == 5 and len(throttled) == 3, answers
    assert sorted(a["id"] for a in throttled) == ["p5", "p6", "p7"]
    assert all(a["connectionId"] and a["requestId"] for a in throttled)
    # Another route has its own bucket: who is still answered.
    assert member.request({"action": "who"}, "presence")["room"] == member.room


def test_a_handshake_past_connects_limit_is_refused_with_429(redis_server, room):
    sandbox = Sandbox(
        SandboxConfig(
            port=0,
            redis_url=redis_server,
            token_secret=SECRET,
            admin_key=ADMIN_KEY,
            throttle_rate=0.01,
            throttle_burst=2,
        )
    )
    sandbox.start()
    try:
        members = [ClassroomSocket(sandbox, room, f"student-{n}") for n in range(2)]
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(
                f"{sandbox.websocket_url}?room={room}&token={mint('late', rooms=[room])}",
                timeout=5,
            )
        assert refused.value.status_code == 429
        for member in members:
            member.close()
    finally:
        sandbox.stop()
