"""The admin Lambda: what the console asks of a deployment, on a real Redis."""

from __future__ import annotations

import json

import pytest

from backend import tokens
from backend.handlers import admin
from backend.registry import room_keys
from tests.backend.conftest import SECRET, LambdaContext
from tests.backend.test_handlers import floor, frame, join, leave

STAFF = "arn:aws:iam::123456789012:user/ana"


def ask(**request) -> dict:
    return admin.handler(request, LambdaContext(function_name="classroom-admin"))


def audited(action: str) -> list[dict]:
    return [e for e in ask(op="audit")["entries"] if e.get("action") == action]


@pytest.fixture
def school(backend_env, management):
    join("T1", "teacher-1", "teacher", room="physics-101")
    join("S1", "student-1", room="physics-101")
    join("X1", "staff@example.com", "support", room="physics-101")
    for n in range(3):
        join(f"C{n}", f"chem-{n}", room="chemistry-2")
    management.reset()
    return management


def test_rooms_pages_through_the_index_with_a_cursor(backend_env, management):
    for n in range(30):
        join(f"R{n}", f"user-{n}", room=f"room-{n:02d}")
    seen, cursor, pages = [], None, 0
    while True:
        answer = ask(op="rooms", limit=7, **({"cursor": cursor} if cursor else {}))
        assert answer["ok"] is True
        seen += [r["room"] for r in answer["rooms"]]
        pages += 1
        cursor = answer["cursor"]
        if cursor is None:
            break
    assert sorted(set(seen)) == [f"room-{n:02d}" for n in range(30)]
    assert pages >= 1


def test_rooms_reports_members_activity_and_seq(school):
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    answer = ask(op="rooms")
    rooms = {r["room"]: r for r in answer["rooms"]}
    assert rooms["physics-101"]["members"] == 2
    assert rooms["physics-101"]["hidden"] == 1
    assert rooms["physics-101"]["latestSeq"] == floor("physics-101") + 1
    assert rooms["physics-101"]["lastActivity"] > 0
    assert rooms["chemistry-2"]["members"] == 3


def test_rooms_describe_each_classroom_and_the_environment(school, redis_client):
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    frame("S1", "student-1", {"action": "send", "type": "chat.message"})
    answer = ask(op="rooms")
    assert answer["classrooms"] == 2 and answer["connections"] == 6
    physics = {r["room"]: r for r in answer["rooms"]}["physics-101"]
    assert (physics["teachers"], physics["students"], physics["hidden"]) == (1, 1, 1)
    assert physics["messagesLastMinute"] == 2
    joined = [m["connectedAt"] for m in ask(op="members", room="physics-101")["members"]]
    assert physics["connectedSince"] == min(joined)
    chemistry = {r["room"]: r for r in answer["rooms"]}["chemistry-2"]
    assert (chemistry["students"], chemistry["messagesLastMinute"]) == (3, 0)


def test_rooms_drop_a_classroom_whose_members_all_expired(school, redis_client):
    for connection_id in ("C0", "C1", "C2"):
        redis_client.zadd(room_keys("chemistry-2")[0], {connection_id: 1})
    answer = ask(op="rooms")
    assert [r["room"] for r in answer["rooms"]] == ["physics-101"]
    assert answer["classrooms"] == 1
    assert redis_client.zscore("rooms", "chemistry-2") is None


def test_connections_count_leaves(school):
    leave("C0", "chem-0", room="chemistry-2")
    assert ask(op="rooms")["connections"] == 5


