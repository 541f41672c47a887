"""The gateway's side of the handlers' worker processes (``desktop.sandbox.workers`` is theirs).

Each worker is a spawned process joined to the gateway by a socket pair. The gateway writes an
invocation and reads its answer on its own event loop, with no thread in between: a standard
process pool hands every call through a management thread, a feeder thread and a wake-up pipe,
and on the gateway's busy loop those hand-offs (and the GIL they contend for) cost more than
the message they carry.

A worker runs one invocation at a time, in the order they came. An invocation goes to the first
worker with fewer than ``QUEUE_DEPTH`` in it, so the first worker takes everything a classroom
sends one message at a time, and the others only share a burst. Spreading invocations over idle
workers instead, or running them in threads of the gateway's process, puts more busy processes
on the CPUs while a fan-out's frames go out, and measured slower (``docs/benchmarks.md``). A
worker whose oldest invocation has waited ``STUCK_AFTER`` seconds takes no more, so a stuck
handler holds up no one else; when every worker is full the gateway runs the invocation in a
thread. A worker that dies is replaced; the invocations it had fail as crashes.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import multiprocessing
import pickle
import socket
import time
from dataclasses import dataclass, field

from desktop.sandbox import workers

log = logging.getLogger(__name__)

QUEUE_DEPTH = 4
STUCK_AFTER = 1.0


class WorkerDied(Exception):
    """The worker process ended while an invocation was in it."""


@dataclass(eq=False)
class Worker:
    process: multiprocessing.process.BaseProcess
    transport: asyncio.Transport | None = None
    ready: bool = False
    failed: bool = False
    busy: int = 0
    waiting: dict[int, asyncio.Future] = field(default_factory=dict)
    sent: collections.deque[float] = field(default_factory=collections.deque)  # unanswered

    def takes_more(self, now: float) -> bool:
        if not self.ready or self.busy >= QUEUE_DEPTH:
            return False
        return not self.sent or now - self.sent[0] < STUCK_AFTER


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
        self, count: int, environment: dict[str, str], access_key: str, secret_key: str
    ) -> None:
        self.count = count
        self._arguments = (environment, access_key, secret_key)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[Worker] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []  # every one started
        self._numbers = itertools.count(1)
        self._spawning: set[asyncio.Task] = set()
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

    def start(self) -> None:
        """Spawns the workers in the background; until they are ready, ``free()`` is None."""
        self._started = time.perf_counter()
        for _ in range(self.count):
            self._spawn()

    def _spawn(self) -> None:
        task = asyncio.get_running_loop().create_task(self._start_one())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _start_one(self) -> None:
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        process = self._context.Process(
            target=workers.serve,
            args=(theirs, *self._arguments),
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
            log.warning(
                "a handler worker process did not start (%s); handlers run in threads", error
            )
            return
        finally:
            theirs.close()
        if self._closing:
            mine.close()  # it ends when it sees the socket closed; join() waits for it
            return
        worker = Worker(process)
        self._workers.append(worker)
        await loop.create_connection(lambda: _Channel(self, worker), sock=mine)

    def free(self) -> Worker | None:
        """The first worker that takes another invocation (see the module docstring), if any."""
        now = time.monotonic()
        for worker in self._workers:
            if worker.takes_more(now):
                return worker
        return None

    async def invoke(
        self, worker: Worker, name: str, event: object, context: object
    ) -> tuple[object, BaseException | None, list]:
        """(result, exception or None, metric points) of one invocation in ``worker``.

        The worker stays busy until it answers, even when the caller stops waiting first.
        """
        number = next(self._numbers)
        future = asyncio.get_running_loop().create_future()
        worker.waiting[number] = future
        worker.busy += 1
        worker.sent.append(time.monotonic())
        worker.transport.write(workers.encode((number, name, event, context)))
        return await future

    def _received(self, worker: Worker, message: tuple) -> None:
        kind = message[0]
        if kind == workers.READY:
            worker.ready = True
            if self.ready and not self._announced:
                self._announced = True
                log.info(
                    "%d handler worker process(es) ready in %.0f ms",
                    self.count,
                    (time.perf_counter() - self._started) * 1000.0,
                )
        elif kind == workers.FAILED:
            worker.failed = True
            log.warning(
                "a handler worker process could not load the backend (%s); handlers run in threads",
                message[1],
            )
        else:
            worker.busy -= 1
            worker.sent.popleft()
            future = worker.waiting.pop(kind, None)
            if future is not None and not future.done():
                future.set_result(message[1:])

    def _lost(self, worker: Worker) -> None:
        worker.ready = False
        if worker in self._workers:
            self._workers.remove(worker)
        for future in worker.waiting.values():
            if not future.done():
                future.set_exception(WorkerDied("the handler's worker process died"))
        worker.waiting.clear()
        if self._closing or worker.failed:
            return
        # Reaped in a thread: the process has ended or is about to.
        asyncio.get_running_loop().run_in_executor(None, worker.process.join, 5.0)
        log.error("a handler worker process died; starting a new one")
        self._spawn()

    async def close(self) -> None:
        """Hangs up on every worker (each ends when it sees the socket close)."""
        self._closing = True
        for task in list(self._spawning):
            task.cancel()
        if self._spawning:
            await asyncio.wait(set(self._spawning), timeout=5.0)
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
