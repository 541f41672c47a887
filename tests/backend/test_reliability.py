"""What holds when the pieces around a handler fail: a missing authorizer context, lost Redis
data, a stalled Redis. Real handlers, real Redis, the recording management API
(docs/reliability.md says what each scenario reproduces)."""

from __future__ import annotations

import json

import pytest

from backend.handlers import messages
from backend.registry import room_keys
from tests.backend.conftest import LambdaContext, load_event
from tests.backend.test_handlers import ROOM, frame, join, leave

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


def ping(connection_id: str, user_id: str, role: str = "student") -> None:
    frame(connection_id, user_id, {"action": "ping"}, role=role, route="ping")


def events(management, connection_id: str) -> list[tuple]:
    return [
        (f["event"], f.get("userId") or f.get("seq") or f.get("code"))
        for f in management.frames(connection_id)
    ]


def test_after_lost_data_each_frame_registers_its_connection_again(physics, redis_client):
    """FLUSHALL as a node that came back empty: pings, a send and a who each heal their
    connection, and the room hears ``join`` for it from then on."""
    redis_client.flushall()
    ping("T1", "teacher-1", "teacher")
    ping("S1", "student-1")
    frame("S2", "student-2", {"action": "send", "type": "chat.message", "id": "after"})
    assert events(physics, "T1")[1:3] == [("join", "student-1"), ("join", "student-2")]
    (ack,) = [f for f in physics.frames("S2") if f["event"] == "ack"]
    for member in ("T1", "S1"):
        assert physics.frames(member)[-1]["seq"] == ack["seq"]
    assert sorted(redis_client.zrange(room_keys(ROOM)[0], 0, -1)) == ["S1", "S2", "T1"]
    info = json.loads(redis_client.hget(room_keys(ROOM)[1], "S1"))
    assert info == {
        "connectionId": "S1",
        "userId": "student-1",
        "role": "student",
        "connectedAt": 1795072718000,
        "sourceIp": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (Whiteboard)",
        "hidden": False,
    }
    assert redis_client.hgetall("conn:{S1}") == {
        "room": ROOM,
        "userId": "student-1",
        "role": "student",
        "hidden": "0",
    }
    assert 0 < redis_client.ttl("conn:{S1}") <= 7200
    assert redis_client.zscore("rooms", ROOM) is not None
    physics.reset()
    frame("T1", "teacher-1", {"action": "who"}, role="teacher", route="who")
    (presence,) = physics.frames("T1")
    assert sorted(m["userId"] for m in presence["members"]) == [
        "student-1",
        "student-2",
        "teacher-1",
    ]


def test_a_support_member_registered_again_stays_hidden(physics, redis_client):
    join("X1", "staff@example.com", "support")
    redis_client.flushall()
    ping("T1", "teacher-1", "teacher")
    ping("X1", "staff@example.com", "support")
    frame("X1", "staff@example.com", {"action": "who"}, role="support", route="who")
    assert "X1" in redis_client.zrange(room_keys(ROOM)[0], 0, -1)
    assert [f["event"] for f in physics.frames("T1")] == ["pong"]
    (presence,) = [f for f in physics.frames("X1") if f["event"] == "presence"]
    assert [m["userId"] for m in presence["members"]] == ["teacher-1"]


def test_a_frame_racing_its_disconnect_does_not_register_it_again(physics, redis_client):
    leave("S2", "student-2")
    physics.reset()
    ping("S2", "student-2")
    frame("S2", "student-2", {"action": "send", "type": "chat.message"})
    assert "S2" not in redis_client.zrange(room_keys(ROOM)[0], 0, -1)
    assert not redis_client.exists("conn:{S2}")
    assert [f["event"] for f in physics.frames("T1")] == ["message"]


def acks(management, connection_id: str) -> list[int]:
    return [f["seq"] for f in management.frames(connection_id) if f["event"] == "ack"]


def test_seq_never_goes_backwards_after_lost_data(physics, redis_client):
    for n in range(3):
        frame("S1", "student-1", {"action": "send", "type": "chat.message", "data": n})
    held = physics.frames("S2")[-1]["seq"]
    redis_client.flushall()

    frame("S2", "student-2", {"action": "sync", "since": held}, route="sync")
    (history,) = [f for f in physics.frames("S2") if f["event"] == "history"]
    assert history["messages"] == [] and history["latest"] >= held
    assert history["truncated"] is True  # what was lost with the data is gone

    frame("S1", "student-1", {"action": "send", "type": "chat.message", "data": "after"})
    (after,) = acks(physics, "S1")[3:]
    assert after > held
    frame("S2", "student-2", {"action": "sync", "since": held}, route="sync")
    history = [f for f in physics.frames("S2") if f["event"] == "history"][-1]
    assert [m["seq"] for m in history["messages"]] == [after]
    assert history["truncated"] is True


def test_a_room_whose_count_expired_starts_above_its_old_seqs(physics, redis_client):
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    (before,) = acks(physics, "S1")
    for key in room_keys(ROOM)[2:]:
        redis_client.delete(key)  # as after 31 idle days
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    assert acks(physics, "S1")[1] > before
    frame("S2", "student-2", {"action": "sync", "since": 0}, route="sync")
    history = physics.frames("S2")[-1]
    assert len(history["messages"]) == 1 and history["truncated"] is False
