"""Classrooms at scale: the console's Classrooms section against a district's registry. Not a
test; figures go to docs/benchmarks.md.

A private redis-server (its own port and folder, no persistence) is filled through the
registry's own code (``Registry.join_many``: the join script and the records beside it,
pipelined) with 10,000 active classrooms of 30 connections each: a teacher, 28 students and a
29th student, or in every tenth classroom a hidden support member instead (20 staff, each in 50
classrooms). Member records are as the gateway gives them: connected over the last hour, a
school's source address, a browser's user agent. A quarter of the classrooms then store a few
messages, so ``latestSeq`` and ``messagesLastMinute`` are not zero.

``--part backend`` measures the admin ``rooms`` op in this process (``backend.admin.handle``
on the registry) and end to end through the sandbox's ``/_admin`` (the sandbox started on that
redis-server, reached with the console's own ``AdminClient``): the first page (limit 50)
over repeated calls, full walks of the index at limits 50, 200 and 500 (time, each page's
time, the answers' bytes, redis-server's CPU), the same walks again sending the versions the
first walk got (``known``), and ``user_rooms`` and ``members``. While each walk runs, another
process PINGs redis-server every millisecond: Redis runs one command at a time, so a walk that
held it would hold up every classroom's messages.

``--part view`` measures the console's Classrooms section in this process, on the sandbox
over the same registry: a QApplication (offscreen unless ``QT_QPA_PLATFORM`` says otherwise),
a real ``ClassroomsView`` at 1280x800 over a real ``ClassroomsPresenter`` and
``classrooms.for_sandbox``. Each round (three by default) builds a fresh presenter and view and
measures the first walk (time to the first page painted, time to every classroom read), a
refresh (the second walk, sending ``known``), a sort by a column click each way and a
classroom id typed a key at a time, then cleared. A 5 ms ``QTimer`` heartbeat on the GUI
thread gives its longest stall in each (the longest gap between ticks, less the interval);
the presenter's and the model's slots are timed (wall and GUI-thread CPU) and the garbage
collector's passes noted, so a stall can be put down to what held it. The process's VmRSS
before the view, after each load and refresh, and its VmHWM (reset before the view) are read
from /proc. ``--profile`` runs the GUI thread under cProfile (its figures are then slower).

The default runs both parts on one registry, the backend first (its PING probe forks, which is
best done before Qt starts threads).

    python bench/classrooms.py                           # both parts, 10,000 x 30 (about 3.5 minutes)
    python bench/classrooms.py --part view               # the view only (about 2 minutes)
    python bench/classrooms.py --rooms 500 --members 30  # a quick run
    python bench/classrooms.py --json figures.json
"""

from __future__ import annotations

import argparse
import base64
import bisect
import collections
import contextlib
import cProfile
import gc
import io
import itertools
import json
import multiprocessing
import os
import pstats
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from backend import admin  # noqa: E402  (after the path, so the bench runs from a checkout)
from backend.registry import Member, Registry  # noqa: E402
from bench.processes import TICK, cpu_seconds, snapshot, start_sandbox, stop_process  # noqa: E402
from desktop import messages  # noqa: E402
from desktop.models.classrooms import ClassroomColumn  # noqa: E402
from desktop.sandbox.loopback import free_port, wait_for_port  # noqa: E402
from desktop.sandbox.redis_server import start_redis_server  # noqa: E402
from desktop.sandbox.secret import ADMIN_KEY_FILE  # noqa: E402
from desktop.services import classrooms  # noqa: E402
from desktop.services.admin import AdminClient, SandboxTransport  # noqa: E402
from desktop.services.paths import CONFIG_DIR_ENV  # noqa: E402
from desktop.views.classrooms import ClassroomsView, IdTable  # noqa: E402
from desktop.workers import worker as workers  # noqa: E402
from desktop.workers.classrooms import ClassroomsPresenter, ListStatus  # noqa: E402

GOAL_FIRST_PAGE_MS = 300.0
GOAL_STALL_MS = 50.0
LIMITS = (50, 200, 500)
STAFF = 20
SUPPORT_EVERY = 10  # classrooms with a hidden support member
MESSAGES_EVERY = 4  # classrooms that store messages
BATCH = 1000  # joins a pipeline
HEARTBEAT_MS = 5  # the GUI thread's heartbeat
VIEW_SIZE = (1280, 800)
VIEW_ROUNDS = 3
VIEW_WAIT_S = 180.0  # the longest a walk may take before the run gives up
PAINT_WAIT_S = 5.0  # the longest a sort or a keystroke may take to be painted
FILTER_TYPED = "school-123"  # a classroom id typed a key at a time (40 classrooms match)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; CrOS x86_64 15886.44.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def spread(values: list[float]) -> dict:
    """p50, p99 and max, in milliseconds, of durations in seconds."""
    return {
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "count": len(values),
    }


# ----- the district's registry -----------------------------------------------------------------


