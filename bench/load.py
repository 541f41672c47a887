"""School load: a whole school's classrooms on the sandbox at once. Not a test (but
``--check`` makes it one, and ``tests/sandbox/test_load.py`` runs a small version); figures go
to docs/benchmarks.md.

1,000 members (a teacher and 49 students in each of 20 classrooms) connect at 100 a second,
then every classroom sends 10 messages a second for 60 seconds, the sender rotating among its
members: 200 messages a second into the sandbox and about 9,800 deliveries a second out of it.
Every member behaves as PROTOCOL.md says clients do: it keeps the seqs it holds, and a gap
(a ``message`` whose seq skips one it does not hold) still open ``--gap-wait`` seconds later
is asked for with ``sync`` from the last seq it holds without a gap. Concurrent fan-outs
reorder a room's messages by milliseconds; a client that asked at every reorder would double
the sandbox's work just when it is busiest. After the last send, a member still missing a seq
its room's sender was acked asks ``sync`` too (as a client does once the next message or a
reconnect shows it the gap), until every send is answered and every member holds every acked
seq, or ``--grace`` seconds have passed.

The sandbox (``classroom-console sandbox``: the gateway, its worker processes, the
redis-server it starts) runs in its own process, with the per-connection rate limit off
(``--rate-limit 0``). The members run on uvloop with aiohttp's WebSocket client, whole
classrooms in each of ``--client-processes`` (2; 1 runs them in this process). Each process's
CPU time comes from /proc, sampled every second, so the report shows the client was not the
limit.

    python bench/load.py                                  # the full run (about 2 minutes)
    python bench/load.py --phases 20:30,10:30             # 2x for 30 s, then back to 1x
    python bench/load.py --connections 200 --rooms 10 --duration 10 --check   # as in CI
    python bench/load.py --sandbox-arg="--worker-processes 3" --json figures.json

``--check`` exits 1 unless every member connected and stayed connected, no delivery was lost
and every send was answered (timings are reported, never checked).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load_clients import LocalFleet, RemoteFleet, monotonic_at, run_loop  # noqa: E402
from bench.load_members import sleep_until  # noqa: E402
from bench.load_report import FleetResult, goals, print_report, summarize  # noqa: E402
from bench.processes import Snapshot, snapshot, start_sandbox, stop_process  # noqa: E402
from desktop.sandbox.loopback import free_port, wait_for_port  # noqa: E402


@dataclass(frozen=True)
class Plan:
    """What the school does; the same plan drives every client process."""

    connections: int = 1000
    rooms: int = 20
    open_rate: float = 100.0  # handshakes started per second, across the school
    phases: tuple[tuple[float, float], ...] = ((10.0, 60.0),)  # (messages/s per room, seconds)
    gap_wait: float = 0.5
    grace: float = 60.0
    client_processes: int = 1
    run_id: str = ""

    @property
    def duration(self) -> float:
        return sum(seconds for _, seconds in self.phases)

    def room_name(self, room: int) -> str:
        return f"school-{self.run_id}-{room}"

    def members_of(self, room: int) -> list[int]:
        """School-wide member numbers of ``room``: member ``i`` is in room ``i % rooms``."""
        return list(range(room, self.connections, self.rooms))

    def timeline(self, rooms: list[int]) -> list[tuple[float, int]]:
        """(seconds after the send phase starts, room) of every send by ``rooms``, in order.

        Within a phase a room sends every ``1/rate`` seconds and the rooms are spread evenly
        over that interval, so the school sends at an even pace rather than in bursts of one
        message per room.
        """
        sends = []
        started = 0.0
        for rate, seconds in self.phases:
            count = round(rate * seconds)
            for room in rooms:
                offset = room / self.rooms
                sends += [(started + (k + offset) / rate, room) for k in range(count)]
            started += seconds
        sends.sort()
        return sends


class Sampler:
    """Snapshots once a second of the send phase and whenever asked, for the report."""

    def __init__(self, sandbox_pid: int, client_pids: list[int]) -> None:
        self.sandbox_pid = sandbox_pid
        self.client_pids = client_pids
        self.marks: dict[str, Snapshot] = {}
        self.seconds: list[Snapshot] = []
        self.peak_rss: dict[str, int] = {}
        self.task: asyncio.Task | None = None

    def mark(self, name: str) -> Snapshot:
        taken = self._take()
        self.marks[name] = taken
        return taken

    def _take(self) -> Snapshot:
        taken = snapshot(self.sandbox_pid, self.client_pids)
        for role, value in taken.rss.items():
            self.peak_rss[role] = max(self.peak_rss.get(role, 0), value)
        return taken

    def every_second_from(self, start: float, through: int) -> None:
        """Snapshots at ``start`` and every second after it; ``stop`` waits for the one at
        ``start + through``."""
        self.through = asyncio.Event()

        async def sample() -> None:
            for second in itertools.count():
                await sleep_until(start + second)
                self.seconds.append(self._take())
                if second == through:
                    self.through.set()

        self.task = asyncio.create_task(sample())

    async def stop(self) -> None:
        if self.task is not None:
            await self.through.wait()
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def run(
    plan: Plan,
    sandbox_args: list[str] = (),
    log: Path | None = None,
    progress=print,
) -> dict:
    """One school's run against a sandbox of its own; the report as a dict (see ``summarize``)."""
    if not plan.run_id:
        plan = dataclasses.replace(plan, run_id=f"{int(time.time())}-{os.getpid()}")
    loop = asyncio.get_running_loop()
    port = free_port()
    sandbox = start_sandbox(port, list(sandbox_args), log)
    fleets: list[LocalFleet | RemoteFleet] = []
    try:
        await loop.run_in_executor(None, wait_for_port, port, 30.0)
        base_url = f"ws://127.0.0.1:{port}/local"
        shares = [
            list(range(p, plan.rooms, plan.client_processes)) for p in range(plan.client_processes)
        ]
        kind = LocalFleet if plan.client_processes == 1 else RemoteFleet
        fleets = [kind(plan, rooms, base_url) for rooms in shares if rooms]
        await asyncio.gather(*(fleet.ready() for fleet in fleets))
        sampler = Sampler(sandbox.pid, [fleet.pid for fleet in fleets])

        progress(
            f"opening {plan.connections} connections to {plan.rooms} classrooms at "
            f"{plan.open_rate:g}/s",
            flush=True,
        )
        opened_at = time.time() + 0.2
        sampler.mark("open")
        await asyncio.gather(*(fleet.open_at(opened_at) for fleet in fleets))
        sampler.mark("opened")
        if sandbox.poll() is not None:
            raise RuntimeError(f"the sandbox exited with code {sandbox.returncode}")

        phases = ", ".join(f"{rate:g} msg/s per room for {s:g} s" for rate, s in plan.phases)
        progress(f"sending: {phases}", flush=True)
        start_wall = time.time() + 0.5
        start = monotonic_at(start_wall)
        sampler.every_second_from(start, math.ceil(plan.duration))
        results = await asyncio.gather(*(fleet.run_at(start_wall) for fleet in fleets))
        sampler.mark("drained")
        await sampler.stop()
        sandbox_alive = sandbox.poll() is None
        progress("closing", flush=True)
        await asyncio.gather(*(fleet.close() for fleet in fleets))
    finally:
        await loop.run_in_executor(None, stop_process, sandbox, 60.0)
    total = FleetResult()
    for result in results:
        total.merge(result)
    return summarize(plan, total, sampler, sandbox_alive)


