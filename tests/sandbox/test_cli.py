"""The ``sandbox`` and ``token`` commands, run as a user runs them: in a subprocess."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import websocket

from backend import tokens

COMMAND = Path(sys.executable).with_name("classroom-console")


def console(*args: str) -> list[str]:
    if COMMAND.exists():
        return [str(COMMAND), *args]
    return [sys.executable, "-m", "desktop.cli", *args]


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env["CLASSROOM_CONSOLE_CONFIG_DIR"] = str(tmp_path / "config")
    env.pop("CLASSROOM_TOKEN_SECRET", None)
    return env


def read_until(process: subprocess.Popen, marker: str, timeout: float = 30.0) -> list[str]:
    """Lines of stdout up to the one containing ``marker``; a reader thread waits on the pipe."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if not line:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} in {seen}")


def test_token_prints_only_a_token_that_verifies(environment):
    done = subprocess.run(
        console(
            "token", "--sub", "alice", "--role", "teacher", "--room", "demo", "--name", "Alice"
        ),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == ""
    token = done.stdout.strip()
    assert done.stdout == token + "\n"
    secret = (
        (Path(environment["CLASSROOM_CONSOLE_CONFIG_DIR"]) / "sandbox-token-secret")
        .read_text()
        .strip()
    )
    identity = tokens.verify(token, "demo", secret)
    assert identity == tokens.Identity("alice", "teacher", "demo", "Alice")


@pytest.mark.parametrize(
    "args",
    [
        ("--sub", "alice", "--role", "wizard", "--room", "demo"),
        ("--sub", "alice", "--role", "student", "--room", "not a room"),
        ("--sub", "alice", "--role", "student", "--room", "*"),
        ("--sub", "alice", "--role", "student", "--room", "demo", "--ttl", "soon"),
        ("--sub", "alice", "--role", "student", "--room", "demo", "--ttl", "0"),
        ("--sub", "alice", "--role", "student"),
    ],
)
def test_token_refuses_bad_input_with_one_sentence(environment, args):
    done = subprocess.run(
        console("token", *args), env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def sandbox_command(environment, redis_server: str, **options) -> subprocess.Popen:
    """``classroom-console sandbox`` on a free port and the session's Redis, its output piped."""
    return subprocess.Popen(
        console("sandbox", "--port", "0", "--redis-url", redis_server),
        env=environment,
        stdout=options.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def test_sandbox_command_serves_and_stops_on_sigterm(environment, redis_server):
    process = sandbox_command(environment, redis_server)
    try:
        lines = read_until(process, "Ctrl-C")
        printed = "".join(lines)
        url = next(line.split()[2] for line in lines if "WebSocket URL:" in line)
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/local?room=ROOM&token=TOKEN")
        for what in (
            "Management API:",
            "/local/@connections",
            "/_admin",
            "/_metrics",
            "redis://127.0.0.1:",
            "sandbox-token-secret",
            "sandbox-admin-key",
            "classroom-console token --sub alice --role student --room demo",
        ):
            assert what in printed

        token = subprocess.run(
            console("token", "--sub", "alice", "--role", "student", "--room", "demo"),
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        member = websocket.create_connection(
            url.replace("ROOM", "demo").replace("TOKEN", token), timeout=10
        )
        member.send(json.dumps({"action": "ping"}))
        assert json.loads(member.recv())["event"] == "pong"

        process.send_signal(signal.SIGTERM)
        opcode, frame = member.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1001
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.stderr.read()
    process.stderr.close()
    assert "connect " in log and "user=alice role=student room=demo status=200" in log
    assert "disconnect" in log and "status=1001" in log
    assert token not in log and token not in printed


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no process-group signals")
def test_a_sigterm_to_the_whole_process_group_stops_the_sandbox_quietly(environment, redis_server):
    """A service manager or ``kill -TERM -PGID`` signals the workers too: the sandbox stops as
    on its own SIGTERM, with no worker taken for crashed and replaced on the way out."""
    process = sandbox_command(
        environment, redis_server, stdout=subprocess.DEVNULL, start_new_session=True
    )
    log: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        for line in process.stderr:
            log.append(line)
            if "worker process(es) ready" in line:
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "".join(log)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(10)
    printed = "".join(log)
    assert "died" not in printed and "Traceback" not in printed, printed


def test_listening_beyond_loopback_takes_a_flag_and_says_what_it_exposes(environment, redis_server):
    refused = subprocess.run(
        console("sandbox", "--host", "0.0.0.0", "--port", "0", "--redis-url", redis_server),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "would expose the sandbox beyond this computer" in refused.stderr
    assert "Traceback" not in refused.stderr

    process = subprocess.Popen(
        console(
            "sandbox", "--host", "0.0.0.0", "--expose", "--port", "0", "--redis-url", redis_server
        ),
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_until(process, "Ctrl-C")
        warning = ""
        while not warning.startswith("Warning:"):  # after the log line that it listens
            warning = process.stderr.readline()
            assert warning, "the sandbox printed no warning"
        assert warning.startswith("Warning: the sandbox listens on 0.0.0.0:"), warning
        for exposed in ("WebSocket endpoint", "management API", "/_admin", "without TLS"):
            assert exposed in warning
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    admin_key = (
        Path(environment["CLASSROOM_CONSOLE_CONFIG_DIR"]) / "sandbox-admin-key"
    ).read_text()
    assert admin_key.strip() and admin_key.strip() not in warning
