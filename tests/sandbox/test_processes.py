"""The worker pool on real worker processes: where invocations go, the queue's bound, a handler
past its timeout, a worker that dies."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import uuid

import pytest

from backend import config
from desktop.sandbox import workers
from desktop.sandbox.processes import QUEUE_DEPTH, Overloaded, WorkerDied, WorkerPool
from desktop.sandbox.workers import WorkerSetup
from tests.sandbox import integrations

BLOCKS = integrations.reference("blocks")


def run_with_pool(redis_server: str, count: int, queue_limit: int, scenario) -> None:
    """Runs ``scenario(pool)`` on an event loop with ``count`` workers ready."""
    settings = config.load({"REDIS_URL": redis_server, "TOKEN_SECRET": "pool-test-secret"})

    async def main() -> None:
        pool = WorkerPool(count, WorkerSetup(settings), management=None, queue_limit=queue_limit)
        pool.start()
        try:
            while not pool.ready:  # the workers load the backend in the background
                await asyncio.sleep(0.02)
            await scenario(pool)
        finally:
            await pool.close()
            await asyncio.get_running_loop().run_in_executor(None, pool.join, 10.0)

    asyncio.run(main())


def key() -> str:
    return uuid.uuid4().hex


def test_the_first_worker_takes_invocations_while_it_has_room(redis_server):
    async def scenario(pool: WorkerPool) -> None:
        pids = set()
        for _ in range(5):  # one at a time: all in the first worker
            result, error, _ = await pool.invoke(BLOCKS, {"key": key()}, None, 10)
            assert error is None
            pids.add(result["pid"])
        assert len(pids) == 1
        # While the first is full of waiting invocations, the next goes to the second.
        held = key()
        waiting = [
            asyncio.ensure_future(pool.invoke(BLOCKS, {"key": key(), "release": held}, None, 10))
            for _ in range(QUEUE_DEPTH)
        ]
        await asyncio.sleep(0)  # each is handed to a worker before the next invocation
        result, _, _ = await pool.invoke(BLOCKS, {"key": key()}, None, 10)
        assert result["pid"] not in pids
        integrations.release(redis_server, held, QUEUE_DEPTH)
        for done in await asyncio.gather(*waiting):
            assert done[0]["pid"] in pids

    run_with_pool(redis_server, 2, 10, scenario)


def test_past_the_queue_bound_an_invocation_is_refused_at_once(redis_server):
    async def scenario(pool: WorkerPool) -> None:
        held = key()
        accepted = [
            asyncio.ensure_future(pool.invoke(BLOCKS, {"key": key(), "release": held}, None, 10))
            for _ in range(QUEUE_DEPTH + 3)
        ]
        await asyncio.sleep(0)
        assert pool.queued == 3
        with pytest.raises(Overloaded):
            await pool.invoke(BLOCKS, {"key": key()}, None, 10)
        integrations.release(redis_server, held, QUEUE_DEPTH + 3)
        assert all(error is None for _, error, _ in await asyncio.gather(*accepted))
        assert (await pool.invoke(BLOCKS, {"key": key()}, None, 10))[1] is None

    run_with_pool(redis_server, 1, 3, scenario)


def test_a_handler_past_its_timeout_has_its_worker_replaced(redis_server):
    async def scenario(pool: WorkerPool) -> None:
        [before] = pool.pids
        with pytest.raises(TimeoutError):
            await pool.invoke(BLOCKS, {"key": key(), "release": key()}, None, 0.5)
        result, error, _ = await pool.invoke(BLOCKS, {"key": key()}, None, 30)
        assert error is None and result["pid"] != before

    run_with_pool(redis_server, 1, 10, scenario)


def test_a_worker_that_dies_fails_what_it_had_and_is_replaced(redis_server):
    async def scenario(pool: WorkerPool) -> None:
        [pid] = pool.pids
        started = key()
        running = asyncio.ensure_future(
            pool.invoke(BLOCKS, {"key": started, "release": key()}, None, 30)
        )
        while not integrations.recorded(redis_server, started):
            await asyncio.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerDied):
            await running
        result, error, _ = await pool.invoke(BLOCKS, {"key": key()}, None, 30)
        assert error is None and result["pid"] != pid

    run_with_pool(redis_server, 1, 10, scenario)


def test_a_worker_whose_gateway_hung_up_while_it_started_ends_quietly(redis_server):
    # The sandbox stopped (or was killed) before the worker had loaded the backend: the
    # worker's "ready" meets a closed socket. It exits cleanly, with no traceback.
    settings = config.load({"REDIS_URL": redis_server, "TOKEN_SECRET": "x"})
    mine, theirs = socket.socketpair()
    worker = multiprocessing.get_context("spawn").Process(
        target=workers.serve, args=(theirs, WorkerSetup(settings))
    )
    worker.start()
    theirs.close()
    mine.close()
    worker.join(60)
    assert worker.exitcode == 0


def test_invocations_made_while_the_workers_start_wait_for_them(redis_server):
    settings = config.load({"REDIS_URL": redis_server, "TOKEN_SECRET": "pool-test-secret"})

    async def main() -> None:
        pool = WorkerPool(1, WorkerSetup(settings), management=None, queue_limit=10)
        pool.start()  # a cold start takes longer than any invocation may wait in the queue
        try:
            assert not pool.ready
            answers = await asyncio.gather(
                *(pool.invoke(BLOCKS, {"key": key()}, None, 30) for _ in range(3))
            )
            assert [error for _, error, _ in answers] == [None] * 3
        finally:
            await pool.close()
            await asyncio.get_running_loop().run_in_executor(None, pool.join, 10.0)

    asyncio.run(main())
