"""The one path for what the user must be told: log it, then show it as a sentence.

Everything that goes wrong ends here: every worker's ``errored`` (``desktop.workers.start``
connects it), the views' own failures, and ``sys.excepthook``/``threading.excepthook`` (installed
in ``desktop.app``). A ``ConsoleError`` is expected: it is logged on one line and its sentence is
shown in the status bar. Anything else is a bug: its traceback goes to the log and the user gets
a dialog saying so in a sentence, never the traceback itself.

The main window listens to ``bus().posted``; emitting works from any thread because the bus
lives on the GUI thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, Signal

from desktop.services.errors import ConsoleError

log = logging.getLogger("desktop")


class Level(Enum):
    INFO = "info"
    ERROR = "error"


@dataclass(frozen=True)
class Message:
    """One thing to tell the user; ``dialog`` asks for a dialog rather than the status bar."""

    level: Level
    text: str
    dialog: bool = False


class MessageBus(QObject):
    posted = Signal(object)  # Message


_bus: MessageBus | None = None
_log_path: Path | None = None


def bus() -> MessageBus:
    """The bus; create it on the GUI thread first (``desktop.app`` and the main window do)."""
    global _bus
    if _bus is None or not shiboken6.isValid(_bus):
        _bus = MessageBus()
    return _bus


def set_log_path(path: Path | None) -> None:
    """Where the log file is, so a sentence about a bug can say where its details are."""
    global _log_path
    _log_path = path


def sentence(error: BaseException, *, context: str | None = None) -> str:
    """What to tell the user about ``error``: the sentence of a ``ConsoleError``, else a bug."""
    if isinstance(error, ConsoleError):
        text = str(error)
    else:
        where = f" in {_log_path}" if _log_path else " in the console's log"
        text = f"Something unexpected went wrong ({type(error).__name__}); the details are{where}."
    return f"{context}: {text}" if context else text


def report_error(error: BaseException, *, context: str | None = None) -> Message:
    """Log ``error`` and show it: expected errors in the status bar, bugs in a dialog."""
    text = sentence(error, context=context)
    expected = isinstance(error, ConsoleError)
    if expected:
        log.warning("%s", text)
    else:
        log.error("%s", text, exc_info=(type(error), error, error.__traceback__))
    message = Message(Level.ERROR, text, dialog=not expected)
    bus().posted.emit(message)
    return message


def error(text: str, *, dialog: bool = False) -> Message:
    """Show an error that is already a sentence (no exception at hand)."""
    log.warning("%s", text)
    message = Message(Level.ERROR, text, dialog=dialog)
    bus().posted.emit(message)
    return message


def info(text: str) -> Message:
    """Tell the user something went as asked (shown briefly in the status bar)."""
    log.info("%s", text)
    message = Message(Level.INFO, text)
    bus().posted.emit(message)
    return message