def room_name(n: int) -> str:
    return f"school-{n // 40:03d}-class-{n % 40:02d}"


def staff_id(n: int) -> str:
    return f"support-{n % STAFF:02d}@district.example"


def classroom_members(n: int, size: int, now: int, rng: random.Random) -> list[Member]:
    """Classroom ``n``'s connections: a teacher, students, and in every tenth one a hidden
    support member as the last."""

    def connection(user_id: str, role: str, hidden: bool = False) -> Member:
        return Member(
            connectionId=base64.b64encode(rng.randbytes(12)).decode(),
            userId=user_id,
            role=role,
            connectedAt=now - rng.randrange(3_600_000),
            sourceIp=f"10.{n // 40 % 256}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            userAgent=rng.choice(USER_AGENTS),
            hidden=hidden,
        )

    found = [connection(f"teacher-{n:05d}", "teacher")]
    students = size - 1 - (n % SUPPORT_EVERY == 0)
    found += [connection(f"student-{n:05d}-{k:02d}", "student") for k in range(students)]
    if n % SUPPORT_EVERY == 0 and size > 1:
        found.append(connection(staff_id(n // SUPPORT_EVERY), "support", hidden=True))
    return found[:size]


def fill(client: redis.Redis, rooms: int, members: int, progress=print) -> dict:
    """Registers ``rooms`` classrooms of ``members`` connections, then stores messages in a
    quarter of them (last, so their per-minute counts are fresh when the walks run)."""
    registry = Registry(client, rate_limit_per_second=0)
    rng = random.Random(2024)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    batch: list[tuple[str, Member]] = []
    for n in range(rooms):
        batch += [(room_name(n), m) for m in classroom_members(n, members, now, rng)]
        if len(batch) >= BATCH or n == rooms - 1:
            registry.join_many(batch, now)
            batch = []
        if n and n % 2000 == 0:
            progress(f"  {n} classrooms registered", flush=True)
    joined = time.perf_counter() - started
    stored = 0
    for n in range(0, rooms, MESSAGES_EVERY):
        room = room_name(n)
        sender = registry.members(room)[0]
        for k in range(1 + n % 7):
            registry.store(room, sender, '{"event":"message","seq":', f',"data":{k}}}')
            stored += 1
    info = client.info("memory")
    return {
        "rooms": rooms,
        "connections": rooms * members,
        "messages": stored,
        "join_seconds": round(joined, 1),
        "load_seconds": round(time.perf_counter() - started, 1),
        "used_memory_mb": round(info["used_memory"] / 2**20, 1),
        "keys": client.dbsize(),
    }


@dataclass
class LoadedRegistry:
    """A filled redis-server of the benchmark's own, and what filling it took."""

    url: str
    redis_pid: int
    load: dict


@contextlib.contextmanager
def loaded_registry(
    rooms: int = 10_000, members: int = 30, progress=print
) -> Iterator[LoadedRegistry]:
    """A private redis-server filled with ``rooms`` classrooms of ``members`` connections."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench/classrooms.py needs redis-server on PATH")
    service = start_redis_server(binary)
    try:
        client = redis.Redis.from_url(service.url)
        pid = int(client.info("server")["process_id"])
        progress(f"loading {rooms} classrooms x {members} connections", flush=True)
        load = fill(client, rooms, members, progress)
        client.close()
        yield LoadedRegistry(service.url, pid, load)
    finally:
        service.stop()


@dataclass
class RunningSandbox:
    """The sandbox on a given Redis: its process, ``/_admin`` and the key for it, and the
    config folder it keeps its secrets in (point ``CLASSROOM_CONSOLE_CONFIG_DIR`` at it and
    the console finds this sandbox's admin key)."""

    process: subprocess.Popen
    port: int
    admin_url: str
    admin_key: str
    config_dir: Path

    def admin(self) -> AdminClient:
        return AdminClient(SandboxTransport(self.admin_url, self.admin_key, timeout=60.0))


@contextlib.contextmanager
def sandbox_on(redis_url: str, log: Path | None = None) -> Iterator[RunningSandbox]:
    """``classroom-console sandbox --redis-url`` with a config folder of its own, in which
    its admin key is made here first (as the sandbox would make it)."""
    config_dir = Path(tempfile.mkdtemp(prefix="classroom-bench-config-"))
    key = secrets.token_urlsafe(32)
    key_file = config_dir / ADMIN_KEY_FILE
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    port = free_port()
    process = start_sandbox(
        port, ["--redis-url", redis_url], log, env={CONFIG_DIR_ENV: str(config_dir)}
    )
    try:
        wait_for_port(port, 60.0)
        running = RunningSandbox(process, port, f"http://127.0.0.1:{port}/_admin", key, config_dir)
        running.admin().call("rooms", limit=1)  # answered once its workers are up
        yield running
    finally:
        stop_process(process, 60.0)
        shutil.rmtree(config_dir, ignore_errors=True)


# ----- what the backend does at that scale ----------------------------------------------------


def _probe(url: str, conn) -> None:
    client = redis.Redis.from_url(url)
    client.ping()
    conn.send("ready")
    waits = []
    while not conn.poll():
        started = time.perf_counter()
        client.ping()
        waits.append(time.perf_counter() - started)
        time.sleep(0.001)
    conn.send(spread(waits))


@contextlib.contextmanager
def stall_probe(url: str) -> Iterator[dict]:
    """Another client PINGing redis-server every millisecond from a process of its own; the
    dict gets the PINGs' p50, p99 and max when the block ends."""
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    process = context.Process(target=_probe, args=(url, theirs), daemon=True)
    process.start()
    mine.recv()
    found: dict = {}
    try:
        yield found
    finally:
        mine.send("stop")
        found.update(mine.recv())
        process.join(10)


def call_admin(request: dict, registry: Registry) -> dict:
    """The admin op as the admin Lambda runs it, in this process."""
    answer = admin.handle(request, registry, None, None)
    if not answer.get("ok"):
        raise RuntimeError(f"{request['op']}: {answer.get('message')}")
    return answer


def timed_calls(call: Callable[[], object], repeat: int) -> dict:
    call()  # warm: scripts loaded, connections open
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return spread(times)


def walk(
    ask: Callable[[dict], dict], limit: int, known_by_cursor: dict | None = None
) -> tuple[dict, dict]:
    """Every page of the index at ``limit``; with ``known_by_cursor`` (a previous walk's versions
    by the cursor that asked for them), each page sends the versions it got last time."""
    times, sizes, rooms, unchanged = [], [], 0, 0
    versions: dict[str | None, dict[str, str]] = {}
    cursor = None
    started = time.perf_counter()
    while True:
        request = {"op": "rooms", "limit": limit, "cursor": cursor}
        if known_by_cursor is not None:
            request["known"] = known_by_cursor.get(cursor, {})
        asked = time.perf_counter()
        answer = ask(request)
        times.append(time.perf_counter() - asked)
        sizes.append(len(json.dumps(answer, separators=(",", ":"))))
        versions[cursor] = {r["room"]: r["version"] for r in answer["rooms"]}
        rooms += len(answer["rooms"])
        unchanged += sum(bool(r.get("unchanged")) for r in answer["rooms"])
        cursor = answer["cursor"]
        if cursor is None:
            break
    figures = {
        "limit": limit,
        "known": known_by_cursor is not None,
        "total_ms": round((time.perf_counter() - started) * 1000, 1),
        "pages": len(times),
        "rooms": rooms,
        "unchanged": unchanged,
        "page": spread(times),
        "bytes": sum(sizes),
        "page_bytes_max": max(sizes),
    }
    return figures, versions


def measure_walks(ask: Callable[[dict], dict], url: str, cpu: Callable[[], dict]) -> list[dict]:
    """A full walk at each limit, then the same with the versions the first one got."""
    found = []
    for limit in LIMITS:
        versions = None
        for with_known in (False, True):
            before = cpu()
            with stall_probe(url) as pings:
                figures, got = walk(ask, limit, versions if with_known else None)
            after = cpu()
            figures["cpu_s"] = {k: round(after[k] - before.get(k, 0.0), 2) for k in after}
            figures["redis_ping"] = pings
            found.append(figures)
            versions = got
    return found


def measure(ask: Callable[[dict], dict], url: str, cpu: Callable[[], dict], repeat: int) -> dict:
    first = timed_calls(lambda: ask({"op": "rooms", "limit": 50}), repeat)
    walks = measure_walks(ask, url, cpu)
    student, staff = "student-00001-00", staff_id(0)
    return {
        "first_page": first,
        "walks": walks,
        "user_rooms_student": timed_calls(
            lambda: ask({"op": "user_rooms", "userId": student}), repeat
        ),
        "user_rooms_staff": timed_calls(lambda: ask({"op": "user_rooms", "userId": staff}), repeat),
        "staff_rooms": len(ask({"op": "user_rooms", "userId": staff})["rooms"]),
        "members": timed_calls(lambda: ask({"op": "members", "room": room_name(1)}), repeat),
    }


def run_backend(
    loaded: LoadedRegistry, repeat: int = 50, sandbox_log: Path | None = None, progress=print
) -> dict:
    """The admin ops in this process, then through the sandbox's ``/_admin``."""
    client = redis.Redis.from_url(loaded.url)
    registry = Registry(client)

    def redis_cpu() -> dict:
        return {"redis": cpu_seconds(loaded.redis_pid), "bench": time.process_time()}

    progress("measuring in this process (backend.admin.handle)", flush=True)
    report = {
        "in_process": measure(lambda r: call_admin(r, registry), loaded.url, redis_cpu, repeat)
    }
    client.close()
    progress("measuring through the sandbox's /_admin", flush=True)
    with sandbox_on(loaded.url, sandbox_log) as sandbox:
        console = sandbox.admin()

        def sandbox_cpu() -> dict:
            taken = snapshot(sandbox.process.pid, [])
            return {**taken.cpu, **redis_cpu()}

        report["sandbox"] = measure(
            lambda r: console.call(r["op"], **{k: v for k, v in r.items() if k != "op"}),
            loaded.url,
            sandbox_cpu,
            repeat,
        )
    return report


# ----- what the console's view does at that scale ----------------------------------------------


def memory() -> dict:
    """This process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": found.get("VmRSS", 0.0), "peak_mb": found.get("VmHWM", 0.0)}


def reset_peak() -> bool:
    """VmHWM starts again from the current RSS (Linux 4.0 and later); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each of this process's threads, by native thread id."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


def other_threads_cpu(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the threads other than this one (the GUI thread) took between the two."""
    mine = threading.get_native_id()
    return sum(t - before.get(tid, 0.0) for tid, t in after.items() if tid != mine)


class Heartbeat(QObject):
    """A timer on the GUI thread every ``interval_ms``: a gap between two ticks longer than the
    interval is time the GUI thread was busy (or waiting for the GIL) and could not answer the
    user."""

    def __init__(self, interval_ms: int = HEARTBEAT_MS) -> None:
        super().__init__()
        self.interval = interval_ms / 1000
        self.ticks = array("d")  # not a list of floats: the ticks must not be what memory measures
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.timer.start()

    def stall(self, start: float, end: float) -> dict:
        """The longest gap between ticks from ``start`` to ``end`` less the interval (the tick
        before ``start`` and the one after ``end`` included), and how many were over the goal."""
        run_until(lambda: self.ticks[-1] > end, 1.0, self)
        first = max(0, bisect.bisect_left(self.ticks, start) - 1)
        window = self.ticks[first : bisect.bisect_right(self.ticks, end) + 1]
        pairs = list(itertools.pairwise(window)) or [(start, start + self.interval)]
        longest = max(pairs, key=lambda pair: pair[1] - pair[0])
        gaps = [b - a - self.interval for a, b in pairs]
        return {
            "stall_ms": round(max(gaps) * 1000, 1),
            "over_goal": sum(gap * 1000 > GOAL_STALL_MS for gap in gaps),
            "ticks": len(window),
            "longest": longest,  # the ticks either side of the longest gap
        }


def run_until(done: Callable[[], bool], timeout: float, heartbeat: Heartbeat) -> bool:
    """The GUI thread's event loop until ``done()`` (asked at every heartbeat) or ``timeout``
    seconds; whether it was done. What is measured is noted by the slots themselves, so how
    soon the loop notices does not count."""
    if done():
        return True
    loop = QEventLoop()

    def check() -> None:
        if done():
            loop.quit()

    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    heartbeat.timer.timeout.connect(check)
    deadline.start(int(timeout * 1000))
    loop.exec()
    heartbeat.timer.timeout.disconnect(check)
    deadline.stop()
    return done()


class PaintWatch:
    """When the classrooms table finished each paint, and how many rows its model had then:
    this one table's ``paintEvent``, wrapped."""

    def __init__(self, view: ClassroomsView) -> None:
        self.paints: list[tuple[float, int]] = []
        table, model = view.rooms_table, view.classrooms

        def paint(event) -> None:
            IdTable.paintEvent(table, event)
            self.paints.append((time.perf_counter(), model.rowCount()))

        table.paintEvent = paint

    def after(self, start: float, rows: bool = True) -> float | None:
        """The end of the first paint since ``start`` (that showed rows, with ``rows``)."""
        return next((at for at, n in self.paints if at >= start and (n or not rows)), None)


class StatusWatch:
    """Every ``ListStatus`` the presenter sends, with when."""

    def __init__(self, presenter: ClassroomsPresenter) -> None:
        self.seen: list[tuple[float, ListStatus]] = []
        presenter.status_changed.connect(lambda s: self.seen.append((time.perf_counter(), s)))

    def ended(self, start: float) -> tuple[float, ListStatus] | None:
        """The first status since ``start`` of a walk over, with every classroom read (or
        failed)."""
        for at, status in self.seen:
            done = status.total > 0 and status.loaded == status.total
            if at >= start and not status.loading and (done or status.error):
                return at, status
        return None


class CollectionTimes:
    """The garbage collector's passes, by generation, as ``(start, wall, cpu)`` in ``times``
    (a pass holds the GIL, so its wall time is its cost to every thread)."""

    def __init__(self, times: dict[str, list[tuple[float, float, float]]]) -> None:
        self.times = times
        self._collecting: tuple[float, float] | None = None
        gc.callbacks.append(self._collection)

    def _collection(self, phase: str, info: dict) -> None:
        # Both phases run on the thread that collects: its CPU time against the wall time
        # tells a pass's own cost from the machine taking the CPU away meanwhile.
        if phase == "start":
            self._collecting = (time.perf_counter(), time.thread_time())
        elif self._collecting is not None:
            started, cpu = self._collecting
            took = time.perf_counter() - started
            self.times[f"gc gen {info['generation']}"].append(
                (started, took, time.thread_time() - cpu)
            )
            self._collecting = None

    def close(self) -> None:
        gc.callbacks.remove(self._collection)


class SlotTimes:
    """How long the GUI thread spent in the presenter's and the classrooms model's slots: the
    presenter's own methods wrapped on this instance, the view's slot that shows the list
    (the model's ``show`` and the selection kept) wrapped in place of its direct connection. The garbage collector's passes count too,
    by generation (on whichever thread they run: each holds the GIL)."""

    def __init__(self, presenter: ClassroomsPresenter, view: ClassroomsView) -> None:
        self.times: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
        for name in ("_page", "_walk_done", "visible"):
            setattr(presenter, name, self.timed(name.strip("_"), getattr(presenter, name)))
        model = view.classrooms
        presenter.classrooms_changed.disconnect(view._show_classrooms)
        presenter.classrooms_changed.connect(self.timed("model.show", view._show_classrooms))
        model.sort = self.timed("model.sort", model.sort)
        self._collections = CollectionTimes(self.times)

    def close(self) -> None:
        self._collections.close()

    def timed(self, name: str, fn: Callable) -> Callable:
        def timed(*args):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args)
            finally:
                took = time.perf_counter() - started
                self.times[name].append((started, took, time.thread_time() - cpu))

        return timed

    def reset(self) -> None:
        self.times.clear()

    def summary(self, within: tuple[float, float] | None = None) -> dict:
        """Each slot's calls, longest and total time (of the calls that began ``within``)."""
        found = {}
        for name, calls in sorted(self.times.items()):
            if within is not None:
                calls = [call for call in calls if within[0] <= call[0] <= within[1]]
            if calls:
                times = [took for _, took, _ in calls]
                found[name] = {
                    "calls": len(times),
                    "max_ms": round(max(times) * 1000, 1),
                    "total_ms": round(sum(times) * 1000, 1),
                    "cpu_ms": round(sum(cpu for _, _, cpu in calls) * 1000, 1),
                }
        return found


@contextlib.contextmanager
def profiling(profiles: dict[str, cProfile.Profile] | None, name: str) -> Iterator[None]:
    """cProfile on the GUI thread (the only one it sees) for ``name``, when asked for."""
    if profiles is None:
        yield
        return
    profiler = profiles.setdefault(name, cProfile.Profile())
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()


def view_round(sandbox: RunningSandbox, heartbeat: Heartbeat, profiles: dict | None) -> dict:
    """A fresh presenter and view on the sandbox: the first walk, a refresh, a sort each way
    and a classroom id typed and cleared."""
    presenter = ClassroomsPresenter()
    presenter.set_paused(True)  # no timed refresh: the benchmark asks for the one it measures
    view = ClassroomsView(presenter)
    view.resize(*VIEW_SIZE)
    paints, statuses = PaintWatch(view), StatusWatch(presenter)
    slots = SlotTimes(presenter, view)
    posted: list[messages.Message] = []
    messages.bus().posted.connect(posted.append)
    view.show()  # the section on screen, its presenter active, with no environment yet
    run_until(lambda: bool(view.windowHandle() and view.windowHandle().isExposed()), 10, heartbeat)
    QCoreApplication.processEvents()
    service = classrooms.for_sandbox(sandbox.admin_url, sandbox.admin_key)

    def walk(name: str, begin: Callable[[], None]) -> dict:
        slots.reset()
        cpu, threads, started = time.thread_time(), thread_cpu(), time.perf_counter()
        with profiling(profiles, name):
            begin()
            if not run_until(lambda: statuses.ended(started) is not None, VIEW_WAIT_S, heartbeat):
                raise RuntimeError(f"{name}: the walk did not end within {VIEW_WAIT_S:g} s")
            ended, status = statuses.ended(started)
            if status.error or posted:
                raise RuntimeError(f"{name}: {status.error or posted[0].text}")
            run_until(lambda: paints.after(ended) is not None, PAINT_WAIT_S, heartbeat)
        first = paints.after(started)
        stall = heartbeat.stall(started, paints.after(ended) or ended)
        return {
            "seconds": ended - started,
            "first_page_s": None if first is None else first - started,
            "rooms": status.loaded,
            "stall": stall,
            "gui_cpu_s": round(time.thread_time() - cpu, 2),
            "other_threads_cpu_s": round(other_threads_cpu(threads, thread_cpu()), 2),
            "slots": slots.summary(),
            "in_longest_stall": slots.summary(within=stall.pop("longest")),
            "memory": memory(),
        }

    def act(name: str, action: Callable[[], None]) -> dict:
        slots.reset()
        started = time.perf_counter()
        with profiling(profiles, name):
            action()
            returned = time.perf_counter()
            # With no row to show the table is not painted (the empty note is, instead).

            def shown() -> float | None:
                painted = paints.after(started, rows=False)
                return painted or (None if view.classrooms.rowCount() else returned)

            run_until(lambda: shown() is not None, PAINT_WAIT_S, heartbeat)
        painted = shown()
        stall = heartbeat.stall(started, painted or time.perf_counter())
        stall.pop("longest")
        return {
            "seconds": None if painted is None else painted - started,
            "rows": view.classrooms.rowCount(),
            "stall": stall,
            "slots": slots.summary(),
        }

    table, typed = view.rooms_table, view.room_filter
    found = {"load": walk("load", lambda: presenter.set_service(service, "Local sandbox"))}
    loaded_row = weakref.ref(next(iter(presenter.rooms.values())))  # replaced by the refresh
    found["refresh"] = walk("refresh", presenter.refresh)
    descending, ascending = Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder
    found["sort"] = [
        act("sort", lambda: table.sortByColumn(ClassroomColumn.STUDENTS, descending)),
        act("sort", lambda: table.sortByColumn(ClassroomColumn.ROOM, ascending)),
    ]
    found["typing"] = [
        act("filter", lambda k=k: typed.setText(FILTER_TYPED[:k]))
        for k in range(1, len(FILTER_TYPED) + 1)
    ]
    found["clear"] = act("filter", typed.clear)
    messages.bus().posted.disconnect(posted.append)
    slots.close()
    view.hide()
    presenter.set_service(None, "")
    workers.wait_for_all()
    view.deleteLater()
    presenter.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    # Once the round's presenter and view are gone, a row of its first walk is alive only if
    # something still holds it (the refresh's worker, which was handed the rows as ``known``).
    found["load_rows_held"] = loaded_row() is not None
    found["memory_after"] = memory()
    return found


def run_view(
    loaded: LoadedRegistry,
    rounds: int = VIEW_ROUNDS,
    sandbox_log: Path | None = None,
    profile: bool = False,
    progress=print,
) -> dict:
    """The console's Classrooms section in this process, on the sandbox over ``loaded``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication([sys.argv[0]])
    messages.bus()
    report = {
        "platform": app.platformName(),
        "heartbeat_ms": HEARTBEAT_MS,
        "size": list(VIEW_SIZE),
        "peak_reset": reset_peak(),
        "memory_before": memory(),
        "rounds": [],
    }
    heartbeat = Heartbeat()
    profiles: dict[str, cProfile.Profile] | None = {} if profile else None
    progress("measuring the console's view through the sandbox's /_admin", flush=True)
    with sandbox_on(loaded.url, sandbox_log) as sandbox:
        for n in range(rounds):
            progress(f"  round {n + 1} of {rounds}", flush=True)
            report["rounds"].append(view_round(sandbox, heartbeat, profiles))
    heartbeat.timer.stop()
    report["memory_end"] = memory()
    if profiles:
        report["profiles"] = {}
        for name, profiler in profiles.items():
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
            report["profiles"][name] = text.getvalue()
    return report


# ----- the report --------------------------------------------------------------------------------


def print_backend(load: dict, report: dict) -> None:
    print(
        f"\nloaded {load['rooms']} classrooms, {load['connections']} connections, "
        f"{load['messages']} messages in {load['load_seconds']} s "
        f"(joins {load['join_seconds']} s); redis used_memory {load['used_memory_mb']} MB, "
        f"{load['keys']} keys"
    )
    for where, figures in report.items():
        first = figures["first_page"]
        print(f"\n{where}:")
        print(
            f"  first page (limit 50): p50 {first['p50_ms']} ms, p99 {first['p99_ms']} ms, "
            f"max {first['max_ms']} ms over {first['count']} calls"
        )
        for w in figures["walks"]:
            page = w["page"]
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(w["cpu_s"].items()) if v >= 0.005)
            print(
                f"  walk limit {w['limit']:3d}{' known' if w['known'] else '      '}: "
                f"{w['total_ms']:8.1f} ms, {w['pages']} pages, {w['rooms']} rooms "
                f"({w['unchanged']} unchanged), page p50 {page['p50_ms']} p99 {page['p99_ms']} "
                f"max {page['max_ms']} ms, {w['bytes'] / 2**20:.2f} MB "
                f"(page max {w['page_bytes_max'] / 1024:.0f} KB); CPU s: {cpu}; "
                f"redis PING p99 {w['redis_ping']['p99_ms']} max {w['redis_ping']['max_ms']} ms"
            )
        for name in ("user_rooms_student", "user_rooms_staff", "members"):
            f = figures[name]
            extra = f" ({figures['staff_rooms']} rooms)" if name == "user_rooms_staff" else ""
            print(f"  {name}{extra}: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")


def goals(report: dict) -> list[tuple[str, bool]]:
    first = report["sandbox"]["first_page"]["p99_ms"]
    ping = max(w["redis_ping"]["max_ms"] for f in report.values() for w in f["walks"])
    return [
        (f"first page through /_admin under {GOAL_FIRST_PAGE_MS:g} ms at p99 ({first} ms)",
         first < GOAL_FIRST_PAGE_MS),
        (f"no Redis stall over {GOAL_STALL_MS:g} ms during the walks (PING max {ping} ms)",
         ping < GOAL_STALL_MS),
    ]  # fmt: skip


def span(values: list[float], scale: float = 1000.0, digits: int = 0) -> str:
    """A range of values (seconds, shown in ms by default) as "low-high", or one value."""
    low, high = (round(min(values) * scale, digits), round(max(values) * scale, digits))
    shown = [f"{v:,.{digits}f}" for v in (low, high)]
    return shown[0] if shown[0] == shown[1] else f"{shown[0]}-{shown[1]}"


def view_summary(view: dict) -> dict:
    """The rounds' figures side by side: lists over the rounds (seconds, ms or MB)."""
    rounds = view["rounds"]

    def stalls(step: str) -> list[float]:
        return [
            max(a["stall"]["stall_ms"] for a in r[step]) if isinstance(r[step], list)
            else r[step]["stall"]["stall_ms"]
            for r in rounds
        ]  # fmt: skip

    def slot(step: str, name: str, field: str = "max_ms") -> list[float]:
        return [r[step]["slots"].get(name, {}).get(field, 0.0) for r in rounds]

    keystrokes = [a["seconds"] or PAINT_WAIT_S for r in rounds for a in r["typing"]]
    return {
        "first_page_s": [r["load"]["first_page_s"] or VIEW_WAIT_S for r in rounds],
        "loaded_s": [r["load"]["seconds"] for r in rounds],
        "refresh_s": [r["refresh"]["seconds"] for r in rounds],
        "rooms": [r["load"]["rooms"] for r in rounds],
        "stall_load_ms": stalls("load"),
        "stall_refresh_ms": stalls("refresh"),
        "over_goal_load": [r["load"]["stall"]["over_goal"] for r in rounds],
        "over_goal_refresh": [r["refresh"]["stall"]["over_goal"] for r in rounds],
        "gui_cpu_load_s": [r["load"]["gui_cpu_s"] for r in rounds],
        "gui_cpu_refresh_s": [r["refresh"]["gui_cpu_s"] for r in rounds],
        "page_slot_load_ms": slot("load", "page"),
        "page_slot_refresh_ms": slot("refresh", "page"),
        "show_load_ms": slot("load", "model.show"),
        "show_refresh_ms": slot("refresh", "model.show"),
        "pages": slot("load", "page", "calls"),
        "sort_s": [a["seconds"] or PAINT_WAIT_S for r in rounds for a in r["sort"]],
        "stall_sort_ms": stalls("sort"),
        "keystroke_s": keystrokes,
        "stall_typing_ms": stalls("typing"),
        "clear_s": [r["clear"]["seconds"] or PAINT_WAIT_S for r in rounds],
        "stall_clear_ms": stalls("clear"),
        "rss_load_mb": [r["load"]["memory"]["rss_mb"] for r in rounds],
        "rss_refresh_mb": [r["refresh"]["memory"]["rss_mb"] for r in rounds],
    }


def print_view(view: dict) -> None:
    s = view_summary(view)
    ms = lambda values: span(values, 1.0)  # noqa: E731  (already in ms)
    runs = len(view["rounds"])
    width, height = view["size"]
    print(
        f"\nthe console's view ({view['platform']}, {width}x{height}, heartbeat "
        f"{view['heartbeat_ms']} ms), {runs} round{'s' if runs != 1 else ''}, {span(s['rooms'], 1)} classrooms:"
    )
    print(f"  first page shown: {span(s['first_page_s'])} ms")
    print(
        f"  all loaded: {span(s['loaded_s'], 1, 2)} s ({span(s['pages'], 1)} pages); longest "
        f"GUI stall {ms(s['stall_load_ms'])} ms ({span(s['over_goal_load'], 1)} over "
        f"{GOAL_STALL_MS:g} ms); GUI thread CPU {span(s['gui_cpu_load_s'], 1, 2)} s; slowest "
        f"page {ms(s['page_slot_load_ms'])} ms (model.show {ms(s['show_load_ms'])} ms)"
    )
    print(
        f"  refresh: {span(s['refresh_s'], 1, 2)} s; longest GUI stall "
        f"{ms(s['stall_refresh_ms'])} ms ({span(s['over_goal_refresh'], 1)} over "
        f"{GOAL_STALL_MS:g} ms); GUI thread CPU {span(s['gui_cpu_refresh_s'], 1, 2)} s; "
        f"slowest page {ms(s['page_slot_refresh_ms'])} ms (model.show "
        f"{ms(s['show_refresh_ms'])} ms)"
    )
    for step in ("load", "refresh"):
        held = [
            ", ".join(
                f"{n} {v['calls']}x {v['total_ms']:g} ms (CPU {v['cpu_ms']:g})"
                for n, v in r[step]["in_longest_stall"].items()
            )
            or "no slot"
            for r in view["rounds"]
        ]
        print(f"  in the {step}'s longest stall, by round: " + "; ".join(held))
    print(
        f"  sort by a column click ({span(s['rooms'], 1)} rows): {span(s['sort_s'])} ms to "
        f"painted, longest "
        f"stall {ms(s['stall_sort_ms'])} ms"
    )
    print(
        f"  typing {FILTER_TYPED!r} a key at a time: {span(s['keystroke_s'])} ms a key to "
        f"painted, longest stall {ms(s['stall_typing_ms'])} ms; clearing it "
        f"{span(s['clear_s'])} ms, stall {ms(s['stall_clear_ms'])} ms"
    )
    held = sum(r["load_rows_held"] for r in view["rounds"])
    after = ", ".join(f"{r['memory_after']['rss_mb']:.0f}" for r in view["rounds"])
    print(
        f"  after each round, its presenter and view deleted: VmRSS {after} MB; the first "
        f"walk's rows still held in {held} of {len(view['rounds'])} rounds"
    )
    before, end = view["memory_before"], view["memory_end"]
    peak = "" if view["peak_reset"] else " (of the whole process: it could not be reset)"
    print(
        f"  memory (VmRSS): {before['rss_mb']:.0f} MB before the view, "
        f"{span(s['rss_load_mb'], 1)} MB after the load, {span(s['rss_refresh_mb'], 1)} MB "
        f"after the refresh; peak (VmHWM) {end['peak_mb']:.0f} MB{peak}"
    )
    for name, text in view.get("profiles", {}).items():
        print(f"\nprofile of the GUI thread, {name} (all rounds, under cProfile):\n{text}")


def view_goals(view: dict) -> list[tuple[str, bool]]:
    s = view_summary(view)
    first = max(s["first_page_s"]) * 1000
    stall = max(s["stall_load_ms"] + s["stall_refresh_ms"])
    acting = max(s["stall_sort_ms"] + s["stall_typing_ms"] + s["stall_clear_ms"])
    return [
        (f"the view's first page under {GOAL_FIRST_PAGE_MS:g} ms in every round ({first:.0f} ms)",
         first < GOAL_FIRST_PAGE_MS),
        (f"no GUI stall over {GOAL_STALL_MS:g} ms during a load or a refresh ({stall:g} ms)",
         stall < GOAL_STALL_MS),
        (f"no GUI stall over {GOAL_STALL_MS:g} ms in a sort or a keystroke ({acting:g} ms)",
         acting < GOAL_STALL_MS),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part",
        choices=["all", "backend", "view"],
        default="all",
        help="what to measure (default all: the backend, then the view)",
    )
    parser.add_argument("--rooms", type=int, default=10_000, help="classrooms (default 10000)")
    parser.add_argument(
        "--members", type=int, default=30, help="connections per classroom (default 30)"
    )
    parser.add_argument(
        "--repeat", type=int, default=50, help="calls of each timed op (default 50)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=VIEW_ROUNDS,
        help=f"the view's rounds: a load and a refresh each (default {VIEW_ROUNDS})",
    )
    parser.add_argument(
        "--profile", action="store_true", help="the view's GUI thread under cProfile (slower)"
    )
    parser.add_argument("--sandbox-log", type=Path, metavar="FILE", help="the sandbox's output")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        print("bench/classrooms.py reads /proc for CPU and memory: it runs on Linux only.")
        return 2
    if args.rooms < 2 or args.members < 2 or args.rounds < 1:
        parser.error("--rooms and --members must be at least 2, --rounds at least 1")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", flush=True)
    backend, view = None, None
    with loaded_registry(args.rooms, args.members) as loaded:
        # The backend first: its PING probe forks, which is best done before Qt has threads.
        if args.part in ("all", "backend"):
            backend = run_backend(loaded, args.repeat, args.sandbox_log)
        if args.part in ("all", "view"):
            view = run_view(loaded, args.rounds, args.sandbox_log, args.profile)
    found = []
    if backend is not None:
        print_backend(loaded.load, backend)
        found += goals(backend)
    if view is not None:
        if backend is None:
            print(
                f"\nloaded {loaded.load['rooms']} classrooms, {loaded.load['connections']} "
                f"connections in {loaded.load['load_seconds']} s"
            )
        print_view(view)
        found += view_goals(view)
    for text, ok in found:
        print(f"{'met' if ok else 'NOT met'}: {text}")
    if args.json:
        figures = {"load": loaded.load, **(backend or {})}
        if view is not None:
            figures["view"] = {**view, "summary": view_summary(view)}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
