"""The Inspector at scale: one classroom sending 2,000 messages a second for a minute, watched
by a real Inspector tab. Not a test; figures go to docs/benchmarks.md.

A fast stream is what freezes other tools: the Inspector must keep up with batched model
inserts on a timer (never one per frame), never stall its GUI thread over 50 ms, and keep its
memory bounded by its row cap.

The sender (``--sender``):

``feeder`` (the default) is a small WebSocket server in a process of its own (aiohttp on
uvloop) that speaks the protocol (docs/PROTOCOL.md) to the Inspector: it answers ``sync`` with
``history`` frames (a classroom's retained log: ``--history`` messages from before the
Inspector joined), then streams ``message`` frames at ``--rate`` a second for ``--seconds``,
seqs increasing from the room's floor, ``ts`` the time each is sent; it answers ``who`` and
``ping``. The messages are a classroom's: whiteboard strokes of 20-50 points (half with
pressure), cursor moves, chat, text, erases, and a clear every 10 s, from a teacher and 29
students.

``sandbox`` sends through the sandbox itself: the sandbox (its gateway, worker processes and
redis-server) in a process of its own with the backend's rate limit off and the stage's route
throttle raised above the rate (``classroom-console sandbox`` has no flag for the throttle, so
the process runs ``Sandbox`` with those settings), ``--members`` members in a sender process
(aiohttp) sending ``--rate`` a second between them, and the Inspector joined through
``classrooms.for_sandbox`` with a support token as in the console. On 2 CPUs the sandbox does
not carry 2,000 a second into one classroom (docs/benchmarks.md says by how much), which is why
the feeder is the default.

The Inspector runs in this process: a QApplication (offscreen unless ``QT_QPA_PLATFORM`` says
otherwise), a real ``InspectorTab`` shown at 1280x800 over a real ``InspectorSession`` with the
default cap (20,000 rows), joined to the stream with a ``RoomClient``. During the stream:

- a 5 ms ``QTimer`` heartbeat on the GUI thread (bench/classrooms.py's): the longest gap
  between ticks less the interval is the longest stall, and every gap over 50 ms is listed
  with what the GUI thread ran in it (the session's, the model's, the tab's and the board's
  slots are timed, the table's and the board's paints, the garbage collector's passes);
- the ingest lag of every message: from its ``ts`` to its row being in the session
  (``_ingest``) and in the table's model (``rows_added``, after the tab's own slot);
- every seq received, against what was sent; rows kept and let go by the cap;
- VmRSS every second and VmHWM (reset before the tab); CPU of the GUI thread, of the worker
  thread that reads the connection, of the rest of the process, and of the sender;
- at ``--pause-at`` s the tab is paused (its Pause button) for ``--pause-for`` s, then
  resumed: the stall at the resume (every row that waited goes in at once); at
  ``--filter-at`` s, with the cap's 20,000 rows kept, the type filter is set to chat and,
  ``--filter-for`` s later, back to all types: the stall at each.

``--profile`` runs the GUI thread under cProfile (its figures are then slower).

    python bench/inspector.py                          # 2,000 msg/s for 60 s from the feeder
    python bench/inspector.py --rate 500 --seconds 20  # a quick run
    python bench/inspector.py --sender sandbox --seconds 20   # through the sandbox
    python bench/inspector.py --json figures.json
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import cProfile
import functools
import io
import itertools
import json
import multiprocessing
import os
import pstats
import random
import secrets
import socket
import statistics
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from bench.classrooms import (  # noqa: E402  (after the path, so the bench runs from a checkout)
    GOAL_STALL_MS,
    HEARTBEAT_MS,
    VIEW_SIZE,
    CollectionTimes,
    Heartbeat,
    memory,
    percentile,
    reset_peak,
    run_until,
    thread_cpu,
)
from bench.load_clients import run_loop  # noqa: E402
from bench.processes import SECRET, cpu_seconds  # noqa: E402
from desktop import messages  # noqa: E402
from desktop.models.inspector import StreamModel  # noqa: E402
from desktop.sandbox.loopback import free_port, wait_for_port  # noqa: E402
from desktop.services import classrooms  # noqa: E402
from desktop.services.room import RoomClient  # noqa: E402
from desktop.views.inspector import ALL_TYPES, InspectorTab  # noqa: E402
from desktop.views.whiteboard import WhiteboardCanvas, WhiteboardPanel  # noqa: E402
from desktop.workers import worker as workers  # noqa: E402
from desktop.workers.inspector import Arrival, InspectorSession  # noqa: E402

ROOM = "bench-inspector"
MEMBERS = 30  # the feeder's classroom: a teacher and 29 students
SANDBOX_MEMBERS = 4  # members sending through the sandbox (each gets the others' messages)
CLEAR_EVERY_S = 10.0  # the teacher clears the board this often
HISTORY_FRAME = 100  # messages a history frame holds (well within 128 KB)
GOAL_LAG_S = 1.0  # keeping up: no message longer than this from its ts to the table
FILTER_TYPE = "chat.message"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#111111")
WORDS = [
    "can",
    "you",
    "see",
    "my",
    "answer",
    "on",
    "the",
    "board",
    "the",
    "second",
    "one",
    "is",
    "wrong",
    "I",
    "think",
    "we",
    "need",
    "to",
    "carry",
    "the",
    "one",
    "here",
    "please",
    "look",
    "at",
    "question",
    "four",
    "again",
    "thanks",
    "teacher",
    "what",
    "page",
    "are",
    "we",
    "on",
]
# (type, weight): a busy lesson on the board, with chat and cursors
MIX = (
    ("whiteboard.stroke", 50),
    ("cursor.move", 25),
    ("chat.message", 15),
    ("whiteboard.text", 5),
    ("whiteboard.erase", 5),
)


# ----- the classroom's messages ----------------------------------------------------------------


class Lesson:
    """The messages of a busy classroom, as plain frames; deterministic from ``seed``."""

    def __init__(self, seed: int = 2024, members: int = MEMBERS) -> None:
        self.rng = random.Random(seed)
        self.members = [("teacher-1", "teacher")] + [
            (f"student-{n:02d}", "student") for n in range(1, members)
        ]
        self.kinds = [kind for kind, weight in MIX for _ in range(weight)]
        self.strokes: collections.deque[str] = collections.deque(maxlen=200)
        self.shape = 0

    def stroke(self) -> dict:
        rng = self.rng
        x, y = rng.uniform(100, 1500), rng.uniform(100, 800)
        pressure = rng.random() < 0.5
        points = []
        for _ in range(rng.randint(20, 50)):
            x = min(1599.0, max(0.0, x + rng.uniform(-12, 12)))
            y = min(899.0, max(0.0, y + rng.uniform(-12, 12)))
            point = [round(x, 1), round(y, 1)]
            if pressure:
                point.append(round(rng.uniform(0.3, 1.0), 2))
            points.append(point)
        self.shape += 1
        shape_id = f"stroke-{self.shape}"
        self.strokes.append(shape_id)
        return {
            "id": shape_id,
            "points": points,
            "color": rng.choice(COLOURS),
            "width": rng.choice((2, 3, 4, 6)),
        }

    def data(self, kind: str) -> dict:
        rng = self.rng
        if kind == "whiteboard.stroke":
            return self.stroke()
        if kind == "cursor.move":
            return {"x": round(rng.uniform(0, 1600), 1), "y": round(rng.uniform(0, 900), 1)}
        if kind == "chat.message":
            return {"text": " ".join(rng.choices(WORDS, k=rng.randint(4, 20)))}
        if kind == "whiteboard.text":
            self.shape += 1
            return {
                "id": f"text-{self.shape}",
                "x": round(rng.uniform(0, 1400), 1),
                "y": round(rng.uniform(0, 850), 1),
                "text": " ".join(rng.choices(WORDS, k=rng.randint(1, 5))),
                "color": rng.choice(COLOURS),
                "size": rng.choice((18, 24, 32)),
            }
        if kind == "whiteboard.erase" and self.strokes:
            return {"ids": rng.sample(list(self.strokes), min(len(self.strokes), 3))}
        return {}

    def next(self, clear: bool = False) -> tuple[str, dict, tuple[str, str]]:
        """The next message's type, data and sender."""
        if clear:
            return "whiteboard.clear", {}, self.members[0]
        kind = self.rng.choice(self.kinds)
        if kind == "whiteboard.erase" and not self.strokes:
            kind = "cursor.move"
        return kind, self.data(kind), self.rng.choice(self.members)


