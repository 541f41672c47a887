"""Work off the GUI thread: the one module that touches ``QThreadPool``.

A worker is a ``QRunnable`` that owns a separate ``QObject`` of signals, created on the GUI
thread, so whatever is connected to them runs on the GUI thread however the worker emits:

    FunctionWorker(fn, *args)        started → [reported(step)...] → returned(value) |
                                     errored(exception) → finished
    GeneratorWorker(factory, *args)  started → yielded(item)... → returned(value) | errored |
                                     aborted → finished

``GeneratorWorker`` calls ``factory(*args, abort=event)`` and checks the event between items,
for streams such as stack events. ``FunctionWorker(fn, ..., with_report=True)`` hands ``fn`` a
``report`` callable whose calls arrive as ``reported`` (a long call's steps, e.g. "Uploading").
Workers emit plain Python data and never touch a widget.
``start(worker)`` runs one and sends its ``errored`` to the messages path (``desktop.messages``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, Signal

from desktop import messages

__all__ = [
    "FunctionWorker",
    "GeneratorWorker",
    "WorkerSignals",
    "abort_all",
    "active_count",
    "start",
    "wait_for_all",
]


class WorkerSignals(QObject):
    """What a worker says, delivered on the GUI thread."""

    started = Signal()
    yielded = Signal(object)
    reported = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    finished = Signal()


class FunctionWorker(QRunnable):
    """Runs ``fn(*args, **kwargs)`` once on the pool; its result arrives as ``returned``."""

    def __init__(
        self, fn: Callable[..., Any], *args: Any, with_report: bool = False, **kwargs: Any
    ) -> None:
        super().__init__()
        # The pool deletes the runnable once ``run`` has returned (Qt's default); the registry
        # keeps only the Python object, until ``finished`` has been delivered. A runnable the
        # pool does not delete stays alive, with whatever it was given, for the console's life.
        # (``QThreadPool.start(callable)`` is no way out: PySide6 drops a reference to the
        # callable's return value, and after a few thousand workers None itself is freed.)
        self.signals = WorkerSignals()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        if with_report:
            self._kwargs["report"] = self.signals.reported.emit
        self.abort_event = threading.Event()

    @property
    def name(self) -> str:
        return getattr(self._fn, "__qualname__", repr(self._fn))  # "None" once it has run

    def abort(self) -> None:
        """Ask the worker to stop at its next chance (generators stop between items)."""
        self.abort_event.set()

    def run(self) -> None:
        signals = self.signals
        signals.started.emit()
        try:
            result = self._work()
        except BaseException as error:  # noqa: BLE001 - every failure goes to errored
            signals.errored.emit(error)
        else:
            if self.abort_event.is_set() and isinstance(self, GeneratorWorker):
                signals.aborted.emit()
            else:
                signals.returned.emit(result)
        finally:
            # Let go of the work and what it was given (a refresh's whole classrooms list)
            # before saying so: a runnable Qt has not deleted yet holds nothing heavy.
            self._fn = self._args = self._kwargs = result = None
            signals.finished.emit()

    def _work(self) -> Any:
        return self._fn(*self._args, **self._kwargs)


class GeneratorWorker(FunctionWorker):
    """Iterates ``factory(*args, abort=event, **kwargs)``, emitting each item as ``yielded``.

    The abort event is handed to the factory (so a service can stop waiting on AWS) and checked
    between items; an aborted worker emits ``aborted`` instead of ``returned``. ``returned``
    carries the generator's return value, if any.
    """

    def _work(self) -> Any:
        iterator: Iterator[Any] = self._fn(*self._args, abort=self.abort_event, **self._kwargs)
        while not self.abort_event.is_set():
            try:
                item = next(iterator)
            except StopIteration as stop:
                return stop.value
            self.signals.yielded.emit(item)
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        return None


class _Registry(QObject):
    """Keeps running workers alive and owns their signals until the GUI thread is done with them."""

    def __init__(self) -> None:
        super().__init__(QCoreApplication.instance())
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(8, QThreadPool.globalInstance().maxThreadCount()))
        self.running: set[FunctionWorker] = set()

    def start(self, worker: FunctionWorker) -> None:
        signals = worker.signals
        # Owned by the registry, so the signals object is deleted on the GUI thread (deleteLater)
        # and never by whichever thread drops the last Python reference.
        signals.setParent(self)
        self.running.add(worker)
        signals.finished.connect(lambda: self._finished(worker))
        self.pool.start(worker)

    def _finished(self, worker: FunctionWorker) -> None:
        self.running.discard(worker)
        worker.signals.deleteLater()


_registry: _Registry | None = None


def _the_registry() -> _Registry:
    global _registry
    if _registry is None or not shiboken6.isValid(_registry):
        _registry = _Registry()
    return _registry


def start(worker: FunctionWorker, *, report_errors: bool = True) -> FunctionWorker:
    """Run ``worker`` on the console's pool; connect its signals before calling this.

    With ``report_errors`` its ``errored`` goes to the messages path, so a failure the view does
    not handle itself still reaches the user as a sentence (and the log).
    """
    if report_errors:
        worker.signals.errored.connect(messages.report_error)
    _the_registry().start(worker)
    return worker


def active_count() -> int:
    if _registry is None or not shiboken6.isValid(_registry):
        return 0
    return len(_registry.running)


def abort_all() -> None:
    """Ask every running worker to stop (at quit: streams end between items)."""
    if _registry is not None and shiboken6.isValid(_registry):
        for worker in list(_registry.running):
            worker.abort()


def wait_for_all(timeout_ms: int = 10_000) -> bool:
    """Block until the pool's workers end (at quit only); ``False`` if some did not in time."""
    if _registry is None or not shiboken6.isValid(_registry):
        return True
    return _registry.pool.waitForDone(timeout_ms)
