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
(``RATE_LIMIT_PER_SECOND=0``). The members run on uvloop with aiohttp's WebSocket client, whole
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
import collections
import contextlib
import dataclasses
import gc
import itertools
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from desktop.sandbox.loopback import free_port, wait_for_port  # noqa: E402

SECRET = "bench-secret-" + "0" * 52
OPEN_TIMEOUT = 30.0  # seconds for one handshake
CLOSE_TIMEOUT = 30.0  # seconds for the members' closes at the end
TAIL_WAIT = 1.0  # after the last send: seconds a member lacks an acked seq before it asks sync
POLL = 0.1  # seconds between looks at the drain's condition
MESSAGE_TYPE = "whiteboard.stroke"
# Answers that mean "not now, slow down": API Gateway's throttling frame and the backend's own.
THROTTLE_FAILURES = ("Too Many Requests",)
THROTTLE_ERRORS = ("rate_limited",)


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


# ----- the members: one process's classrooms ----------------------------------------------------


class Request:
    """A ``send`` or ``sync`` a member made, and the first answer it got."""

    __slots__ = ("kind", "id", "member", "second", "sent_at", "answer", "latency_ms", "at_end")

    def __init__(self, kind: str, request_id: str, member: Member, second: int = -1) -> None:
        self.kind = kind
        self.id = request_id
        self.member = member
        self.second = second  # the send's scheduled second of the send phase
        self.sent_at = 0.0
        self.answer: tuple[str, str] | None = (
            None  # ("ack", ""), ("error", code), ("failure", text)
        )
        self.latency_ms = math.nan
        self.at_end = False


class Member:
    """One connection: the seqs it holds (all up to ``low``, and ``above``), what it asked."""

    __slots__ = (
        "number",
        "room",
        "role",
        "url",
        "ws",
        "dropped",
        "low",
        "above",
        "recovered",
        "recovered_at_end",
        "unrecoverable",
        "outstanding",
        "sync",
        "syncs",
        "gap_timer",
        "lacking_since",
    )

    def __init__(self, number: int, room: Room, role: str, url: str) -> None:
        self.number = number
        self.room = room
        self.role = role
        self.url = url
        self.ws = None
        self.dropped: tuple[int | None, float] | None = None  # close code, seconds into the run
        self.low = 0
        self.above: set[int] = set()
        self.recovered: set[int] = set()
        self.recovered_at_end: set[int] = set()
        self.unrecoverable: set[int] = set()  # out of retention when asked for
        self.outstanding: collections.deque[Request] = collections.deque()
        self.sync: Request | None = None
        self.syncs = 0
        self.gap_timer: asyncio.TimerHandle | None = None
        self.lacking_since: float | None = None

    def hold(self, seq: int) -> bool:
        """Notes that the member holds ``seq``; False when it already did."""
        low = self.low
        if seq <= low:
            return False
        above = self.above
        if seq == low + 1:
            low = seq
            while low + 1 in above:
                low += 1
                above.remove(low)
            self.low = low
            return True
        if seq in above:
            return False
        above.add(seq)
        return True

    def holds(self, seq: int) -> bool:
        return seq <= self.low or seq in self.above

    @property
    def live(self) -> bool:
        return self.ws is not None and self.dropped is None


@dataclass
class Room:
    index: int
    name: str
    members: list[Member] = field(default_factory=list)
    sends: dict[str, Request] = field(default_factory=dict)
    acked: dict[int, Member] = field(default_factory=dict)  # seq -> its sender
    max_acked: int = 0
    rotation: int = 0


