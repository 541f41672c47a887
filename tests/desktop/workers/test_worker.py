"""Workers run off the GUI thread and deliver their signals on it; errors reach the messages path."""

from __future__ import annotations

import threading

import pytest

from desktop import messages, workers
from desktop.services.errors import AwsError
from desktop.workers import FunctionWorker, GeneratorWorker


def record(signal) -> list:
    """What ``signal`` emits. (``assertNotEmitted`` would disconnect from a signals object the
    worker registry may already have deleted once ``finished`` was delivered.)"""
    seen: list = []
    signal.connect(lambda *args: seen.append(args))
    return seen


def test_function_worker_returns_on_the_gui_thread(qtbot, posted) -> None:
    gui = threading.current_thread()
    ran_in: list[threading.Thread] = []
    delivered_in: list[threading.Thread] = []

    def work(a: int, b: int) -> int:
        ran_in.append(threading.current_thread())
        return a + b

    worker = FunctionWorker(work, 2, b=3)
    values: list[int] = []
    worker.signals.returned.connect(values.append)
    worker.signals.returned.connect(lambda _v: delivered_in.append(threading.current_thread()))
    errors = record(worker.signals.errored)
    with qtbot.waitSignals(
        [worker.signals.started, worker.signals.returned, worker.signals.finished],
        order="strict",
    ):
        workers.start(worker)
    assert values == [5]
    assert errors == []
    assert ran_in[0] is not gui
    assert delivered_in == [gui]
    assert posted == []


def test_errors_go_to_the_messages_path(qtbot, posted) -> None:
    def fail() -> None:
        raise AwsError("AWS refused DescribeStacks (Throttling).")

    worker = FunctionWorker(fail)
    returned = record(worker.signals.returned)
    with qtbot.waitSignal(worker.signals.errored) as errored:
        workers.start(worker)
    assert isinstance(errored.args[0], AwsError)
    assert returned == []
    qtbot.waitUntil(lambda: len(posted) == 1)
    assert posted[0].text == "AWS refused DescribeStacks (Throttling)."
    assert posted[0].level is messages.Level.ERROR and not posted[0].dialog


@pytest.mark.dialog_expected
def test_a_bug_is_a_sentence_and_a_dialog(qtbot, posted, caplog) -> None:
    worker = FunctionWorker(lambda: {}["missing"])
    with qtbot.waitSignal(worker.signals.finished):
        workers.start(worker)
    qtbot.waitUntil(lambda: len(posted) == 1)
    assert posted[0].dialog
    assert posted[0].text.startswith("Something unexpected went wrong (KeyError)")
    assert "Traceback" not in posted[0].text
    assert any(record.exc_info for record in caplog.records)


def test_reports_arrive_as_signals(qtbot, posted) -> None:
    def plan(report) -> str:
        report("Packaging")
        report("Uploading")
        return "done"

    worker = FunctionWorker(plan, with_report=True)
    steps: list[str] = []
    worker.signals.reported.connect(steps.append)
    with qtbot.waitSignal(worker.signals.returned):
        workers.start(worker)
    assert steps == ["Packaging", "Uploading"]


def test_generator_worker_yields_and_returns(qtbot, posted) -> None:
    def count(limit: int, abort: threading.Event):
        yield from range(limit)
        return "counted"

    worker = GeneratorWorker(count, 4)
    items: list[int] = []
    worker.signals.yielded.connect(items.append)
    with qtbot.waitSignal(worker.signals.returned) as returned:
        workers.start(worker)
    assert items == [0, 1, 2, 3]
    assert returned.args == ["counted"]


def test_generator_worker_stops_between_items_when_aborted(qtbot, posted) -> None:
    release = threading.Event()
    closed = threading.Event()

    def stream(abort: threading.Event):
        try:
            number = 0
            while True:
                yield number
                number += 1
                release.wait(5)
        finally:
            closed.set()

    worker = GeneratorWorker(stream)
    with qtbot.waitSignal(worker.signals.yielded):
        workers.start(worker)
    returned = record(worker.signals.returned)
    with qtbot.waitSignals([worker.signals.aborted, worker.signals.finished]):
        worker.abort()
        release.set()
    assert returned == []
    assert closed.is_set()
    assert worker.abort_event.is_set()


def test_abort_all_and_wait_for_all(qtbot, posted) -> None:
    def forever(abort: threading.Event):
        while not abort.wait(0.01):
            yield None

    worker = GeneratorWorker(forever)
    with qtbot.waitSignal(worker.signals.started):
        workers.start(worker)
    workers.abort_all()
    assert workers.wait_for_all(5000)
    qtbot.waitUntil(lambda: workers.active_count() == 0)


def test_a_finished_worker_lets_go_of_what_it_was_given(qtbot) -> None:
    """A refresh hands its worker the whole classrooms list: a worker the pool kept for good
    would keep one more copy of it every few seconds."""
    import gc
    import weakref

    class Rows:
        pass

    given = Rows()
    gone = weakref.ref(given)
    worker = FunctionWorker(lambda rows: len([rows]), given)
    with qtbot.waitSignal(worker.signals.finished):
        workers.start(worker)
    del worker, given
    qtbot.waitUntil(lambda: workers.active_count() == 0)

    def released() -> bool:
        gc.collect()
        return gone() is None

    qtbot.waitUntil(released)
