"""What holds when the pieces around a handler fail: a missing authorizer context, lost Redis
data, a stalled Redis. Real handlers, real Redis, the recording management API
(docs/reliability.md says what each scenario reproduces)."""

from __future__ import annotations

import json

import pytest

from backend.handlers import messages
from tests.backend.conftest import LambdaContext, load_event
from tests.backend.test_handlers import ROOM, join

MESSAGE = {"action": "send", "type": "chat.message", "data": "hi", "id": "m1"}


def contextless(connection_id: str, body: dict, route: str = "send", authorizer=None) -> dict:
    """A message event as AWS's published captures show it from an API without an authorizer:
    no ``requestContext.authorizer`` at all (or the partial one given)."""
    event = load_event("message", connectionId=connection_id, routeKey=route, body=json.dumps(body))
    if authorizer is None:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"] = authorizer
    return messages.handler(event, LambdaContext())


@pytest.fixture
def physics(backend_env, management):
    """A teacher and two students in physics-101."""
    join("T1", "teacher-1", "teacher")
    join("S1", "student-1")
    join("S2", "student-2")
    management.reset()
    return management


def room_keys_present(redis_client) -> set[str]:
    return {key.split("}")[0] + "}" for key in redis_client.scan_iter("room:*")}


@pytest.mark.parametrize(
    "authorizer",
    [None, {}, {"principalId": "student-1"}, {"userId": "student-1", "role": "student"}],
    ids=["absent", "empty", "principal-only", "no-room"],
)
def test_a_send_without_the_context_is_the_connections_own(physics, redis_client, authorizer):
    contextless("S1", MESSAGE, authorizer=authorizer)
    (ack,) = physics.frames("S1")
    assert ack["event"] == "ack" and ack["id"] == "m1"
    for member in ("T1", "S2"):
        (message,) = physics.frames(member)
        assert message["room"] == ROOM and message["seq"] == ack["seq"]
        assert message["from"] == {"userId": "student-1", "role": "student"}
    assert room_keys_present(redis_client) == {"room:{" + ROOM + "}"}


def test_who_without_the_context_answers_the_connections_room(physics):
    contextless("S1", {"action": "who"}, route="who")
    (presence,) = physics.frames("S1")
    assert presence["room"] == ROOM
    assert sorted(m["userId"] for m in presence["members"]) == [
        "student-1",
        "student-2",
        "teacher-1",
    ]


@pytest.mark.parametrize(
    ("body", "route"),
    [(MESSAGE, "send"), ({"action": "who", "id": "w"}, "who"), ({"action": "ping"}, "ping")],
)
def test_a_frame_without_context_or_connection_record_is_forbidden(
    physics, redis_client, body, route
):
    keys_before = sorted(redis_client.keys("*"))
    contextless("UNKNOWN", body, route=route)
    (error,) = physics.frames("UNKNOWN")
    assert error["event"] == "error" and error["code"] == "forbidden"
    assert error["id"] == body.get("id")
    assert all(physics.frames(m) == [] for m in ("T1", "S1", "S2"))
    assert sorted(redis_client.keys("*")) == keys_before