# ----- the feeder: a WebSocket server that speaks the protocol ---------------------------------


@dataclass(frozen=True)
class FeedPlan:
    rate: float = 2000.0
    seconds: float = 60.0
    history: int = 500
    room: str = ROOM


class Feed:
    """The feeder's classroom: its log (every message, for ``sync``) and the live stream."""

    def __init__(self, plan: FeedPlan) -> None:
        self.plan = plan
        self.lesson = Lesson()
        self.floor = int(time.time() * 1_000_000)  # a room's seqs start above its floor
        # Every message as its JSON text, for sync: strings, which the feeder's garbage
        # collector never walks (as frames, a full pass over a few minutes' log stalled the
        # feed by 1.4 s, a burst the Inspector was then blamed for).
        self.log: list[str] = []
        self.sockets: set = set()
        self.streaming: asyncio.Task | None = None
        self.sent = 0  # live messages streamed
        self.late: list[float] = []  # how late each tick ran against the schedule, seconds
        self.syncs = 0
        self.connections = 0
        self.finished = asyncio.Event()
        now = int(time.time() * 1000)
        for n in range(plan.history):  # the lesson before the Inspector joined, 20 a second
            self._message(now - (plan.history - n) * 50)

    def _message(self, ts: int, clear: bool = False) -> str:
        kind, data, (user, role) = self.lesson.next(clear)
        seq = self.floor + len(self.log) + 1
        frame = {
            "event": "message",
            "room": self.plan.room,
            "seq": seq,
            "ts": ts,
            "from": {"userId": user, "role": role},
            "type": kind,
            "data": data,
            "id": f"{user}-{seq}",
        }
        text = json.dumps(frame, separators=(",", ":"))
        self.log.append(text)
        return text

    def history(self, since: int) -> list[dict]:
        start = max(0, since - self.floor)
        held = self.log[start:]
        latest = self.floor + len(self.log)
        if not held:
            return [{"event": "history", "room": self.plan.room, "messages": [], "latest": latest,
                     "truncated": False}]  # fmt: skip
        return [
            {
                "event": "history",
                "room": self.plan.room,
                "messages": [json.loads(text) for text in held[n : n + HISTORY_FRAME]],
                "latest": latest,
                "truncated": False,
            }
            for n in range(0, len(held), HISTORY_FRAME)
        ]

    async def stream(self) -> None:
        """``rate`` messages a second for ``seconds`` to every open connection."""
        loop = asyncio.get_running_loop()
        plan = self.plan
        total = int(plan.rate * plan.seconds)
        clear_every = max(1, int(plan.rate * CLEAR_EVERY_S))
        started = loop.time()
        while self.sent < total:
            now = loop.time()
            due = min(total, int((now - started) * plan.rate) + 1)
            self.late.append(max(0.0, now - (started + self.sent / plan.rate)))
            ts = int(time.time() * 1000)
            while self.sent < due:
                self.sent += 1
                text = self._message(ts, clear=self.sent % clear_every == 0)
                for ws in list(self.sockets):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(text)
            await asyncio.sleep(0.002)
        self.finished.set()

    async def handle(self, request):
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(max_msg_size=128 * 1024)
        await ws.prepare(request)
        self.connections += 1
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(message.data)
            except ValueError:
                await ws.send_json({"event": "error", "code": "bad_json", "id": None,
                                    "message": "not JSON"})  # fmt: skip
                continue
            action = frame.get("action")
            if action == "sync":
                self.syncs += 1
                for answer in self.history(int(frame.get("since") or 0)):
                    await ws.send_str(json.dumps(answer, separators=(",", ":")))
                self.sockets.add(ws)  # live from here, after its history
                if self.streaming is None:
                    self.streaming = asyncio.create_task(self.stream())
            elif action == "who":
                now = int(time.time() * 1000)
                members = [
                    {"userId": user, "role": role, "connectedAt": now - 600_000}
                    for user, role in self.lesson.members
                ]
                await ws.send_json({"event": "presence", "room": self.plan.room,
                                    "members": members})  # fmt: skip
            elif action == "ping":
                await ws.send_json({"event": "pong", "ts": int(time.time() * 1000)})
            else:
                await ws.send_json({"event": "error", "code": "unknown_action",
                                    "message": "the feeder answers sync, who and ping",
                                    "id": frame.get("id")})  # fmt: skip
        self.sockets.discard(ws)
        return ws


