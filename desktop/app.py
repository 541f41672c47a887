"""Start-up: the QApplication, the log, the exception hooks, the settings and the window.

Nothing reaches the user as a traceback: ``sys.excepthook`` and ``threading.excepthook`` send
uncaught exceptions to the messages path (logged with their traceback, shown as a sentence), and
a failure before the window exists gets a dialog.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import os
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType

import shiboken6
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop import messages, workers
from desktop.services.paths import CONFIG_DIR_ENV, config_dir

ORGANIZATION = "Classroom Console"
ORGANIZATION_DOMAIN = "classroom-console.example"
APPLICATION = "Classroom Console"

log = logging.getLogger("desktop")


def configure_logging(folder: Path) -> Path | None:
    """Log to ``folder/logs/console.log`` (rotated) and to stderr; returns the file's path."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stream = logging.StreamHandler()
    stream.setFormatter(formatter)
    stream.setLevel(logging.WARNING)
    root.addHandler(stream)
    path = folder / "logs" / "console.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError as error:
        log.warning("not logging to a file: %s", error)
        return None
    handler.setFormatter(formatter)
    root.addHandler(handler)
    return path


def console_settings() -> QSettings:
    """The one settings object: native (registry, plist) unless the config folder is overridden.

    ``CLASSROOM_CONSOLE_CONFIG_DIR`` moves everything the console keeps, settings included, to
    an ini file in that folder, so a test or a demo run never touches the user's own settings.
    """
    if os.environ.get(CONFIG_DIR_ENV):
        return QSettings(str(config_dir() / "console.ini"), QSettings.Format.IniFormat)
    return QSettings()


def excepthook(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """An exception nobody caught on the GUI thread: log it, tell the user, keep running."""
    if issubclass(kind, KeyboardInterrupt):
        app = QApplication.instance()
        if app is not None:
            app.quit()
        return
    if error.__traceback__ is None and traceback is not None:
        error = error.with_traceback(traceback)
    messages.report_error(error)


def thread_excepthook(args: threading.ExceptHookArgs) -> None:
    """The same for a thread that is not a worker (workers report their own errors)."""
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    messages.report_error(args.exc_value)


def install_excepthooks() -> None:
    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def fatal(text: str) -> None:
    """A start-up failure: one dialog with the sentence (the traceback is in the log)."""
    box = QMessageBox(QMessageBox.Icon.Critical, APPLICATION, text, QMessageBox.StandardButton.Ok)
    box.setInformativeText("The console cannot start.")
    box.exec()


def _shutdown() -> None:
    """After the event loop: stop streams between items and wait for workers.

    Closing the window already asked the sandbox it started to stop; that stop is one of the
    workers waited for here, so the console never leaves a sandbox running behind it.
    """
    workers.abort_all()
    if not workers.wait_for_all(15_000):
        log.warning("some background work was still running at quit")


# How long a thread may hold the GIL while another waits for it. Painting a table calls Python
# once for each cell it shows, a few hundred calls a paint, and while a worker thread reads a
# fast classroom each call may wait this long for the GIL: at Python's default 5 ms one paint
# took a tenth of a second, and at 0.5 ms a paint's p99 was still 33 ms (docs/benchmarks.md,
# the Inspector). Workers lose a little to the extra switching; none is in a hurry.
SWITCH_INTERVAL = 0.0001


def settle() -> None:
    """Once the window is built: the runtime tuned for a GUI thread that must not wait.

    Freezes the start-up heap (Qt's wrappers, botocore's models), so that later full
    collections scan only what the console made since and never pause it for long; and lets
    the GUI thread have the GIL back sooner from workers that keep it busy.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)


def run(argv: list[str] | None = None) -> int:
    """Open the console; returns the exit code."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setOrganizationName(ORGANIZATION)
    app.setOrganizationDomain(ORGANIZATION_DOMAIN)
    app.setApplicationName(APPLICATION)
    messages.bus()  # created on the GUI thread before any worker can post to it
    messages.set_log_path(configure_logging(config_dir()))
    install_excepthooks()
    # Let Ctrl+C in a terminal quit: Python only sees signals when it gets to run.
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    # A logout or `kill` quits the same way, so the sandbox and its workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    ticker = QTimer()
    ticker.start(250)
    ticker.timeout.connect(lambda: None)

    try:
        from desktop.views import theme
        from desktop.views.main_window import MainWindow

        settings = console_settings()
        theme.apply(app, str(settings.value("view/theme", "system")))
        window = MainWindow(settings, autostart_sandbox=True)
    except Exception as error:  # noqa: BLE001 - a start-up failure must be a dialog
        log.exception("the console could not start")
        fatal(messages.sentence(error))
        return 1

    settle()
    window.show()
    code = app.exec()
    _shutdown()
    # Delete the window here, on the GUI thread: left to the garbage collector, its Qt objects
    # could be destroyed from whichever thread happens to collect them.
    shiboken6.delete(window)
    return code
