"""The supervisor of the console's embedded sandbox, with a real sandbox and real members."""

from __future__ import annotations

import os
import socket

import pytest

from desktop import workers
from desktop.sandbox.loopback import free_port
from desktop.workers.sandbox import Phase, SandboxSupervisor, stop_question

START_TIMEOUT = 30_000


@pytest.fixture
def supervisor(qtbot, redis_server: str):
    """A supervisor on a fixed free port and the session's Redis; stopped after the test."""
    supervisor = SandboxSupervisor(port=free_port(), redis_url=redis_server)
    yield supervisor
    supervisor.stop()
    qtbot.waitUntil(
        lambda: supervisor.state.phase in (Phase.STOPPED, Phase.FAILED), timeout=START_TIMEOUT
    )
    qtbot.waitUntil(lambda: workers.active_count() == 0, timeout=START_TIMEOUT)


def run(qtbot, supervisor: SandboxSupervisor, action) -> None:
    """``action()``, then wait until the sandbox has settled: running, stopped or failed."""
    action()
    qtbot.waitUntil(lambda: not supervisor.state.busy, timeout=START_TIMEOUT)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def plain_bind_fails(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.mark.skipif(os.name == "nt", reason="SO_REUSEADDR means port sharing on Windows")
def test_the_probe_sees_a_port_free_while_its_closed_connections_linger():
    from desktop.sandbox.loopback import can_listen, reuse_address

    with socket.socket() as listener:
        reuse_address(listener)  # as the gateway's listener (Linux wants it on both sides)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server's side closes first: its socket lingers in TIME_WAIT
        assert client.recv(1) == b""
        client.close()
    assert plain_bind_fails(port)
    assert can_listen("127.0.0.1", port)


def test_the_sandbox_comes_back_on_its_port_after_members_were_connected(
    qtbot, supervisor, join
) -> None:
    run(qtbot, supervisor, supervisor.start)
    assert supervisor.state.running
    port = supervisor.port
    assert port_of(supervisor.state.websocket_url) == port
    member = join(supervisor, "room-restart", "alice")
    assert member.ping()["ts"] > 0
    supervisor.stop()
    assert member.wait_closed()[0] == 1001  # the gateway closed first: TIME_WAIT on its side
    qtbot.waitUntil(lambda: supervisor.state.phase is Phase.STOPPED, timeout=START_TIMEOUT)
    # A plain bind may now be refused while the closed connections linger in TIME_WAIT (what
    # made the old probe move the sandbox); whether it is depends on which side closed first.

    run(qtbot, supervisor, supervisor.start)
    assert supervisor.state.running
    assert port_of(supervisor.state.websocket_url) == port


def test_stopping_without_members_asks_nothing() -> None:
    assert stop_question(0) is None
    assert stop_question(0, restart=True) is None


def test_stopping_under_members_asks_first_and_says_how_many() -> None:
    one = stop_question(1)
    assert (one.text, one.detail) == (
        "Stop the local sandbox?",
        "1 connected member will be disconnected.",
    )
    assert one.confirm == "Stop sandbox"
    assert stop_question(3).detail == "3 connected members will be disconnected."
    restart = stop_question(2, restart=True)
    assert restart.text == "Restart the local sandbox?"
    assert restart.detail.startswith("2 connected members will be disconnected.")
    assert restart.confirm == "Restart sandbox"


def test_the_question_counts_the_members_connected_now(qtbot, supervisor, join) -> None:
    assert supervisor.connection_count == 0  # not running
    assert supervisor.stop_question() is None
    run(qtbot, supervisor, supervisor.start)
    assert supervisor.stop_question() is None

    members = [join(supervisor, "room-count", f"student-{n}") for n in range(3)]
    qtbot.waitUntil(lambda: supervisor.connection_count == 3)
    assert supervisor.stop_question().detail == "3 connected members will be disconnected."

    members[0].close()
    qtbot.waitUntil(lambda: supervisor.connection_count == 2)
    assert supervisor.stop_question().detail == "2 connected members will be disconnected."
    for member in members[1:]:
        member.close()
    qtbot.waitUntil(lambda: supervisor.connection_count == 0)
    assert supervisor.stop_question() is None
