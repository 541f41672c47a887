"""The Lambda handlers against a real Redis and a real management API, as PROTOCOL.md says."""

from __future__ import annotations

import json
import threading
import time

import pytest

from backend import runtime
from backend.handlers import connect, disconnect, messages
from backend.registry import room_keys
from tests.backend.conftest import LambdaContext, load_event

ROOM = "physics-101"


def floor(room: str = ROOM) -> int:
    """The seq the room's count started from: its first message has ``floor() + 1``."""
    return int(runtime.registry().client.hget(room_keys(room)[4], "floor"))


def context_for(connection_id: str, user_id: str, role: str, room: str = ROOM) -> dict:
    return {"userId": user_id, "role": role, "room": room, "principalId": user_id}


def join(connection_id: str, user_id: str, role: str = "student", room: str = ROOM) -> dict:
    event = load_event(
        "connect",
        connectionId=connection_id,
        authorizer=context_for(connection_id, user_id, role, room),
    )
    return connect.handler(event, LambdaContext())


def leave(connection_id: str, user_id: str, role: str = "student", room: str = ROOM) -> dict:
    event = load_event(
        "disconnect",
        connectionId=connection_id,
        authorizer=context_for(connection_id, user_id, role, room),
    )
    return disconnect.handler(event, LambdaContext())


def frame(
    connection_id: str, user_id: str, body, role: str = "student", route: str = "send"
) -> dict:
    return message_event(connection_id, body, route, context_for(connection_id, user_id, role))


def message_event(connection_id: str, body, route: str, authorizer: dict | None) -> dict:
    """A frame through the message handler, with this authorizer context (None: none at all,
    as AWS's captures from an API without an authorizer show it)."""
    text = body if isinstance(body, str) else json.dumps(body)
    event = load_event("message", connectionId=connection_id, routeKey=route, body=text)
    if authorizer is None:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"] = authorizer
    return messages.handler(event, LambdaContext())


@pytest.fixture
def classroom(backend_env, management):
    """A teacher and two students in physics-101."""
    join("T1", "teacher-1", "teacher")
    join("S1", "student-1")
    join("S2", "student-2")
    management.reset()
    return management


def test_connect_tells_the_room_join_but_not_the_newcomer(backend_env, management):
    assert join("T1", "teacher-1", "teacher") == {"statusCode": 200}
    assert join("S1", "student-1") == {"statusCode": 200}
    assert management.frames("T1") == [
        {"event": "join", "room": ROOM, "userId": "student-1", "role": "student"}
    ]
    assert management.frames("S1") == []


def test_connect_registers_the_connection_details(backend_env, redis_client):
    join("S1", "student-1")
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
    assert 0 < redis_client.ttl("conn:{S1}") <= 7200


def test_send_stores_acks_and_delivers_to_everyone_else(classroom):
    body = {
        "action": "send",
        "type": "whiteboard.stroke",
        "data": {"points": [[0, 0], [10, 12]], "empty": [], "big": 2**60, "text": "Grüße ✓"},
        "id": "m1",
    }
    assert frame("S1", "student-1", body) == {"statusCode": 200}
    assert classroom.frames("S1") == [{"event": "ack", "id": "m1", "seq": floor() + 1}]
    for member in ("T1", "S2"):
        (message,) = classroom.frames(member)
        assert message.pop("ts") > 0
        assert message == {
            "event": "message",
            "room": ROOM,
            "seq": floor() + 1,
            "from": {"userId": "student-1", "role": "student"},
            "type": "whiteboard.stroke",
            "data": body["data"],
            "id": "m1",
        }


def test_seqs_are_contiguous_and_the_room_field_must_match(classroom):
    frame("S1", "student-1", {"action": "send", "type": "chat.message", "id": "a"})
    frame("S2", "student-2", {"action": "send", "type": "chat.message", "room": ROOM, "id": "b"})
    frame("T1", "teacher-1", {"action": "send", "type": "classroom.state"}, role="teacher")
    acks = [
        f["seq"] for m in ("S1", "S2", "T1") for f in classroom.frames(m) if f["event"] == "ack"
    ]
    assert acks == [floor() + n for n in (1, 2, 3)]


def test_message_without_id_or_data_carries_nulls(classroom):
    frame("S1", "student-1", {"action": "send", "type": "whiteboard.clear"})
    (message,) = classroom.frames("S2")
    assert message["data"] is None and message["id"] is None
    assert classroom.frames("S1") == [{"event": "ack", "id": None, "seq": floor() + 1}]


