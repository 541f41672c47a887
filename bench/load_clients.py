"""Client processes: whole classrooms run in this process's loop or in one of their own, so one
loop's CPU is not the limit of a run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING

from bench.load_members import Fleet
from bench.load_report import FleetResult

if TYPE_CHECKING:
    from bench.load import Plan


def monotonic_at(wall: float) -> float:
    """The monotonic time at wall-clock time ``wall``, for phases shared between processes."""
    return time.monotonic() + (wall - time.time())


class LocalFleet:
    """Classrooms run in this process's loop."""

    def __init__(self, plan: Plan, rooms: list[int], base_url: str) -> None:
        self.fleet = Fleet(plan, rooms, base_url)
        self.pid = os.getpid()

    async def ready(self) -> None:
        pass

    async def open_at(self, wall: float) -> None:
        await self.fleet.open(monotonic_at(wall))

    async def run_at(self, wall: float) -> FleetResult:
        return await self.fleet.run(monotonic_at(wall))

    async def close(self) -> None:
        await self.fleet.close()


def _serve_fleet(connection, plan: Plan, rooms: list[int], base_url: str) -> None:
    """A client process: answers its parent's steps (open at, run at, close) in turn."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        fleet = Fleet(plan, rooms, base_url)
        connection.send("ready")
        try:
            step, wall = await loop.run_in_executor(None, connection.recv)
            await fleet.open(monotonic_at(wall))
            connection.send("opened")
            step, wall = await loop.run_in_executor(None, connection.recv)
            connection.send(await fleet.run(monotonic_at(wall)))
            await loop.run_in_executor(None, connection.recv)
        finally:
            await fleet.close()
        connection.send("closed")

    run_loop(serve())


class RemoteFleet:
    """Classrooms run in a client process of their own (``multiprocessing``, spawned)."""

    def __init__(self, plan: Plan, rooms: list[int], base_url: str) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve_fleet, args=(theirs, plan, rooms, base_url), daemon=True
        )
        self.process.start()
        self.pid = self.process.pid

    async def _receive(self):
        answer = await asyncio.get_running_loop().run_in_executor(None, self.connection.recv)
        return answer

    async def ready(self) -> None:
        await self._receive()

    async def open_at(self, wall: float) -> None:
        self.connection.send(("open", wall))
        await self._receive()

    async def run_at(self, wall: float) -> FleetResult:
        self.connection.send(("run", wall))
        return await self._receive()

    async def close(self) -> None:
        self.connection.send(("close", 0))
        with contextlib.suppress(EOFError):
            await self._receive()
        await asyncio.get_running_loop().run_in_executor(None, self.process.join, 30)


def run_loop(coroutine):
    """Runs ``coroutine`` on uvloop where there is one."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