@dataclass
class FleetResult:
    """What one client process saw; ``merge`` adds several up."""

    attempts: int = 0
    failed: collections.Counter = field(default_factory=collections.Counter)
    connect_ms: array = field(default_factory=lambda: array("d"))
    dropped: collections.Counter = field(default_factory=collections.Counter)
    # one row per send: (scheduled second, answer kind, answer detail, ms to the answer)
    sends: list[tuple[int, str, str, float]] = field(default_factory=list)
    late_acks: int = 0
    ack_ms: array = field(default_factory=lambda: array("d"))
    throttle_ms: array = field(default_factory=lambda: array("d"))
    delivery_ms: array = field(default_factory=lambda: array("d"))
    recovered_ms: array = field(default_factory=lambda: array("d"))
    received_per_second: list[int] = field(default_factory=list)
    direct: int = 0
    recovered: int = 0
    recovered_at_end: int = 0
    lost: int = 0
    lost_while_syncing: int = 0  # of the lost: the member's sync was still unanswered at the end
    lost_examples: list[str] = field(default_factory=list)
    unacked_held: int = 0
    duplicates: int = 0
    gaps_seen: int = 0
    syncs: int = 0
    syncs_at_end: int = 0
    sync_answers: collections.Counter = field(default_factory=collections.Counter)
    truncated_histories: int = 0
    unmatched_answers: collections.Counter = field(default_factory=collections.Counter)
    lag_ms: array = field(default_factory=lambda: array("d"))
    stall_ms: array = field(default_factory=lambda: array("d"))
    drain_s: float = 0.0

    def merge(self, other: FleetResult) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(mine, collections.Counter):
                mine.update(value)
            elif isinstance(mine, array | list) and name != "received_per_second":
                mine.extend(value)
            elif name == "received_per_second":
                mine.extend([0] * (len(value) - len(mine)))
                for second, count in enumerate(value):
                    mine[second] += count
            elif name == "drain_s":
                self.drain_s = max(self.drain_s, value)
            else:
                setattr(self, name, mine + value)