BAD_FRAMES = [
    ("not json", "bad_json", None),
    ("[1, 2]", "bad_json", None),
    ('"send"', "bad_json", None),
    ("", "bad_json", None),
    ({"type": "chat.message", "id": "x"}, "unknown_action", "x"),
    ({"action": "fly", "id": "x"}, "unknown_action", "x"),
    ({"action": 5}, "unknown_action", None),
    ({"action": "send", "id": "x"}, "invalid", "x"),
    ({"action": "send", "type": "Chat", "id": "x"}, "invalid", "x"),
    ({"action": "send", "type": "1chat", "id": "x"}, "invalid", "x"),
    ({"action": "send", "type": "a" * 65, "id": "x"}, "invalid", "x"),
    ({"action": "send", "type": "chat message", "id": "x"}, "invalid", "x"),
    ({"action": "send", "type": 7, "id": "x"}, "invalid", "x"),
    ({"action": "send", "type": "chat.message", "id": 7}, "invalid", None),
    ({"action": "send", "type": "chat.message", "room": "chemistry", "id": "x"}, "forbidden", "x"),
    ({"action": "sync", "since": -1, "id": "x"}, "invalid", "x"),
    ({"action": "sync", "since": "3", "id": "x"}, "invalid", "x"),
    ({"action": "sync", "since": 1.5, "id": "x"}, "invalid", "x"),
    ({"action": "sync", "since": True, "id": "x"}, "invalid", "x"),
]


@pytest.mark.parametrize(("body", "code", "client_id"), BAD_FRAMES)
def test_bad_frames_get_their_error_and_nothing_is_stored_or_delivered(
    classroom, redis_client, body, code, client_id
):
    route = (
        body.get("action")
        if isinstance(body, dict) and body.get("action") in ("send", "sync", "who", "ping")
        else "$default"
    )
    frame("S1", "student-1", body, route=route)
    (error,) = classroom.frames("S1")
    assert error["event"] == "error"
    assert error["code"] == code
    assert error["id"] == client_id
    assert error["message"]
    assert classroom.frames("S2") == [] and classroom.frames("T1") == []
    assert redis_client.exists(room_keys(ROOM)[2]) == 0
    assert redis_client.get(room_keys(ROOM)[3]) is None


def nested(depth: int) -> str:
    """``data`` as arrays nested so that the whole frame nests ``depth`` levels."""
    return "[" * (depth - 1) + "]" * (depth - 1)


NESTING_LIMIT = 32  # PROTOCOL.md: objects and arrays nest at most 32 levels, the frame included
DEEPEST = nested(NESTING_LIMIT)
# Frames that are not strict JSON (PROTOCOL.md, "Frames from a client"): refused as bad_json.
NOT_STRICT_JSON = {
    "NaN and Infinity": '{"action":"send","type":"x","data":[NaN,Infinity]}',
    "-Infinity": '{"action":"send","type":"x","data":-Infinity,"id":"m"}',
    "NaN as since": '{"action":"sync","since":NaN}',
    "a float past a double": '{"action":"send","type":"x","data":1e999999}',
    "a negative float past a double": '{"action":"send","type":"x","data":[-1e309]}',
    "a 10,000-digit integer": '{"action":"send","type":"x","data":' + "7" * 10_000 + "}",
    "a 4,000-digit integer": '{"action":"send","type":"x","data":' + "7" * 4_000 + "}",
    "an integer past a double": '{"action":"send","type":"x","data":' + str(2 * 10**308) + "}",
    "a lone high surrogate": '{"action":"send","type":"x","data":"\\ud800"}',
    "a lone low surrogate": '{"action":"send","type":"x","data":["ok","\\udfff"]}',
    "a reversed pair": '{"action":"send","type":"x","data":"\\ude00\\ud83d"}',
    "a surrogate in a key": '{"action":"send","type":"x","data":{"\\ud800":1}}',
    "a surrogate in the id": '{"action":"send","type":"x","id":"\\udbff"}',
    "a surrogate in the type": '{"action":"send","type":"x\\ud800"}',
    "a raw lone surrogate": '{"action":"send","type":"x","data":"\ud800"}',
}


@pytest.mark.parametrize("variant", sorted(NOT_STRICT_JSON))
def test_frames_that_are_not_strict_json_are_bad_json_and_not_stored(
    classroom, redis_client, variant
):
    frame("S1", "student-1", NOT_STRICT_JSON[variant])
    (error,) = classroom.frames("S1")
    assert (error["event"], error["code"], error["id"]) == ("error", "bad_json", None)
    assert error["message"].startswith("the frame is not strict JSON")
    assert classroom.frames("S2") == [] and classroom.frames("T1") == []
    assert redis_client.get(room_keys(ROOM)[3]) is None