def _serve_feed(connection, plan: FeedPlan, port: int) -> None:
    """The feeder's process: serves until its parent asks for the figures."""

    async def serve() -> None:
        from aiohttp import web

        feed = Feed(plan)
        app = web.Application()
        app.router.add_get("/feed", feed.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        connection.send("ready")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, connection.recv)  # the parent is done
        late = feed.late or [0.0]
        connection.send(
            {
                "sent": feed.sent,
                "history": plan.history,
                "first_seq": feed.floor + 1,
                "last_seq": feed.floor + len(feed.log),
                "finished": feed.finished.is_set(),
                "connections": feed.connections,
                "syncs": feed.syncs,
                "late_p99_ms": round(percentile(late, 0.99) * 1000, 1),
                "late_max_ms": round(max(late) * 1000, 1),
            }
        )
        await runner.cleanup()

    run_loop(serve())


class FeederSource:
    """The feeder in a process of its own; the Inspector joins ``url``."""

    name = "feeder"

    def __init__(self, plan: FeedPlan) -> None:
        context = multiprocessing.get_context("spawn")
        self.plan = plan
        self.port = free_port()
        self.connection, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve_feed, args=(theirs, plan, self.port), daemon=True
        )
        self.process.start()
        self.pid = self.process.pid
        self.connection.recv()
        self.url = f"ws://127.0.0.1:{self.port}/feed"
        self.service = None

    def client(self) -> RoomClient:
        return BenchClient(self.plan.room, lambda: self.url)

    def go(self) -> None:
        pass  # the feeder streams once the Inspector has asked sync

    def expected(self) -> int:
        return self.plan.history + int(self.plan.rate * self.plan.seconds)

    def finish(self) -> dict:
        self.connection.send("stop")
        found = self.connection.recv()
        self.process.join(10)
        return found

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()


# ----- the sandbox and its members ------------------------------------------------------------


def _serve_sandbox(connection, port: int, admin_key: str, throttle: float) -> None:
    """The sandbox in a process of its own, its rate limit off and its throttle at ``throttle``
    a second (burst twice that)."""
    from desktop.sandbox.gateway import Sandbox, SandboxConfig

    sandbox = Sandbox(
        SandboxConfig(
            port=port,
            token_secret=SECRET,
            admin_key=admin_key,
            rate_limit_per_second=0,
            throttle_rate=throttle,
            throttle_burst=int(throttle * 2),
        )
    )
    sandbox.start()
    try:
        connection.send((sandbox.websocket_url, sandbox.admin_url))
        connection.recv()
    finally:
        sandbox.stop()
    connection.send("stopped")