def _phases(text: str) -> tuple[tuple[float, float], ...]:
    try:
        phases = tuple(
            (float(rate), float(seconds))
            for rate, seconds in (part.split(":") for part in text.split(","))
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not RATE:SECONDS[,RATE:SECONDS...], e.g. 20:30,10:30"
        ) from None
    if not phases or any(rate <= 0 or seconds <= 0 for rate, seconds in phases):
        raise argparse.ArgumentTypeError("rates and seconds must be positive")
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000, help="members (default 1000)")
    parser.add_argument("--rooms", type=int, default=20, help="classrooms (default 20)")
    parser.add_argument(
        "--open-rate", type=float, default=100.0, help="connections opened per second (100)"
    )
    parser.add_argument(
        "--rate", type=float, default=10.0, help="messages per second per classroom (10)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending (60)")
    parser.add_argument(
        "--phases",
        type=_phases,
        metavar="RATE:S,...",
        help="sending in phases instead of --rate/--duration, e.g. 20:30,10:30 (2x, then 1x)",
    )
    parser.add_argument(
        "--gap-wait",
        type=float,
        default=0.5,
        metavar="S",
        help="a member asks sync for a gap still open this long (default 0.5)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=60.0,
        metavar="S",
        help="after the last send, how long answers and recoveries may take (default 60)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        metavar="N",
        help="client processes, each with whole classrooms (default 2; 1 runs them in this one)",
    )
    parser.add_argument(
        "--sandbox-arg",
        action="append",
        default=[],
        metavar="ARG",
        help='passed to the sandbox command (split like a shell), e.g. --sandbox-arg="--rate-limit 0"',
    )
    parser.add_argument("--sandbox-log", type=Path, metavar="FILE", help="the sandbox's output")
    parser.add_argument("--per-second", action="store_true", help="print the per-second table")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless nothing was lost or unanswered"
    )
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        print("bench/load.py reads /proc for CPU: it runs on Linux only.")
        return 2
    if args.connections < args.rooms or args.rooms < 1:
        parser.error("every classroom needs a member: --connections at least --rooms")
    plan = Plan(
        connections=args.connections,
        rooms=args.rooms,
        open_rate=args.open_rate,
        phases=args.phases or ((args.rate, args.duration),),
        gap_wait=args.gap_wait,
        grace=args.grace,
        client_processes=max(1, min(args.client_processes, args.rooms)),
    )
    sandbox_args = [word for arg in args.sandbox_arg for word in shlex.split(arg)]
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", flush=True)
    report = run_loop(run(plan, sandbox_args, args.sandbox_log))
    print_report(report, args.per_second or len(plan.phases) > 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.check:
        met = goals(report)
        for text, ok in met:
            print(f"{'met' if ok else 'NOT met'}: {text}")
        return 0 if all(ok for _, ok in met) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