def test_utf8_bytes_of_a_surrogate_are_bad_json(classroom, redis_client):
    body = b'{"action":"send","type":"x","data":"\xed\xa0\x80"}'
    authorizer = context_for("S1", "student-1", "student")
    event = load_event("message", connectionId="S1", body=body, authorizer=authorizer)
    messages.handler(event, LambdaContext())
    assert [f["code"] for f in classroom.frames("S1")] == ["bad_json"]
    assert redis_client.get(room_keys(ROOM)[3]) is None


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ('"\\ud83d\\ude00 Gr\\u00fc\\u00dfe"', "\U0001f600 Grüße"),  # a surrogate pair
        ("1e308", 1e308),
        ("-" + "9" * 308, -int("9" * 308)),
        (str(2**60), 2**60),
        ("1e-999999", 0.0),  # underflows to zero, a finite number
    ],
)
def test_numbers_and_text_within_strict_json_are_stored(classroom, text, data):
    frame("S1", "student-1", '{"action":"send","type":"x","data":' + text + "}")
    assert [f["event"] for f in classroom.frames("S1")] == ["ack"]
    (message,) = classroom.frames("S2")
    assert message["data"] == data


def test_a_frame_at_the_nesting_limit_is_stored_and_reads_back(classroom):
    frame("S1", "student-1", '{"action":"send","type":"x","id":"deep","data":' + DEEPEST + "}")
    assert classroom.frames("S1") == [{"event": "ack", "id": "deep", "seq": floor() + 1}]
    frame("S2", "student-2", {"action": "sync"}, route="sync")
    (message,) = classroom.frames("S2")[-1]["messages"]
    assert json.dumps(message["data"], separators=(",", ":")) == DEEPEST


@pytest.mark.parametrize("depth", [NESTING_LIMIT + 1, 100, 500, 5_000, 60_000])
def test_frames_nested_past_the_limit_are_invalid(classroom, redis_client, depth):
    body = '{"action":"send","type":"x","id":"deep","data":' + nested(depth) + "}"
    assert len(body.encode()) <= 128 * 1024
    frame("S1", "student-1", body)
    (error,) = classroom.frames("S1")
    assert error["code"] == "invalid"
    assert f"at most {NESTING_LIMIT} levels" in error["message"]
    # The id is named when the frame could be read at all (past some depth it cannot).
    assert error["id"] == "deep" if depth <= 500 else error["id"] in ("deep", None)
    assert classroom.frames("S2") == []
    assert redis_client.get(room_keys(ROOM)[3]) is None


def test_a_deep_object_key_nesting_counts_too(classroom, redis_client):
    data = "1"
    for _ in range(NESTING_LIMIT):
        data = '{"k":' + data + "}"
    frame("S1", "student-1", '{"action":"send","type":"x","data":' + data + "}")
    assert [f["code"] for f in classroom.frames("S1")] == ["invalid"]


@pytest.mark.parametrize(
    "message_type", ["chat.message\n", "chat.message\r\n", "\nchat.message", "chat.message\x00"]
)
def test_a_type_with_a_newline_is_invalid(classroom, redis_client, message_type):
    frame("S1", "student-1", {"action": "send", "type": message_type, "id": "nl"})
    assert [(f["code"], f["id"]) for f in classroom.frames("S1")] == [("invalid", "nl")]
    assert redis_client.get(room_keys(ROOM)[3]) is None


def test_frame_over_128_kb_is_too_large(classroom, redis_client):
    body = json.dumps({"action": "send", "type": "whiteboard.text", "data": "x" * (128 * 1024)})
    frame("S1", "student-1", body)
    assert [f["code"] for f in classroom.frames("S1")] == ["too_large"]
    assert classroom.frames("S2") == []
    assert redis_client.get(room_keys(ROOM)[3]) is None


def test_frame_whose_message_would_not_fit_128_kb_is_too_large(classroom, redis_client):
    """A 128 KB frame fits the gateway, but its message frame (envelope added) would not."""
    head = '{"action":"send","type":"whiteboard.text","id":"big","data":"'
    body = head + "x" * (128 * 1024 - len(head) - 2) + '"}'
    assert len(body.encode()) == 128 * 1024
    frame("S1", "student-1", body)
    assert [(f["code"], f["id"]) for f in classroom.frames("S1")] == [("too_large", "big")]
    assert classroom.frames("S2") == []
    assert redis_client.get(room_keys(ROOM)[3]) is None


