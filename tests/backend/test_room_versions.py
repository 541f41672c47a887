"""A classroom's version in the ``rooms`` admin op, and refreshes that send the versions they
hold (``known``): a room whose membership has not changed is answered without its members."""

from __future__ import annotations

import pytest

from backend import admin
from backend.registry import Member, Registry, room_keys

ROOM = "physics-101"


def member(connection_id: str, user_id: str, role: str = "student", **fields) -> Member:
    fields.setdefault("connectedAt", 1_000)
    return Member(connection_id, user_id, role, sourceIp="203.0.113.7", **fields)


def ask(registry: Registry, **request) -> dict:
    answer = admin.handle({"op": "rooms", **request}, registry, None, None)
    assert answer["ok"] is True, answer
    return answer


def entry(registry: Registry, room: str = ROOM, **request) -> dict:
    return {r["room"]: r for r in ask(registry, limit=500, **request)["rooms"]}[room]


def version(registry: Registry, room: str = ROOM) -> str:
    return entry(registry, room)["version"]


@pytest.fixture
def registry(redis_client) -> Registry:
    registry = Registry(redis_client, rate_limit_per_second=0)
    registry.join(ROOM, member("T1", "teacher-1", "teacher"))
    registry.join(ROOM, member("S1", "student-1"))
    registry.join(ROOM, member("S2", "student-2"))
    return registry


def test_a_room_keeps_its_version_while_its_membership_does(registry):
    before = version(registry)
    registry.touch(ROOM, member("S1", "student-1"))
    registry.store(ROOM, member("S1", "student-1"), '{"seq":', "}")
    registry.history(ROOM, 0)
    registry.members(ROOM)
    assert version(registry) == before


def test_join_and_leave_change_the_version(registry):
    seen = [version(registry)]
    registry.join(ROOM, member("S3", "student-3"))
    seen.append(version(registry))
    registry.leave(ROOM, "S3")
    seen.append(version(registry))
    registry.leave(ROOM, "nobody")  # nothing removed: nothing changed
    seen.append(version(registry))
    assert len(set(seen[:3])) == 3 and seen[3] == seen[2]


def test_a_member_joining_again_with_a_new_record_changes_the_version(registry):
    before = version(registry)
    registry.join(ROOM, member("S1", "student-1", userAgent="a new browser"))
    assert version(registry) != before


def test_prune_changes_the_version(registry):
    before = version(registry)
    assert registry.prune(ROOM, ["nobody"]) == []
    assert version(registry) == before
    (removed,) = registry.prune(ROOM, ["S2"])
    assert removed.connectionId == "S2"
    assert version(registry) != before


def test_an_expiry_changes_the_version_before_any_script_drops_the_member(registry, redis_client):
    before = version(registry)
    redis_client.zadd(room_keys(ROOM)[0], {"S2": 1})  # its registration ran out
    expired = version(registry)
    assert expired != before
    registry.members(ROOM)  # a script drops the expired member, and stamps the room
    assert version(registry) not in (before, expired)


def test_a_registration_healed_by_a_frame_changes_the_version(registry, redis_client):
    members_key, info_key, *_ = room_keys(ROOM)
    redis_client.zrem(members_key, "S2")  # lost in a failover
    redis_client.hdel(info_key, "S2")
    lost = version(registry)
    rejoined, _ = registry.touch(ROOM, member("S2", "student-2"))
    assert rejoined is True
    assert version(registry) != lost
    lost = version(registry)
    redis_client.zrem(members_key, "S1")
    redis_client.hdel(info_key, "S1")
    assert registry.store(ROOM, member("S1", "student-1"), '{"seq":', "}").rejoined
    assert version(registry) != lost


