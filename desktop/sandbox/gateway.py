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
import errno
import hmac
import logging
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web
from botocore.credentials import Credentials

from desktop.sandbox import (
    connections,
    events,
    guard,
    iam,
    loopback,
    metrics,
    redaction,
    redis_server,
)
from desktop.sandbox.console_endpoints import ConsoleEndpoints
from desktop.sandbox.invocations import Integrations, Invoker
from desktop.sandbox.processes import WorkerPool
from desktop.sandbox.websocket import CLOSE_GOING_AWAY, WebSocketEndpoint
from desktop.sandbox.workers import WorkerSetup
from desktop.services.errors import SandboxError

MAX_MESSAGE_BYTES = connections.MAX_MESSAGE_BYTES
CLOSE_TIMEOUT = 5.0
STOP_TIMEOUT = 30.0
SHUTDOWN_GRACE = 1.0
STAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
RESERVED_PATHS = ("_admin", "_metrics")


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
        self.metrics = metrics.MetricsBoard(self.config.metrics_namespace)
        self.invoker = Invoker(integrations or Integrations(), self.metrics, self.config.region)
        self._stopping = False
        self.api_id = events.api_id()
        self.port: int | None = None
        self.token_secret: str | None = None
        self.token_secret_location: str | None = None
        self.redis_description: str | None = None
        self.admin_key: str | None = None
        self.admin_key_location: str | None = None
        self._management_credentials: Credentials | None = None
        self._redactor: redaction.Redactor | None = None
        self._redis: redis_server.RedisService | None = None
        self._workers: WorkerPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self.websocket = WebSocketEndpoint(
            self.config,
            self.api_id,
            self.invoker,
            self.metrics,
            self._track,
            lambda: self.port,
            lambda: self._stopping,
        )
        self._connections = self.websocket.connections
        self.connections = connections.ConnectionsApi(
            self.config.stage,
            self._connections,
            self.metrics,
            self.websocket.close_later,
            self._signed_by_the_sandbox,
        )
        self.console = ConsoleEndpoints(
            self.config, self.invoker, self.metrics, lambda: self.admin_key, lambda: self.port
        )
        self._state = "new"
        self._state_lock = threading.Lock()

    # ----- life cycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        thread = self._thread
        return self._state == "running" and thread is not None and thread.is_alive()

    @property
    def integrations(self) -> Integrations:
        """The entry points' references; a test replaces one to simulate a failing Lambda."""
        return self.invoker.integrations

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
        identity allowed ``execute-api:ManageConnections``; derived from the admin key once it
        is known (at start), so the user's own processes have them and no one else."""
        if self._management_credentials is None:
            raise SandboxError("The sandbox has not started: it has no management keys yet.")
        return self._management_credentials

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
            derived = hmac.new(self.admin_key.encode(), b"management-api", "sha256").hexdigest()
            self._management_credentials = Credentials("SANDBOXMANAGEMENT", derived)
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
                self.invoker.pool = self._workers
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
                return await self.console.admin(request) if method == "POST" else _not_allowed()
            if name == "_metrics":
                if method not in ("GET", "HEAD"):
                    return _not_allowed()
                return await self.console.metrics(request)
            if method in ("GET", "HEAD"):
                return await self.websocket.serve(request, name)
            return _not_allowed()
        return web.Response(status=404, text="404: Not Found")

    async def _shutdown(self) -> None:
        self._stopping = True
        open_connections = list(self._connections.values())
        # A client that does not answer the close frame soon is cut off: stopping must not hang.
        await asyncio.gather(
            *(
                asyncio.wait_for(
                    self.websocket.close(c, CLOSE_GOING_AWAY, "Going away"), SHUTDOWN_GRACE
                )
                for c in open_connections
            ),
            return_exceptions=True,
        )
        # Every connection's $disconnect (and frames still in a handler) finishes first.
        sessions = self.websocket.sessions
        if sessions:
            await asyncio.wait(set(sessions), timeout=STOP_TIMEOUT)
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