class Fleet:
    """The members of some classrooms, in one process: opens them, sends, keeps the tally."""

    def __init__(self, plan: Plan, rooms: list[int], base_url: str) -> None:
        from backend import tokens

        self.plan = plan
        self.rooms = [Room(index, plan.room_name(index)) for index in rooms]
        self.members: list[Member] = []
        for room in self.rooms:
            for rank, number in enumerate(plan.members_of(room.index)):
                role = "teacher" if rank == 0 else "student"
                token = tokens.mint(SECRET, sub=f"member-{number}", role=role, rooms=[room.name])
                url = f"{base_url}?room={room.name}&token={token}"
                room.members.append(Member(number, room, role, url))
        self.members = sorted(
            (m for room in self.rooms for m in room.members), key=lambda m: m.number
        )
        self.result = FleetResult()
        self.session = None
        self.readers: list[asyncio.Task] = []
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.start = math.inf  # monotonic time the send phase starts
        self.outstanding_sends = 0
        self.at_end = False
        self.payload = {"points": [[120 + n, 340 - n] for n in range(8)], "color": "#1f77b4"}

    # -- opening

    async def open(self, at: float) -> None:
        """Opens this fleet's members, member ``i`` of the school at ``at + i / open_rate``."""
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
        )
        opening = []
        for member in self.members:
            await sleep_until(at + member.number / self.plan.open_rate)
            opening.append(asyncio.create_task(self._open(member)))
        await asyncio.gather(*opening)
        # The members live as long as the run: the collector's full passes skip them.
        gc.collect()
        gc.freeze()

    async def _open(self, member: Member) -> None:
        import aiohttp

        self.result.attempts += 1
        started = time.monotonic()
        try:
            ws = await asyncio.wait_for(
                self.session.ws_connect(
                    member.url, autoping=True, compress=0, max_msg_size=0, heartbeat=None
                ),
                OPEN_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as error:
            self.result.failed[f"HTTP {error.status}"] += 1
            return
        except TimeoutError:
            self.result.failed["no handshake within 30 s"] += 1
            return
        except (aiohttp.ClientError, OSError) as error:
            self.result.failed[type(error).__name__] += 1
            return
        self.result.connect_ms.append((time.monotonic() - started) * 1000)
        member.ws = ws
        self.readers.append(asyncio.create_task(self._read(member)))

    # -- what members receive

    async def _read(self, member: Member) -> None:
        from aiohttp import WSMsgType

        ws = member.ws
        on_frame = self._on_frame
        monotonic = time.monotonic
        text = WSMsgType.TEXT
        while True:
            message = await ws.receive()
            if message.type is text:
                on_frame(member, message.data, monotonic())
            elif message.type is not WSMsgType.BINARY:
                break
        if not self.closing:
            member.dropped = (ws.close_code, time.monotonic() - self.start)
            self.result.dropped[f"close {ws.close_code}"] += 1
            for request in list(member.outstanding):
                self._answer(request, ("failure", "connection dropped"), time.monotonic())

    def _on_frame(self, member: Member, text: str, now: float) -> None:
        frame = json.loads(text)
        event = frame.get("event")
        if event == "message":
            seq = frame["seq"]
            gap_before = bool(member.above)
            if not member.hold(seq):
                self.result.duplicates += 1
                return
            request = member.room.sends.get(frame.get("id"))
            if request is not None and request.sent_at:
                self.result.delivery_ms.append((now - request.sent_at) * 1000)
            second = int(now - self.start)
            if second >= 0:
                per_second = self.result.received_per_second
                if second >= len(per_second):
                    per_second.extend([0] * (second + 1 - len(per_second)))
                per_second[second] += 1
            if member.above and not gap_before:
                self.result.gaps_seen += 1
                self._watch_gap(member)
        elif event == "ack":
            request = member.room.sends.get(frame.get("id"))
            if request is None or request.member is not member:
                self.result.unmatched_answers["ack"] += 1
                return
            seq = frame["seq"]
            room = member.room
            room.acked[seq] = member
            room.max_acked = max(room.max_acked, seq)
            member.hold(seq)
            if request.answer is None:
                self._answer(request, ("ack", ""), now)
            else:
                self.result.late_acks += 1
        elif event == "history":
            self._on_history(member, frame, now)
        elif event == "error":
            self._on_answer(member, frame.get("id"), ("error", str(frame.get("code"))), now)
        elif event is None and "message" in frame:
            # API Gateway's own failure frame; after the sandbox's redesign it names the frame.
            self._on_answer(member, frame.get("id"), ("failure", str(frame["message"])), now)
        # join, leave, presence and pong need nothing here

    def _on_answer(
        self, member: Member, request_id: str | None, answer: tuple[str, str], now: float
    ) -> None:
        """An error or failure frame: for the request it names, else the oldest unanswered."""
        request = None
        if request_id is not None:
            request = member.room.sends.get(request_id)
            if request is None and member.sync is not None and member.sync.id == request_id:
                request = member.sync
        elif member.outstanding:
            request = member.outstanding[0]
        if request is None or request.member is not member:
            self.result.unmatched_answers[":".join(answer)] += 1
            return
        if request.answer is None:
            self._answer(request, answer, now)

    def _answer(self, request: Request, answer: tuple[str, str], now: float) -> None:
        request.answer = answer
        request.latency_ms = (now - request.sent_at) * 1000
        member = request.member
        with contextlib.suppress(ValueError):
            member.outstanding.remove(request)
        if request.kind == "send":
            self.outstanding_sends -= 1
            if answer[0] == "ack":
                self.result.ack_ms.append(request.latency_ms)
            elif answer[1] in THROTTLE_FAILURES or answer[1] in THROTTLE_ERRORS:
                self.result.throttle_ms.append(request.latency_ms)
            return
        self.result.sync_answers["history" if answer[0] == "ack" else ":".join(answer)] += 1
        if member.sync is request:
            member.sync = None
            if member.above:
                self._watch_gap(member)

    def _on_history(self, member: Member, frame: dict, now: float) -> None:
        request = member.sync
        messages = frame.get("messages") or []
        if frame.get("truncated") and messages:
            self.result.truncated_histories += 1
            for seq in range(member.low + 1, messages[0]["seq"]):
                if member.hold(seq):
                    member.unrecoverable.add(seq)
        sends = member.room.sends
        for message in messages:
            seq = message["seq"]
            if member.hold(seq):
                member.recovered.add(seq)
                if request is not None and request.at_end:
                    member.recovered_at_end.add(seq)
                sent = sends.get(message.get("id"))
                if sent is not None and sent.sent_at:
                    self.result.recovered_ms.append((now - sent.sent_at) * 1000)
        latest = frame.get("latest", 0)
        complete = not messages or messages[-1]["seq"] >= latest
        if request is None:
            self.result.unmatched_answers["history"] += 1
        elif complete and request.answer is None:
            self._answer(request, ("ack", ""), now)

    # -- gaps and sync

    def _watch_gap(self, member: Member) -> None:
        if member.gap_timer is None and member.sync is None and not self.closing:
            loop = asyncio.get_running_loop()
            member.gap_timer = loop.call_later(self.plan.gap_wait, self._gap_check, member)

    def _gap_check(self, member: Member) -> None:
        member.gap_timer = None
        if member.above and member.sync is None and member.live:
            self._ask_sync(member, at_end=False)

    def _ask_sync(self, member: Member, at_end: bool) -> None:
        member.syncs += 1
        request = Request("sync", f"sync-{member.number}-{member.syncs}", member)
        request.at_end = at_end
        member.sync = request
        self.result.syncs += 1
        self.result.syncs_at_end += at_end
        frame = {"action": "sync", "since": member.low, "id": request.id}
        self._spawn(self._transmit(request, json.dumps(frame)))

    # -- sending

    async def _transmit(self, request: Request, text: str) -> None:
        member = request.member
        request.sent_at = time.monotonic()
        member.outstanding.append(request)
        try:
            await member.ws.send_str(text)
        except Exception as error:  # the connection went away under us: an answer of sorts
            if request.answer is None and not self.closing:
                self._answer(
                    request, ("failure", f"client: {type(error).__name__}"), time.monotonic()
                )

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _send_from(self, room: Room, second: int) -> None:
        """The room's next sender in rotation (among members still connected) sends."""
        live = [m for m in room.members if m.live]
        if not live:
            return
        member = live[room.rotation % len(live)]
        request_id = f"{room.index}.{room.rotation}"
        room.rotation += 1
        request = Request("send", request_id, member, second)
        room.sends[request_id] = request
        self.outstanding_sends += 1
        frame = {"action": "send", "type": MESSAGE_TYPE, "id": request_id, "data": self.payload}
        self._spawn(self._transmit(request, json.dumps(frame, separators=(",", ":"))))

    async def run(self, start: float) -> FleetResult:
        """Sends on the plan's timeline from ``start`` (monotonic), then drains; the tally."""
        self.start = start
        by_index = {room.index: room for room in self.rooms}
        lag = self.result.lag_ms
        probe = asyncio.create_task(self._probe_loop(start + self.plan.duration))
        for offset, index in self.plan.timeline([room.index for room in self.rooms]):
            due = start + offset
            await sleep_until(due)
            lag.append((time.monotonic() - due) * 1000)
            self._send_from(by_index[index], int(offset))
        await self._drain(start + self.plan.duration)
        await probe
        return self._tally()

    async def _probe_loop(self, until: float) -> None:
        """How late a 10 ms timer fires in this process's loop over the send phase: a loop
        that is late here is late reading members' frames too (CPU, or the kernel's scheduler
        giving the CPUs to the sandbox)."""
        stalls = self.result.stall_ms
        while True:
            due = time.monotonic() + 0.01
            if due > until:
                return
            await asyncio.sleep(0.01)
            stalls.append((time.monotonic() - due) * 1000)

    async def _drain(self, scheduled_end: float) -> None:
        """Until every send is answered and every member holds every acked seq (or the grace)."""
        await sleep_until(scheduled_end)
        self.at_end = True
        deadline = time.monotonic() + self.plan.grace
        while True:
            now = time.monotonic()
            lacking = []
            for member in self.members:
                if member.live and (member.low < member.room.max_acked or member.above):
                    lacking.append(member)
                else:
                    member.lacking_since = None
            if (not lacking and self.outstanding_sends == 0) or now >= deadline:
                break
            for member in lacking:
                if member.lacking_since is None:
                    member.lacking_since = now
                elif now - member.lacking_since >= TAIL_WAIT and member.sync is None:
                    member.lacking_since = now
                    if member.gap_timer is not None:
                        member.gap_timer.cancel()
                        member.gap_timer = None
                    self._ask_sync(member, at_end=True)
            await asyncio.sleep(POLL)
        self.result.drain_s = time.monotonic() - scheduled_end

    def _tally(self) -> FleetResult:
        result = self.result
        for room in self.rooms:
            for request in room.sends.values():
                kind, detail = request.answer or ("unanswered", "")
                result.sends.append((request.second, kind, detail, request.latency_ms))
            opened = [m for m in room.members if m.ws is not None]
            for member in opened:
                held_acked = 0
                for seq, sender in room.acked.items():
                    held = member.holds(seq) and seq not in member.unrecoverable
                    held_acked += held
                    if sender is member:
                        continue
                    if not held:
                        result.lost += 1
                        result.lost_while_syncing += member.sync is not None
                        if len(result.lost_examples) < 5:
                            result.lost_examples.append(
                                f"{room.name} seq {seq} never reached member-{member.number}"
                            )
                    elif seq in member.recovered:
                        result.recovered += 1
                        result.recovered_at_end += seq in member.recovered_at_end
                    else:
                        result.direct += 1
                result.unacked_held += member.low + len(member.above) - held_acked
        return result

    async def close(self) -> None:
        self.closing = True
        for member in self.members:
            if member.gap_timer is not None:
                member.gap_timer.cancel()
        live = [m.ws for m in self.members if m.ws is not None and not m.ws.closed]
        if live:
            await asyncio.wait(
                [asyncio.create_task(ws.close()) for ws in live], timeout=CLOSE_TIMEOUT
            )
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


async def sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def monotonic_at(wall: float) -> float:
    """The monotonic time at wall-clock time ``wall``, for phases shared between processes."""
    return time.monotonic() + (wall - time.time())


# ----- client processes -------------------------------------------------------------------------


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


# ----- the sandbox's processes (Linux: /proc) ---------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _processes() -> dict[int, int]:
    """Every process's parent."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def _role(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    if b"redis-server" in command:
        return "redis"
    if b"spawn_main" in command:
        return "workers"
    return "other"


@dataclass
class Snapshot:
    at: float  # monotonic
    cpu: dict[str, float]  # seconds by role: gateway, workers, redis, other, client
    rss: dict[str, int]  # bytes by role


def snapshot(sandbox_pid: int, client_pids: list[int]) -> Snapshot:
    """CPU seconds and resident memory of the sandbox's processes, by role, and the clients'.

    The gateway's own line counts the CPU of children it has already reaped (a replaced
    worker), so nothing that ran is left out.
    """
    parents = _processes()
    children = collections.defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    cpu: dict[str, float] = collections.defaultdict(float)
    rss: dict[str, int] = collections.defaultdict(int)
    todo = [(sandbox_pid, "gateway")]
    todo += [(pid, "client") for pid in client_pids]
    while todo:
        pid, role = todo.pop()
        try:
            fields = _stat(pid)
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
        ticks = int(fields[11]) + int(fields[12])
        if role in ("gateway", "client"):
            ticks += int(fields[13]) + int(fields[14])
        cpu[role] += ticks / TICK
        rss[role] += resident
        if role == "gateway":
            todo += [(child, _role(child)) for child in children.get(pid, ())]
        elif role != "client":
            todo += [(child, role) for child in children.get(pid, ())]
    return Snapshot(time.monotonic(), dict(cpu), dict(rss))


SANDBOX_ROLES = ("gateway", "workers", "redis", "other")


def cpu_between(first: Snapshot, last: Snapshot) -> dict[str, float]:
    """Each role's CPU over the interval, as a share of one CPU (1.0 = one CPU busy)."""
    wall = max(last.at - first.at, 1e-9)
    share = {
        role: (last.cpu.get(role, 0.0) - first.cpu.get(role, 0.0)) / wall
        for role in {*first.cpu, *last.cpu}
    }
    share["sandbox"] = sum(share.get(role, 0.0) for role in SANDBOX_ROLES)
    return share


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


