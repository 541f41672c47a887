"""End-to-end classrooms on the sandbox: real WebSocket clients, real handlers, real Redis."""

from __future__ import annotations

import getpass
import json

import pytest
import redis
import websocket

from backend.registry import Member, Registry
from desktop.sandbox.console_endpoints import operator
from tests.sandbox.conftest import admin, mint
from tests.waiting import eventually

CLASS_SIZE = 30


def test_a_class_of_thirty_hears_every_message_with_contiguous_seqs(classroom, room):
    teacher = classroom("teacher-1", "teacher")
    members = [teacher]
    for number in range(CLASS_SIZE):
        student = classroom(f"student-{number}")
        for earlier in members:
            join = earlier.receive_event("join")
            assert (join["userId"], join["role"], join["room"]) == (student.sub, "student", room)
        members.append(student)

    for index, member in enumerate(members):
        member.send(
            {"action": "send", "type": "chat.message", "data": {"n": index}, "id": f"m{index}"}
        )

    acked: dict[str, int] = {}
    for member in members:
        received: dict[str, int] = {}
        for _ in range(len(members)):  # one ack and a message from every other member
            frame = member.receive()
            if frame["event"] == "ack":
                acked[frame["id"]] = frame["seq"]
            else:
                assert frame["event"] == "message", frame
                assert frame["room"] == room
                received[frame["id"]] = frame["seq"]
                sender = members[frame["data"]["n"]]
                assert frame["from"] == {"userId": sender.sub, "role": sender.role}
        others = {f"m{i}" for i, m in enumerate(members) if m is not member}
        assert set(received) == others
        assert all(acked.get(mid, seq) == seq for mid, seq in received.items())
    first = min(acked.values())
    assert sorted(acked.values()) == list(range(first, first + len(members)))


def test_a_student_who_reconnects_syncs_what_it_missed(classroom, sandbox, room):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    first = teacher.request(
        {"action": "send", "type": "whiteboard.stroke", "data": [1], "id": "a"}, "ack"
    )
    assert student.receive_event("message")["seq"] == first["seq"]
    last_seen = first["seq"]

    student.close()
    assert teacher.receive_event("leave")["userId"] == "student-1"
    missed = []
    for n in range(3):
        ack = teacher.request(
            {"action": "send", "type": "whiteboard.stroke", "data": [n], "id": f"b{n}"}, "ack"
        )
        missed.append(ack["seq"])

    back = classroom("student-1")
    assert teacher.receive_event("join")["userId"] == "student-1"
    history = back.request({"action": "sync", "since": last_seen}, "history")
    assert [m["seq"] for m in history["messages"]] == missed
    assert [m["data"] for m in history["messages"]] == [[0], [1], [2]]
    assert history["latest"] == missed[-1]
    assert history["truncated"] is False


def test_presence_and_join_leave_events(classroom, room):
    teacher = classroom("teacher-1", "teacher")
    alice = classroom("alice")
    assert teacher.receive_event("join") == {
        "event": "join",
        "room": room,
        "userId": "alice",
        "role": "student",
    }
    bob = classroom("bob")
    assert teacher.receive_event("join")["userId"] == "bob"
    assert alice.receive_event("join")["userId"] == "bob"

    presence = bob.request({"action": "who"}, "presence")
    assert presence["room"] == room
    assert [(m["userId"], m["role"]) for m in presence["members"]] == [
        ("teacher-1", "teacher"),
        ("alice", "student"),
        ("bob", "student"),
    ]
    assert all(isinstance(m["connectedAt"], int) for m in presence["members"])

    alice.close()
    for member in (teacher, bob):
        assert member.receive_event("leave") == {
            "event": "leave",
            "room": room,
            "userId": "alice",
            "role": "student",
        }
    presence = teacher.request({"action": "who"}, "presence")
    assert [m["userId"] for m in presence["members"]] == ["teacher-1", "bob"]
    assert teacher.request({"action": "ping"}, "pong")["ts"] > 0


def test_a_dropped_socket_without_a_close_frame_leaves_the_room(classroom):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")

    student.ws.sock.close()  # the TCP connection goes; no close frame is sent

    assert teacher.receive_event("leave")["userId"] == "student-1"
    presence = teacher.request({"action": "who"}, "presence")
    assert [m["userId"] for m in presence["members"]] == ["teacher-1"]


