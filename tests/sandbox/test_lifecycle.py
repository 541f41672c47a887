"""Starting and stopping sandboxes: ports, the Redis it brings, the secret, the environment.

No module-wide sandbox here: each test starts its own (one at a time, as the process allows).
"""

from __future__ import annotations

import os
import socket
import stat
import sys

import pytest
import redis

from desktop.sandbox import redis_server, secret
from desktop.sandbox.gateway import Sandbox, SandboxConfig
from desktop.services.errors import SandboxError
from tests.sandbox.conftest import SECRET, ClassroomSocket
from tests.sandbox.test_workers import wait_for_workers


def first_message(sandbox: Sandbox, room: str) -> tuple[ClassroomSocket, ClassroomSocket]:
    """A teacher and a student join ``room``, which is empty, and the student's first message
    reaches the teacher with the seq right after the room's floor; returns them, still open."""
    teacher = ClassroomSocket(sandbox, room, "teacher-1", "teacher")
    student = ClassroomSocket(sandbox, room, "student-1")
    assert teacher.receive_event("join")["userId"] == "student-1"
    empty = student.request({"action": "sync"}, "history")
    ack = student.request({"action": "send", "type": "chat.message", "id": "m"}, "ack")
    assert empty["messages"] == [] and ack["seq"] == empty["latest"] + 1
    assert teacher.receive_event("message")["id"] == "m"
    return teacher, student


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSROOM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv(secret.SECRET_ENV, raising=False)
    return tmp_path / "config"


