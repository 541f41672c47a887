"""The Qt binding the console runs on: what it must not do, whatever version pip picks."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class Emitter(QObject):
    happened = Signal(object)


def test_emitting_a_signal_keeps_pythons_references(qapp) -> None:
    """PySide6 6.12.0 drops a reference to True with every emit: a console that has emitted a
    few hundred signals more than True has references then frees it, and Python aborts
    ("deallocating True or False"). pyproject.toml excludes that release; this is why."""
    emitter = Emitter()
    emitter.happened.connect(lambda value: None)
    before = sys.getrefcount(True)
    for n in range(300):
        emitter.happened.emit(n)
    assert sys.getrefcount(True) - before > -10
