"""Start-up: exception hooks, settings, a fatal error as a dialog, and a first run on the sandbox."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import socket
import sys
import threading

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from desktop import app, messages, workers
from desktop.services.errors import ConfigurationError
from desktop.workers.sandbox import Phase


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """run() changes process-wide things (hooks, log handlers, SIGINT); put them back after."""
    monkeypatch.setenv("CLASSROOM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sigint = signal.getsignal(signal.SIGINT)
    yield tmp_path / "config"
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    signal.signal(signal.SIGINT, sigint)
    messages.set_log_path(None)
    gc.unfreeze()


@pytest.mark.dialog_expected
def test_an_uncaught_exception_is_logged_and_shown_as_a_sentence(posted, caplog) -> None:
    try:
        {}["stack"]
    except KeyError as error:
        app.excepthook(KeyError, error, error.__traceback__)
    assert len(posted) == 1
    assert posted[0].dialog
    assert posted[0].text.startswith("Something unexpected went wrong (KeyError)")
    assert "Traceback" not in posted[0].text
    assert caplog.records[-1].exc_info is not None


def test_an_expected_error_goes_to_the_status_bar(posted) -> None:
    error = ConfigurationError("Give the environment a name.")
    app.excepthook(ConfigurationError, error, None)
    assert posted[0].text == "Give the environment a name." and not posted[0].dialog


@pytest.mark.dialog_expected
def test_a_thread_exception_reaches_the_messages_path(qtbot, posted, isolated) -> None:
    app.install_excepthooks()
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(posted) == 1)
    assert posted[0].text.startswith("Something unexpected went wrong (ZeroDivisionError)")


def test_settings_follow_the_config_folder(isolated) -> None:
    settings = app.console_settings()
    assert settings.format() == QSettings.Format.IniFormat
    assert settings.fileName() == str(isolated / "console.ini")


def test_a_fatal_start_up_error_is_a_dialog(qtbot, isolated, monkeypatch) -> None:
    from desktop.views import main_window

    def broken(*_args, **_kwargs):
        raise ConfigurationError("Your AWS config file /x could not be read.")

    shown: list[str] = []
    monkeypatch.setattr(main_window, "MainWindow", broken)
    monkeypatch.setattr(app, "fatal", shown.append)
    assert app.run([]) == 1
    assert shown == ["Your AWS config file /x could not be read."]
    assert (isolated / "logs" / "console.log").read_text().count("Traceback") == 1


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_a_first_run_without_aws_lands_on_a_running_sandbox(
    qtbot, isolated, aws_environment
) -> None:
    """No AWS profiles: the console starts the sandbox itself, and stops it when it quits."""
    from desktop.views.main_window import MainWindow

    seen: dict = {}

    def window() -> MainWindow | None:
        found = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        return found[-1] if found else None

    def check() -> None:
        # Runs inside run()'s event loop, which must go on to end: nothing here may raise.
        console = window()
        if console is None:
            QApplication.instance().quit()
            return
        with contextlib.suppress(qtbot.TimeoutError):  # the asserts below say what it was
            qtbot.waitUntil(
                lambda: console.supervisor.state.phase in (Phase.RUNNING, Phase.FAILED),
                timeout=30_000,
            )
        seen["title"] = console.windowTitle()
        seen["status"] = console.environment_label.state
        seen["url"] = console.supervisor.state.websocket_url
        console.close()

    QTimer.singleShot(0, check)
    assert app.run([]) == 0
    assert seen["title"] == "Classroom Console"
    assert "Local sandbox · running · ws://127.0.0.1:" in seen["status"]
    # The stop ran before run() returned (its state change would be delivered by a loop that
    # has ended): nothing listens on the sandbox's port any more.
    port = int(seen["url"].rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert workers.wait_for_all(1000)  # the pool is idle: the stop ran before run() returned
    assert (isolated / "console.ini").exists()
