"""Session fixtures that start real servers on free ports: Redis and moto's AWS endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
import redis

from desktop.sandbox.loopback import free_port, wait_for_port

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Secrets and keys a sandbox makes go to a folder of the run's own, never the user's config.
os.environ.setdefault(
    "CLASSROOM_CONSOLE_CONFIG_DIR", tempfile.mkdtemp(prefix="classroom-console-tests-")
)
# Lambda code logs JSON and metrics to stdout; keep test output readable.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ClassroomConsoleTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "classroom")


def start_redis(
    binary: str, workdir: str, extra: tuple[str, ...] = (), pick_port=free_port
) -> tuple[int, subprocess.Popen]:
    """A ``redis-server`` of its own on a free port, answering PING.

    Another process may take a free port before redis-server binds it (and a connect would then
    reach that process), so the server must still be running and answer, else a new port is
    tried.
    """
    for _ in range(5):
        port = pick_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            if process.poll() is None and redis.Redis(port=port, socket_timeout=2).ping():
                return port, process
        except (RuntimeError, redis.RedisError):
            pass
        process.terminate()
        process.wait(timeout=10)
    pytest.fail("redis-server could not start on a free port")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real ``redis-server`` on a free port for the whole session; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; the README's test command installs it")
    workdir = tempfile.mkdtemp(prefix="classroom-redis-")
    port, process = start_redis(binary, workdir)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    """A client on the session's Redis, flushed before each test."""
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode: a real HTTP endpoint that boto3 is pointed at."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Fake credentials and an empty AWS config, so no test can reach a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
