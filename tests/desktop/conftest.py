"""Fixtures for every console test: the messages posted, and classroom members on the
console's own sandbox (closed after each test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop import messages, workers
from tests.sandbox.conftest import ClassroomSocket


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The console's own files (sandbox secret and admin key, outputs, logs) in a temporary
    folder of each test's own."""
    folder = tmp_path / "config"
    monkeypatch.setenv("CLASSROOM_CONSOLE_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def posted(qtbot, request: pytest.FixtureRequest) -> Iterator[list[messages.Message]]:
    """Everything posted to the messages path during the test, in order.

    A dialog on that path means a bug, so the test fails if one was posted, unless it is marked
    ``dialog_expected`` (it makes one on purpose). Before that check every worker's signals
    have been delivered, so an error a worker reports late is seen too.
    """
    seen: list[messages.Message] = []
    messages.bus().posted.connect(seen.append)
    yield seen
    qtbot.waitUntil(lambda: workers.active_count() == 0)
    messages.bus().posted.disconnect(seen.append)
    if request.node.get_closest_marker("dialog_expected") is None:
        bugs = [message.text for message in seen if message.dialog]
        assert not bugs, bugs


@pytest.fixture
def join() -> Iterator[Callable[..., ClassroomSocket]]:
    """``join(supervisor, room, sub)`` connects a member to the sandbox the console started."""
    opened: list[ClassroomSocket] = []

    def join_(supervisor, room: str, sub: str, role: str = "student") -> ClassroomSocket:
        member = ClassroomSocket(supervisor._sandbox, room, sub, role)
        opened.append(member)
        return member

    yield join_
    for member in opened:
        member.close()