def test_members_have_their_details(school):
    answer = ask(op="members", room="physics-101")
    by_id = {m["connectionId"]: m for m in answer["members"]}
    assert set(by_id) == {"T1", "S1", "X1"}
    assert by_id["X1"]["hidden"] is True and by_id["X1"]["role"] == "support"
    assert by_id["S1"]["sourceIp"] == "203.0.113.7"
    assert by_id["S1"]["userAgent"] == "Mozilla/5.0 (Whiteboard)"
    # Every frame refreshes a registration, so its last-seen time moves with the member's.
    before = by_id["S1"]["lastSeen"]
    assert before >= by_id["S1"]["connectedAt"] - 1000
    frame("S1", "student-1", {"action": "ping"})
    after = {m["connectionId"]: m for m in ask(op="members", room="physics-101")["members"]}
    assert after["S1"]["lastSeen"] >= before and after["T1"]["lastSeen"] == by_id["T1"]["lastSeen"]


def test_history_since_a_seq(school):
    for n in range(4):
        frame("S1", "student-1", {"action": "send", "type": "chat.message", "data": n})
    base = floor("physics-101")
    answer = ask(op="history", room="physics-101", since=base + 2)
    assert [m["seq"] - base for m in answer["messages"]] == [3, 4]
    assert answer["latest"] == base + 4 and answer["truncated"] is False


def test_kick_closes_the_connection_and_tells_the_room(school):
    answer = ask(op="kick", connectionId="S1", staff=STAFF)
    assert answer == {"ok": True, "connectionId": "S1", "kicked": True}
    (entry,) = audited("disconnect")
    assert (entry["staff"], entry["room"], entry["connectionId"]) == (STAFF, "physics-101", "S1")
    assert (entry["userId"], entry["outcome"]) == ("student-1", "disconnected")
    assert school.deleted == ["S1"]
    assert [f["event"] for f in school.frames("T1")] == ["leave"]
    assert {m["connectionId"] for m in ask(op="members", room="physics-101")["members"]} == {
        "T1",
        "X1",
    }


def test_kick_of_an_unknown_connection(school):
    school.gone.add("nobody")
    assert ask(op="kick", connectionId="nobody", staff=STAFF)["kicked"] is False
    assert audited("disconnect")[0]["outcome"] == "already gone"


def test_close_room_closes_everyone(school):
    answer = ask(op="close_room", room="chemistry-2", staff=STAFF)
    assert answer["closed"] == 3
    (entry,) = audited("close_room")
    assert (entry["staff"], entry["room"]) == (STAFF, "chemistry-2")
    assert entry["outcome"] == "3 connections closed"
    assert sorted(school.deleted) == ["C0", "C1", "C2"]
    assert ask(op="members", room="chemistry-2")["members"] == []
    assert "chemistry-2" not in {r["room"] for r in ask(op="rooms")["rooms"]}


def test_support_token_is_short_lived_and_verifies(school):
    answer = ask(op="support_token", staff="ada@example.com", room="physics-101", ttl=300)
    identity = tokens.verify(answer["token"], "physics-101", SECRET)
    assert identity.role == "support" and identity.user_id == "ada@example.com"
    with pytest.raises(tokens.TokenRejected):
        tokens.verify(answer["token"], "chemistry-2", SECRET)
    star = ask(op="support_token", staff="ada@example.com")
    assert tokens.verify(star["token"], "chemistry-2", SECRET).role == "support"


def test_stats(school):
    assert ask(op="stats") == {"ok": True, "rooms": 2, "connections": 6, "members": 5, "support": 1}