def _send_members(connection, url: str, room: str, members: int, rate: float, seconds: float):
    """``members`` members of ``room`` sending ``rate`` messages a second between them."""
    from backend import tokens

    async def member(session, index: int, start: float, tally: dict) -> None:
        role = "teacher" if index == 0 else "student"
        token = tokens.mint(SECRET, sub=f"member-{index}", role=role, rooms=[room])
        lesson = Lesson(seed=index)
        ws = await session.ws_connect(f"{url}?room={room}&token={token}", max_msg_size=0)
        pending: dict[str, float] = {}

        async def read() -> None:
            async for message in ws:
                frame = json.loads(message.data)
                event = frame.get("event")
                if event == "ack" and frame.get("id") in pending:
                    tally["ack_s"].append(time.monotonic() - pending.pop(frame["id"]))
                    tally["acked"] += 1
                elif event == "error":
                    pending.pop(frame.get("id"), None)
                    tally["errors"][frame.get("code")] += 1
                elif event is None and "message" in frame:
                    pending.pop(frame.get("id"), None)
                    tally["gateway"][frame["message"]] += 1

        reader = asyncio.create_task(read())
        share = rate / members
        total = int(share * seconds)
        loop = asyncio.get_running_loop()
        for n in range(total):
            at = start + n / share
            if at > loop.time():
                await asyncio.sleep(at - loop.time())
            kind, data, _ = lesson.next()
            frame_id = uuid.uuid4().hex
            pending[frame_id] = time.monotonic()
            await ws.send_str(json.dumps({"action": "send", "type": kind, "data": data,
                                          "id": frame_id}))  # fmt: skip
            tally["sent"] += 1
        deadline = loop.time() + 15
        while pending and loop.time() < deadline:
            await asyncio.sleep(0.1)
        tally["unanswered"] += len(pending)
        await ws.close()
        reader.cancel()

    async def run() -> dict:
        import aiohttp

        tally = {"sent": 0, "acked": 0, "unanswered": 0, "ack_s": [],
                 "errors": collections.Counter(), "gateway": collections.Counter()}  # fmt: skip
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, connection.recv)  # go
        async with aiohttp.ClientSession() as session:
            start = loop.time() + 0.5
            await asyncio.gather(*(member(session, n, start, tally) for n in range(members)))
        acks = tally.pop("ack_s") or [0.0]
        return {
            **tally,
            "errors": dict(tally["errors"]),
            "gateway": dict(tally["gateway"]),
            "ack_p50_ms": round(statistics.median(acks) * 1000, 1),
            "ack_p99_ms": round(percentile(acks, 0.99) * 1000, 1),
        }

    connection.send(run_loop(run()))


class SandboxSource:
    """The sandbox and a sender process; the Inspector joins as support through ``/_admin``."""

    name = "sandbox"

    def __init__(self, rate: float, seconds: float, members: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.rate, self.seconds = rate, seconds
        port = free_port()
        key = secrets.token_urlsafe(32)
        self.connection, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve_sandbox, args=(theirs, port, key, max(1000.0, rate * 2))
        )
        self.process.start()
        websocket_url, admin_url = self.connection.recv()
        wait_for_port(port, 60)
        self.service = classrooms.for_sandbox(admin_url, key, websocket_url)
        self.sender, theirs = context.Pipe()
        self.members = context.Process(
            target=_send_members,
            args=(theirs, websocket_url, ROOM, members, rate, seconds),
            daemon=True,
        )
        self.members.start()
        self.pid = self.process.pid
        self.result: dict | None = None

    def client(self) -> RoomClient:
        return BenchClient(ROOM, lambda: self.service.join_url(ROOM))

    def go(self) -> None:
        self.sender.send("go")

    def expected(self) -> int | None:
        """The messages stored (acked), once the members are done."""
        if self.result is None and self.sender.poll():
            self.result = self.sender.recv()
        return None if self.result is None else self.result["acked"]

    def finish(self) -> dict:
        while self.expected() is None:
            time.sleep(0.5)
        return dict(self.result)

    def close(self) -> None:
        self.connection.send("stop")
        with contextlib.suppress(EOFError):
            self.connection.recv()
        self.process.join(60)
        if self.members.is_alive():
            self.members.kill()


# ----- what the Inspector does ----------------------------------------------------------------


class BenchClient(RoomClient):
    """A ``RoomClient`` that notes which thread reads the connection."""

    thread_id: int | None = None

    def batches(self, abort, spool=None, prepare=None):
        self.thread_id = threading.get_native_id()
        yield from super().batches(abort, spool, prepare)


class Timings:
    """How long the GUI thread spent in the Inspector's slots: methods of the session, the
    model, the tab and the board panel wrapped on their classes (before any is made, so the
    connections made in their constructors reach the wrappers), the table's and the board's
    paints, and the garbage collector's passes (on whichever thread: each holds the GIL)."""

    METHODS = (
        (InspectorSession, ("_take", "_ingest", "_keep", "set_paused", "set_filters")),
        (StreamModel, ("append_rows", "drop_first", "set_rows")),
        (InspectorTab, ("_rows_added", "_rows_dropped", "_rows_reset", "_counts", "_types")),
        (WhiteboardPanel, ("add_messages", "add_read", "set_messages")),
        (WhiteboardCanvas, ("paintEvent",)),
    )

    def __init__(self) -> None:
        self.gui = threading.get_native_id()
        self.times: dict[str, list[tuple[float, float, float]]] = collections.defaultdict(list)
        self._originals = []
        for cls, names in self.METHODS:
            for name in names:
                original = getattr(cls, name)
                self._originals.append((cls, name, cls.__dict__.get(name)))
                setattr(cls, name, self._timed(f"{cls.__name__}.{name}", original))
        self._collections = CollectionTimes(self.times)

    def watch_table(self, tab: InspectorTab) -> None:
        table = tab.table
        paint = type(table).paintEvent
        table.paintEvent = self._timed("table.paintEvent", lambda event: paint(table, event))

    def _timed(self, label: str, fn: Callable) -> Callable:
        times, gui = self.times[label], self.gui

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if threading.get_native_id() != gui:
                return fn(*args, **kwargs)
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                times.append((started, time.perf_counter() - started, time.thread_time() - cpu))

        return timed

    def close(self) -> None:
        self._collections.close()
        for cls, name, original in self._originals:
            if original is None:
                delattr(cls, name)  # the base class's again
            else:
                setattr(cls, name, original)

    def summary(self, within: tuple[float, float] | None = None) -> dict:
        """Each slot's calls, longest, p99 and total (of the calls that began ``within``)."""
        found = {}
        for name, calls in sorted(self.times.items()):
            if within is not None:
                calls = [c for c in calls if within[0] <= c[0] <= within[1]]
            if calls:
                took = [t for _, t, _ in calls]
                found[name] = {
                    "calls": len(took),
                    "p99_ms": round(percentile(took, 0.99) * 1000, 2),
                    "max_ms": round(max(took) * 1000, 1),
                    "total_ms": round(sum(took) * 1000, 1),
                    "cpu_ms": round(sum(c for _, _, c in calls) * 1000, 1),
                }
        return found


