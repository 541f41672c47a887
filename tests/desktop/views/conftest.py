"""Console windows for view tests: isolated settings, no real AWS, clean shutdown."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QSettings

from desktop import workers
from desktop.models.settings import QSettingsBackend
from desktop.services.deploy import DeployEngine
from desktop.services.environments import Environment, EnvironmentStore, aws_environment
from desktop.services.outputs_store import OutputsStore
from desktop.views.main_window import MainWindow
from desktop.workers.sandbox import Phase
from tests.desktop.services import moto_cloudformation
from tests.desktop.services.deploy_support import TEMPLATES, copy_backend, stack_name


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "console.ini"


@pytest.fixture
def source_root(tmp_path_factory) -> Path:
    """A copy of the backend to package (the same for every deploy in a test)."""
    return copy_backend(tmp_path_factory.mktemp("source"))


@pytest.fixture
def engine_factory(tmp_path: Path, source_root: Path):
    """Engines that deploy a test template moto can run, polling fast."""
    template = {"path": TEMPLATES / "stack.yaml"}

    def factory(environment: Environment) -> DeployEngine:
        from desktop.services.aws import AwsTarget

        return DeployEngine(
            AwsTarget(environment.profile, environment.region, environment.endpoint_url),
            environment.stack_name,
            template_path=template["path"],
            source_root=source_root,
            poll_interval=0.05,
            store=OutputsStore(tmp_path / "outputs.json"),
            change_set_timeout=30,
        )

    factory.template = template
    return factory


@pytest.fixture
def open_window(qtbot, settings_path: Path, posted):
    """Opens console windows on the test's settings; closes them and waits for their work.

    The fixture closes and deletes its windows itself (not ``qtbot.addWidget``), so a window
    lives until the sandbox it started has reported that it stopped.
    """
    opened: list[MainWindow] = []

    def open_(**options) -> MainWindow:
        options.setdefault("list_profiles", lambda: [])
        options.setdefault("sandbox_port", 0)
        window = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat), **options)
        window.show()
        qtbot.waitExposed(window)
        opened.append(window)
        return window

    yield open_
    for window in opened:
        if window.isVisible():
            window.close()
        qtbot.waitUntil(
            lambda w=window: w.supervisor.state.phase in (Phase.STOPPED, Phase.FAILED),
            timeout=15_000,
        )
    # Every worker's signals delivered (the registry forgets a worker after its last one)...
    qtbot.waitUntil(lambda: workers.active_count() == 0, timeout=15_000)
    for window in opened:
        # ...then the windows are deleted now, on this thread: a window left to the garbage
        # collector could be destroyed from a worker thread of a later test.
        shiboken6.delete(window)


@pytest.fixture
def cloudformation(monkeypatch, aws_environment, moto_endpoint) -> str:
    moto_cloudformation.install(monkeypatch)
    return moto_endpoint


@pytest.fixture
def staging(settings_path, cloudformation):
    """An AWS environment on moto, the current one when the window opens."""
    store = EnvironmentStore(
        QSettingsBackend(QSettings(str(settings_path), QSettings.Format.IniFormat))
    )
    environment = store.add(
        aws_environment(
            "Staging",
            profile=None,
            region="us-east-1",
            stack_name=stack_name(),
            endpoint_url=cloudformation,
        )
    )
    store.set_current(environment.name)
    return environment


@pytest.fixture
def console(qtbot, open_window, redis_server):
    """The console on its running sandbox (on the tests' shared Redis)."""
    window = open_window(redis_url=redis_server)
    window.supervisor.start()
    qtbot.waitUntil(lambda: window.supervisor.state.phase is Phase.RUNNING, timeout=20_000)
    return window


@pytest.fixture
def room() -> str:
    """A classroom of this test alone (the tests share one Redis)."""
    return f"room-{uuid.uuid4().hex[:10]}"


def pytest_collection_modifyitems(items) -> None:
    """The offscreen platform cannot resize dialogs to their hints and says so; that is all."""
    for item in items:
        item.add_marker(
            pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
        )