def test_largest_message_that_fits_is_delivered(classroom):
    data = "x" * (128 * 1024 - 600)
    frame("S1", "student-1", {"action": "send", "type": "whiteboard.text", "data": data})
    assert classroom.frames("S1") == [{"event": "ack", "id": None, "seq": floor() + 1}]
    (message,) = classroom.frames("S2")
    assert message["data"] == data
    assert len(json.dumps(message).encode()) <= 128 * 1024


def test_sync_returns_what_was_missed(classroom):
    for n in range(5):
        frame("S1", "student-1", {"action": "send", "type": "chat.message", "data": n})
    classroom.reset()
    base = floor()
    frame("S2", "student-2", {"action": "sync", "since": base + 3}, route="sync")
    (history,) = classroom.frames("S2")
    assert history["event"] == "history" and history["room"] == ROOM
    assert [m["seq"] - base for m in history["messages"]] == [4, 5]
    assert [m["data"] for m in history["messages"]] == [3, 4]
    assert history["latest"] == base + 5 and history["truncated"] is False
    frame("S2", "student-2", {"action": "sync"}, route="sync")
    assert [m["seq"] - base for m in classroom.frames("S2")[1]["messages"]] == [1, 2, 3, 4, 5]
    assert classroom.frames("S2")[1]["truncated"] is False


def test_sync_larger_than_one_frame_comes_in_several(classroom):
    data = "y" * 30_000
    for n in range(9):
        frame(
            "S1",
            "student-1",
            {"action": "send", "type": "whiteboard.text", "data": data, "id": str(n)},
        )
    classroom.reset()
    frame("S2", "student-2", {"action": "sync", "since": 0}, route="sync")
    parts = classroom.frames("S2")
    assert len(parts) >= 3
    base = floor()
    assert all(
        p["event"] == "history" and p["latest"] == base + 9 and not p["truncated"] for p in parts
    )
    assert [m["seq"] - base for p in parts for m in p["messages"]] == list(range(1, 10))
    with classroom.lock:
        assert all(len(body) <= 128 * 1024 for body in classroom.posts["S2"])


def test_sync_of_an_empty_room(classroom):
    """An empty room's count starts at its floor, so ``latest`` never goes back later."""
    frame("S1", "student-1", {"action": "sync", "since": 0, "id": "s"}, route="sync")
    assert classroom.frames("S1") == [
        {"event": "history", "room": ROOM, "messages": [], "latest": floor(), "truncated": False}
    ]


def test_sync_says_truncated_when_messages_fell_out_of_retention(monkeypatch, classroom):
    monkeypatch.setenv("LOG_MAX_MESSAGES", "3")
    runtime.reset()
    for n in range(6):
        frame("S1", "student-1", {"action": "send", "type": "chat.message", "data": n})
    classroom.reset()
    base = floor()
    frame("S2", "student-2", {"action": "sync", "since": base + 1}, route="sync")
    (history,) = classroom.frames("S2")
    assert [m["seq"] - base for m in history["messages"]] == [4, 5, 6]
    assert history["truncated"] is True
    frame("S2", "student-2", {"action": "sync", "since": 0}, route="sync")
    assert classroom.frames("S2")[1]["truncated"] is True
    frame("S2", "student-2", {"action": "sync", "since": base + 3}, route="sync")
    assert classroom.frames("S2")[2]["truncated"] is False


def test_log_expires_after_the_retention(monkeypatch, classroom, redis_client):
    monkeypatch.setenv("LOG_RETENTION_SECONDS", "600")
    runtime.reset()
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    assert 590 <= redis_client.ttl(room_keys(ROOM)[2]) <= 600


def test_who_lists_visible_members(classroom):
    join("X1", "staff@example.com", "support")
    frame("S1", "student-1", {"action": "who"}, route="who")
    (presence,) = classroom.frames("S1")
    assert presence["event"] == "presence" and presence["room"] == ROOM
    members = presence["members"]
    assert sorted((m["userId"], m["role"]) for m in members) == [
        ("student-1", "student"),
        ("student-2", "student"),
        ("teacher-1", "teacher"),
    ]
    assert all(m["connectedAt"] == 1795072718000 for m in members)
    assert set(members[0]) == {"userId", "role", "connectedAt"}