class Probe:
    """What reaches the session and the model, and when; memory every second."""

    def __init__(self, session: InspectorSession, board: WhiteboardPanel) -> None:
        self.session = session
        # A histogram of lags and a bitmap of seqs, not a record a message: what the probe
        # keeps must not be what the memory figures measure.
        self.seqs = SeqSet()  # every message's seq, as it reached the session
        self.filled = 0  # messages caught up with sync after a reconnect
        self.first_live: float | None = None  # perf_counter of the first live message ingested
        self.ingest_lag = Lags()  # per live message, seconds
        self.model_lag = Lags()
        self.model_lag_after_resume = Lags()  # from half a second after Resume
        self.resumed_at: float | None = None
        self.excluding = False  # rows going in at a resume are not the stream's lag
        self.rows_at_cap: float | None = None
        # When the rows reached the cap and the board's window its ``max_messages``: from then
        # on what the Inspector holds is bounded, and memory should stay where it is.
        self.full_at: float | None = None
        self.rss: list[tuple[float, float]] = []  # (perf_counter, MB)
        # Python's own allocations (blocks in use) beside: flat while VmRSS creeps is the
        # allocator's arenas, not objects kept.
        self.blocks: list[tuple[float, int]] = []
        self.batches: list[int] = []  # rows a rows_added carried
        ingest = session._ingest

        def counted(events: list):
            now_wall, now = time.time(), time.perf_counter()
            for event in events:  # arrivals (a row made in the worker thread), or an event
                if not isinstance(event, Arrival) or event.row.event != "message":
                    continue
                row = event.row
                self.seqs.add(row.seq)
                if row.kind == "filled":
                    self.filled += 1
                if row.kind == "live":
                    if self.first_live is None:
                        self.first_live = now
                    self.ingest_lag.add(now_wall - row.ts / 1000)
            added = ingest(events)
            if self.rows_at_cap is None and len(session.rows) >= session.cap:
                self.rows_at_cap = now
            timeline = board.timeline
            if (
                self.full_at is None
                and self.rows_at_cap is not None
                and len(timeline) >= timeline.max_messages
            ):
                self.full_at = now
            return added

        session._ingest = counted  # called by the session's own ``_take``
        session.rows_added.connect(self._added)  # after the tab's slot: the rows are in
        self.timer = QTimer()
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.sample)
        self.timer.start()

    def _added(self, rows: list) -> None:
        self.batches.append(len(rows))
        if self.excluding:
            return
        now_wall, now = time.time(), time.perf_counter()
        after_resume = self.resumed_at is not None and now >= self.resumed_at + 0.5
        for row in rows:  # the row's own fields: parsing its frame again would cost the GUI
            if row.kind == "live" and row.event == "message":
                lag = now_wall - row.ts / 1000
                self.model_lag.add(lag)
                if after_resume:
                    self.model_lag_after_resume.add(lag)

    def sample(self) -> None:
        now = time.perf_counter()
        self.rss.append((now, memory()["rss_mb"]))
        self.blocks.append((now, sys.getallocatedblocks()))


class Lags:
    """Lags in a histogram of 1 ms buckets (the last holds everything from 60 s): a fixed size
    however many messages, and percentiles to the millisecond."""

    BUCKETS = 60_000

    def __init__(self) -> None:
        self.counts = array("L", bytes(4 * self.BUCKETS))
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.counts[min(max(int(seconds * 1000), 0), self.BUCKETS - 1)] += 1
        self.count += 1
        self.max = max(self.max, seconds)

    def percentile(self, share: float) -> float:
        """The lag (seconds, to the bucket's upper end) that ``share`` of messages were within."""
        wanted, seen = share * self.count, 0
        for bucket, n in enumerate(self.counts):
            seen += n
            if n and seen >= wanted:
                return (bucket + 1) / 1000
        return 0.0