def pruned_count(sandbox) -> float:
    """Stale registrations the handlers pruned, as ``/_metrics`` counts them."""
    for series in sandbox.metrics.snapshot()["metrics"]:
        if series["name"] == "StaleConnectionsPruned":
            return sum(point["sum"] for point in series["points"])
    return 0.0


def test_a_registration_without_disconnect_is_pruned_by_its_410(
    classroom, sandbox, room, redis_server
):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    try:
        registry = Registry(client)
        ghost = "R2hvc3RHaG9zdDE="  # a connection whose $disconnect never ran
        registry.join(room, Member(ghost, "ghost", "student", connectedAt=1))
        presence = teacher.request({"action": "who"}, "presence")
        assert "ghost" in [m["userId"] for m in presence["members"]]

        ack = teacher.request(
            {"action": "send", "type": "chat.message", "data": "hi", "id": "x"}, "ack"
        )
        assert student.receive_event("message")["seq"] == ack["seq"]
        eventually(
            lambda: pruned_count(sandbox) >= 1,
            message="the fan-out did not prune the stale registration",
        )
        # It left without a $disconnect, so the room hears it from the pruning instead.
        for member in (teacher, student):
            assert member.receive_event("leave")["userId"] == "ghost"

        assert ghost not in [m.connectionId for m in registry.members(room)]
        assert registry.room_of(ghost) is None
        presence = teacher.request({"action": "who"}, "presence")
        assert [m["userId"] for m in presence["members"]] == ["teacher-1", "student-1"]
        again = student.request({"action": "send", "type": "chat.message", "id": "y"}, "ack")
        assert again["seq"] == ack["seq"] + 1
        assert teacher.receive_event("message")["id"] == "y"
    finally:
        client.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('"send"', "bad_json"),
        (json.dumps({"action": "dance", "id": "f1"}), "unknown_action"),
        (json.dumps({"type": "chat.message", "id": "f2"}), "unknown_action"),
        (json.dumps({"action": "send", "id": "f3"}), "invalid"),
        (json.dumps({"action": "send", "type": "Chat Message", "id": "f4"}), "invalid"),
        (json.dumps({"action": "send", "type": "chat.message", "id": 7}), "invalid"),
        (json.dumps({"action": "sync", "since": "yesterday", "id": "f5"}), "invalid"),
        (json.dumps({"action": "sync", "since": -1, "id": "f6"}), "invalid"),
        (
            json.dumps({"action": "send", "type": "chat.message", "room": "elsewhere", "id": "f7"}),
            "forbidden",
        ),
        ('{"action":"send","type":"x","data":[NaN,Infinity],"id":"f8"}', "bad_json"),
        ('{"action":"send","type":"x","data":1e999999,"id":"f9"}', "bad_json"),
        ('{"action":"send","type":"x","data":"\\ud800","id":"f10"}', "bad_json"),
        ('{"action":"send","type":"x","data":' + "9" * 10_000 + "}", "bad_json"),
        ('{"action":"send","type":"x","id":"f11","data":' + "[" * 500 + "]" * 500 + "}", "invalid"),
        (json.dumps({"action": "send", "type": "chat.message\n", "id": "f12"}), "invalid"),
    ],
)
def test_every_bad_frame_earns_its_error_and_nothing_is_delivered_or_stored(classroom, frame, code):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    before = student.request({"action": "sync"}, "history")["latest"]

    student.send_raw(frame)
    error = student.receive_event("error")
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    # bad_json names no id: the frame could not be read (or not trusted) to find one.
    sent = json.loads(frame) if code != "bad_json" else {}
    expected_id = (
        sent.get("id") if isinstance(sent, dict) and isinstance(sent.get("id"), str) else None
    )
    assert error["id"] == expected_id

    # The next good message is the next seq, and the only thing the teacher hears.
    ack = student.request({"action": "send", "type": "chat.message", "id": "good"}, "ack")
    assert ack["seq"] == before + 1
    assert teacher.receive_event("message")["id"] == "good"