def test_ping_answers_pong_and_refreshes_the_registration(monkeypatch, classroom, redis_client):
    before = redis_client.zscore(room_keys(ROOM)[0], "S1")
    frame("S1", "student-1", {"action": "ping"}, route="ping")
    (pong,) = classroom.frames("S1")
    assert pong["event"] == "pong" and isinstance(pong["ts"], int)
    assert redis_client.zscore(room_keys(ROOM)[0], "S1") >= before


def test_disconnect_tells_leave_and_is_idempotent(classroom, redis_client):
    assert leave("S2", "student-2") == {"statusCode": 200}
    assert classroom.frames("T1") == [
        {"event": "leave", "room": ROOM, "userId": "student-2", "role": "student"}
    ]
    assert leave("S2", "student-2") == {"statusCode": 200}
    assert len(classroom.frames("T1")) == 1
    assert redis_client.hget(room_keys(ROOM)[1], "S2") is None
    assert not redis_client.exists("conn:{S2}")


def test_support_is_hidden_and_its_injections_are_marked_and_audited(classroom, redis_client):
    join("X1", "staff@example.com", "support")
    assert classroom.frames("T1") == []
    frame(
        "X1",
        "staff@example.com",
        {"action": "send", "type": "chat.message", "data": "hi"},
        role="support",
    )
    (message,) = classroom.frames("S1")
    assert message["from"] == {"userId": "staff@example.com", "role": "support"}
    (entry,) = redis_client.xrange("audit:support")[-1:]
    assert entry[1]["staff"] == "staff@example.com"
    assert entry[1]["seq"] == str(floor() + 1)
    leave("X1", "staff@example.com", "support")
    assert [f["event"] for f in classroom.frames("T1")] == ["message"]


def test_support_receives_the_room_messages(classroom):
    join("X1", "staff@example.com", "support")
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    assert [f["event"] for f in classroom.frames("X1")] == ["message"]


def test_a_member_still_joining_is_not_pruned_by_a_410(classroom, redis_client):
    """API Gateway answers 410 for a connection whose handshake has not completed."""
    event = load_event(
        "connect", connectionId="NEW", authorizer=context_for("NEW", "late", "student")
    )
    event["requestContext"]["connectedAt"] = int(time.time() * 1000)
    connect.handler(event, LambdaContext())
    classroom.gone.add("NEW")
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    assert "NEW" in redis_client.zrange(room_keys(ROOM)[0], 0, -1)


def test_gone_connection_is_pruned_not_the_sender_and_the_room_is_told(classroom, redis_client):
    classroom.gone.add("S2")
    frame("S1", "student-1", {"action": "send", "type": "chat.message", "id": "m"})
    members = redis_client.zrange(room_keys(ROOM)[0], 0, -1)
    assert sorted(members) == ["S1", "T1"]
    assert not redis_client.exists("conn:{S2}")
    leave = {"event": "leave", "room": ROOM, "userId": "student-2", "role": "student"}
    base = floor()
    assert classroom.frames("S1") == [{"event": "ack", "id": "m", "seq": base + 1}, leave]
    assert [f.get("seq", f["event"]) for f in classroom.frames("T1")] == [base + 1, "leave"]
    assert classroom.frames("T1")[1] == leave
    frame("S1", "student-1", {"action": "send", "type": "chat.message", "id": "n"})
    seen = [f.get("seq", f["event"]) for f in classroom.frames("T1")]
    assert seen == [base + 1, "leave", base + 2]


def test_a_pruned_support_member_stays_hidden(classroom):
    join("X1", "staff@example.com", "support")
    classroom.gone.add("X1")
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    assert [f["event"] for f in classroom.frames("T1")] == ["message"]


def test_throttled_posts_are_retried(classroom):
    classroom.throttle["T1"] = 2
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    assert [f["seq"] for f in classroom.frames("T1")] == [floor() + 1]


def test_a_failing_member_does_not_stop_the_fan_out(classroom, redis_client):
    classroom.fail.add("T1")
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    assert [f["seq"] for f in classroom.frames("S2")] == [floor() + 1]
    assert "T1" in redis_client.zrange(room_keys(ROOM)[0], 0, -1)


def test_registrations_expire_without_refresh(monkeypatch, backend_env, management, redis_client):
    monkeypatch.setenv("CONNECTION_TTL_SECONDS", "1")
    runtime.reset()
    join("S1", "student-1")
    redis_client.zadd(room_keys(ROOM)[0], {"S1": 1})  # as if its two hours had passed
    join("S2", "student-2")
    frame("S2", "student-2", {"action": "who"}, route="who")
    assert [m["userId"] for m in management.frames("S2")[-1]["members"]] == ["student-2"]
    assert redis_client.hget(room_keys(ROOM)[1], "S1") is None


