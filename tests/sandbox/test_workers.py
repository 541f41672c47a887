"""Handlers in worker processes: their metrics come back, a dead worker is replaced."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from desktop.sandbox.gateway import Sandbox, SandboxConfig
from tests.sandbox.conftest import SECRET


@pytest.fixture(scope="module")
def sandbox_config(redis_server: str) -> SandboxConfig:
    return SandboxConfig(
        host="127.0.0.1", port=0, redis_url=redis_server, token_secret=SECRET, worker_processes=1
    )


def wait_for_workers(sandbox: Sandbox, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not sandbox.workers_ready:
        assert time.monotonic() < deadline, "the worker processes did not start"
        time.sleep(0.05)


def metric_sums(sandbox: Sandbox) -> dict[str, float]:
    with urllib.request.urlopen(sandbox.metrics_url, timeout=5) as answer:
        document = json.loads(answer.read())
    return {m["name"]: sum(p["sum"] for p in m["points"]) for m in document["metrics"]}


def test_handlers_run_in_a_worker_process_and_their_metrics_reach_the_gateway(
    classroom, sandbox, room
):
    wait_for_workers(sandbox)
    pids = sandbox.worker_pids
    assert pids and os.getpid() not in pids
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    before = metric_sums(sandbox)
    ack = student.request({"action": "send", "type": "chat.message", "id": "m1"}, "ack")
    assert teacher.receive_event("message")["seq"] == ack["seq"]
    # The handler's points arrive when it returns, which may be just after the delivery.
    deadline = time.monotonic() + 5
    while metric_sums(sandbox)["HandlerDuration"] == before["HandlerDuration"]:
        assert time.monotonic() < deadline, "the worker's metrics did not reach /_metrics"
        time.sleep(0.02)
    assert sandbox.worker_pids == pids


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="stopping a process needs SIGSTOP")
def test_a_worker_that_dies_mid_invocation_is_an_execution_error_and_is_replaced(
    classroom, sandbox, room
):
    wait_for_workers(sandbox)
    student = classroom("student-1")
    student.request({"action": "ping"}, "pong")
    errors = metric_sums(sandbox)["ExecutionError"]
    [pid] = sandbox.worker_pids
    # Stopped, the worker still looks free: the ping goes to it, then it dies holding it.
    os.kill(pid, signal.SIGSTOP)
    try:
        student.send({"action": "ping"})
        time.sleep(0.3)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert student.receive()["message"] == "Internal server error"
    assert metric_sums(sandbox)["ExecutionError"] >= errors + 1
    wait_for_workers(sandbox)
    assert sandbox.worker_pids and sandbox.worker_pids != [pid]
    assert student.request({"action": "ping"}, "pong")


def test_a_worker_that_died_between_invocations_is_not_given_any(classroom, sandbox, room):
    wait_for_workers(sandbox)
    student = classroom("student-1")
    [pid] = sandbox.worker_pids
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid in sandbox.worker_pids:
        assert time.monotonic() < deadline, "the gateway did not notice its worker died"
        time.sleep(0.02)
    # The frame runs in a thread or in the new worker: the member never notices.
    assert student.request({"action": "ping"}, "pong")
    wait_for_workers(sandbox)
    assert sandbox.worker_pids != [pid]