def test_the_deepest_message_allowed_reads_back_through_sync_and_the_console(
    classroom, sandbox, room
):
    """32 levels, the frame included (PROTOCOL.md): stored, delivered, and read by every reader."""
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    data = "[" * 31 + '"\U0001f600"' + "]" * 31
    text = '{"action":"send","type":"whiteboard.stroke","id":"deep","data":' + data + "}"
    student.send_raw(text)
    assert student.receive_event("ack")["id"] == "deep"
    heard = teacher.receive_event("message")
    assert json.dumps(heard["data"], separators=(",", ":"), ensure_ascii=False) == data
    history = teacher.request({"action": "sync"}, "history")
    assert history["messages"] == [heard]
    for request in (
        {"op": "history", "room": room},
        {"op": "rooms", "limit": 500},
        {"op": "members", "room": room},
        {"op": "stats"},
        {"op": "audit"},
    ):
        status, answer = admin(sandbox, request)
        assert status == 200 and answer["ok"], (request, answer)
    assert admin(sandbox, {"op": "history", "room": room})[1]["messages"] == [heard]
    # One level deeper is refused, and nothing more is stored.
    student.send_raw(text.replace(data, "[" + data + "]"))
    assert student.receive_event("error")["code"] == "invalid"
    assert teacher.request({"action": "sync", "since": heard["seq"]}, "history")["messages"] == []


def test_a_sender_over_its_rate_is_refused_and_nothing_extra_is_stored(classroom):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    burst = 150
    for n in range(burst):
        student.send({"action": "send", "type": "cursor.move", "data": n, "id": f"c{n}"})
    answers = [student.receive() for _ in range(burst)]
    acks = [a for a in answers if a["event"] == "ack"]
    refused = [a for a in answers if a["event"] == "error"]
    assert refused and all(a["code"] == "rate_limited" for a in refused)
    assert len(acks) + len(refused) == burst
    first = min(a["seq"] for a in acks)
    assert sorted(a["seq"] for a in acks) == list(range(first, first + len(acks)))
    heard = {teacher.receive_event("message")["id"] for _ in acks}
    assert heard == {a["id"] for a in acks}
    history = teacher.request({"action": "sync"}, "history")
    assert history["latest"] == first + len(acks) - 1


def test_frames_up_to_128_kb_pass_and_a_bigger_one_closes_with_1009(classroom):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    frame = {"action": "ping", "id": "big", "padding": ""}
    frame["padding"] = "x" * (128 * 1024 - len(json.dumps(frame)))
    exactly = json.dumps(frame)
    assert len(exactly.encode()) == 128 * 1024
    assert student.request(json.loads(exactly), "pong")

    student.send_raw(exactly + " ")
    assert student.wait_closed() == (1009, "")
    assert teacher.receive_event("leave")["userId"] == "student-1"


def test_a_send_too_big_for_its_envelope_is_refused_as_too_large(classroom):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    frame = {"action": "send", "type": "whiteboard.image", "id": "big", "data": ""}
    frame["data"] = "x" * (128 * 1024 - 64 - len(json.dumps(frame)))
    student.send(frame)
    error = student.receive_event("error")
    assert (error["code"], error["id"]) == ("too_large", "big")
    # Nothing was stored: the room is empty, the next message takes the next seq, and it is
    # the first thing the teacher hears.
    empty = student.request({"action": "sync"}, "history")
    ack = student.request({"action": "send", "type": "chat.message", "id": "ok"}, "ack")
    assert empty["messages"] == [] and ack["seq"] == empty["latest"] + 1
    assert teacher.receive_event("message")["id"] == "ok"


def test_sync_answers_when_the_history_is_bigger_than_one_frame(classroom):
    senders = [classroom(f"teacher-{n}", "teacher") for n in range(3)]
    for n, sender in enumerate(senders):
        for _ in senders[n + 1 :]:
            sender.receive_event("join")
    stroke = "x" * 1200  # 120 messages of 1.2 KB: about 150 KB retained
    for k in range(40):
        for n, sender in enumerate(senders):
            sender.send(
                {"action": "send", "type": "whiteboard.stroke", "data": stroke, "id": f"{n}-{k}"}
            )
    for sender in senders:  # its 40 acks and the others' 80 messages
        frames = [sender.receive() for _ in range(120)]
        assert sum(f["event"] == "ack" for f in frames) == 40
    late = classroom("student-1")
    first = late.request({"action": "sync", "since": 0}, "history")
    parts = [first]
    while sum(len(p["messages"]) for p in parts) < 120:
        parts.append(late.receive_event("history"))
    assert len(parts) >= 2  # about 150 KB does not fit one frame
    seqs = [m["seq"] for p in parts for m in p["messages"]]
    assert seqs == list(range(seqs[0], seqs[0] + 120))
    assert all(p["latest"] == seqs[-1] and p["truncated"] is False for p in parts)


def test_a_binary_frame_is_refused_like_api_gateway_does(classroom):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    student.ws.send_binary(b'{"action": "ping"}')
    code, _ = student.wait_closed()
    assert code == 1003
    assert teacher.receive_event("leave")["userId"] == "student-1"


