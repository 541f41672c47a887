"""The processes a benchmark starts and measures: the sandbox, started the same way by every
benchmark, and what each process costs in CPU time and resident memory, read from /proc (so
that part is Linux only)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-" + "0" * 52
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
SANDBOX_ROLES = ("gateway", "workers", "redis", "other")


# ----- starting and stopping --------------------------------------------------------------------


def sandbox_env() -> dict[str, str]:
    """The sandbox's environment: the benchmarks' token secret."""
    return dict(os.environ, CLASSROOM_TOKEN_SECRET=SECRET, PYTHONPATH=str(ROOT))


def start_process(
    args: list[str], env: dict | None = None, log: Path | None = None
) -> subprocess.Popen:
    """Starts ``args`` from the checkout, its output in ``log`` or thrown away."""
    output = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115  (the child keeps it)
    try:
        return subprocess.Popen(
            args,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            cwd=str(ROOT),
        )
    finally:
        if log:
            output.close()


def start_sandbox(
    port: int, sandbox_args: list[str], log: Path | None = None, env: dict | None = None
) -> subprocess.Popen:
    """``classroom-console sandbox`` on ``port``, in a process of its own, with the backend's
    per-connection rate limit off: a benchmark measures the sandbox, not the limit. ``env``
    adds to its environment (e.g. a config folder of the benchmark's own)."""
    command = [
        sys.executable,
        "-m",
        "desktop.cli",
        "sandbox",
        "--port",
        str(port),
        "--rate-limit",
        "0",
    ]
    return start_process([*command, *sandbox_args], {**sandbox_env(), **(env or {})}, log)


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, so the sandbox stops its workers and redis-server; SIGKILL after ``timeout``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ----- what they cost (Linux: /proc) ------------------------------------------------------------


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
    """What a child of the sandbox's gateway is, from its command line."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    if b"redis-server" in command:
        return "redis"
    if b"spawn_main" in command:
        return "workers"
    return "other"


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User and system CPU seconds of ``pid``; with ``reaped``, also those of the children it
    has already waited for."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def sandbox_processes(pid: int) -> dict[str, int]:
    """The sandbox's gateway and its children by role, each worker under a name of its own."""
    found = {"gateway": pid}
    workers = 0
    for child, parent in _processes().items():
        if parent != pid:
            continue
        role = _role(child)
        if role == "redis":
            found["redis"] = child
        elif role == "workers":
            workers += 1
            found[f"worker {workers}"] = child
    return found


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
            seconds = cpu_seconds(pid, reaped=role in ("gateway", "client"))
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
        cpu[role] += seconds
        rss[role] += resident
        if role == "gateway":
            todo += [(child, _role(child)) for child in children.get(pid, ())]
        elif role != "client":
            todo += [(child, role) for child in children.get(pid, ())]
    return Snapshot(time.monotonic(), dict(cpu), dict(rss))


def cpu_between(first: Snapshot, last: Snapshot) -> dict[str, float]:
    """Each role's CPU over the interval, as a share of one CPU (1.0 = one CPU busy)."""
    wall = max(last.at - first.at, 1e-9)
    share = {
        role: (last.cpu.get(role, 0.0) - first.cpu.get(role, 0.0)) / wall
        for role in {*first.cpu, *last.cpu}
    }
    share["sandbox"] = sum(share.get(role, 0.0) for role in SANDBOX_ROLES)
    return share
