"""What holds when the pieces around a handler fail: a missing authorizer context, lost Redis
data, a stalled Redis. Real handlers, real Redis, the recording management API
(docs/reliability.md says what each scenario reproduces)."""

from __future__ import annotations

import json
import shutil

import pytest
import redis

from backend import runtime
from backend.registry import room_keys
from tests.backend.test_handlers import (
    ROOM,
    frame,
    join,
    leave,
    message_event,
)
from tests.conftest import start_redis
from tests.waiting import eventually

MESSAGE = {"action": "send", "type": "chat.message", "data": "hi", "id": "m1"}


def contextless(connection_id: str, body: dict, route: str = "send", authorizer=None) -> dict:
    """A message event as AWS's published captures show it from an API without an authorizer:
    no ``requestContext.authorizer`` at all (or the partial one given)."""
    return message_event(connection_id, body, route, authorizer)


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
        "name": "",
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


def stored_ids(redis_client) -> list[str]:
    return [json.loads(m)["id"] for m in redis_client.zrange(room_keys(ROOM)[2], 0, -1)]


def test_a_resend_with_the_same_id_answers_the_original_ack_and_stores_nothing(
    physics, redis_client
):
    frame("S1", "student-1", MESSAGE)
    (first,) = physics.frames("S1")
    (delivered,) = physics.frames("T1")
    physics.reset()
    frame("S1", "student-1", MESSAGE | {"data": "typed again"})
    assert physics.frames("S1") == [first]
    assert stored_ids(redis_client) == ["m1"]
    assert int(redis_client.get(room_keys(ROOM)[3])) == first["seq"]
    # The first attempt's fan-out may never have run: the members get the stored frame again,
    # the same seq and bytes, which a client holding it drops.
    assert physics.frames("T1") == [delivered] and physics.frames("S2") == [delivered]


def test_the_same_id_from_another_user_or_no_id_is_a_new_message(physics, redis_client):
    frame("S1", "student-1", MESSAGE)
    frame("S2", "student-2", MESSAGE)
    unnamed = {"action": "send", "type": "chat.message"}
    frame("S1", "student-1", unnamed)
    frame("S1", "student-1", unnamed)
    seqs = acks(physics, "S1") + acks(physics, "S2")
    assert len(set(seqs)) == 4
    assert stored_ids(redis_client) == ["m1", "m1", None, None]


def test_a_resend_after_the_original_left_the_log_is_stored_again(
    monkeypatch, physics, redis_client
):
    monkeypatch.setenv("LOG_MAX_MESSAGES", "3")
    runtime.reset()
    frame("S1", "student-1", MESSAGE)
    for n in range(3):
        frame("S1", "student-1", MESSAGE | {"id": f"later-{n}"})
    assert redis_client.zcard(room_keys(ROOM)[5]) == 3  # ids leave with their messages
    frame("S1", "student-1", MESSAGE)
    first, *_, again = acks(physics, "S1")
    assert again > first and stored_ids(redis_client)[-1] == "m1"


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, so it can be stalled without stalling other tests."""
    binary = shutil.which("redis-server")
    port, process = start_redis(binary, str(tmp_path), ("--enable-debug-command", "yes"))
    client = redis.Redis(port=port, decode_responses=True)
    try:
        yield port, client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def stall(port: int, seconds: int) -> redis.Connection:
    """Blocks the server for ``seconds`` (DEBUG SLEEP, as a long command or a failover's pause
    would) and returns once it is blocked: a probe's PING then goes unanswered."""
    sleeper = redis.Connection(port=port)
    sleeper.send_command("DEBUG", "SLEEP", str(seconds))
    probe = redis.Redis(port=port, socket_timeout=0.1, retry=None)

    def blocked() -> bool:
        try:
            probe.ping()
            return False
        except redis.TimeoutError:
            return True

    eventually(blocked, message="the test's Redis to stall")
    probe.close()
    return sleeper


def test_a_send_answered_unavailable_during_a_stall_is_resent_without_a_duplicate(
    monkeypatch, backend_env, management, own_redis
):
    """Redis stalls longer than the handler's socket timeout: the send is answered
    ``unavailable`` although Redis runs it once the stall ends (the command was already in its
    socket). The client resends with the same id and gets the original ack, and the members
    get the message the first attempt never fanned out; one message is stored."""
    port, client = own_redis
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0?socket_timeout=0.2")
    runtime.reset()
    join("T1", "teacher-1", "teacher")
    join("S1", "student-1")
    frame("S1", "student-1", MESSAGE | {"id": "warm"})  # loads the script
    management.reset()

    sleeper = stall(port, 3)
    frame("S1", "student-1", MESSAGE)
    assert [(f["code"], f["id"]) for f in management.frames("S1")] == [("unavailable", "m1")]
    assert management.frames("T1") == []
    sleeper.read_response()  # the stall is over
    sleeper.disconnect()
    assert stored_ids(client) == ["warm", "m1"]  # stored all the same

    frame("S1", "student-1", MESSAGE)
    ack = management.frames("S1")[-1]
    assert ack == {"event": "ack", "id": "m1", "seq": int(client.get(room_keys(ROOM)[3]))}
    assert stored_ids(client) == ["warm", "m1"]
    (message,) = management.frames("T1")
    assert (message["id"], message["seq"]) == ("m1", ack["seq"])
