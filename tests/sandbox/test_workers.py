"""Handlers in worker processes: their metrics come back, a dead worker is replaced."""

from __future__ import annotations

import os
import signal

import pytest

from desktop.sandbox.gateway import Sandbox, SandboxConfig
from tests.sandbox import integrations
from tests.sandbox.conftest import ADMIN_KEY, SECRET, metrics_document
from tests.waiting import eventually


@pytest.fixture(scope="module")
def sandbox_config(redis_server: str) -> SandboxConfig:
    return SandboxConfig(
        host="127.0.0.1",
        port=0,
        redis_url=redis_server,
        token_secret=SECRET,
        admin_key=ADMIN_KEY,
        worker_processes=1,
    )


def wait_for_workers(sandbox: Sandbox, timeout: float = 30.0) -> None:
    eventually(lambda: sandbox.workers_ready, timeout, message="the worker processes did not start")


def metric_sums(sandbox: Sandbox) -> dict[str, float]:
    document = metrics_document(sandbox)
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
    eventually(
        lambda: metric_sums(sandbox)["HandlerDuration"] != before["HandlerDuration"],
        message="the worker's metrics did not reach /_metrics",
    )
    assert sandbox.worker_pids == pids


def test_a_worker_that_dies_mid_invocation_is_an_execution_error_and_is_replaced(
    classroom, sandbox, room, monkeypatch, redis_server
):
    wait_for_workers(sandbox)
    student = classroom("student-1")
    student.request({"action": "ping"}, "pong")
    errors = metric_sums(sandbox)["ExecutionError"]
    monkeypatch.setattr(
        sandbox.integrations, "messages", integrations.reference("blocks_until_released")
    )
    student.send({"action": "ping", "id": "p1"})
    [started] = eventually(lambda: integrations.recorded(redis_server, f"{room}:started"))
    os.kill(started["pid"], signal.SIGKILL)
    answer = student.receive()
    assert answer["message"] == "Internal server error" and answer["id"] == "p1"
    assert metric_sums(sandbox)["ExecutionError"] >= errors + 1
    monkeypatch.undo()
    wait_for_workers(sandbox)
    assert sandbox.worker_pids and started["pid"] not in sandbox.worker_pids
    assert student.request({"action": "ping"}, "pong")


def test_a_worker_that_died_between_invocations_is_not_given_any(classroom, sandbox, room):
    wait_for_workers(sandbox)
    student = classroom("student-1")
    [pid] = sandbox.worker_pids
    os.kill(pid, signal.SIGKILL)
    eventually(
        lambda: pid not in sandbox.worker_pids,
        10,
        message="the gateway did not notice its worker died",
    )
    # The frame waits for the new worker: the member never notices.
    assert student.request({"action": "ping"}, "pong")
    wait_for_workers(sandbox)
    assert sandbox.worker_pids != [pid]
