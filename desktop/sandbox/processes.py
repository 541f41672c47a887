"""The gateway's side of the handlers' worker processes (``desktop.sandbox.workers`` is theirs).

Every handler invocation runs in a worker process, never in the gateway's: the gateway's event
loop relays every delivery, and a handler running beside it under the same GIL slows every
classroom at once. Each worker is a spawned process joined to the gateway by a socket pair; the
gateway writes an invocation and reads its answer on its own event loop, with no thread in
between.

Invocations wait in one queue with a bound: at most ``queue_limit`` of them, none longer than
``MAX_WAIT``. A worker runs one invocation at a
time and is handed up to ``QUEUE_DEPTH`` at once, so it never waits for the gateway between two;
the first worker with room takes the next one, so the first takes everything a classroom sends
one message at a time and the others share a burst (fewer busy processes on the CPUs while a
fan-out's frames go out). A worker whose oldest invocation has run ``STUCK_AFTER`` seconds takes
no more. Past the bound an invocation is refused (``Overloaded``): API Gateway answers
a throttled route at once too, and nothing waits half a minute in a queue. A handler still
running at the integration timeout has its worker killed and replaced, as Lambda ends an
invocation at its timeout; a worker that dies fails what it had (``WorkerDied``).

A handler's management API calls come back over the same socket (``workers.CALL``): the gateway
answers them through ``Management``, a fan-out in one message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import pickle
import socket
import time
from dataclasses import dataclass, field
from typing import Protocol

from desktop.sandbox import workers

log = logging.getLogger(__name__)

QUEUE_DEPTH = 4
STUCK_AFTER = 1.0
# No invocation waits for a worker longer than this: past it, it is refused as throttled (and
# while the oldest one waiting has waited this long, so is every new one). A client hears soon
# that its frame was throttled, rather than late that it was not.
MAX_WAIT = 0.8


class Overloaded(Exception):
    """Every worker is busy and the queue is at its bound: the invocation is refused at once."""


class WorkerDied(Exception):
    """The worker process ended while an invocation was in it, or none could start."""


class Management(Protocol):
    """What the gateway offers its workers' posters: the ``@connections`` operations."""

    async def post_many(self, posts: list[tuple[str, bytes]]) -> list[int]: ...

    def get(self, connection_id: str) -> tuple[int, dict | None]: ...

    def delete(self, connection_id: str) -> int: ...


@dataclass(eq=False)
class _Invocation:
    message: bytes
    future: asyncio.Future
    queued: float = 0.0
    sent: float = 0.0
    worker: Worker | None = None


@dataclass(eq=False)
class Worker:
    process: multiprocessing.process.BaseProcess
    transport: asyncio.Transport | None = None
    ready: bool = False
    failed: bool = False
    # Handed to the worker and not yet answered, oldest first (it answers in order).
    running: collections.deque[_Invocation] = field(default_factory=collections.deque)

    def takes_more(self, now: float) -> bool:
        if not self.ready or len(self.running) >= QUEUE_DEPTH:
            return False
        return not self.running or now - self.running[0].sent < STUCK_AFTER


