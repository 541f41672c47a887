"""Classroom members for console tests, closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.desktop.members import Member


@pytest.fixture
def join() -> Iterator[Callable[..., Member]]:
    """``join(supervisor, room, sub)`` connects a member to the sandbox the console started."""
    opened: list[Member] = []

    def join_(supervisor, room: str, sub: str, role: str = "student") -> Member:
        member = Member(supervisor._sandbox, room, sub, role)
        opened.append(member)
        return member

    yield join_
    for member in opened:
        member.close()
