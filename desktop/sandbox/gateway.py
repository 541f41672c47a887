"""The local sandbox: the backend's own Lambda handlers behind a gateway with API Gateway's rules.

Everything a classroom client or a handler can observe behaves as in AWS, so what works here
works there:

- ``GET ws://HOST:PORT/{stage}?room=..&token=..`` runs the REQUEST authorizer (no ``token``:
  401 without calling it, a deny: 403, a broken authorizer: 500), then ``$connect`` (a
  non-2xx ``statusCode`` refuses the handshake), and only then completes the upgrade.
- Text frames are routed on ``$request.body.action`` (``send``/``sync``/``who``/``ping``, anything
  else to ``$default``). Binary frames are refused as API Gateway refuses them: close 1003. A
  message over 128 KB closes the connection with 1009. ``$disconnect`` runs for every close:
  by either side, a dropped TCP connection (1006), the idle timeout or the connection's maximum
  lifetime (1001 "Going away").
- ``/{stage}/@connections/{id}`` is the management API on the same port, as in AWS, so
  ``boto3``'s ``apigatewaymanagementapi`` client works against it unchanged: POST sends a text
  frame, GET describes the connection, DELETE closes it, and an unknown or closed connection
  answers 410 ``GoneException``. A connection is only known once its upgrade is complete: a post
  to it from its own ``$connect`` is 410, as in AWS. SigV4 signatures are accepted without
  being checked: the sandbox has no IAM to check them against. Requests to it in the plain
  shape every client sends are answered by a front door ahead of aiohttp
  (``desktop.sandbox.management``): there is one per delivery.
- Handlers run in worker processes (``desktop.sandbox.processes``), overflowing to a bounded
  thread pool, as Lambda runs concurrent invocations; one that raises earns its client API
  Gateway's ``Internal server error`` frame and nothing else stops.
- ``POST /_admin`` (loopback only) runs the admin handler; ``GET /_metrics`` serves per-minute
  metrics (see ``desktop.sandbox.metrics`` for what each one counts).

Where the sandbox is stricter or simpler than AWS, ``docs/sandbox.md`` says so.

The handlers read their settings from the environment once per cold start, and the environment
is the process's: **one sandbox runs per process**. ``start()`` sets the variables (and restores
them at ``stop()``) and resets the handlers' cached clients, as a new Lambda container would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import ClassVar
from urllib.parse import unquote

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError
from botocore.credentials import Credentials

from desktop.sandbox import events, management, metrics, policy
from desktop.sandbox.events import Handshake
from desktop.sandbox.processes import WorkerDied, WorkerPool
from desktop.services.errors import SandboxError

MAX_MESSAGE_BYTES = 128 * 1024
INTEGRATION_TIMEOUT = 29.0
CLOSE_TIMEOUT = 5.0
STOP_TIMEOUT = 30.0
SHUTDOWN_GRACE = 1.0
# The management API answers 429 when a client is this far behind (its buffer is full).
CLIENT_BUFFER_LIMIT = 8 * 1024 * 1024
MESSAGE_ROUTES = ("send", "sync", "who", "ping")
STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
RESERVED_PATHS = ("_admin", "_metrics")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_TOO_BIG = 1009

FORBIDDEN = management.error(403, "ForbiddenException", "Forbidden")
GONE = management.error(410, "GoneException", "Gone")
NOT_ALLOWED = management.error(405, "MethodNotAllowedException", "Method not allowed")
TOO_LARGE = management.error(413, "PayloadTooLargeException", "Message payload size exceeds 128 KB")
BUFFER_FULL = management.error(429, "LimitExceededException", "Client buffer is full")

SANDBOX_CREDENTIALS = Credentials("sandbox", "sandbox")
log = logging.getLogger("desktop.sandbox")

Handler = Callable[[dict, object], object]


@dataclass(frozen=True)
class SandboxConfig:
    """Where the sandbox listens and the limits it enforces (API Gateway's by default)."""

    host: str = "127.0.0.1"
    port: int = 8765
    stage: str = "local"
    redis_url: str | None = None
    token_secret: str | None = None
    idle_timeout: float = 600.0
    max_lifetime: float = 7200.0
    max_workers: int = 32
    # Handler invocations run in this many worker processes (0: all in the thread pool).
    worker_processes: int = 2


@dataclass
class Integrations:
    """The Lambda entry points the gateway invokes; tests swap one to simulate a failing Lambda.

    The gateway looks the handler up at each invocation, so replacing an attribute takes effect
    at once.
    """

    authorizer: Handler
    connect: Handler
    disconnect: Handler
    messages: Handler
    admin: Handler

    @classmethod
    def from_backend(cls) -> Integrations:
        from backend.handlers import admin, authorizer, connect, disconnect, messages

        return cls(
            authorizer=authorizer.handler,
            connect=connect.handler,
            disconnect=disconnect.handler,
            messages=messages.handler,
            admin=admin.handler,
        )


FUNCTION_NAMES = {
    "authorizer": "classroom-authorizer",
    "connect": "classroom-connect",
    "disconnect": "classroom-disconnect",
    "messages": "classroom-messages",
    "admin": "classroom-admin",
}


@dataclass
class Invocation:
    """How one handler invocation went: its result, or the exception, or a timeout."""

    result: object = None
    error: BaseException | None = None
    timed_out: bool = False
    # The worker process running it died: no answer at all, as when a Lambda runtime exits.
    crashed: bool = False
    elapsed_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None or self.timed_out


@dataclass(eq=False)
class Connection:
    """An open client connection as the gateway tracks it."""

    handshake: Handshake
    authorizer: dict
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None = None
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    last_active_ms: int = field(default_factory=events.now_ms)
    # (close code, reason) for $disconnect, set by whoever closes the connection first.
    disconnect: tuple[int, str] | None = None

    @property
    def connection_id(self) -> str:
        return self.handshake.connection_id

    @property
    def closing(self) -> bool:
        return self.disconnect is not None or self.ws.closed

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_ms = events.now_ms()

    def describe(self) -> str:
        who = self.authorizer
        return (
            f"user={who.get('userId', '?')} role={who.get('role', '?')} room={who.get('room', '?')}"
        )


def route_key(body: str) -> str:
    """``$request.body.action``: the route a text frame goes to."""
    try:
        frame = json.loads(body)
    except ValueError:
        return events.ROUTE_DEFAULT
    if isinstance(frame, dict):
        action = frame.get("action")
        if isinstance(action, str) and action in MESSAGE_ROUTES:
            return action
    return events.ROUTE_DEFAULT


def _iso8601(epoch_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _refusal(status: int) -> web.Response:
    """A refused handshake: API Gateway's status with its ``{"message": ...}`` body."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status == 500:
        phrase = "Internal server error"
    return web.json_response({"message": phrase}, status=status)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux and macOS): every ``@connections`` POST and every
    frame is a trip through the loop, and uvloop's transports take about a third less CPU per
    delivery than asyncio's. Elsewhere (Windows), asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _not_allowed() -> web.Response:
    return web.Response(status=405, text="405: Method Not Allowed")


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _url_host(host: str) -> str:
    """The host to put in URLs: a wildcard address is reached through loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Sandbox:
    """The gateway, its handler pool, its Redis and its metrics; see the module docstring.

    ``start()`` returns once the gateway listens and raises ``SandboxError`` with a sentence
    when it cannot; ``stop()`` closes every connection (1001, ``$disconnect`` runs), stops the
    Redis it started and restores the environment. Both are safe to call from any thread.
    """

    _process_lock: ClassVar[threading.Lock] = threading.Lock()
    _active: ClassVar[Sandbox | None] = None

    def __init__(
        self, config: SandboxConfig | None = None, *, integrations: Integrations | None = None
    ) -> None:
        self.config = config or SandboxConfig()
        self.integrations = integrations
        self.metrics = metrics.MetricsBoard(
            os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ClassroomConsole")
        )
        self.api_id = events.api_id()
        self.port: int | None = None
        self.token_secret: str | None = None
        self.token_secret_location: str | None = None
        self.redis_description: str | None = None
        self._redis = None
        self._saved_env: dict[str, str | None] = {}
        self._listener_added = False
        self._pool: ThreadPoolExecutor | None = None
        # Worker processes for the backend's own entry points (``config.worker_processes``).
        self._workers: WorkerPool | None = None
        self._backend_entry: Integrations | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._door: management.FrontDoor | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._connections: dict[str, Connection] = {}
        self._pending_ids: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        # The request handlers of WebSocket connections, from handshake to $disconnect.
        self._sessions: set[asyncio.Task] = set()
        self._stopping = False
        self._state = "new"
        self._state_lock = threading.Lock()

    # ----- life cycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        thread = self._thread
        return self._state == "running" and thread is not None and thread.is_alive()

    @property
    def workers_ready(self) -> bool:
        """Whether the backend's entry points now run in worker processes."""
        workers = self._workers
        return workers is not None and workers.ready

    @property
    def worker_pids(self) -> list[int]:
        """The worker processes' ids (none with ``worker_processes=0`` or before they spawn)."""
        workers = self._workers
        return workers.pids if workers is not None else []

    @property
    def connection_count(self) -> int:
        """How many WebSocket connections are open now (a dict's length: safe from any thread)."""
        return len(self._connections)

    @property
    def region(self) -> str:
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    def _base(self, scheme: str) -> str:
        return f"{scheme}://{_url_host(self.config.host)}:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"{self._base('ws')}/{self.config.stage}"

    @property
    def endpoint_url(self) -> str:
        """What ``boto3``'s ``apigatewaymanagementapi`` client takes as ``endpoint_url``."""
        return f"{self._base('http')}/{self.config.stage}"

    @property
    def management_url(self) -> str:
        return f"{self.endpoint_url}/@connections"

    @property
    def admin_url(self) -> str:
        return f"{self._base('http')}/_admin"

    @property
    def metrics_url(self) -> str:
        return f"{self._base('http')}/_metrics"

    def start(self) -> None:
        with self._state_lock:
            if self._state == "running":
                return
            if self._state != "new":
                raise SandboxError("This sandbox was stopped; start a new one.")
            with Sandbox._process_lock:
                other = Sandbox._active
                if other is not None:
                    raise SandboxError(
                        f"A sandbox already runs in this process at {other.websocket_url}.",
                        hint="Stop it first: the handlers' settings are process-wide.",
                    )
                Sandbox._active = self
            self._state = "starting"
            try:
                self._start()
            except BaseException:
                self._teardown()
                self._state = "stopped"
                with Sandbox._process_lock:
                    Sandbox._active = None
                raise
            self._state = "running"

    def stop(self) -> None:
        with self._state_lock:
            if self._state != "running":
                return
            self._state = "stopping"
            try:
                self._teardown()
            finally:
                self._state = "stopped"
                with Sandbox._process_lock:
                    if Sandbox._active is self:
                        Sandbox._active = None

    def _check_config(self) -> None:
        config = self.config
        if not STAGE_NAME.match(config.stage) or config.stage in RESERVED_PATHS:
            raise SandboxError(
                f"The stage name {config.stage!r} is not usable; use letters, digits, - and _."
            )
        if not 0 <= config.port <= 65535:
            raise SandboxError(f"Port {config.port} is not a port number; use 0 to 65535.")
        if config.idle_timeout <= 0 or config.max_lifetime <= 0:
            raise SandboxError("The idle timeout and the maximum lifetime must be positive.")
        if config.max_workers < 1:
            raise SandboxError("The sandbox needs at least one handler worker.")
        if config.worker_processes < 0:
            raise SandboxError("The number of worker processes cannot be negative.")

    def _start(self) -> None:
        from desktop.sandbox import redis_server, secret

        self._check_config()
        sock = self._bind()
        try:
            self.port = sock.getsockname()[1]
            if self.config.token_secret:
                self.token_secret = self.config.token_secret
                self.token_secret_location = "given by the caller"
            else:
                found = secret.load()
                self.token_secret, self.token_secret_location = found.value, found.location
            self._redis = redis_server.provide(self.config.redis_url)
            self.redis_description = self._redis.description
            self._configure_environment()
            self._load_backend()
            self._pool = ThreadPoolExecutor(
                max_workers=self.config.max_workers, thread_name_prefix="sandbox-lambda"
            )
            if self.config.worker_processes > 0:
                # Started on the gateway's loop, which feeds them; the variables are the ones
                # _configure_environment set.
                self._workers = WorkerPool(
                    self.config.worker_processes,
                    {name: os.environ[name] for name in self._saved_env if name in os.environ},
                    SANDBOX_CREDENTIALS.access_key,
                    SANDBOX_CREDENTIALS.secret_key,
                )
        except BaseException:
            sock.close()
            raise
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready, failure), name="sandbox-gateway", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise SandboxError(f"The sandbox gateway did not start: {failure[0]}.")
        log.info("sandbox listening on %s", self.websocket_url)

    def _bind(self) -> socket.socket:
        """The listening socket, bound here so a taken port is reported as a sentence."""
        host, port = self.config.host, self.config.port
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
        except socket.gaierror:
            raise SandboxError(
                f"Cannot listen on {host!r}: it is not an address of this computer.",
                hint="Use 127.0.0.1 with --host.",
            ) from None
        sock = socket.socket(family, kind, proto)
        try:
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as error:
            sock.close()
            if error.errno == errno.EADDRINUSE:
                raise SandboxError(
                    f"Port {port} is already in use; choose another with --port."
                ) from None
            if error.errno == errno.EACCES:
                raise SandboxError(
                    f"This user may not listen on port {port}; choose one above 1024 with --port."
                ) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise SandboxError(
                    f"Cannot listen on {host}: it is not an address of this computer.",
                    hint="Use 127.0.0.1 with --host.",
                ) from None
            raise SandboxError(f"Cannot listen on {host}:{port}: {error.strerror}.") from None
        sock.setblocking(False)
        return sock

    def _configure_environment(self) -> None:
        """What a Lambda container of this deployment would have in its environment."""
        wanted = {
            "REDIS_URL": self._redis.url,
            "REDIS_CLUSTER": "false",
            "TOKEN_SECRET": self.token_secret,
            "MANAGEMENT_ENDPOINT_URL": self.endpoint_url,
        }
        # Handler logs above WARNING only, and metrics go to /_metrics rather than stdout.
        for name, value in (
            ("POWERTOOLS_LOG_LEVEL", "WARNING"),
            ("POWERTOOLS_METRICS_DISABLED", "true"),
        ):
            if name not in os.environ:
                wanted[name] = value
        for name, value in wanted.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _load_backend(self) -> None:
        """A cold start: fresh settings and clients, the entry points, the metrics listener."""
        try:
            from backend import observability, runtime

            runtime.reset()
            # Handlers sign management API calls with SigV4 as in AWS; stand-in keys will do
            # here, passed directly so the console's own AWS calls keep the user's identity.
            runtime.sign_with(SANDBOX_CREDENTIALS)
            self._backend_entry = Integrations.from_backend()
            if self.integrations is None:
                self.integrations = Integrations.from_backend()
        except ImportError as error:
            raise SandboxError(f"The backend's handlers cannot be loaded ({error}).") from None
        observability.add_listener(self.metrics.handler_metric)
        self._listener_added = True

    def _teardown(self) -> None:
        """Undo whatever ``_start`` did, in reverse order; each step tolerates a missing one."""
        loop, thread = self._loop, self._thread
        if loop is not None and not loop.is_closed() and thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                future.result(timeout=STOP_TIMEOUT)
            except Exception:
                log.exception("the sandbox did not close every connection cleanly")
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=STOP_TIMEOUT)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._workers is not None:
            self._workers.join(CLOSE_TIMEOUT)
            self._workers = None
        if self._listener_added:
            from backend import observability

            observability.remove_listener(self.metrics.handler_metric)
            self._listener_added = False
        self._restore_environment()
        with contextlib.suppress(ImportError):
            from backend import runtime

            runtime.sign_with(None)
            runtime.reset()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    # ----- worker processes ------------------------------------------------------------------

    def _worker_for(self, name: str, handler: Handler):
        """The worker process this invocation goes to, else None (it runs in a thread).

        Only the backend's own entry points go there (a test's stand-in runs in a thread), and
        only to a worker that has loaded the backend and takes more (``processes.WorkerPool``).
        """
        if self._workers is None or handler is not getattr(self._backend_entry, name, None):
            return None
        return self._workers.free()

    async def _invoke_in_process(
        self, worker, name: str, event: object, context: object, outcome
    ) -> None:
        try:
            result, error, points = await asyncio.wait_for(
                self._workers.invoke(worker, name, event, context), INTEGRATION_TIMEOUT
            )
        except WorkerDied as died:
            outcome.error, outcome.crashed = died, True
            return
        from backend import observability

        # Relayed to this process's listeners: the sandbox's metrics board is one of them.
        for point in points:
            observability.notify(*point)
        if error is not None:
            outcome.error = error
        else:
            outcome.result = result

    # ----- the event loop thread ----------------------------------------------------------

    def _serve(self, sock: socket.socket, ready: threading.Event, failure: list) -> None:
        loop = _new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._runner_for_loop())
            loop.run_until_complete(runner.setup())
            self._door = management.FrontDoor(self._manage, runner.server, MAX_MESSAGE_BYTES)
            self._listener = loop.run_until_complete(
                loop.create_server(self._door, sock=sock, backlog=128)
            )
            self._runner = runner
            if self._workers is not None:
                # They warm up in the background: until then invocations run in threads.
                loop.call_soon(self._workers.start)
        except BaseException as error:
            failure.append(error)
            sock.close()
            loop.close()
            self._loop = None
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _runner_for_loop(self) -> web.ServerRunner:
        # aiohttp's low-level server takes its loop from the running one.
        # No lingering: a body refused unread (413) is not waited for; the connection closes.
        server = web.Server(self._dispatch, access_log=None, lingering_time=0)
        return web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """Routes every request the front door hands to aiohttp (``desktop.sandbox.management``):
        ``/{stage}`` (the WebSocket), ``/{stage}/@connections/{id}`` in a shape the door does not
        serve itself, ``/_admin`` and ``/_metrics``.

        aiohttp's low-level server with this one handler, not an application and its router.
        """
        path = request.raw_path.partition("?")[0]
        method = request.method
        where = management.target(path)
        if where is not None:
            return await self._management(request, *where)
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "" and parts[1]:
            name = unquote(parts[1])
            if name == "_admin":
                return await self._admin(request) if method == "POST" else _not_allowed()
            if name == "_metrics":
                return await self._metrics(request) if method in ("GET", "HEAD") else _not_allowed()
            if method in ("GET", "HEAD"):
                return await self._websocket(request, name)
            return _not_allowed()
        return web.Response(status=404, text="404: Not Found")

    async def _shutdown(self) -> None:
        self._stopping = True
        connections = list(self._connections.values())
        # A client that does not answer the close frame soon is cut off: stopping must not hang.
        await asyncio.gather(
            *(
                asyncio.wait_for(self._close(c, CLOSE_GOING_AWAY, "Going away"), SHUTDOWN_GRACE)
                for c in connections
            ),
            return_exceptions=True,
        )
        # Every connection's $disconnect (and frames still in a handler) finishes first.
        if self._sessions:
            await asyncio.wait(set(self._sessions), timeout=STOP_TIMEOUT)
        while self._tasks:
            done, _ = await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT)
            if not done:
                break
        if self._listener is not None:
            self._listener.close()
        if self._door is not None:
            self._door.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._workers is not None:
            await self._workers.close()

    def _track(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ----- invoking handlers ----------------------------------------------------------------

    async def _invoke(self, name: str, event: object) -> Invocation:
        """Runs one handler in the pool, as one Lambda invocation with its own context."""
        handler = getattr(self.integrations, name)
        context = events.LambdaContext(FUNCTION_NAMES[name], self.region, INTEGRATION_TIMEOUT)
        started = time.perf_counter()
        outcome = Invocation()
        worker = self._worker_for(name, handler)
        try:
            if worker is not None:
                await self._invoke_in_process(worker, name, event, context, outcome)
            else:
                future = asyncio.get_running_loop().run_in_executor(
                    self._pool, handler, event, context
                )
                outcome.result = await asyncio.wait_for(future, INTEGRATION_TIMEOUT)
        except TimeoutError:
            outcome.timed_out = True
        except Exception as error:
            outcome.error = error
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000.0
        return outcome

    async def _integrate(self, name: str, event: dict) -> tuple[Invocation, int]:
        """A route integration with API Gateway's metrics; returns it and its status code."""
        outcome = await self._invoke(name, event)
        route = event["requestContext"]["routeKey"]
        self.metrics.gateway(metrics.INTEGRATION_LATENCY, outcome.elapsed_ms)
        if outcome.timed_out:
            self.metrics.gateway(metrics.EXECUTION_ERROR)
            log.error("%s integration timed out after %.0f s", route, INTEGRATION_TIMEOUT)
            return outcome, 504
        if outcome.crashed:
            self.metrics.gateway(metrics.EXECUTION_ERROR)
            log.error("%s handler's worker process died", route, exc_info=outcome.error)
            return outcome, 500
        if outcome.error is not None:
            self.metrics.gateway(metrics.INTEGRATION_ERROR)
            log.error("%s handler raised", route, exc_info=outcome.error)
            return outcome, 500
        if not isinstance(outcome.result, dict):
            self.metrics.gateway(metrics.INTEGRATION_ERROR)
            log.error("%s handler returned %s, not an object", route, type(outcome.result).__name__)
            outcome.error = TypeError("the handler did not return an object")
            return outcome, 500
        status = outcome.result.get("statusCode", 200)
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            self.metrics.gateway(metrics.INTEGRATION_ERROR)
            log.error("%s handler returned statusCode %r", route, status)
            return outcome, 500
        if status >= 400:
            self.metrics.gateway(metrics.INTEGRATION_ERROR)
        return outcome, status

    # ----- the WebSocket endpoint -------------------------------------------------------------

    def _new_connection_id(self) -> str:
        while True:
            candidate = events.gateway_id()
            if candidate not in self._connections and candidate not in self._pending_ids:
                self._pending_ids.add(candidate)
                return candidate

    def _handshake(self, request: web.BaseRequest, connection_id: str) -> Handshake:
        peer = request.remote or ""
        headers = list(request.headers.items())
        headers += [
            ("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"),
            ("X-Forwarded-For", peer),
            ("X-Forwarded-Port", str(self.port)),
            ("X-Forwarded-Proto", "http"),
        ]
        return Handshake(
            connection_id=connection_id,
            api_id=self.api_id,
            stage=self.config.stage,
            region=self.region,
            domain_name=request.host,
            source_ip=peer,
            user_agent=request.headers.get("User-Agent", ""),
            headers=headers,
            query=list(request.query.items()),
        )

    async def _websocket(self, request: web.BaseRequest, stage: str) -> web.StreamResponse:
        if stage != self.config.stage:
            self.metrics.gateway(metrics.CLIENT_ERROR)
            return _refusal(403)
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE_BYTES + 1,  # aiohttp refuses sizes >= its limit
            compress=False,
            autoping=True,
            timeout=CLOSE_TIMEOUT,
        )
        if not ws.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)
        if self._stopping:
            return _refusal(503)
        connection_id = self._new_connection_id()
        session = asyncio.current_task()
        self._sessions.add(session)
        try:
            return await self._open(request, ws, self._handshake(request, connection_id))
        finally:
            self._pending_ids.discard(connection_id)
            self._sessions.discard(session)

    def _log_refusal(self, handshake: Handshake, status: int, why: str) -> None:
        room = (handshake.query_value("room") or "")[:64]
        log.info("refused    %s room=%r status=%d (%s)", handshake.connection_id, room, status, why)

    async def _authorize(self, handshake: Handshake) -> tuple[int, dict | None]:
        """The authorizer's verdict as API Gateway applies it: status and request context."""
        if not handshake.query_value("token"):
            self.metrics.gateway(metrics.CLIENT_ERROR)
            self._log_refusal(handshake, 401, "no token")
            return 401, None
        outcome = await self._invoke("authorizer", events.authorizer_event(handshake))
        if outcome.timed_out or outcome.error is not None:
            if outcome.error is not None and str(outcome.error) == "Unauthorized":
                # Lambda authorizers raise Exception("Unauthorized") to answer 401.
                self.metrics.gateway(metrics.CLIENT_ERROR)
                self._log_refusal(handshake, 401, "authorizer answered Unauthorized")
                return 401, None
            self.metrics.gateway(metrics.EXECUTION_ERROR)
            log.error("the authorizer failed", exc_info=outcome.error)
            self._log_refusal(handshake, 500, "authorizer failed")
            return 500, None
        try:
            decision = policy.evaluate(outcome.result, handshake.method_arn)
        except policy.MalformedPolicy as error:
            self.metrics.gateway(metrics.EXECUTION_ERROR)
            log.error("the authorizer's answer is unusable: %s", error)
            self._log_refusal(handshake, 500, "authorizer answer unusable")
            return 500, None
        if not decision.allowed:
            self.metrics.gateway(metrics.CLIENT_ERROR)
            self._log_refusal(handshake, 403, "authorizer denied")
            return 403, None
        context = dict(decision.context)
        context["principalId"] = decision.principal_id
        context["integrationLatency"] = int(outcome.elapsed_ms)
        return 200, context

    async def _open(
        self, request: web.BaseRequest, ws: web.WebSocketResponse, handshake: Handshake
    ) -> web.StreamResponse:
        status, authorizer = await self._authorize(handshake)
        if authorizer is None:
            return _refusal(status)
        self.metrics.gateway(metrics.CONNECT_COUNT)
        _, status = await self._integrate("connect", events.connect_event(handshake, authorizer))
        if not 200 <= status < 300:
            self._log_refusal(handshake, status, "$connect refused")
            return _refusal(status)
        connection = Connection(handshake, authorizer, ws, request.transport)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            # The client left while $connect ran: the registration it made is undone.
            connection.disconnect = (CLOSE_ABNORMAL, "Connection closed during the handshake")
            await asyncio.shield(self._track(self._disconnect(connection)))
            return ws
        self._connections[handshake.connection_id] = connection
        log.info(
            "connect    %s %s status=%d", connection.connection_id, connection.describe(), status
        )
        watchdog = self._track(self._watch(connection))
        try:
            if self._stopping:
                await self._close(connection, CLOSE_GOING_AWAY, "Going away")
            await self._read_frames(connection)
        finally:
            watchdog.cancel()
            self._connections.pop(handshake.connection_id, None)
            await asyncio.shield(self._track(self._disconnect(connection)))
        return ws

    async def _read_frames(self, connection: Connection) -> None:
        """Routes frames until the connection ends; leaves the close code and reason on it."""
        ws = connection.ws
        while True:
            message = await ws.receive()
            kind = message.type
            if kind is WSMsgType.TEXT:
                connection.touch()
                self.metrics.gateway(metrics.MESSAGE_COUNT)
                self._track(self._route(connection, message.data))
            elif kind is WSMsgType.BINARY:
                self.metrics.gateway(metrics.CLIENT_ERROR)
                await self._close(connection, CLOSE_UNSUPPORTED, "Binary frames are not supported")
            elif kind is WSMsgType.CLOSE:
                code = message.data or CLOSE_NO_STATUS
                reason = message.extra or (
                    "Client-side close frame status not set" if code == CLOSE_NO_STATUS else ""
                )
                if connection.disconnect is None:
                    connection.disconnect = (code, reason)
                return
            elif kind is WSMsgType.ERROR:
                error = message.data
                if isinstance(error, WebSocketError) and error.code == CLOSE_TOO_BIG:
                    self.metrics.gateway(metrics.CLIENT_ERROR)
                    if connection.disconnect is None:
                        connection.disconnect = (CLOSE_TOO_BIG, "Message too big")
                elif connection.disconnect is None:
                    code = getattr(error, "code", CLOSE_ABNORMAL)
                    connection.disconnect = (code, f"Connection error: {error}")
                return
            else:  # CLOSING or CLOSED: we closed it, or the TCP connection dropped.
                if connection.disconnect is None:
                    connection.disconnect = (
                        CLOSE_ABNORMAL,
                        "Connection closed abnormally (no close frame)",
                    )
                return

    async def _close(self, connection: Connection, code: int, reason: str) -> None:
        """Closes from the gateway's side; the first reason given is the one $disconnect gets."""
        if connection.disconnect is None:
            connection.disconnect = (code, reason)
        if not connection.ws.closed:
            with contextlib.suppress(Exception):
                await connection.ws.close(code=code, message=reason.encode("utf-8")[:123])

    async def _watch(self, connection: Connection) -> None:
        """Closes the connection at the idle timeout or at its maximum lifetime (1001)."""
        config = self.config
        while not connection.closing:
            deadline = min(
                connection.last_active + config.idle_timeout,
                connection.opened + config.max_lifetime,
            )
            wait = deadline - time.monotonic()
            if wait <= 0:
                await self._close(connection, CLOSE_GOING_AWAY, "Going away")
                return
            await asyncio.sleep(wait)

    async def _route(self, connection: Connection, body: str) -> None:
        """One text frame through its route's integration; a failure earns API Gateway's frame."""
        route = route_key(body)
        event = events.message_event(connection.handshake, connection.authorizer, route, body)
        outcome, _ = await self._integrate("messages", event)
        if outcome.failed:
            message = "Endpoint request timed out" if outcome.timed_out else "Internal server error"
            frame = {
                "message": message,
                "connectionId": connection.connection_id,
                "requestId": event["requestContext"]["requestId"],
            }
            if not connection.closing:
                with contextlib.suppress(Exception):
                    await connection.ws.send_str(json.dumps(frame))

    async def _disconnect(self, connection: Connection) -> None:
        code, reason = connection.disconnect or (CLOSE_ABNORMAL, "Connection closed abnormally")
        event = events.disconnect_event(connection.handshake, connection.authorizer, code, reason)
        _, status = await self._integrate("disconnect", event)
        log.info(
            "disconnect %s %s status=%d reason=%r handler=%d",
            connection.connection_id,
            connection.describe(),
            code,
            reason,
            status,
        )

    # ----- the @connections management API ------------------------------------------------------

    async def _management(
        self, request: web.BaseRequest, stage: str, connection_id: str
    ) -> web.Response:
        """A management API request the front door handed to aiohttp: read, then answered by
        the same rules (``_manage``)."""
        body = b""
        if request.method == "POST":
            # A declared length over the limit is refused unread; a chunked body once read.
            if (request.content_length or 0) > MAX_MESSAGE_BYTES:
                return management.response(TOO_LARGE)
            body = await request.read()
            if len(body) > MAX_MESSAGE_BYTES:
                return management.response(TOO_LARGE)
        return management.response(self._manage(request.method, stage, connection_id, body))

    def _manage(
        self, method: str, stage: str, connection_id: str, body: bytes
    ) -> management.Answer:
        """The ``@connections`` API's rules, for both the front door and aiohttp."""
        if stage != self.config.stage:
            return FORBIDDEN
        connection = self._connections.get(connection_id)
        if method == "POST":
            return self._post(connection, body)
        if method not in ("GET", "DELETE"):
            return NOT_ALLOWED
        if connection is None or connection.closing:
            return GONE
        if method == "GET":
            handshake = connection.handshake
            return management.Answer(
                200,
                {
                    "connectedAt": _iso8601(handshake.connected_at),
                    "identity": {
                        "sourceIp": handshake.source_ip,
                        "userAgent": handshake.user_agent,
                    },
                    "lastActiveAt": _iso8601(connection.last_active_ms),
                },
            )
        connection.disconnect = (CLOSE_NORMAL, "Connection deleted through @connections")
        self._track(self._close(connection, CLOSE_NORMAL, ""))
        return management.NO_CONTENT

    def _post(self, connection: Connection | None, data: bytes) -> management.Answer:
        """Delivers a frame: written to the member's socket at once, as one WebSocket frame (the
        front door answers without a coroutine, and aiohttp's writer would need one)."""
        if connection is None or connection.closing:
            return GONE
        transport = connection.transport
        if transport is None or transport.is_closing():
            return GONE
        if transport.get_write_buffer_size() > CLIENT_BUFFER_LIMIT:
            return BUFFER_FULL
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            frame = management.websocket_frame(data, binary=True)
        else:
            frame = management.websocket_frame(data, binary=False)
        transport.write(frame)
        self.metrics.gateway(metrics.MESSAGE_COUNT)
        return management.OK

    # ----- console endpoints ------------------------------------------------------------------------

    async def _admin(self, request: web.BaseRequest) -> web.Response:
        if not _is_loopback(request.remote):
            return web.json_response(
                {
                    "ok": False,
                    "error": "forbidden",
                    "message": "the admin endpoint is loopback only",
                },
                status=403,
            )
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(
                {"ok": False, "error": "bad_json", "message": "the body is not JSON"}, status=400
            )
        outcome = await self._invoke("admin", body)
        if outcome.timed_out:
            return web.json_response(
                {"ok": False, "error": "unavailable", "message": "the admin handler timed out"},
                status=504,
            )
        if outcome.error is not None or not isinstance(outcome.result, dict):
            log.error("admin handler failed", exc_info=outcome.error)
            what = outcome.error or TypeError("the admin handler did not return an object")
            return web.json_response(
                {"ok": False, "error": "internal", "message": f"{type(what).__name__}: {what}"},
                status=500,
            )
        return web.json_response(outcome.result, dumps=lambda v: json.dumps(v, default=str))

    async def _metrics(self, request: web.BaseRequest) -> web.Response:
        return web.json_response(self.metrics.snapshot())