class SeqSet:
    """The seqs received, as a bitmap from the first (history comes first, from the lowest)."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.bits = bytearray()
        self.distinct = 0
        self.repeated = 0

    def add(self, seq: int) -> None:
        if self.first is None:
            self.first = seq
        at = seq - self.first
        if at < 0:  # below the first: move the bitmap's start
            self.bits[:0] = bytes(-at)
            self.first, at = seq, 0
        if at >= len(self.bits):
            self.bits.extend(bytes(at - len(self.bits) + 1))
        if self.bits[at]:
            self.repeated += 1
        else:
            self.bits[at] = 1
            self.distinct += 1


CUT_WINDOW_S = 4.0


def cut(client: RoomClient) -> None:
    """The network drops under the Inspector (its socket shut, no close frame): it reconnects
    after its first backoff and catches up with ``sync`` what the class sent meanwhile."""
    ws = client._ws
    if ws is not None and ws.sock is not None:
        ws.sock.shutdown(socket.SHUT_RDWR)


def lag_figures(lags: Lags) -> dict:
    return {
        "count": lags.count,
        "p50_ms": round(lags.percentile(0.5) * 1000, 1),
        "p99_ms": round(lags.percentile(0.99) * 1000, 1),
        "max_ms": round(lags.max * 1000, 1),
    }


def gaps_over(heartbeat: Heartbeat, start: float, end: float) -> list[tuple[float, float]]:
    """Every gap between heartbeat ticks from ``start`` to ``end`` over the goal: (its first
    tick, the stall in seconds)."""
    ticks = heartbeat.ticks
    first = max(0, bisect.bisect_left(ticks, start) - 1)
    window = ticks[first : bisect.bisect_right(ticks, end) + 1]
    return [
        (a, b - a - heartbeat.interval)
        for a, b in itertools.pairwise(window)
        if (b - a - heartbeat.interval) * 1000 > GOAL_STALL_MS
    ]


@contextlib.contextmanager
def profiling(enabled: bool) -> Iterator[cProfile.Profile | None]:
    if not enabled:
        yield None
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield profiler
    finally:
        profiler.disable()


def run(source, args: argparse.Namespace, progress=print) -> dict:
    """A real Inspector tab on ``source``'s stream, measured."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication([sys.argv[0]])
    messages.bus()
    posted: list = []
    messages.bus().posted.connect(posted.append)
    timings = Timings()
    client = source.client()
    session = InspectorSession(ROOM, source.service, "bench", client=client)
    tab = InspectorTab(session)
    timings.watch_table(tab)
    tab.resize(*VIEW_SIZE)
    if args.board:
        tab.side.setCurrentWidget(tab.board)
    heartbeat = Heartbeat()
    tab.show()
    run_until(lambda: bool(tab.windowHandle() and tab.windowHandle().isExposed()), 10, heartbeat)
    app.processEvents()
    probe = Probe(session, tab.board)
    # As the console does once its window is built (desktop/app.py): later full collections
    # scan only what was made since, and the GUI thread gets the GIL back sooner.
    from desktop.app import settle

    settle()
    report: dict = {
        "platform": app.platformName(),
        "size": list(VIEW_SIZE),
        "heartbeat_ms": HEARTBEAT_MS,
        "cap": session.cap,
        "board_shown": args.board,
        "peak_reset": reset_peak(),
        "memory_before": memory(),
    }
    threads_before, gui_before = thread_cpu(), time.thread_time()
    source_cpu_before = cpu_seconds(source.pid)
    actions: dict[str, float] = {}

    def act(name: str, action: Callable[[], None], exclude: bool = False) -> None:
        actions[name] = time.perf_counter()
        if name == "resume":
            probe.resumed_at = actions[name]
        probe.excluding = exclude
        try:
            action()
        finally:
            probe.excluding = False

    with profiling(args.profile) as profiler:
        started = time.perf_counter()
        session.start()
        if not run_until(lambda: session.status.phase == "live", 30, heartbeat):
            raise RuntimeError(f"the Inspector did not go live: {session.status}")
        source.go()
        if not run_until(lambda: probe.first_live is not None, 30, heartbeat):
            raise RuntimeError("no live message reached the Inspector within 30 s")
        t0 = probe.first_live
        progress(f"  live; streaming for {args.seconds:g} s", flush=True)
        plan = [
            (args.pause_at, "pause", lambda: tab.pause_button.setChecked(True), False),
            (args.pause_at + args.pause_for, "resume",
             lambda: tab.pause_button.setChecked(False), True),
            (args.filter_at, "filter", lambda: tab.type_filter.setCurrentText(FILTER_TYPE),
             False),
            (args.filter_at + args.filter_for, "unfilter",
             lambda: tab.type_filter.setCurrentText(ALL_TYPES), False),
            (args.cut_at, "cut", lambda: cut(client), False),
        ]  # fmt: skip
        timers = []
        for at, name, action, exclude in plan:
            if at < args.seconds:
                delay = max(0, int((t0 + at - time.perf_counter()) * 1000))
                timer = QTimer()
                timer.setSingleShot(True)
                timer.timeout.connect(functools.partial(act, name, action, exclude))
                timer.start(delay)
                timers.append(timer)
        rows_when_filtered: list[int] = []
        tab.type_filter.currentIndexChanged.connect(
            lambda _n: rows_when_filtered.append(len(session.rows))
        )

        def done() -> bool:
            expected = source.expected()
            return (
                expected is not None and probe.seqs.distinct >= expected and not session._incoming
            )

        finished = run_until(done, args.seconds + 60, heartbeat)
        ended = time.perf_counter()
        run_until(lambda: False, 0.5, heartbeat)  # the last rows painted
    report["all_arrived_in_time"] = finished
    memory_end = memory()  # before the figures below are worked out
    threads_after, gui_cpu = thread_cpu(), time.thread_time() - gui_before
    source_cpu = cpu_seconds(source.pid) - source_cpu_before
    wall = ended - started
    gui_tid = threading.get_native_id()
    worker_tid = client.thread_id
    per_thread = {t: c - threads_before.get(t, 0.0) for t, c in threads_after.items()}
    stall = heartbeat.stall(started, ended)
    longest = stall.pop("longest")
    report.update(
        {
            "wall_s": round(wall, 1),
            "stream_s": round(ended - t0, 1),
            "stall": stall,
            "in_longest_stall": timings.summary(within=longest),
            "longest_stall_at_s": round(longest[0] - t0, 1),
            "gaps_over_goal": [
                {
                    "at_s": round(a - t0, 2),
                    "ms": round(gap * 1000, 1),
                    "held": {
                        k: v["total_ms"]
                        for k, v in timings.summary(
                            within=(a, a + gap + heartbeat.interval)
                        ).items()
                    },
                }
                for a, gap in gaps_over(heartbeat, started, ended)
            ],
            "cpu": {
                "gui_thread": round(gui_cpu / wall, 3),
                "worker_thread": round(per_thread.get(worker_tid, 0.0) / wall, 3),
                "other_threads": round(
                    sum(c for t, c in per_thread.items() if t not in (gui_tid, worker_tid)) / wall,
                    3,
                ),
                "sender": round(source_cpu / wall, 3),
            },
            "received": probe.seqs.distinct,
            "repeated": probe.seqs.repeated,
            "rows_kept": len(session.rows),
            "caught_up": probe.filled,
            "rows_dropped": session.dropped,
            "rows_in_model": tab.model.rowCount(),
            "rows_when_filtered": rows_when_filtered,
            "batches": {
                "count": len(probe.batches),
                "rows_p50": statistics.median(probe.batches) if probe.batches else 0,
                "rows_max": max(probe.batches, default=0),
            },
            "ingest_lag": lag_figures(probe.ingest_lag),
            "model_lag": lag_figures(probe.model_lag),
            "slots": timings.summary(),
            "posted": [m.text for m in posted],
        }
    )
    for name, at in actions.items():
        # A cut's catch-up comes after the reconnect's first backoff (1 s) and the sync.
        window = heartbeat.stall(at, at + (CUT_WINDOW_S if name == "cut" else 1.0))
        window.pop("longest")
        report[f"{name}_stall"] = window
    if "resume" in actions:
        report["model_lag_after_resume"] = lag_figures(probe.model_lag_after_resume)
    rss = [(round(at - t0, 1), mb) for at, mb in probe.rss]
    report["rss_mb"] = rss
    report["rows_at_cap_s"] = (
        None if probe.rows_at_cap is None else round(probe.rows_at_cap - t0, 1)
    )
    report["full_at_s"] = None if probe.full_at is None else round(probe.full_at - t0, 1)
    if probe.full_at is not None:
        # Growth is judged over the run's second half (from when both windows are full, if
        # later): by then the rows, the board's window and its base (cleared every 10 s by the
        # lesson's teacher) have each been through a full turn and the allocator has settled.
        since = max(probe.full_at, t0 + (ended - t0) / 2)
        report["growth_from_s"] = round(since - t0, 1)
        after = [(at, mb) for at, mb in probe.rss if at >= since]
        blocks = [(at, n) for at, n in probe.blocks if at >= since]
        if len(blocks) >= 2:
            report["blocks_after_full"] = [blocks[0][1], blocks[-1][1]]
        if len(after) >= 2:
            (a0, m0), (a1, m1) = after[0], after[-1]
            report["rss_after_full_mb"] = [m0, m1]
            report["rss_growth_after_full_mb_per_min"] = round((m1 - m0) / (a1 - a0) * 60, 1)
    report["memory_end"] = memory_end
    report["board_messages"] = len(tab.board.timeline)
    report["board_shapes"] = len(tab.board.board.shapes)
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        report["profile"] = text.getvalue()
    probe.timer.stop()
    heartbeat.timer.stop()
    session.close()
    workers.wait_for_all()
    timings.close()
    tab.deleteLater()
    return report


