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
- Every route is throttled with the stage's rate and burst (``desktop.sandbox.throttling``), and
  invocations wait for a worker in a bounded queue (``desktop.sandbox.processes``): a frame past
  either is answered at once with API Gateway's ``Too Many Requests`` frame.
- ``/{stage}/@connections/{id}`` is the management API on the same port, as in AWS
  (``desktop.sandbox.connections``); a handler's own fan-out reaches it over its worker's channel.
- Handlers run in worker processes only, never in the gateway's (``desktop.sandbox.workers``);
  one that raises earns its client API Gateway's ``Internal server error`` frame and nothing else
  stops.
- ``POST /_admin`` runs the admin handler; ``GET /_metrics`` serves per-minute metrics (see
  ``desktop.sandbox.metrics`` for what each one counts).

Where the sandbox is stricter or simpler than AWS, ``docs/sandbox.md`` says so.

The sandbox never reads or writes the process environment: its workers get their settings,
poster and metric sink in one configuration call, so several sandboxes can run in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import getpass
import hmac
import json
import logging
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from desktop.sandbox import (
    connections,
    events,
    guard,
    iam,
    loopback,
    metrics,
    policy,
    redaction,
    redis_server,
    throttling,
)
from desktop.sandbox.connections import Connection
from desktop.sandbox.events import Handshake
from desktop.sandbox.processes import Overloaded, WorkerDied, WorkerPool
from desktop.sandbox.workers import BACKEND_HANDLERS, WorkerSetup
from desktop.services.errors import SandboxError

MAX_MESSAGE_BYTES = connections.MAX_MESSAGE_BYTES
INTEGRATION_TIMEOUT = 29.0
CLOSE_TIMEOUT = 5.0
STOP_TIMEOUT = 30.0
SHUTDOWN_GRACE = 1.0
MESSAGE_ROUTES = ("send", "sync", "who", "ping")
STAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
RESERVED_PATHS = ("_admin", "_metrics")

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_TOO_BIG = 1009

# The frames API Gateway sends a client when a route's integration gives no answer.
THROTTLED = "Too Many Requests"
INTERNAL_ERROR = "Internal server error"
TIMED_OUT = "Endpoint request timed out"

log = logging.getLogger("desktop.sandbox")


@dataclass(frozen=True)
class SandboxConfig:
    """Where the sandbox listens and the limits it enforces (API Gateway's by default)."""

    host: str = "127.0.0.1"
    port: int = 8765
    stage: str = "local"
    redis_url: str | None = None
    token_secret: str | None = None
    # The key /_admin and /_metrics want (default: made once in the user's config folder).
    admin_key: str | None = None
    idle_timeout: float = 600.0
    max_lifetime: float = 7200.0
    # Handler invocations run in this many worker processes.
    worker_processes: int = 2
    # Invocations waiting for a worker, at most; past it a frame is answered Too Many Requests.
    queue_limit: int = 1000
    # The stage's route throttling: the template's ThrottlingRateLimit and ThrottlingBurstLimit.
    throttle_rate: float = 1000.0
    throttle_burst: int = 2000
    # The backend's own per-connection send limit (RATE_LIMIT_PER_SECOND; 0 turns it off).
    rate_limit_per_second: int = 50
    region: str = "us-east-1"
    metrics_namespace: str = "ClassroomConsole"
    # Listening beyond loopback must be asked for: it exposes the sandbox to the network.
    expose: bool = False
    # A request whose head, or body, has not arrived by then is cut; so is an idle keep-alive
    # connection (aiohttp's keep-alive timer runs until a request's head has been read).
    header_timeout: float = 10.0


@dataclass
class Integrations:
    """The Lambda entry points the gateway invokes, as ``module:function`` references that the
    worker processes import; a test names another to simulate a failing Lambda.

    The gateway reads the reference at each invocation, so replacing one takes effect at once.
    """

    authorizer: str = BACKEND_HANDLERS["authorizer"]
    connect: str = BACKEND_HANDLERS["connect"]
    disconnect: str = BACKEND_HANDLERS["disconnect"]
    messages: str = BACKEND_HANDLERS["messages"]
    admin: str = BACKEND_HANDLERS["admin"]


