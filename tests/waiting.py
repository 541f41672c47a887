"""Waiting in a test for something another thread or process does, instead of sleeping.

``eventually(condition)`` calls ``condition`` until it returns something truthy and returns that
value; once ``timeout`` seconds have passed it fails the test with a sentence naming what it
waited for (``message``, e.g. "the stack to finish") and what the condition last returned.
``eventually_assert(block)`` is the same for a block of asserts: it calls ``block`` again while
it raises ``AssertionError``, and when time is up it raises the last one, so pytest shows that
assertion's own comparison.

A sleep guesses how long something takes: too short, a test fails on a busy machine; too long,
every run waits for the worst case. A condition waits exactly as long as it must. On the GUI
thread use ``qtbot.waitUntil`` instead: it runs Qt's event loop while it waits, which a
condition delivered by a signal needs.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

TIMEOUT = 10.0  # seconds; generous, since a condition that holds returns at once
INTERVAL = 0.02  # seconds between two calls of the condition


def eventually(
    condition: Callable[[], T],
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: str | None = None,
) -> T:
    """The first truthy value ``condition()`` returns; the test fails if none comes in time.

    ``condition`` is called at least once, and once more at the deadline. An exception it
    raises is not retried: it goes to the test as it is.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            what = message or f"the condition {_described(condition)}"
            pytest.fail(f"Waited {timeout:g} s for {what}; it last gave {value!r}")
        time.sleep(min(interval, left))


def eventually_assert(
    block: Callable[[], T], timeout: float = TIMEOUT, interval: float = INTERVAL
) -> T:
    """What ``block()`` returns once its asserts pass; after ``timeout`` its last failure.

    Only ``AssertionError`` is retried; any other exception goes to the test as it is.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return block()
        except AssertionError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                error.add_note(f"(still failing after {timeout:g} s of retries)")
                raise
        time.sleep(min(interval, left))


def _described(condition: Callable[[], object]) -> str:
    """The condition's source when it is one short line (a lambda), else its name."""
    try:
        lines = inspect.getsource(condition).strip().splitlines()
    except (OSError, TypeError):
        lines = []
    if len(lines) == 1 and len(lines[0]) <= 160:
        return f"`{lines[0]}`"
    return getattr(condition, "__qualname__", repr(condition))
