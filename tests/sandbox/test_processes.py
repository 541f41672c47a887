"""Which worker process an invocation goes to: the first that takes more, never one stuck."""

from __future__ import annotations

import time

from desktop.sandbox.processes import QUEUE_DEPTH, STUCK_AFTER, Worker, WorkerPool


def pool_of(*workers: Worker) -> WorkerPool:
    pool = WorkerPool(len(workers), {}, "key", "secret")
    pool._workers.extend(workers)
    return pool


def worker(busy: int = 0, waited: float = 0.0, ready: bool = True) -> Worker:
    now = time.monotonic()
    member = Worker(process=None, ready=ready, busy=busy)  # type: ignore[arg-type]
    member.sent.extend(now - waited for _ in range(busy))
    return member


def test_the_first_worker_takes_invocations_while_it_has_room():
    first, second = worker(busy=1), worker()
    assert pool_of(first, second).free() is first  # queued behind its first, not spread
    first.busy = QUEUE_DEPTH
    first.sent.extend([time.monotonic()] * (QUEUE_DEPTH - 1))
    assert pool_of(first, second).free() is second


def test_a_worker_that_is_not_ready_takes_nothing():
    assert pool_of(worker(ready=False)).free() is None
    starting, ready = worker(ready=False), worker()
    assert pool_of(starting, ready).free() is ready


def test_no_invocation_queues_behind_a_stuck_handler():
    stuck, free = worker(busy=1, waited=STUCK_AFTER + 0.5), worker()
    assert pool_of(stuck, free).free() is free
    # With every worker stuck or full, the gateway runs the invocation in a thread.
    assert pool_of(stuck).free() is None
    assert pool_of(worker(busy=QUEUE_DEPTH)).free() is None


def test_a_worker_whose_gateway_hung_up_while_it_started_ends_quietly():
    # The sandbox stopped (or was killed) before the worker had loaded the backend: the
    # worker's "ready" meets a closed socket. It exits cleanly, with no traceback.
    import multiprocessing
    import socket

    from desktop.sandbox import workers

    mine, theirs = socket.socketpair()
    worker = multiprocessing.get_context("spawn").Process(
        target=workers.serve, args=(theirs, {}, "key", "secret")
    )
    worker.start()
    theirs.close()
    mine.close()
    worker.join(60)
    assert worker.exitcode == 0