def test_a_room_at_the_version_known_is_answered_without_its_members(registry):
    registry.join("chemistry-2", member("C1", "chem-1"))
    registry.store(ROOM, member("S1", "student-1"), '{"seq":', "}")
    full = {r["room"]: r for r in ask(registry)["rooms"]}
    registry.store(ROOM, member("S1", "student-1"), '{"seq":', "}")
    registry.join("chemistry-2", member("C2", "chem-2"))
    known = {room: listed["version"] for room, listed in full.items()}
    answer = ask(registry, known=known)
    rooms = {r["room"]: r for r in answer["rooms"]}
    physics = rooms[ROOM]
    assert physics == {
        "room": ROOM,
        "version": full[ROOM]["version"],
        "unchanged": True,
        "lastActivity": physics["lastActivity"],
        "messagesLastMinute": 2,
        "latestSeq": registry.latest_seq(ROOM),
    }
    assert physics["latestSeq"] == full[ROOM]["latestSeq"] + 1
    chemistry = rooms["chemistry-2"]
    assert "unchanged" not in chemistry and chemistry["students"] == 2
    assert chemistry["version"] != full["chemistry-2"]["version"]
    assert answer["connections"] == 5 and answer["classrooms"] == 2


def test_a_known_room_is_not_read_only_its_version(registry, redis_client, monkeypatch):
    """What makes a refresh cheap: no member records (HGETALL of the room's info) for it."""
    known = {ROOM: version(registry)}
    read = []
    pipeline = redis_client.pipeline

    def recording(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        original = pipe.hgetall
        pipe.hgetall = lambda key: read.append(key) or original(key)
        return pipe

    monkeypatch.setattr(redis_client, "pipeline", recording)
    assert entry(registry, known=known)["unchanged"] is True
    assert read == []
    assert "members" in entry(registry, known={ROOM: "an old version"})
    assert read == [room_keys(ROOM)[1]]


def test_a_known_room_whose_members_all_expired_is_dropped(registry, redis_client):
    known = {ROOM: version(registry)}
    redis_client.zadd(room_keys(ROOM)[0], {"T1": 1, "S1": 1, "S2": 1})
    answer = ask(registry, known=known)
    assert answer["rooms"] == [] and answer["classrooms"] == 0
    assert redis_client.zscore("rooms", ROOM) is None


def test_a_refresh_with_known_versions_walks_every_room_exactly_once(redis_client):
    """Past 128 rooms the index is a hash table, scanned a bucket at a time."""
    registry = Registry(redis_client)
    rooms = [f"room-{n:03d}" for n in range(300)]
    registry.join_many((room, member(f"{room}-t", f"{room}-teacher", "teacher")) for room in rooms)

    def walk(known: dict[str, str]) -> list[dict]:
        listed, cursor = [], None
        while True:
            answer = ask(registry, limit=20, known=known, **({"cursor": cursor} if cursor else {}))
            listed += answer["rooms"]
            cursor = answer["cursor"]
            if cursor is None:
                return listed

    first = walk({})
    assert sorted(r["room"] for r in first) == rooms
    registry.join("room-007", member("late", "late-student"))
    second = walk({r["room"]: r["version"] for r in first})
    assert sorted(r["room"] for r in second) == rooms
    changed = [r for r in second if not r.get("unchanged")]
    assert [(r["room"], r["members"]) for r in changed] == [("room-007", 2)]


def test_join_many_registers_as_join_does(redis_client):
    registry = Registry(redis_client)
    registry.join_many([(ROOM, member("T1", "teacher-1", "teacher")), (ROOM, member("S1", "s1"))])
    assert [m.connectionId for m in registry.members(ROOM)] == ["S1", "T1"]
    assert registry.room_of("S1") == {
        "room": ROOM,
        "userId": "s1",
        "role": "student",
        "hidden": "0",
    }
    assert registry.user_rooms("teacher-1") == {ROOM: ["T1"]}
    assert ask(registry)["connections"] == 2


@pytest.mark.parametrize(
    "known",
    [
        ["physics-101"],
        "physics-101",
        {"physics-101": 3},
        {"physics-101": None},
        {"physics-101": "v" * 65},
        {f"room-{n}": "1.1" for n in range(admin.MAX_KNOWN + 1)},
    ],
)
def test_known_must_be_rooms_and_versions_of_bounded_size(registry, known):
    answer = admin.handle({"op": "rooms", "known": known}, registry, None, None)
    assert answer["ok"] is False and answer["error"] == "invalid"
    assert "known must be an object" in answer["message"]