def test_support_is_hidden_and_its_injections_are_marked_and_audited(classroom, sandbox, room):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    # The console's way in: a short-lived support token from the admin function, in the name
    # of whoever runs the sandbox, not of whatever the request says.
    status, minted = admin(sandbox, {"op": "support_token", "staff": "ana@support", "room": room})
    staff = operator()
    assert status == 200 and minted["ok"], minted
    support = websocket.create_connection(
        f"{sandbox.websocket_url}?room={room}&token={minted['token']}", timeout=5
    )
    try:
        presence = teacher.request({"action": "who"}, "presence")
        assert [m["userId"] for m in presence["members"]] == ["teacher-1", "student-1"]

        support.send(
            json.dumps({"action": "send", "type": "chat.message", "data": "hello", "id": "s1"})
        )
        ack = json.loads(support.recv())
        assert ack["event"] == "ack"
        for member in (teacher, student):  # the first thing they hear: no join came before it
            message = member.receive_event("message")
            assert message["from"] == {"userId": staff, "role": "support"}
            assert message["seq"] == ack["seq"]
    finally:
        support.close()

    ack = teacher.request({"action": "send", "type": "chat.message", "id": "t1"}, "ack")
    assert student.receive_event("message")["id"] == "t1"  # and no leave came before it
    status, audit = admin(sandbox, {"op": "audit", "count": 1000})
    assert status == 200 and audit["ok"]
    entry = next(e for e in audit["entries"] if e["room"] == room)
    assert entry["staff"] == staff == f"{getpass.getuser()}@sandbox"
    assert json.loads(entry["seq"]) == ack["seq"] - 1


def test_a_support_token_for_every_room_may_join_any_room_hidden(classroom, sandbox, room):
    teacher = classroom("teacher-1", "teacher")
    token = mint("staff-bo", "support", ["*"])
    staff = websocket.create_connection(
        f"{sandbox.websocket_url}?room={room}&token={token}", timeout=5
    )
    try:
        presence = teacher.request({"action": "who"}, "presence")
        assert [m["userId"] for m in presence["members"]] == ["teacher-1"]
    finally:
        staff.close()


def test_members_of_other_rooms_hear_nothing(classroom, room):
    here = classroom("teacher-1", "teacher")
    elsewhere = classroom("teacher-2", "teacher", in_room=room + "-b")
    here.request({"action": "send", "type": "chat.message", "id": "only-here"}, "ack")
    empty = elsewhere.request({"action": "sync"}, "history")
    ack = elsewhere.request({"action": "send", "type": "chat.message", "id": "there"}, "ack")
    assert empty["messages"] == [] and ack["seq"] == empty["latest"] + 1  # its own room's log
    # The next frame "elsewhere" gets is the answer to its own request, not "only-here".
    assert elsewhere.request({"action": "ping"}, "pong")


def test_check_connections_finds_a_ghost_and_prunes_only_it(classroom, sandbox, room, redis_server):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    try:
        ghost = "R2hvc3RHaG9zdDI="  # registered, but the gateway has no such connection
        Registry(client).join(room, Member(ghost, "ghost", "student", connectedAt=1))
    finally:
        client.close()

    status, found = admin(sandbox, {"op": "check_connections", "room": room})
    assert status == 200 and found["ok"] is True, found
    assert found["ghosts"] == [
        {"connectionId": ghost, "userId": "ghost", "role": "student", "connectedAt": 1}
    ]
    assert (found["members"], found["checked"], found["failures"]) == (3, 3, [])

    status, pruned = admin(sandbox, {"op": "check_connections", "room": room, "prune": True})
    assert status == 200 and pruned["pruned"] == [ghost], pruned
    for member in (teacher, student):
        assert member.receive_event("leave")["userId"] == "ghost"
    status, members = admin(sandbox, {"op": "members", "room": room})
    assert [m["userId"] for m in members["members"]] == ["teacher-1", "student-1"]
    status, ghosts = admin(sandbox, {"op": "user_rooms", "userId": "ghost"})
    assert ghosts["rooms"] == []
    status, mine = admin(sandbox, {"op": "user_rooms", "userId": "student-1"})
    assert room in [r["room"] for r in mine["rooms"]]  # the sandbox is shared by the tests
    ack = teacher.request({"action": "send", "type": "chat.message", "id": "after"}, "ack")
    assert student.receive_event("message")["seq"] == ack["seq"]