def test_connection_record_has_the_connection_ttl(monkeypatch, backend_env, redis_client):
    monkeypatch.setenv("CONNECTION_TTL_SECONDS", "5")
    runtime.reset()
    join("S1", "student-1")
    assert 0 < redis_client.ttl("conn:{S1}") <= 5


def test_rate_limit_answers_rate_limited_and_stores_nothing(monkeypatch, classroom, redis_client):
    monkeypatch.setenv("RATE_LIMIT_PER_SECOND", "3")
    runtime.reset()
    codes = []
    for n in range(6):
        frame("S1", "student-1", {"action": "send", "type": "chat.message", "id": str(n)})
    codes = [f.get("code") for f in classroom.frames("S1")]
    assert "rate_limited" in codes
    stored = int(redis_client.get(room_keys(ROOM)[3])) - floor()
    assert stored == codes.count(None) and stored <= 4
    assert len(classroom.frames("T1")) == stored


def test_redis_down_answers_unavailable(monkeypatch, classroom):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    runtime.reset()
    frame("S1", "student-1", {"action": "send", "type": "chat.message", "id": "m"})
    assert [(f["code"], f["id"]) for f in classroom.frames("S1")] == [("unavailable", "m")]


def test_unexpected_redis_error_answers_internal(classroom, redis_client):
    redis_client.set(room_keys(ROOM)[3], "not a number")
    frame("S1", "student-1", {"action": "send", "type": "chat.message", "id": "m"})
    assert [(f["code"], f["id"]) for f in classroom.frames("S1")] == [("internal", "m")]
    assert classroom.frames("S2") == []


def test_concurrent_senders_get_contiguous_seqs(backend_env, management, redis_client):
    senders = [f"C{n}" for n in range(8)]
    for connection_id in senders:
        join(connection_id, f"user-{connection_id}")
    management.reset()

    def burst(connection_id: str) -> None:
        for n in range(25):
            frame(
                connection_id,
                f"user-{connection_id}",
                {"action": "send", "type": "cursor.move", "id": f"{connection_id}-{n}"},
            )

    threads = [threading.Thread(target=burst, args=(c,)) for c in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    base = floor()
    seqs = sorted(f["seq"] for c in senders for f in management.frames(c) if f["event"] == "ack")
    assert seqs == list(range(base + 1, base + 201))
    stored = redis_client.zrange(room_keys(ROOM)[2], 0, -1, withscores=True)
    assert [int(score) for _, score in stored] == list(range(base + 1, base + 201))
    for connection_id in senders:
        received = [f["seq"] for f in management.frames(connection_id) if f["event"] == "message"]
        assert len(received) == 200 - 25


def _client_commands(client, action) -> list[str]:
    """The commands clients sent while ``action`` ran, from the real server's MONITOR.

    Commands a Lua script runs inside Redis are reported with the client type ``lua``; they are
    not round trips, so they are left out.
    """
    seen: list[str] = []
    with client.monitor() as monitor:
        listener = threading.Thread(target=lambda: _listen(monitor, seen))
        listener.start()
        client.echo("monitor-started")
        action()
        client.echo("monitor-done")
        listener.join(timeout=10)
    return [c for c in seen if not c.startswith("ECHO")]


def _listen(monitor, seen: list[str]) -> None:
    started = False
    for entry in monitor.listen():
        command = entry["command"]
        if "monitor-started" in command:
            started = True
        elif "monitor-done" in command:
            return
        elif started and entry.get("client_type") != "lua":
            seen.append(command.split(" ", 1)[0].upper())


@pytest.mark.parametrize("size", [3, 60])
def test_send_costs_one_redis_round_trip_whatever_the_room_size(
    backend_env, management, redis_client, size
):
    for n in range(size):
        join(f"M{n}", f"user-{n}")
    frame("M0", "user-0", {"action": "send", "type": "chat.message"})  # loads the script
    management.reset()
    commands = _client_commands(
        redis_client, lambda: frame("M0", "user-0", {"action": "send", "type": "chat.message"})
    )
    assert commands == ["EVALSHA"]
    assert [f["seq"] for f in management.frames("M1")] == [floor() + 2]
    assert [f["seq"] for f in management.frames(f"M{size - 1}")] == [floor() + 2]
