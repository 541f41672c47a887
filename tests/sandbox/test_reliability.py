"""A classroom on the sandbox survives a Redis that loses its data (docs/reliability.md).

The sandbox runs on a redis-server of this module's own, so the tests can wipe it (FLUSHALL, as a
node that came back empty after a failover) without touching what other tests store.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
import redis

from desktop.sandbox.gateway import SandboxConfig
from tests.conftest import start_redis
from tests.sandbox.conftest import ADMIN_KEY, SECRET

CLASS_SIZE = 5


class OwnRedis:
    """A redis-server of the module's own, which a test may stop and start again empty."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.workdir = tempfile.mkdtemp(prefix="classroom-wipe-")
        self.port, self.process = start_redis(self.binary, self.workdir)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def start_empty(self) -> None:
        """The node comes back on its address with nothing in it (no persistence)."""
        _, self.process = start_redis(self.binary, self.workdir, pick_port=lambda: self.port)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox_config(own_redis: OwnRedis) -> SandboxConfig:
    return SandboxConfig(
        host="127.0.0.1", port=0, redis_url=own_redis.url, token_secret=SECRET, admin_key=ADMIN_KEY
    )


class Seen:
    """Every seq a client has seen (acks, messages, history), in the order it saw them."""

    def __init__(self, members) -> None:
        self.seqs: dict[str, list[int]] = {m.sub: [] for m in members}

    def expect(self, member, *events: str) -> list[dict]:
        frames = [member.receive_event(event) for event in events]
        for frame in frames:
            if "seq" in frame:
                self.seqs[member.sub].append(frame["seq"])
            if frame["event"] == "history":
                self.seqs[member.sub].append(frame["latest"])
        return frames

    def never_backwards(self) -> None:
        for sub, seqs in self.seqs.items():
            assert seqs == sorted(seqs), f"{sub} saw seqs go back: {seqs}"


def send_to_all(seen: Seen, members, sender, message_id: str) -> int:
    sender.send({"action": "send", "type": "chat.message", "data": message_id, "id": message_id})
    (ack,) = seen.expect(sender, "ack")
    for member in members:
        if member is not sender:
            (message,) = seen.expect(member, "message")
            assert (message["id"], message["seq"]) == (message_id, ack["seq"])
    return ack["seq"]


def open_class(classroom) -> list:
    members = [classroom("teacher-1", "teacher")]
    for n in range(CLASS_SIZE - 1):
        members.append(classroom(f"student-{n}"))
        for earlier in members[:-1]:
            assert earlier.receive_event("join")["userId"] == members[-1].sub
    return members


def test_a_class_recovers_from_a_wiped_redis_with_one_ping_each(classroom, own_redis):
    members = open_class(classroom)
    seen = Seen(members)
    before = [send_to_all(seen, members, m, f"before-{i}") for i, m in enumerate(members)]

    redis.Redis.from_url(own_redis.url).flushall()

    # A send straight after the wipe is acked; the sender is registered again by it, so the
    # room it now has (only itself) hears nothing.
    first = members[2]
    first.send({"action": "send", "type": "chat.message", "id": "lonely"})
    (ack,) = seen.expect(first, "ack")
    assert ack["seq"] > before[-1]
    # Every member pings once; each is registered again and the members back before it hear
    # ``join``.
    back = [first]
    for member in members:
        member.send({"action": "ping"})
        if member is not first:
            for earlier in back:
                assert earlier.receive_event("join")["userId"] == member.sub
            back.append(member)
        seen.expect(member, "pong")

    for i, member in enumerate(members):
        send_to_all(seen, members, member, f"after-{i}")
    presence = members[0].request({"action": "who"}, "presence")
    assert sorted(m["userId"] for m in presence["members"]) == sorted(m.sub for m in members)

    # A client holding a seq from before the wipe syncs and learns what it can.
    held = before[-1]
    history = members[1].request({"action": "sync", "since": held}, "history")
    seen.seqs[members[1].sub].append(history["latest"])
    assert history["truncated"] is True and history["latest"] > held
    assert [m["id"] for m in history["messages"]] == ["lonely"] + [
        f"after-{i}" for i in range(CLASS_SIZE)
    ]
    seen.never_backwards()


def test_a_class_recovers_from_a_redis_that_went_down_and_came_back_empty(classroom, own_redis):
    members = open_class(classroom)
    seen = Seen(members)
    before = [send_to_all(seen, members, m, f"before-{i}") for i, m in enumerate(members)]

    own_redis.stop()
    for i, member in enumerate(members):  # the outage: refused, nothing acked
        error = member.request(
            {"action": "send", "type": "chat.message", "id": f"out-{i}"}, "error"
        )
        assert (error["code"], error["id"]) == ("unavailable", f"out-{i}")
    own_redis.start_empty()

    back: list = []
    for member in members:
        member.send({"action": "ping"})
        for earlier in back:
            assert earlier.receive_event("join")["userId"] == member.sub
        back.append(member)
        seen.expect(member, "pong")
    # The resends PROTOCOL.md asks for after ``unavailable``: stored once each, every member
    # hears them, with seqs above every seq from before.
    for i, member in enumerate(members):
        assert send_to_all(seen, members, member, f"out-{i}") > before[-1]
    seen.never_backwards()