FUNCTION_NAMES = {
    "authorizer": "classroom-authorizer",
    "connect": "classroom-connect",
    "disconnect": "classroom-disconnect",
    "messages": "classroom-messages",
    "admin": "classroom-admin",
}


@dataclass
class Invocation:
    """How one handler invocation went: its result, or the exception, or no answer at all."""

    result: object = None
    error: BaseException | None = None
    timed_out: bool = False
    # The worker process running it died: no answer at all, as when a Lambda runtime exits.
    crashed: bool = False
    # Refused at once: the queue for a worker was full.
    throttled: bool = False
    elapsed_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None or self.timed_out or self.throttled


def route_key(body: str) -> tuple[str, str | None]:
    """``$request.body.action``: the route a text frame goes to, and the frame's ``id``."""
    try:
        frame = json.loads(body)
    except (ValueError, RecursionError):
        return events.ROUTE_DEFAULT, None
    if not isinstance(frame, dict):
        return events.ROUTE_DEFAULT, None
    frame_id = frame.get("id")
    frame_id = frame_id if isinstance(frame_id, str) else None
    action = frame.get("action")
    if isinstance(action, str) and action in MESSAGE_ROUTES:
        return action, frame_id
    return events.ROUTE_DEFAULT, frame_id


def _refusal(status: int) -> web.Response:
    """A refused handshake: API Gateway's status with its ``{"message": ...}`` body."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status == 500:
        phrase = INTERNAL_ERROR
    return web.json_response({"message": phrase}, status=status)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux and macOS): every frame is a trip through the loop,
    and uvloop's transports take about a third less CPU per delivery than asyncio's. Elsewhere
    (Windows), asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _not_allowed() -> web.Response:
    return web.Response(status=405, text="405: Method Not Allowed")


def _url_host(host: str) -> str:
    """The host to put in URLs: a wildcard address is reached through loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Sandbox:
    """The gateway, its worker processes, its Redis and its metrics; see the module docstring.

    ``start()`` returns once the gateway listens and raises ``SandboxError`` with a sentence
    when it cannot; ``stop()`` closes every connection (1001, ``$disconnect`` runs) and stops
    the Redis it started. Both are safe to call from any thread.
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, integrations: Integrations | None = None
    ) -> None:
        self.config = config or SandboxConfig()
        self.integrations = integrations or Integrations()
        self.metrics = metrics.MetricsBoard(self.config.metrics_namespace)
        self.api_id = events.api_id()
        self.port: int | None = None
        self.token_secret: str | None = None
        self.token_secret_location: str | None = None
        self.redis_description: str | None = None
        self.admin_key: str | None = None
        self.admin_key_location: str | None = None
        self._redactor: redaction.Redactor | None = None
        self._redis: redis_server.RedisService | None = None
        self._workers: WorkerPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._connections: dict[str, Connection] = {}
        self._pending_ids: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        # The request handlers of WebSocket connections, from handshake to $disconnect.
        self._sessions: set[asyncio.Task] = set()
        self._throttle = throttling.RouteThrottle(
            self.config.throttle_rate, self.config.throttle_burst
        )
        self.connections = connections.ConnectionsApi(
            self.config.stage,
            self._connections,
            self.metrics,
            self._close_later,
            self._signed_by_the_sandbox,
        )
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
        """Whether every worker process has loaded the backend."""
        workers = self._workers
        return workers is not None and workers.ready

    @property
    def worker_pids(self) -> list[int]:
        """The worker processes' ids (none before they spawn)."""
        workers = self._workers
        return workers.pids if workers is not None else []

    @property
    def connection_count(self) -> int:
        """Open client connections (a dict's length: safe to read from any thread)."""
        return len(self._connections)

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def management_credentials(self):
        """The keys ``@connections`` requests must be signed with (SigV4), as IAM would want an
        identity allowed ``execute-api:ManageConnections``; derived from the admin key, so the
        user's own processes have them and no one else."""
        from botocore.credentials import Credentials

        if self.admin_key is None:
            raise SandboxError("The sandbox has not started: it has no management keys yet.")
        derived = hmac.new(self.admin_key.encode(), b"management-api", "sha256").hexdigest()
        return Credentials("SANDBOXMANAGEMENT", derived)

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
            self._state = "starting"
            try:
                self._start()
            except BaseException:
                self._teardown()
                self._state = "stopped"
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

    def _check_config(self) -> None:
        config = self.config
        if not STAGE_NAME.fullmatch(config.stage) or config.stage in RESERVED_PATHS:
            raise SandboxError(
                f"The stage name {config.stage!r} is not usable; use letters, digits, - and _."
            )
        if not 0 <= config.port <= 65535:
            raise SandboxError(f"Port {config.port} is not a port number; use 0 to 65535.")
        if config.idle_timeout <= 0 or config.max_lifetime <= 0:
            raise SandboxError("The idle timeout and the maximum lifetime must be positive.")
        if config.worker_processes < 1:
            raise SandboxError("The sandbox needs at least one worker process for its handlers.")
        if config.queue_limit < 1:
            raise SandboxError("The invocation queue needs room for at least one invocation.")
        if not config.expose and guard.exposed(config.host):
            raise SandboxError(
                f"Listening on {config.host} would expose the sandbox beyond this computer.",
                hint="Ask for it explicitly (--expose), or listen on 127.0.0.1.",
            )

    def _start(self) -> None:
        from desktop.sandbox import secret

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
            if self.config.admin_key:
                self.admin_key, self.admin_key_location = (
                    self.config.admin_key,
                    "given by the caller",
                )
            else:
                key = secret.load_admin_key()
                self.admin_key, self.admin_key_location = key.value, key.location
            self._redactor = redaction.install(
                [self.token_secret, self.admin_key, self.management_credentials.secret_key]
            )
            self._redis = found_redis = redis_server.provide(self.config.redis_url)
            self.redis_description = found_redis.description
            self._workers = WorkerPool(
                self.config.worker_processes,
                WorkerSetup(self._backend_settings()),
                self.connections,
                self.config.queue_limit,
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

    def _backend_settings(self):
        """The settings a Lambda container of this deployment would read from its environment."""
        from backend import config

        assert self._redis is not None

        return config.load(
            {
                "REDIS_URL": self._redis.url,
                "TOKEN_SECRET": self.token_secret,
                "MANAGEMENT_ENDPOINT_URL": self.endpoint_url,
                "RATE_LIMIT_PER_SECOND": str(self.config.rate_limit_per_second),
                "AWS_REGION": self.config.region,
            }
        )

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
            loopback.reuse_address(sock)  # as the console's probe binds (loopback.can_listen)
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
        if self._workers is not None:
            self._workers.join(CLOSE_TIMEOUT)
            self._workers = None
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
        if self._redactor is not None:
            redaction.uninstall(self._redactor)
            self._redactor = None

    # ----- the event loop thread ----------------------------------------------------------

    def _serve(self, sock: socket.socket, ready: threading.Event, failure: list) -> None:
        loop = _new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._runner_for_loop())
            loop.run_until_complete(runner.setup())
            self._listener = loop.run_until_complete(
                loop.create_server(runner.server, sock=sock, backlog=128)  # type: ignore[arg-type]
            )
            self._runner = runner
            if self._workers is not None:
                # They warm up in the background: invocations queue until one is ready.
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
        server = web.Server(
            self._dispatch,
            access_log=None,
            lingering_time=0,
            keepalive_timeout=self.config.header_timeout,
        )
        return web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """Routes every request: ``/{stage}`` (the WebSocket), ``/{stage}/@connections/{id}``,
        ``/_admin`` and ``/_metrics``; aiohttp's low-level server with this one handler."""
        path = request.raw_path.partition("?")[0]
        method = request.method
        where = connections.target(path)
        if where is not None:
            return await self.connections.serve(request, *where)
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
        open_connections = list(self._connections.values())
        # A client that does not answer the close frame soon is cut off: stopping must not hang.
        await asyncio.gather(
            *(
                asyncio.wait_for(self._close(c, CLOSE_GOING_AWAY, "Going away"), SHUTDOWN_GRACE)
                for c in open_connections
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
        """One handler invocation in a worker process, with its own Lambda context."""
        reference = getattr(self.integrations, name)
        context = events.LambdaContext(FUNCTION_NAMES[name], self.region, INTEGRATION_TIMEOUT)
        started = time.perf_counter()
        outcome = Invocation()
        try:
            result, error, points = await self._workers.invoke(  # type: ignore[union-attr]
                reference, event, context, INTEGRATION_TIMEOUT
            )
        except Overloaded:
            outcome.throttled = True
        except TimeoutError:
            outcome.timed_out = True
        except WorkerDied as died:
            outcome.error, outcome.crashed = died, True
        else:
            for point in points:
                self.metrics.handler_metric(*point)
            if error is not None:
                outcome.error = error
            else:
                outcome.result = result
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000.0
        return outcome

    async def _integrate(self, name: str, event: dict) -> tuple[Invocation, int]:
        """A route integration with API Gateway's metrics; returns it and its status code."""
        outcome = await self._invoke(name, event)
        route = event["requestContext"]["routeKey"]
        if outcome.throttled:
            self.metrics.gateway(metrics.CLIENT_ERROR)
            return outcome, 429
        self.metrics.gateway(metrics.INTEGRATION_LATENCY, outcome.elapsed_ms)
        if outcome.timed_out:
            self.metrics.gateway(metrics.EXECUTION_ERROR)
            log.error("%s integration timed out after %.0f s", route, INTEGRATION_TIMEOUT)
            return outcome, 504
        if outcome.crashed:
            self.metrics.gateway(metrics.EXECUTION_ERROR)
            log.error("%s handler's worker process died: %s", route, outcome.error)
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
            writer_limit=connections.WRITER_LIMIT,
        )
        if not ws.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)
        if self._stopping:
            return _refusal(503)
        connection_id = self._new_connection_id()
        session = asyncio.current_task()
        assert session is not None
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
        if not self._throttle.allow(events.ROUTE_CONNECT):
            self.metrics.gateway(metrics.CLIENT_ERROR)
            self._log_refusal(handshake, 429, "$connect throttled")
            return 429, None
        outcome = await self._invoke("authorizer", events.authorizer_event(handshake))
        if outcome.throttled:
            self.metrics.gateway(metrics.CLIENT_ERROR)
            self._log_refusal(handshake, 429, "every handler worker is busy")
            return 429, None
        if outcome.timed_out or outcome.error is not None:
            if outcome.error is not None and str(outcome.error) == "Unauthorized":
                # Lambda authorizers raise Exception("Unauthorized") to answer 401.
                self.metrics.gateway(metrics.CLIENT_ERROR)
                self._log_refusal(handshake, 401, "authorizer answered Unauthorized")
                return 401, None
            self.metrics.gateway(metrics.EXECUTION_ERROR)
            log.error("the authorizer failed: %s", outcome.error or "timed out")
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

    def _close_later(self, connection: Connection) -> None:
        """A DELETE through ``@connections``: the connection closes with 1000."""
        self._track(self._close(connection, connections.CLOSE_NORMAL, ""))

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

    async def _answer(self, connection: Connection, request_id: str, message: str, frame_id):
        """API Gateway's frame for a route that gave no answer, plus the client's frame id so a
        client can tell which of its frames it was (the sandbox's addition; see docs)."""
        frame = {"message": message, "connectionId": connection.connection_id}
        frame["requestId"] = request_id
        if frame_id is not None:
            frame["id"] = frame_id
        if not connection.closing:
            with contextlib.suppress(Exception):
                await connection.ws.send_str(json.dumps(frame))

    async def _route(self, connection: Connection, body: str) -> None:
        """One text frame through its route's integration; a failure earns API Gateway's frame."""
        route, frame_id = route_key(body)
        event = events.message_event(connection.handshake, connection.authorizer, route, body)
        request_id = event["requestContext"]["requestId"]
        if not self._throttle.allow(route):
            self.metrics.gateway(metrics.CLIENT_ERROR)
            await self._answer(connection, request_id, THROTTLED, frame_id)
            return
        outcome, _ = await self._integrate("messages", event)
        if outcome.throttled:
            await self._answer(connection, request_id, THROTTLED, frame_id)
        elif outcome.failed:
            message = TIMED_OUT if outcome.timed_out else INTERNAL_ERROR
            await self._answer(connection, request_id, message, frame_id)

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

    # ----- console endpoints ------------------------------------------------------------------------

    def _refused(self, request: web.BaseRequest) -> web.Response | None:
        """The console endpoints' guard (``desktop.sandbox.guard``), as an answer or None."""
        refusal = guard.check(
            method=request.method,
            host=request.headers.get("Host"),
            origin=request.headers.get("Origin"),
            content_type=request.headers.get("Content-Type"),
            remote=request.remote,
            authorization=request.headers.get("Authorization"),
            admin_key=self.admin_key or "",
            port=self.port or 0,
            bound_host=self.config.host,
        )
        if refusal is None:
            return None
        error = "unauthorized" if refusal.status == 401 else "forbidden"
        return web.json_response(
            {"ok": False, "error": error, "message": refusal.reason},
            status=refusal.status,
            headers=refusal.headers,
        )

    async def _admin(self, request: web.BaseRequest) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            async with asyncio.timeout(self.config.header_timeout):
                body = await request.json()
        except (ValueError, RecursionError):
            return web.json_response(
                {"ok": False, "error": "bad_json", "message": "the body is not JSON"}, status=400
            )
        if isinstance(body, dict) and "staff" in body:
            # The audit log names who runs the sandbox, whatever the caller says it is.
            body["staff"] = operator()
        outcome = await self._invoke("admin", body)
        if outcome.throttled:
            return web.json_response(
                {"ok": False, "error": "unavailable", "message": "the sandbox is overloaded"},
                status=429,
            )
        if outcome.timed_out:
            return web.json_response(
                {"ok": False, "error": "unavailable", "message": "the admin handler timed out"},
                status=504,
            )
        if outcome.error is not None or not isinstance(outcome.result, dict):
            log.error("admin handler failed: %s", outcome.error)
            what = outcome.error or TypeError("the admin handler did not return an object")
            return web.json_response(
                {"ok": False, "error": "internal", "message": f"{type(what).__name__}: {what}"},
                status=500,
            )
        return web.json_response(outcome.result, dumps=lambda v: json.dumps(v, default=str))

    async def _metrics(self, request: web.BaseRequest) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        return web.json_response(self.metrics.snapshot())

    async def _signed_by_the_sandbox(self, request: web.BaseRequest, body: bytes) -> bool:
        """A ``@connections`` request signed with the sandbox's management keys (SigV4)."""
        url = f"http://{request.headers.get('Host', '')}{request.raw_path}"
        try:
            iam.verify(
                request.method,
                url,
                list(request.headers.items()),
                body,
                self.management_credentials,
                self.region,
            )
        except iam.Forbidden as refused:
            log.info("@connections request refused: %s", refused.message)
            return False
        return True


def operator() -> str:
    """The sandbox's own identity for audit logs: the user running it, on this sandbox."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "someone"
    return f"{user}@sandbox"