def test_a_taken_port_is_one_sentence_and_leaves_nothing_behind(redis_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = dict(os.environ)
        sandbox = Sandbox(SandboxConfig(port=port, redis_url=redis_server, token_secret=SECRET))
        with pytest.raises(SandboxError) as refused:
            sandbox.start()
    assert str(refused.value) == f"Port {port} is already in use; choose another with --port."
    assert not sandbox.running
    assert dict(os.environ) == before
    sandbox.stop()  # harmless


def test_stop_closes_every_connection_runs_disconnect_and_stops_its_own_redis():
    before = dict(os.environ)
    sandbox = Sandbox(SandboxConfig(port=0, token_secret=SECRET))
    sandbox.start()
    try:
        assert sandbox.running
        assert sandbox.redis_description.startswith("redis-server ")
        assert "started by the sandbox on 127.0.0.1:" in sandbox.redis_description
        redis_port = int(sandbox.redis_description.rsplit(":", 1)[1])
        assert dict(os.environ) == before  # its settings go to its workers, not here
        assert sandbox.websocket_url == f"ws://127.0.0.1:{sandbox.port}/local"
        assert sandbox.management_url == f"http://127.0.0.1:{sandbox.port}/local/@connections"
        members = [ClassroomSocket(sandbox, "demo", f"student-{n}") for n in range(3)]
        client = redis.Redis(port=redis_port, decode_responses=True)
        assert client.zcard("room:{demo}:members") == 3
    finally:
        sandbox.stop()
    for member in members:
        assert member.wait_closed()[0] == 1001
    assert not sandbox.running
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", redis_port), timeout=2).close()
    assert dict(os.environ) == before
    sandbox.stop()  # idempotent
    with pytest.raises(SandboxError):
        sandbox.start()


def test_stop_runs_disconnect_for_every_member(redis_server, redis_client):
    sandbox = Sandbox(SandboxConfig(port=0, redis_url=redis_server, token_secret=SECRET))
    sandbox.start()
    try:
        members = [ClassroomSocket(sandbox, "demo", f"student-{n}") for n in range(3)]
        assert redis_client.zcard("room:{demo}:members") == 3
    finally:
        sandbox.stop()
    assert redis_client.zcard("room:{demo}:members") == 0
    assert redis_client.keys("conn:*") == []
    for member in members:
        member.close()


def test_without_redis_server_it_runs_on_fakeredis(monkeypatch):
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    sandbox = Sandbox(SandboxConfig(port=0, token_secret=SECRET))
    sandbox.start()
    try:
        assert sandbox.redis_description.startswith("embedded Redis (fakeredis")
        teacher, student = first_message(sandbox, "demo")
        student.close()
        assert teacher.receive_event("leave")["userId"] == "student-1"
        teacher.close()
    finally:
        sandbox.stop()


def test_an_unreachable_redis_url_is_a_sentence():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sandbox = Sandbox(
        SandboxConfig(port=0, redis_url=f"redis://:hunter2@127.0.0.1:{port}/0", token_secret=SECRET)
    )
    with pytest.raises(SandboxError) as refused:
        sandbox.start()
    assert f"redis://:***@127.0.0.1:{port}/0" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_the_secret_is_made_once_readable_by_the_user_only(config_dir, redis_server):
    made = secret.load()
    path = config_dir / "sandbox-token-secret"
    assert made.location == str(path)
    assert len(made.value) >= 64
    assert made.value not in repr(made)
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret.load() == made

    sandbox = Sandbox(SandboxConfig(port=0, redis_url=redis_server))
    sandbox.start()
    try:
        assert sandbox.token_secret == made.value
        assert sandbox.token_secret_location == str(path)
    finally:
        sandbox.stop()


def test_the_environment_secret_wins(config_dir, monkeypatch):
    monkeypatch.setenv(secret.SECRET_ENV, "from-the-environment")
    found = secret.load()
    assert (found.value, found.location) == ("from-the-environment", "CLASSROOM_TOKEN_SECRET")
    assert not (config_dir / "sandbox-token-secret").exists()


def test_a_running_sandbox_leaves_the_consoles_aws_identity_alone(redis_server, monkeypatch):
    """The console's AWS calls run in the same process: the sandbox must not lend them keys."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    sandbox = Sandbox(SandboxConfig(port=0, redis_url=redis_server, token_secret=SECRET))
    sandbox.start()
    try:
        assert "AWS_ACCESS_KEY_ID" not in os.environ
        assert "AWS_DEFAULT_REGION" not in os.environ
        teacher, student = first_message(sandbox, "keys-room")
        teacher.close()
        student.close()
    finally:
        sandbox.stop()


def test_two_sandboxes_run_in_one_process_each_on_its_own_redis(redis_server):
    before = dict(os.environ)
    first = Sandbox(SandboxConfig(port=0, redis_url=redis_server, token_secret=SECRET))
    second = Sandbox(SandboxConfig(port=0, token_secret=SECRET))
    first.start()
    try:
        second.start()
        try:
            assert first.port != second.port and first.running and second.running
            assert dict(os.environ) == before
            for sandbox in (first, second):
                # Each has its own Redis, so each room starts empty.
                teacher, student = first_message(sandbox, "twins")
                teacher.close()
                student.close()
        finally:
            second.stop()
    finally:
        first.stop()
    assert dict(os.environ) == before


@pytest.mark.parametrize(
    ("config", "sentence"),
    [
        ({"worker_processes": 0}, "at least one worker process"),
        ({"host": "0.0.0.0"}, "would expose the sandbox beyond this computer"),
        ({"stage": "_admin"}, "is not usable"),
    ],
)
def test_a_config_it_cannot_run_is_a_sentence(config, sentence):
    sandbox = Sandbox(SandboxConfig(port=0, token_secret=SECRET, **config))
    with pytest.raises(SandboxError, match=sentence):
        sandbox.start()
    assert not sandbox.running


def test_stop_ends_the_worker_processes(redis_server):
    sandbox = Sandbox(
        SandboxConfig(port=0, redis_url=redis_server, token_secret=SECRET, worker_processes=2)
    )
    sandbox.start()
    try:
        wait_for_workers(sandbox)
        pids = sandbox.worker_pids
        assert len(pids) == 2
    finally:
        sandbox.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_stop_closes_management_connections_kept_alive(redis_server):
    """boto3 and the handlers keep their management connections open between posts; stopping
    must close them rather than wait for them."""
    sandbox = Sandbox(SandboxConfig(port=0, redis_url=redis_server, token_secret=SECRET))
    sandbox.start()
    try:
        idle = socket.create_connection(("127.0.0.1", sandbox.port), timeout=10)
        idle.sendall(
            b"POST /local/@connections/bm90QUNvbm5lY3Q= HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        assert idle.recv(65536).startswith(b"HTTP/1.1 403 ")  # unsigned
    finally:
        sandbox.stop()
    with idle:
        assert idle.recv(65536) == b""  # closed by the gateway, not left dangling
    assert not sandbox.running