# ----- a run ------------------------------------------------------------------------------------


def start_sandbox(port: int, sandbox_args: list[str], log: Path | None) -> subprocess.Popen:
    env = dict(
        os.environ,
        CLASSROOM_TOKEN_SECRET=SECRET,
        PYTHONPATH=str(ROOT),
        # The backend's per-connection limit is off: this measures the sandbox, not the limit.
        RATE_LIMIT_PER_SECOND="0",
    )
    output = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115  (the child keeps it)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "desktop.cli",
                "sandbox",
                "--port",
                str(port),
                *sandbox_args,
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            cwd=str(ROOT),
        )
    finally:
        if log:
            output.close()


def stop_sandbox(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
        await loop.run_in_executor(None, stop_sandbox, sandbox)
    total = FleetResult()
    for result in results:
        total.merge(result)
    return summarize(plan, total, sampler, sandbox_alive)


# ----- the report -------------------------------------------------------------------------------


def figures(values, digits: int = 1) -> dict:
    import numpy

    if len(values) == 0:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    data = numpy.frombuffer(values, dtype=float) if isinstance(values, array) else values
    return {
        "count": int(len(data)),
        "p50": round(float(numpy.percentile(data, 50, method="nearest")), digits),
        "p99": round(float(numpy.percentile(data, 99, method="nearest")), digits),
        "max": round(float(numpy.max(data)), digits),
    }


def is_throttle(kind: str, detail: str) -> bool:
    return (kind == "failure" and detail in THROTTLE_FAILURES) or (
        kind == "error" and detail in THROTTLE_ERRORS
    )


def summarize(plan: Plan, total: FleetResult, sampler: Sampler, sandbox_alive: bool) -> dict:
    sends = total.sends
    answers = collections.Counter(kind for _, kind, _, _ in sends)
    errors = collections.Counter(detail for _, kind, detail, _ in sends if kind == "error")
    failures = collections.Counter(detail for _, kind, detail, _ in sends if kind == "failure")
    seconds = []
    phase_starts = list(itertools.accumulate([0.0] + [s for _, s in plan.phases]))
    rates = []
    for rate, length in plan.phases:
        rates += [rate] * math.ceil(length)
    by_second = collections.defaultdict(list)
    for row in sends:
        by_second[row[0]].append(row)
    for second in range(math.ceil(plan.duration)):
        rows = by_second.get(second, [])
        acked_ms = [ms for _, kind, _, ms in rows if kind == "ack"]
        entry = {
            "second": second,
            "rate": rates[second] if second < len(rates) else 0,
            "sent": len(rows),
            "acked": len(acked_ms),
            "throttled": sum(is_throttle(kind, detail) for _, kind, detail, _ in rows),
            "failed": sum(
                kind in ("error", "failure") and not is_throttle(kind, detail)
                for _, kind, detail, _ in rows
            ),
            "unanswered": sum(kind == "unanswered" for _, kind, _, _ in rows),
            "ack_ms": figures(array("d", acked_ms)),
            "delivered": (
                total.received_per_second[second] if second < len(total.received_per_second) else 0
            ),
        }
        if second + 1 < len(sampler.seconds):
            share = cpu_between(sampler.seconds[second], sampler.seconds[second + 1])
            entry["sandbox_cpu"] = round(share["sandbox"], 2)
            entry["client_cpu"] = round(share.get("client", 0.0), 2)
        seconds.append(entry)

    recovery = []
    for number, start in enumerate(phase_starts[1:-1], start=1):
        if plan.phases[number][0] >= plan.phases[number - 1][0]:
            continue
        end = phase_starts[number + 1]
        troubled = [
            entry["second"]
            for entry in seconds
            if start <= entry["second"] < end
            and (entry["throttled"] or entry["failed"] or entry["unanswered"])
        ]
        last = max(troubled, default=None)
        recovery.append(
            {
                "phase": number + 1,
                "from_rate": plan.phases[number - 1][0],
                "to_rate": plan.phases[number][0],
                # None: sends were still throttled or failing in the phase's last second
                "seconds_until_no_throttling": (
                    0 if last is None else None if last + 1 >= end else last + 1 - start
                ),
            }
        )

    phase_cpu = {}
    send_end = int(math.ceil(plan.duration))
    if len(sampler.seconds) > send_end:
        phase_cpu = cpu_between(sampler.seconds[0], sampler.seconds[send_end])
    open_cpu = cpu_between(sampler.marks["open"], sampler.marks["opened"])
    expected = total.direct + total.recovered + total.lost
    return {
        "plan": {
            "connections": plan.connections,
            "rooms": plan.rooms,
            "open_rate": plan.open_rate,
            "phases": [list(phase) for phase in plan.phases],
            "gap_wait": plan.gap_wait,
            "grace": plan.grace,
            "client_processes": plan.client_processes,
        },
        "connections": {
            "attempted": total.attempts,
            "opened": total.attempts - sum(total.failed.values()),
            "failed": dict(total.failed),
            "dropped": dict(total.dropped),
            "handshake_ms": figures(total.connect_ms),
        },
        "sends": {
            "sent": len(sends),
            "acked": answers["ack"],
            "errored": answers["error"] + answers["failure"],
            "errors": dict(errors),
            "failures": dict(failures),
            "unanswered": answers["unanswered"],
            "late_acks": total.late_acks,
            "unmatched_answers": dict(total.unmatched_answers),
            "ack_ms": figures(total.ack_ms),
            "throttle_ms": figures(total.throttle_ms),
        },
        "deliveries": {
            "expected": expected,
            "direct": total.direct,
            "recovered": total.recovered,
            "recovered_at_end": total.recovered_at_end,
            "lost": total.lost,
            "lost_while_syncing": total.lost_while_syncing,
            "lost_examples": total.lost_examples,
            "unacked_held": total.unacked_held,
            "duplicates": total.duplicates,
            "delivery_ms": figures(total.delivery_ms),
            "recovered_ms": figures(total.recovered_ms),
            "per_second_mean": round(expected / plan.duration) if plan.duration else 0,
        },
        "syncs": {
            "gaps_seen": total.gaps_seen,
            "sent": total.syncs,
            "at_end": total.syncs_at_end,
            "answers": dict(total.sync_answers),
            "truncated_histories": total.truncated_histories,
        },
        "cpu": {
            "open": {role: round(v, 3) for role, v in open_cpu.items()},
            "send": {role: round(v, 3) for role, v in phase_cpu.items()},
            "peak_rss_mb": {
                **{role: round(v / 2**20) for role, v in sampler.peak_rss.items()},
                "sandbox": round(
                    sum(sampler.peak_rss.get(role, 0) for role in SANDBOX_ROLES) / 2**20
                ),
            },
            "cpus": os.cpu_count(),
        },
        "client": {
            "schedule_lag_ms": figures(total.lag_ms, 2),
            "loop_late_ms": figures(total.stall_ms, 2),
            "loop_late_over_50ms": sum(1 for ms in total.stall_ms if ms > 50),
            "drain_s": round(total.drain_s, 1),
        },
        "per_second": seconds,
        "recovery": recovery,
        "sandbox_alive": sandbox_alive,
    }


def goals(report: dict) -> list[tuple[str, bool]]:
    """What ``--check`` asserts: nothing lost, nothing unanswered, everyone connected."""
    connections = report["connections"]
    return [
        (
            f"every member connected ({connections['opened']} of {connections['attempted']})",
            connections["opened"] == connections["attempted"],
        ),
        (
            f"no member dropped during the run ({sum(connections['dropped'].values())} dropped)",
            not connections["dropped"],
        ),
        (
            f"no delivery lost ({report['deliveries']['lost']} lost)",
            report["deliveries"]["lost"] == 0,
        ),
        (
            f"every send answered ({report['sends']['unanswered']} unanswered)",
            report["sends"]["unanswered"] == 0,
        ),
    ]


def _ms(f: dict) -> str:
    if not f["count"]:
        return "none"
    return f"p50 {f['p50']:g} / p99 {f['p99']:g} / max {f['max']:g} ms"


def _counts(counter: dict) -> str:
    return ", ".join(f"{name!r} {n}" for name, n in sorted(counter.items())) or "none"


def print_report(report: dict, per_second: bool) -> None:
    plan, connections, sends = report["plan"], report["connections"], report["sends"]
    deliveries, syncs, cpu = report["deliveries"], report["syncs"], report["cpu"]
    print(
        f"connections: {connections['opened']} opened, "
        f"{connections['attempted'] - connections['opened']} failed ({_counts(connections['failed'])}); "
        f"handshake {_ms(connections['handshake_ms'])}; dropped during the run: "
        f"{_counts(connections['dropped'])}"
    )
    print(
        f"sends: {sends['sent']}; {sends['acked']} acked, {sends['errored']} errored "
        f"(error codes: {_counts(sends['errors'])}; gateway frames: {_counts(sends['failures'])}), "
        f"{sends['unanswered']} unanswered; {sends['late_acks']} acks after a failure; "
        f"unmatched answers: {_counts(sends['unmatched_answers'])}"
    )
    print(
        f"deliveries: {deliveries['expected']} expected ({deliveries['per_second_mean']}/s); "
        f"{deliveries['direct']} direct, {deliveries['recovered']} recovered by sync "
        f"({deliveries['recovered_at_end']} after the last send), {deliveries['lost']} lost "
        f"({deliveries['lost_while_syncing']} with the member's sync still unanswered); "
        f"{deliveries['duplicates']} duplicates, {deliveries['unacked_held']} held of sends "
        f"never acked"
    )
    for example in deliveries["lost_examples"]:
        print(f"  lost: {example}")
    print(f"latency: delivery {_ms(deliveries['delivery_ms'])}")
    print(f"         ack      {_ms(sends['ack_ms'])}")
    print(f"         recovered by sync {_ms(deliveries['recovered_ms'])}")
    print(f"         throttle answer   {_ms(sends['throttle_ms'])}")
    print(
        f"syncs: {syncs['gaps_seen']} gaps seen, {syncs['sent']} syncs ({syncs['at_end']} after "
        f"the last send), answers {_counts(syncs['answers'])}, "
        f"{syncs['truncated_histories']} truncated histories"
    )
    send, rss = cpu["send"], cpu["peak_rss_mb"]
    if send:
        print(
            f"sandbox CPU over the send phase: {send['sandbox']:.2f} of {cpu['cpus']} CPUs "
            f"(gateway {send.get('gateway', 0):.2f}, workers {send.get('workers', 0):.2f}, "
            f"redis {send.get('redis', 0):.2f}, other {send.get('other', 0):.2f}); "
            f"peak RSS {rss['sandbox']} MB (gateway {rss.get('gateway', 0)}, "
            f"workers {rss.get('workers', 0)}, redis {rss.get('redis', 0)})"
        )
        print(
            f"client CPU over the send phase: {send.get('client', 0):.2f} of a CPU in "
            f"{plan['client_processes']} process(es), peak RSS {rss.get('client', 0)} MB; "
            f"schedule lag {_ms(report['client']['schedule_lag_ms'])}; a 10 ms timer late by "
            f"{_ms(report['client']['loop_late_ms'])} "
            f"({report['client']['loop_late_over_50ms']} times over 50 ms)"
        )
    opening = cpu["open"]
    print(
        f"while opening: sandbox {opening['sandbox']:.2f} CPUs, client "
        f"{opening.get('client', 0):.2f}; drain after the last send {report['client']['drain_s']} s"
    )
    for row in report["recovery"]:
        after = row["seconds_until_no_throttling"]
        print(
            f"phase {row['phase']} ({row['from_rate']:g} -> {row['to_rate']:g} msg/s per room): "
            + (
                "sends were still throttled or failing in the phase's last second"
                if after is None
                else f"throttled or failed sends stopped {after:g} s after the rate dropped"
            )
        )
    if not report["sandbox_alive"]:
        print("the sandbox exited during the run")
    if per_second:
        print(
            "  s  rate  sent  acked  thrtl  fail  unans  ack p50   ack p99  delivered  "
            "sandbox CPU  client CPU"
        )
        for row in report["per_second"]:
            ack = row["ack_ms"]
            p50 = f"{ack['p50']:8.1f}" if ack["count"] else "       -"
            p99 = f"{ack['p99']:8.1f}" if ack["count"] else "       -"
            print(
                f"{row['second']:3d} {row['rate']:5g} {row['sent']:5d} {row['acked']:6d} "
                f"{row['throttled']:6d} {row['failed']:5d} {row['unanswered']:6d} {p50}  {p99}  "
                f"{row['delivered']:9d}  {row.get('sandbox_cpu', 0):11.2f}  "
                f"{row.get('client_cpu', 0):10.2f}"
            )


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
