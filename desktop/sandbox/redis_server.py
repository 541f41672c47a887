"""The sandbox's Redis: one the user names, else a ``redis-server`` of its own, else fakeredis.

The registry's scripts are the backend's real Redis traffic, so a real server is preferred: the
sandbox starts ``redis-server`` from PATH on a free loopback port, in a temporary folder, with
persistence off, and stops it with the sandbox. Without one (a fresh Windows machine), it falls
back to fakeredis's TCP server, which runs Lua through ``lupa``; the description says which
one runs so nobody mistakes the fallback for the real thing.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from desktop.sandbox.loopback import free_port
from desktop.services.errors import SandboxError

START_TIMEOUT = 10.0
# A script like the registry's: it must run, or the fallback cannot serve the handlers.
_LUA_PROBE = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])"

log = logging.getLogger(__name__)


@dataclass
class RedisService:
    """A Redis the handlers use; ``stop()`` ends it when the sandbox started it."""

    url: str
    description: str
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def owned(self) -> bool:
        return self._stop is not None

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def redact(url: str) -> str:
    """The URL without its password, for descriptions and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _ping(url: str, timeout: float = 1.0) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception:
        client.close()
        raise
    return client


def provide(redis_url: str | None) -> RedisService:
    """The Redis to run on, in the order the module docstring gives."""
    if redis_url:
        return use_existing(redis_url)
    binary = shutil.which("redis-server")
    if binary:
        return start_redis_server(binary)
    return start_fake_redis()


def use_existing(url: str) -> RedisService:
    shown = redact(url)
    try:
        _ping(url, timeout=3.0).close()
    except (redis.RedisError, ValueError) as error:
        raise SandboxError(
            f"The Redis at {shown} did not answer ({error}).",
            hint="Check the URL, or leave out --redis-url to let the sandbox start its own.",
        ) from None
    return RedisService(url, f"Redis at {shown}")


def start_redis_server(binary: str, attempts: int = 3) -> RedisService:
    """``redis-server`` on a free port; a port taken between choosing and binding is retried."""
    last_error = ""
    for _ in range(attempts):
        workdir = Path(tempfile.mkdtemp(prefix="classroom-sandbox-redis-"))
        port = free_port()
        logfile = workdir / "redis.log"
        with open(logfile, "wb") as output:
            process = subprocess.Popen(
                [
                    binary,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(workdir),
                    "--daemonize", "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        version = _wait_until_ready(process, url)
        if version is not None:

            def stop(process=process, workdir=workdir) -> None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
                shutil.rmtree(workdir, ignore_errors=True)

            description = f"redis-server {version} started by the sandbox on 127.0.0.1:{port}"
            return RedisService(url, description, stop)
        with contextlib.suppress(OSError):
            process.kill()
            process.wait(timeout=5)
        last_error = (logfile.read_text(errors="replace").strip().splitlines() or [""])[-1]
        shutil.rmtree(workdir, ignore_errors=True)
    raise SandboxError(
        f"redis-server did not start ({last_error or 'no output'}).",
        hint="Give a running Redis with --redis-url.",
    )


def _wait_until_ready(process: subprocess.Popen, url: str) -> str | None:
    """The server's version once it answers PING; None when it exited or never answered."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            client = _ping(url, timeout=0.5)
        except redis.RedisError:
            time.sleep(0.02)
            continue
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()
    return None


def start_fake_redis() -> RedisService:
    """fakeredis's TCP server on a free loopback port, with Lua checked before it is used."""
    try:
        import fakeredis
        from fakeredis import TcpFakeServer
    except ImportError:
        raise SandboxError(
            "No Redis to run on: redis-server is not on PATH and fakeredis is not installed.",
            hint="Install redis-server, or give one with --redis-url.",
        ) from None
    server = TcpFakeServer(("127.0.0.1", 0))
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="sandbox-fakeredis", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = _ping(url, timeout=3.0)
        try:
            client.eval(_LUA_PROBE, 1, "sandbox:probe", "ok")
            client.delete("sandbox:probe")
        finally:
            client.close()
    except redis.RedisError as error:
        stop()
        raise SandboxError(
            f"The embedded Redis (fakeredis) cannot run the registry's Lua scripts ({error}).",
            hint="Install lupa, or install redis-server for a real Redis.",
        ) from None
    version = getattr(fakeredis, "__version__", "")
    name = f"fakeredis {version}".strip()
    description = f"embedded Redis ({name}; install redis-server for a real one)"
    return RedisService(url, description, stop)