# ----- the report --------------------------------------------------------------------------------


def print_report(source_name: str, args: argparse.Namespace, sender: dict, r: dict) -> None:
    print(
        f"\n{source_name}, {args.rate:g} msg/s for {args.seconds:g} s; the Inspector "
        f"({r['platform']}, {r['size'][0]}x{r['size'][1]}, cap {r['cap']:,}, "
        f"{'whiteboard' if r['board_shown'] else 'frame'} panel shown)"
    )
    print(f"  sender: {json.dumps(sender)}")
    expected = (
        sender["history"] + sender["sent"] if source_name == "feeder" else sender.get("acked", 0)
    )
    print(
        f"  received {r['received']:,} distinct seqs of {expected:,} "
        f"({r['repeated']} repeated); all in time: {r['all_arrived_in_time']}; rows kept "
        f"{r['rows_kept']:,}, let go {r['rows_dropped']:,}, in the model {r['rows_in_model']:,}; "
        f"rows when the filter changed {r['rows_when_filtered']}"
    )
    b = r["batches"]
    print(f"  model inserts: {b['count']} ({b['rows_p50']:g} rows at p50, {b['rows_max']} max)")
    s = r["stall"]
    print(
        f"  GUI stall: longest {s['stall_ms']} ms (at {r['longest_stall_at_s']} s), "
        f"{s['over_goal']} gaps over {GOAL_STALL_MS:g} ms in {s['ticks']} ticks"
    )
    held = ", ".join(
        f"{k} {v['calls']}x {v['total_ms']} ms" for k, v in r["in_longest_stall"].items()
    )
    print(f"  in the longest stall: {held or 'no timed slot'}")
    for gap in r["gaps_over_goal"][:20]:
        top = sorted(gap["held"].items(), key=lambda kv: -kv[1])[:4]
        print(
            f"    gap at {gap['at_s']} s: {gap['ms']} ms; {', '.join(f'{k} {v}' for k, v in top)}"
        )
    for name in ("pause", "resume", "filter", "unfilter", "cut"):
        if f"{name}_stall" in r:
            w = r[f"{name}_stall"]
            after = f"{CUT_WINDOW_S:g} s" if name == "cut" else "second"
            print(
                f"  {name}: stall {w['stall_ms']} ms in the {after} after ({w['over_goal']} over)"
            )
    if "caught_up" in r:
        print(f"  caught up after the cut: {r['caught_up']:,} messages (rows marked filled)")
    for name in ("ingest_lag", "model_lag", "model_lag_after_resume"):
        if name in r:
            lag = r[name]
            print(
                f"  {name.replace('_', ' ')}: p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, "
                f"max {lag['max_ms']} ms ({lag['count']:,} messages)"
            )
    c = r["cpu"]
    print(
        f"  CPU (share of one CPU): GUI thread {c['gui_thread']}, worker thread "
        f"{c['worker_thread']}, other threads {c['other_threads']}, sender {c['sender']}"
    )
    rss = r["rss_mb"]
    marks = ", ".join(f"{at:g} s {mb:.0f}" for at, mb in rss[:: max(1, len(rss) // 8)])
    print(
        f"  VmRSS MB: before {r['memory_before']['rss_mb']:.0f}; {marks}; end "
        f"{r['memory_end']['rss_mb']:.0f}; VmHWM {r['memory_end']['peak_mb']:.0f}"
        f"{'' if r['peak_reset'] else ' (not reset)'}; cap reached at {r['rows_at_cap_s']} s, "
        f"the board's window full at {r['full_at_s']} s; from {r.get('growth_from_s')} s to the "
        f"end {r.get('rss_after_full_mb')} MB ({r.get('rss_growth_after_full_mb_per_min')} "
        f"MB/min), Python's blocks in use {r.get('blocks_after_full')}"
    )
    print(f"  board: {r['board_messages']:,} whiteboard messages held, {r['board_shapes']} shapes")
    top = sorted(r["slots"].items(), key=lambda kv: -kv[1]["total_ms"])[:12]
    for name, v in top:
        print(
            f"    {name}: {v['calls']}x, p99 {v['p99_ms']} ms, max {v['max_ms']} ms, "
            f"total {v['total_ms']} ms"
        )
    if r["posted"]:
        print(f"  messages posted: {r['posted'][:3]}")
    if "profile" in r:
        print(f"\nprofile of the GUI thread (under cProfile):\n{r['profile']}")


def goals(source_name: str, sender: dict, r: dict) -> list[tuple[str, bool]]:
    expected = (
        sender["history"] + sender["sent"] if source_name == "feeder" else sender.get("acked", 0)
    )
    lag = r["model_lag"]["max_ms"]
    growth = r.get("rss_growth_after_full_mb_per_min")
    return [
        (f"no GUI stall over {GOAL_STALL_MS:g} ms ({r['stall']['stall_ms']} ms)",
         r["stall"]["stall_ms"] < GOAL_STALL_MS),
        (f"every message arrived ({r['received']:,} of {expected:,})",
         r["received"] >= expected),
        (f"keeps up: no message over {GOAL_LAG_S:g} s from its ts to the table ({lag} ms)",
         lag < GOAL_LAG_S * 1000),
        (f"memory flat once the cap holds {r['cap']:,} rows and the board's window is full "
         f"({growth} MB/min over the second half)",
         growth is not None and growth < 10),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sender", choices=["feeder", "sandbox"], default="feeder")
    parser.add_argument("--rate", type=float, default=2000.0, help="messages a second (2000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (60)")
    parser.add_argument(
        "--history", type=int, default=500, help="the feeder's log at joining (500)"
    )
    parser.add_argument(
        "--members",
        type=int,
        default=SANDBOX_MEMBERS,
        help=f"members sending through the sandbox ({SANDBOX_MEMBERS})",
    )
    parser.add_argument("--pause-at", type=float, default=20.0, help="pause at (20 s)")
    parser.add_argument("--pause-for", type=float, default=10.0, help="paused for (10 s)")
    parser.add_argument("--filter-at", type=float, default=40.0, help="filter at (40 s)")
    parser.add_argument("--filter-for", type=float, default=5.0, help="filtered for (5 s)")
    parser.add_argument(
        "--cut-at", type=float, default=50.0, help="the connection cut, caught up with sync (50 s)"
    )
    parser.add_argument(
        "--board", action="store_true", help="show the whiteboard panel (default: the frame's)"
    )
    parser.add_argument("--profile", action="store_true", help="the GUI thread under cProfile")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        print("bench/inspector.py reads /proc for CPU and memory: it runs on Linux only.")
        return 2
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", flush=True)
    if args.sender == "feeder":
        plan = FeedPlan(rate=args.rate, seconds=args.seconds, history=args.history)
        source = FeederSource(plan)
    else:
        source = SandboxSource(args.rate, args.seconds, args.members)
    print(f"sender: {source.name} (pid {source.pid})", flush=True)
    try:
        report = run(source, args)
        sender = source.finish()
    finally:
        source.close()
    print_report(source.name, args, sender, report)
    for text, ok in goals(source.name, sender, report):
        print(f"{'met' if ok else 'NOT met'}: {text}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "sender": sender,
                    "inspector": report,
                },
                indent=2,
                default=str,
            )  # fmt: skip
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