def test_audit_lists_support_injections(school):
    frame("X1", "staff@example.com", {"action": "send", "type": "chat.message"}, role="support")
    (entry,) = ask(op="audit")["entries"]
    assert entry["staff"] == "staff@example.com" and entry["room"] == "physics-101"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({}, "unknown_op"),
        ({"op": "explode"}, "unknown_op"),
        ({"op": "members"}, "invalid"),
        ({"op": "members", "room": "bad room"}, "invalid"),
        ({"op": "history", "room": "r", "since": -1}, "invalid"),
        ({"op": "rooms", "limit": 0}, "invalid"),
        ({"op": "rooms", "cursor": "abc"}, "invalid"),
        ({"op": "kick"}, "invalid"),
        ({"op": "kick", "connectionId": "S1"}, "invalid"),
        ({"op": "close_room", "room": "physics-101"}, "invalid"),
        ({"op": "check_connections", "room": "physics-101", "prune": True}, "invalid"),
        ({"op": "kick", "connectionId": "S1", "staff": "x" * 257}, "invalid"),
        ({"op": "support_token"}, "invalid"),
        ({"op": "support_token", "staff": "a", "ttl": 86400}, "invalid"),
        ({"op": "members", "room": "r1\n"}, "invalid"),
        ({"op": "history", "room": "physics-101\n"}, "invalid"),
        ({"op": "support_token", "staff": "a", "room": "r1\n"}, "invalid"),
        ({"op": "support_token", "staff": "s" * 257}, "invalid"),
        ({"op": "support_token", "staff": "eve\ud800"}, "invalid"),
    ],
)
def test_bad_requests_get_a_clear_error(backend_env, request_, code):
    answer = admin.handler(request_, LambdaContext())
    assert answer["ok"] is False
    assert answer["error"] == code
    assert answer["message"]


def test_a_request_that_is_not_an_object(backend_env):
    assert admin.handler(["rooms"], LambdaContext())["error"] == "invalid"


def test_redis_down_is_unavailable(monkeypatch, backend_env):
    from backend import runtime

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    runtime.reset()
    answer = ask(op="stats")
    assert answer["ok"] is False and answer["error"] == "unavailable"


def user_rooms(user_id: str) -> dict[str, list[str]]:
    answer = ask(op="user_rooms", userId=user_id)
    assert answer["ok"] is True and answer["userId"] == user_id
    return {r["room"]: r["connections"] for r in answer["rooms"]}


def test_user_rooms_lists_each_classroom_with_the_users_connections(school):
    join("T2", "teacher-1", "teacher", room="chemistry-2")
    join("T3", "teacher-1", "teacher", room="chemistry-2")
    assert user_rooms("teacher-1") == {"physics-101": ["T1"], "chemistry-2": ["T2", "T3"]}
    assert user_rooms("staff@example.com") == {"physics-101": ["X1"]}
    assert user_rooms("nobody") == {}


def test_user_rooms_forgets_a_disconnect_and_a_prune(school, redis_client):
    join("S2", "student-1", room="physics-101")
    leave("S1", "student-1", room="physics-101")
    assert user_rooms("student-1") == {"physics-101": ["S2"]}
    school.gone.add("S2")
    frame("T1", "teacher-1", {"action": "send", "type": "chat.message"}, role="teacher")
    assert "S2" not in {m["connectionId"] for m in ask(op="members", room="physics-101")["members"]}
    assert redis_client.zcard("user:{student-1}:rooms") == 0  # pruned, not healed on read


def test_user_rooms_drops_an_entry_whose_registration_is_gone(school, redis_client):
    members, info = room_keys("physics-101")[:2]
    redis_client.zrem(members, "S1")  # a lost write: the registration without its user entry
    redis_client.hdel(info, "S1")
    assert redis_client.zcard("user:{student-1}:rooms") == 1
    assert user_rooms("student-1") == {}
    assert redis_client.zcard("user:{student-1}:rooms") == 0


def test_user_rooms_heals_with_the_registration(school, redis_client):
    members, info = room_keys("physics-101")[:2]
    redis_client.zrem(members, "S1")  # a failover lost the registration and the user's index
    redis_client.hdel(info, "S1")
    redis_client.delete("user:{student-1}:rooms")
    frame("S1", "student-1", {"action": "ping"}, route="ping")
    assert user_rooms("student-1") == {"physics-101": ["S1"]}


@pytest.mark.parametrize("user_id", [None, "", 7, "u" * 257])
def test_user_rooms_needs_a_user(backend_env, user_id):
    answer = ask(op="user_rooms", userId=user_id)
    assert answer["ok"] is False and answer["error"] == "invalid"


