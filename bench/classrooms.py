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

    python bench/classrooms.py                           # 10,000 x 30 (about 2.5 minutes)
    python bench/classrooms.py --rooms 500 --members 30  # a quick run
    python bench/classrooms.py --json figures.json

The view part (``--part view``, the console's GUI thread at this scale) builds on
``loaded_registry`` and ``sandbox_on``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import multiprocessing
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from backend import admin  # noqa: E402  (after the path, so the bench runs from a checkout)
from backend.registry import Member, Registry  # noqa: E402
from bench.processes import cpu_seconds, snapshot, start_sandbox, stop_process  # noqa: E402
from desktop.sandbox.loopback import free_port, wait_for_port  # noqa: E402
from desktop.sandbox.redis_server import start_redis_server  # noqa: E402
from desktop.sandbox.secret import ADMIN_KEY_FILE  # noqa: E402
from desktop.services.admin import AdminClient, SandboxTransport  # noqa: E402
from desktop.services.paths import CONFIG_DIR_ENV  # noqa: E402

GOAL_FIRST_PAGE_MS = 300.0
GOAL_STALL_MS = 50.0
LIMITS = (50, 200, 500)
STAFF = 20
SUPPORT_EVERY = 10  # classrooms with a hidden support member
MESSAGES_EVERY = 4  # classrooms that store messages
BATCH = 1000  # joins a pipeline
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["backend"], default="backend", help="what to measure")
    parser.add_argument("--rooms", type=int, default=10_000, help="classrooms (default 10000)")
    parser.add_argument(
        "--members", type=int, default=30, help="connections per classroom (default 30)"
    )
    parser.add_argument(
        "--repeat", type=int, default=50, help="calls of each timed op (default 50)"
    )
    parser.add_argument("--sandbox-log", type=Path, metavar="FILE", help="the sandbox's output")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        print("bench/classrooms.py reads /proc for CPU: it runs on Linux only.")
        return 2
    if args.rooms < 2 or args.members < 2:
        parser.error("--rooms and --members must be at least 2")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", flush=True)
    with loaded_registry(args.rooms, args.members) as loaded:
        report = run_backend(loaded, args.repeat, args.sandbox_log)
    print_backend(loaded.load, report)
    for text, ok in goals(report):
        print(f"{'met' if ok else 'NOT met'}: {text}")
    if args.json:
        args.json.write_text(json.dumps({"load": loaded.load, **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
