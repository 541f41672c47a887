"""The registry on a real Redis Cluster (three masters), as ElastiCache's cluster mode runs it.

Per-classroom keys share a hash tag, so a classroom's scripts run in one slot however the
classrooms spread over the shards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile

import pytest
import redis
from redis.cluster import RedisCluster

from backend.registry import Member, Registry, room_keys
from tests.conftest import free_port, start_redis
from tests.waiting import eventually


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    while True:
        port = free_port()
        if port + 10000 >= 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def start_node(binary: str, workdir: str, name: str) -> tuple[int, subprocess.Popen]:
    """A cluster-enabled node whose bus port (port + 10000) is free too."""
    extra = ("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{name}.conf")
    return start_redis(binary, workdir, extra, pick_port=cluster_port)


@pytest.fixture(scope="module")
def cluster():
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        pytest.fail(
            "redis-server and redis-cli are needed; the README's test command installs them"
        )
    workdir = tempfile.mkdtemp(prefix="classroom-cluster-")
    nodes = []
    try:
        for _ in range(3):
            nodes.append(start_node(binary, workdir, str(len(nodes))))
        ports = [port for port, _ in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        # Every node must see the cluster as ok (and know all slots) before it takes commands.
        nodes_seen = [redis.Redis(port=port, decode_responses=True) for port in ports]
        eventually(
            lambda: all(
                node.cluster("info").get("cluster_state") == "ok"
                and node.cluster("info").get("cluster_slots_ok") == "16384"
                for node in nodes_seen
            ),
            timeout=20,
            interval=0.1,
            message="every node of the test cluster to be ok with all 16384 slots",
        )
        for node in nodes_seen:
            node.close()
        client = RedisCluster(host="127.0.0.1", port=ports[0], decode_responses=True)
        yield client
        client.close()
    finally:
        for _, process in nodes:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def member(connection_id: str, user: str, role: str = "student") -> Member:
    return Member(connection_id, user, role, connectedAt=1)


def test_classrooms_live_on_several_shards(cluster):
    slots = {cluster.keyslot(room_keys(f"room-{n}")[0]) for n in range(20)}
    nodes = {cluster.get_node_from_key(room_keys(f"room-{n}")[0]).name for n in range(20)}
    assert len(slots) > 1 and len(nodes) > 1
    for n in range(20):
        keys = room_keys(f"room-{n}")
        assert len({cluster.keyslot(k) for k in keys}) == 1


def test_registry_works_in_cluster_mode(cluster):
    registry = Registry(cluster, log_max_messages=3, rate_limit_per_second=0)
    for n in range(12):
        room = f"class-{n}"
        assert registry.join(room, member(f"{room}-a", "alice")) == []
        assert registry.join(room, member(f"{room}-b", "bob")) == [f"{room}-a"]
        for n in range(5):
            stored = registry.store(room, member(f"{room}-a", "alice"), '{"seq":', "}")
            assert stored.seq == registry.latest_seq(room)
            if n == 0:
                first = stored.seq
        assert stored.seq == first + 4
        assert sorted(stored.members) == [f"{room}-a", f"{room}-b"]
        history = registry.history(room, 0)
        assert history.messages == [f'{{"seq":{first + n}}}' for n in (2, 3, 4)]
        assert history.truncated is True
        assert [m.userId for m in registry.members(room)] == ["alice", "bob"]
        gone, left = registry.leave(room, f"{room}-b")
        assert gone.userId == "bob" and left == [f"{room}-a"]
        assert registry.room_of(f"{room}-a")["room"] == room
    listed, cursor = [], 0
    while True:
        page, cursor = registry.rooms(cursor, 5)
        listed += page
        if cursor == 0:
            break
    assert {f"class-{n}" for n in range(12)} <= set(listed)


def test_room_pages_and_user_rooms_read_across_shards(cluster):
    registry = Registry(cluster)
    rooms = [f"shard-{n}" for n in range(12)]
    for room in rooms:
        registry.join(room, member(f"{room}-t", "carol", "teacher"))
        registry.join(room, member(f"{room}-s", f"{room}-student"))
        registry.store(room, member(f"{room}-t", "carol", "teacher"), '{"seq":', "}")
    found, cursor = {}, 0
    while True:
        page = registry.room_page(cursor, 5)
        found |= {summary.room: summary for summary in page.rooms}
        cursor = page.cursor
        if cursor == 0:
            break
    assert set(rooms) <= set(found)
    assert all(len(found[room].members) == 2 for room in rooms)
    assert all(found[room].messages_last_minute == 1 for room in rooms)
    assert page.connections >= 24
    carol = registry.user_rooms("carol")
    assert {room: carol[room] for room in rooms} == {room: [f"{room}-t"] for room in rooms}
    registry.leave(rooms[0], f"{rooms[0]}-t")
    registry.prune(rooms[1], [f"{rooms[1]}-t"])
    assert not {rooms[0], rooms[1]} & set(registry.user_rooms("carol"))


def test_join_many_and_known_versions_across_shards(cluster):
    registry = Registry(cluster)
    rooms = [f"many-{n}" for n in range(12)]
    registry.join_many(
        (room, member(f"{room}-{k}", f"{room}-user-{k}")) for room in rooms for k in (1, 2)
    )
    assert all(len(registry.members(room)) == 2 for room in rooms)
    found, cursor = {}, 0
    while True:
        page = registry.room_page(cursor, 5)
        found |= {summary.room: summary.version for summary in page.rooms}
        cursor = page.cursor
        if cursor == 0:
            break
    registry.leave(rooms[0], f"{rooms[0]}-1")
    again, cursor = {}, 0
    while True:
        page = registry.room_page(cursor, 5, known=found)
        again |= {summary.room: summary for summary in page.rooms}
        cursor = page.cursor
        if cursor == 0:
            break
    assert not again[rooms[0]].unchanged and len(again[rooms[0]].members) == 1
    assert all(again[room].unchanged and again[room].members == [] for room in rooms[1:])