def test_check_connections_finds_ghosts_and_leaves_them_unless_asked(school):
    school.gone.update({"S1", "X1"})
    answer = ask(op="check_connections", room="physics-101")
    assert answer["ok"] is True
    assert {g["connectionId"]: g["role"] for g in answer["ghosts"]} == {
        "S1": "student",
        "X1": "support",
    }
    ghost = next(g for g in answer["ghosts"] if g["connectionId"] == "S1")
    assert ghost["userId"] == "student-1" and ghost["connectedAt"] > 0
    assert (answer["members"], answer["checked"], answer["truncated"]) == (3, 3, False)
    assert answer["failures"] == [] and "pruned" not in answer
    assert len(ask(op="members", room="physics-101")["members"]) == 3
    assert school.frames("T1") == []


def test_check_connections_prunes_exactly_the_ghosts_and_tells_the_room(school, redis_client):
    school.gone.update({"S1", "X1"})
    answer = ask(op="check_connections", room="physics-101", prune=True, staff=STAFF)
    assert sorted(answer["pruned"]) == ["S1", "X1"]
    assert [m["connectionId"] for m in ask(op="members", room="physics-101")["members"]] == ["T1"]
    # The student left without its $disconnect, so the room hears it; support stays hidden.
    leave_ = {"event": "leave", "room": "physics-101", "userId": "student-1", "role": "student"}
    assert school.frames("T1") == [leave_]
    assert not redis_client.exists("conn:{S1}")
    assert user_rooms("student-1") == {}
    assert ask(op="check_connections", room="physics-101")["ghosts"] == []
    (entry,) = audited("prune")
    assert entry["staff"] == STAFF and sorted(json.loads(entry["connectionIds"])) == ["S1", "X1"]


def test_check_connections_reports_other_failures_per_connection(school):
    school.fail.add("T1")
    school.gone.add("S1")
    answer = ask(op="check_connections", room="physics-101", prune=True, staff=STAFF)
    assert [f["connectionId"] for f in answer["failures"]] == ["T1"]
    assert answer["failures"][0]["error"]
    assert answer["pruned"] == ["S1"]
    assert {m["connectionId"] for m in ask(op="members", room="physics-101")["members"]} == {
        "T1",
        "X1",
    }


def test_check_connections_is_capped(school, monkeypatch):
    from backend import admin as operations

    monkeypatch.setattr(operations, "MAX_CHECKED", 2)
    answer = ask(op="check_connections", room="physics-101")
    assert (answer["members"], answer["checked"], answer["limit"]) == (3, 2, 2)
    assert answer["truncated"] is True


@pytest.mark.parametrize("request_", [{}, {"room": "bad room"}, {"room": "r", "prune": "yes"}])
def test_check_connections_needs_a_room(backend_env, request_):
    answer = ask(op="check_connections", **request_)
    assert answer["ok"] is False and answer["error"] == "invalid"


def test_members_carry_the_display_name_of_their_token(backend_env, management):
    from backend.handlers import connect
    from tests.backend.conftest import load_event
    from tests.backend.test_handlers import context_for

    authorizer = context_for("T9", "teacher-9", "teacher", "art-1") | {"name": "Ms Lee"}
    connect.handler(
        load_event("connect", connectionId="T9", authorizer=authorizer), LambdaContext()
    )
    join("S9", "student-9", room="art-1")
    names = {m["userId"]: m["name"] for m in ask(op="members", room="art-1")["members"]}
    assert names == {"teacher-9": "Ms Lee", "student-9": ""}


def test_a_member_record_from_a_later_version_still_reads(backend_env, redis_client):
    join("S8", "student-8", room="music-1")
    info = room_keys("music-1")[1]
    record = json.loads(redis_client.hget(info, "S8")) | {"pronouns": "she/her"}
    redis_client.hset(info, "S8", json.dumps(record))
    (member,) = ask(op="members", room="music-1")["members"]
    assert member["userId"] == "student-8" and "pronouns" not in member
