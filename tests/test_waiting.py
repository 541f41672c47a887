"""``eventually`` and ``eventually_assert``: they wait as long as they must, and fail clearly."""

from __future__ import annotations

import threading
import time

import pytest

from tests.waiting import eventually, eventually_assert


def answers(*values):
    """A condition that returns ``values`` one per call (the last one from then on)."""
    calls: list[object] = []

    def condition():
        calls.append(None)
        return values[min(len(calls), len(values)) - 1]

    condition.calls = calls
    return condition


def test_returns_the_first_truthy_value_and_stops_calling():
    condition = answers(0, None, "", [], "ready", "later")
    assert eventually(condition, timeout=5, interval=0) == "ready"
    assert len(condition.calls) == 5


def test_a_condition_that_already_holds_is_called_once_even_with_no_time():
    condition = answers({"stack": "CREATE_COMPLETE"})
    assert eventually(condition, timeout=0) == {"stack": "CREATE_COMPLETE"}
    assert len(condition.calls) == 1


def test_waits_for_another_thread_to_make_it_true():
    done = threading.Event()
    threading.Timer(0.1, done.set).start()
    started = time.monotonic()
    assert eventually(done.is_set, timeout=5) is True
    assert 0.09 <= time.monotonic() - started < 4


def test_fails_after_the_timeout_with_the_message_and_the_last_value():
    condition = answers(None, 0)
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failed:
        eventually(condition, timeout=0.2, interval=0.01, message="the cluster to come up")
    elapsed = time.monotonic() - started
    assert str(failed.value) == "Waited 0.2 s for the cluster to come up; it last gave 0"
    assert 0.2 <= elapsed < 2
    assert len(condition.calls) >= 3  # polled in between, and once more at the deadline


def test_without_a_message_the_failure_quotes_a_one_line_condition():
    state = {"phase": "starting"}
    with pytest.raises(pytest.fail.Exception, match=r"`.*state\[\"phase\"\] == \"running\".*`"):
        eventually(lambda: state["phase"] == "running", timeout=0.05)


def test_an_exception_in_the_condition_is_not_retried():
    condition = answers(0)

    def broken():
        condition()
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError, match="refused"):
        eventually(broken, timeout=5)
    assert len(condition.calls) == 1


def test_eventually_assert_retries_until_the_block_passes_and_returns_its_value():
    seen: list[int] = []

    def block() -> int:
        seen.append(len(seen))
        assert len(seen) >= 3, "not yet"
        return len(seen)

    assert eventually_assert(block, timeout=5, interval=0) == 3


def test_eventually_assert_raises_the_last_assertion_after_the_timeout():
    seen: list[int] = []

    def block() -> None:
        seen.append(len(seen))
        assert seen[-1] < 0, f"attempt {seen[-1]}"

    with pytest.raises(AssertionError, match=r"attempt \d+") as failed:
        eventually_assert(block, timeout=0.1, interval=0.01)
    assert str(failed.value).startswith(f"attempt {seen[-1]}")  # the last one, not the first
    assert len(seen) >= 3
    assert failed.value.__notes__ == ["(still failing after 0.1 s of retries)"]


def test_eventually_assert_does_not_retry_other_exceptions():
    seen: list[int] = []

    def block() -> None:
        seen.append(1)
        raise KeyError("stack")

    with pytest.raises(KeyError):
        eventually_assert(block, timeout=5)
    assert seen == [1]