class _Channel(asyncio.Protocol):
    """Length-prefixed pickles from one worker, handed to the pool as they complete."""

    def __init__(self, pool: WorkerPool, worker: Worker) -> None:
        self.pool = pool
        self.worker = worker
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.worker.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        header = workers.HEADER
        while len(buffer) >= header.size:
            (size,) = header.unpack_from(buffer)
            end = header.size + size
            if len(buffer) < end:
                return
            message = pickle.loads(buffer[header.size : end])
            del buffer[:end]
            self.pool._received(self.worker, message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool._lost(self.worker)


class WorkerPool:
    """``count`` worker processes, started, fed and replaced from the gateway's event loop."""

    def __init__(
        self,
        count: int,
        setup: workers.WorkerSetup,
        management: Management,
        queue_limit: int,
    ) -> None:
        self.count = count
        self.queue_limit = queue_limit
        self._setup = setup
        self._management = management
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[Worker] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []  # every one started
        self._queue: collections.deque[_Invocation] = collections.deque()
        self._spawning: set[asyncio.Task] = set()
        self._calls: set[asyncio.Task] = set()
        self._failure: str | None = None
        # Since when some worker takes invocations (None while none does, as at start-up): a
        # wait for a worker counts from then, so the first frames are not refused for the time
        # the workers took to start.
        self._serving_since: float | None = None
        self._closing = False
        self._started = 0.0
        self._announced = False

    @property
    def ready(self) -> bool:
        """Whether every worker has loaded the backend and takes invocations."""
        return sum(1 for worker in self._workers if worker.ready) == self.count

    @property
    def pids(self) -> list[int]:
        return sorted(w.process.pid for w in self._workers if w.process.pid is not None)

    @property
    def queued(self) -> int:
        """Invocations waiting for a worker."""
        return len(self._queue)

    def start(self) -> None:
        """Spawns the workers in the background; invocations queue until one is ready."""
        self._started = time.perf_counter()
        for _ in range(self.count):
            self._spawn()

    def _spawn(self) -> None:
        task = asyncio.get_running_loop().create_task(self._start_one())
        self._spawning.add(task)
        task.add_done_callback(self._spawned)

    def _spawned(self, task: asyncio.Task) -> None:
        self._spawning.discard(task)
        self._fail_queue_if_hopeless()

    async def _start_one(self) -> None:
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        process = self._context.Process(
            target=workers.serve,
            args=(theirs, self._setup),
            name="sandbox-handler-worker",
            daemon=True,
        )
        self._processes.append(process)
        try:
            # Spawning blocks for a moment (a new interpreter is exec'd): not on the loop.
            await loop.run_in_executor(None, process.start)
        except asyncio.CancelledError:
            mine.close()
            raise
        except Exception as error:
            mine.close()
            self._failure = f"a handler worker process did not start ({error})"
            log.error("%s", self._failure)
            return
        finally:
            theirs.close()
        if self._closing:
            mine.close()  # it ends when it sees the socket closed; join() waits for it
            return
        worker = Worker(process)
        self._workers.append(worker)
        await loop.create_connection(lambda: _Channel(self, worker), sock=mine)

    # ----- invocations ------------------------------------------------------------------

    async def invoke(
        self, reference: str, event: object, context: object, timeout: float
    ) -> tuple[object, BaseException | None, list]:
        """(result, exception or None, metric points) of one invocation.

        Raises ``Overloaded`` at once when the queue is full, ``WorkerDied`` when its worker
        died or none can run it, and ``TimeoutError`` past ``timeout`` (its worker is replaced).
        """
        if self._hopeless():
            raise WorkerDied(self._failure or "no handler worker process is running")
        queue = self._queue
        now = time.monotonic()
        self._expire(now)
        if len(queue) >= self.queue_limit or (queue and self._waited(queue[0], now) > MAX_WAIT):
            raise Overloaded()
        message = workers.encode((workers.INVOKE, reference, event, context))
        invocation = _Invocation(message, asyncio.get_running_loop().create_future(), now)
        self._queue.append(invocation)
        self._dispatch()
        try:
            return await asyncio.wait_for(invocation.future, timeout)
        except TimeoutError:
            self._abandon(invocation)
            raise

    def _waited(self, invocation: _Invocation, now: float) -> float:
        if self._serving_since is None:
            return 0.0
        return now - max(invocation.queued, self._serving_since)

    def _expire(self, now: float) -> None:
        """Refuses the invocations that have waited ``MAX_WAIT`` for a worker."""
        queue = self._queue
        while queue and self._waited(queue[0], now) > MAX_WAIT:
            invocation = queue.popleft()
            if not invocation.future.done():
                invocation.future.set_exception(Overloaded())

    def _dispatch(self) -> None:
        queue = self._queue
        now = time.monotonic()
        self._expire(now)
        while queue:
            worker = next((w for w in self._workers if w.takes_more(now)), None)
            if worker is None:
                return
            invocation = queue.popleft()
            if invocation.future.done():
                continue
            invocation.worker, invocation.sent = worker, now
            worker.running.append(invocation)
            worker.transport.write(invocation.message)  # type: ignore[union-attr]

    def _abandon(self, invocation: _Invocation) -> None:
        """An invocation past its timeout: dropped from the queue, or its worker replaced."""
        worker = invocation.worker
        if worker is None:
            if invocation in self._queue:
                self._queue.remove(invocation)
            return
        if invocation in worker.running and worker.process.is_alive():
            log.error("a handler ran past the integration timeout; replacing its worker process")
            worker.ready = False  # given nothing more while it dies
            if not any(other.ready for other in self._workers):
                self._serving_since = None
            worker.process.kill()

    def _hopeless(self) -> bool:
        """No worker runs and none is starting: nothing queued would ever run."""
        return not self._closing and not self._workers and not self._spawning

    def _fail_queue_if_hopeless(self) -> None:
        if not self._hopeless():
            return
        why = self._failure or "no handler worker process is running"
        while self._queue:
            invocation = self._queue.popleft()
            if not invocation.future.done():
                invocation.future.set_exception(WorkerDied(why))

    # ----- messages from the workers ---------------------------------------------------

    def _received(self, worker: Worker, message: tuple) -> None:
        kind = message[0]
        if kind == workers.ANSWER:
            invocation = worker.running.popleft()
            if not invocation.future.done():
                invocation.future.set_result(message[1:])
            self._dispatch()
        elif kind == workers.CALL:
            self._call(worker, message[1], message[2])
        elif kind == workers.READY:
            worker.ready = True
            if self._serving_since is None:
                self._serving_since = time.monotonic()
            if self.ready and not self._announced:
                self._announced = True
                log.info(
                    "%d handler worker process(es) ready in %.0f ms",
                    self.count,
                    (time.perf_counter() - self._started) * 1000.0,
                )
            self._dispatch()
        elif kind == workers.FAILED:
            worker.failed = True
            self._failure = f"a handler worker process could not load the backend ({message[1]})"
            log.error("%s", self._failure)

    def _reply(self, worker: Worker, value: object) -> None:
        transport = worker.transport
        if transport is not None and not transport.is_closing():
            transport.write(workers.encode((workers.REPLY, value)))

    def _call(self, worker: Worker, operation: str, argument) -> None:
        management = self._management
        if operation == "post_many":
            task = asyncio.get_running_loop().create_task(self._post_many(worker, argument))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
        elif operation == "get":
            self._reply(worker, management.get(argument))
        elif operation == "delete":
            self._reply(worker, management.delete(argument))
        else:
            self._reply(worker, 400)

    async def _post_many(self, worker: Worker, posts: list[tuple[str, bytes]]) -> None:
        self._reply(worker, await self._management.post_many(posts))

    def _lost(self, worker: Worker) -> None:
        worker.ready = False
        if worker in self._workers:
            self._workers.remove(worker)
        if not any(other.ready for other in self._workers):
            self._serving_since = None
        while worker.running:
            invocation = worker.running.popleft()
            if not invocation.future.done():
                invocation.future.set_exception(WorkerDied("the handler's worker process died"))
        if self._closing:
            return
        if worker.failed:
            self._fail_queue_if_hopeless()
            return
        # Reaped in a thread: the process has ended or is about to.
        asyncio.get_running_loop().run_in_executor(None, worker.process.join, 5.0)
        log.error("a handler worker process ended; starting a new one")
        self._spawn()
        self._dispatch()

    # ----- stopping ----------------------------------------------------------------------

    async def close(self) -> None:
        """Hangs up on every worker (each ends when it sees the socket close)."""
        self._closing = True
        for task in list(self._spawning):
            task.cancel()
        if self._spawning:
            await asyncio.wait(set(self._spawning), timeout=5.0)
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=5.0)
        for worker in list(self._workers):
            if worker.transport is not None:
                worker.transport.close()

    def join(self, timeout: float) -> None:
        """Waits for the workers to end, then kills any that have not (a stuck handler; a worker
        ignores SIGTERM, see ``workers.initialize``)."""
        processes, self._processes = self._processes, []
        deadline = time.monotonic() + timeout
        for process in processes:
            if process.pid is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("a handler worker process did not exit; stopping it")
                process.kill()
                process.join(timeout)
