"""The console's main window: sections in a sidebar, a toolbar, menus and a status bar.

The window wires the parts together and shows what they report; it does no work itself. Its
geometry, section and theme are kept in ``QSettings``; the environments live in the
``EnvironmentStore`` backed by the same settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QByteArray, QEvent, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QWidget,
)

from desktop import messages
from desktop.models.base import tone
from desktop.models.session import Current, Session
from desktop.models.settings import QSettingsBackend
from desktop.services import classrooms
from desktop.services.environments import SANDBOX_NAME, EnvironmentStore
from desktop.services.errors import ConsoleError
from desktop.views import icons, theme
from desktop.views.classrooms import ClassroomsView
from desktop.views.deploy import (
    DeployView,
    EngineFactory,
    ParametersFor,
    default_engine_factory,
)
from desktop.views.environments import EnvironmentsView
from desktop.views.inspector import InspectorView
from desktop.views.placeholders import SECTIONS, PlaceholderView
from desktop.views.section_bar import SectionBar
from desktop.views.widgets import ElidedLabel, StateDot
from desktop.workers import FunctionWorker, start
from desktop.workers.classrooms import ClassroomsPresenter
from desktop.workers.sandbox import Phase, SandboxState, SandboxSupervisor

TITLE = "Classroom Console"
SECTION_TITLES = ("Environments & Deploy", "Classrooms", "Metrics", "Inspector")
SECTION_ICONS = ("environments", "classrooms", "metrics", "inspector")
MESSAGE_SECONDS = 12
# The project's standard: usable on an 800 × 600 screen, so a little smaller than that, with
# room for a title bar and a taskbar.
MINIMUM_SIZE = QSize(780, 520)


def _no_profiles() -> list:
    return []


class MainWindow(QMainWindow):
    """The console. ``autostart_sandbox`` starts the sandbox on a first run without AWS.

    ``engine_factory`` builds the deploy engine of an AWS environment and ``deploy_parameters``
    gives the template parameters of a deploy (by default the ones set for the environment in
    its Parameters dialog; the rest keep the template's defaults, or the stack's values on an
    update), and ``parameter_specs`` what that dialog offers (the backend template's
    parameters); tests use them to deploy a small template to moto.
    """

    def __init__(
        self,
        settings: QSettings,
        *,
        engine_factory: EngineFactory | None = None,
        deploy_parameters: ParametersFor | None = None,
        parameter_specs: Callable[[], list] | None = None,
        list_profiles: Callable[[], Sequence] | None = None,
        sandbox_port: int = 8765,
        redis_url: str | None = None,
        autostart_sandbox: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if list_profiles is None:
            from desktop.services.aws import list_profiles
        self.settings = settings
        self.setWindowTitle(TITLE)
        self.setMinimumSize(MINIMUM_SIZE)
        self.setUnifiedTitleAndToolBarOnMac(True)

        self.store = EnvironmentStore(QSettingsBackend(settings))
        self.session = Session(self)
        self.supervisor = SandboxSupervisor(port=sandbox_port, redis_url=redis_url, parent=self)
        self._engine_factory = engine_factory or default_engine_factory
        self.deploy_view = DeployView(
            self._engine_factory,
            deploy_parameters or (lambda environment: dict(environment.parameters)),
        )
        self.environments_view = EnvironmentsView(
            self.store,
            self.supervisor,
            self.session,
            self.deploy_view,
            list_profiles,
            **({"parameter_specs": parameter_specs} if parameter_specs else {}),
        )
        self.classrooms_presenter = ClassroomsPresenter(self)
        self.classrooms_view = ClassroomsView(self.classrooms_presenter)
        self.inspector_view = InspectorView()
        self.placeholders = {
            key: PlaceholderView(title, purpose, icon)
            for key, (title, purpose, icon) in SECTIONS.items()
        }
        self._autostart = autostart_sandbox
        self._list_profiles = list_profiles
        self._closing = False

        self.sections = QStackedWidget()
        self.sections.addWidget(self.environments_view)
        self.sections.addWidget(self.classrooms_view)
        for placeholder in self.placeholders.values():
            self.sections.addWidget(placeholder)
        self.sections.addWidget(self.inspector_view)
        self.sidebar = SectionBar()  # icons only in a narrow window, names as tooltips
        self._icons: list[tuple[object, str]] = []
        for number, (title, name) in enumerate(zip(SECTION_TITLES, SECTION_ICONS, strict=True)):
            item = QListWidgetItem(icons.icon(name, self), title)
            shortcut = QKeySequence(f"Ctrl+{number + 1}").toString(
                QKeySequence.SequenceFormat.NativeText
            )
            item.setToolTip(f"{title} ({shortcut})")
            self.sidebar.addItem(item)
            self._icons.append((item, name))
        self.sidebar.currentRowChanged.connect(self.sections.setCurrentIndex)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.sections, 1)
        self.setCentralWidget(central)

        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()

        self.session.changed.connect(self._current_changed)
        self.supervisor.state_changed.connect(self._sandbox_state)
        self.classrooms_presenter.read_only_changed.connect(self._mode_changed)
        self.classrooms_presenter.read_only_changed.connect(self.inspector_view.set_read_only)
        self.classrooms_view.open_in_inspector.connect(self.inspect)
        self._mode_changed(self.classrooms_presenter.read_only)
        self.deploy_view.busy_changed.connect(lambda _busy: self._update_actions())
        messages.bus().posted.connect(self._show_message)

        self._restore()
        self._current_changed(self.session.current)
        self._sandbox_state(self.supervisor.state)
        QTimer.singleShot(0, self._after_start)

    # Building

    def _action(
        self, text: str, slot, shortcut: str | None = None, icon=None, tip: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(icons.icon(icon, self))
            self._icons.append((action, icon))
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.start_sandbox_action = self._action(
            "Start sandbox",
            self.supervisor.start,
            None,
            "start",
            "Start the local sandbox on this computer",
        )
        self.stop_sandbox_action = self._action(
            "Stop sandbox",
            self.environments_view.stop_sandbox,
            None,
            "stop",
            "Stop the local sandbox",
        )
        self.restart_sandbox_action = self._action(
            "Restart sandbox",
            self.environments_view.restart_sandbox,
            None,
            None,
            "Stop the local sandbox and start it again with a fresh Redis",
        )
        self.deploy_action = self._action(
            "Deploy",
            self.deploy,
            "Ctrl+D",
            "deploy",
            "Deploy the backend to the current AWS environment",
        )
        self.refresh_action = self._action(
            "Refresh",
            self.refresh,
            "Ctrl+R",
            "refresh",
            "Fetch the current environment's state again",
        )
        self.add_environment_action = self._action(
            "Add AWS Environment…",
            self.environments_view.add,
            "Ctrl+N",
            None,
            "Add a deployment of the backend in AWS",
        )
        self.edit_environment_action = self._action(
            "Edit Environment…",
            self.environments_view.edit,
            None,
            None,
            "Change the current AWS environment's settings",
        )
        self.remove_environment_action = self._action(
            "Remove Environment",
            self.environments_view.remove,
            None,
            None,
            "Forget the current AWS environment (its stack is not touched)",
        )
        self.teardown_action = self._action(
            "Tear Down Stack…",
            self.teardown,
            None,
            None,
            "Delete the current environment's stack and everything it owns",
        )
        self.allow_changes_action = self._action(
            "Allow Changes",
            lambda checked: self.classrooms_presenter.set_read_only(not checked),
            "Ctrl+Shift+U",
            "lock",
            "Unlock the actions that change a classroom (disconnect, close, prune); the console "
            "starts read-only",
        )
        self.allow_changes_action.setCheckable(True)
        self.quit_action = self._action("Quit", self.close, "Ctrl+Q", None, "Quit the console")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.section_actions = []
        for number, title in enumerate(SECTION_TITLES):
            action = self._action(
                title, lambda _checked=False, n=number: self.show_section(n), f"Ctrl+{number + 1}"
            )
            action.setCheckable(True)
            self.section_actions.append(action)
        group = QActionGroup(self)
        for action in self.section_actions:
            group.addAction(action)
        self.sidebar.currentRowChanged.connect(
            lambda row: self.section_actions[row].setChecked(True) if row >= 0 else None
        )

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Main toolbar")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(18, 18))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.start_sandbox_action)
        toolbar.addAction(self.stop_sandbox_action)
        toolbar.addSeparator()
        toolbar.addAction(self.deploy_action)
        toolbar.addAction(self.refresh_action)
        toolbar.addSeparator()
        toolbar.addAction(self.allow_changes_action)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addAction(self.quit_action)

        environment_menu = menus.addMenu("&Environment")
        environment_menu.addAction(self.add_environment_action)
        environment_menu.addAction(self.edit_environment_action)
        environment_menu.addAction(self.remove_environment_action)
        environment_menu.addSeparator()
        environment_menu.addAction(self.start_sandbox_action)
        environment_menu.addAction(self.stop_sandbox_action)
        environment_menu.addAction(self.restart_sandbox_action)
        environment_menu.addSeparator()
        environment_menu.addAction(self.deploy_action)
        environment_menu.addAction(self.teardown_action)
        environment_menu.addSeparator()
        environment_menu.addAction(self.refresh_action)
        environment_menu.addAction(self.allow_changes_action)

        view_menu = menus.addMenu("&View")
        for action in self.section_actions:
            view_menu.addAction(action)
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("&Theme")
        self.theme_actions = {}
        group = QActionGroup(self)
        for choice, label in (("system", "Follow System"), ("light", "Light"), ("dark", "Dark")):
            action = QAction(label, self)
            action.setCheckable(True)
            action.triggered.connect(lambda _checked=False, c=choice: self.set_theme(c))
            group.addAction(action)
            theme_menu.addAction(action)
            self.theme_actions[choice] = action

        help_menu = menus.addMenu("&Help")
        about = self._action(f"About {TITLE}", self.about)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(True)
        self.message_label = ElidedLabel()
        self.environment_label = StateDot()
        self.environment_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mode_label = StateDot()
        bar.addWidget(self.message_label, 1)
        bar.addPermanentWidget(self.mode_label)
        bar.addPermanentWidget(self.environment_label)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(lambda: self.message_label.set_full_text(""))

    # What the user can do

    def show_section(self, number: int) -> None:
        self.sidebar.setCurrentRow(number)

    def deploy(self) -> None:
        if self.session.environment.is_sandbox:
            messages.info(
                "The local sandbox runs the backend from this computer; "
                "choose an AWS environment to deploy."
            )
            return
        self.show_section(0)
        self.deploy_view.deploy()

    def teardown(self) -> None:
        if self.session.environment.is_sandbox:
            messages.info("The local sandbox has no stack; stop it instead.")
            return
        self.show_section(0)
        self.deploy_view.teardown()

    def inspect(self, room: str) -> None:
        """Classrooms' Open in Inspector: the classroom joined unseen, in a tab."""
        self.show_section(SECTION_TITLES.index("Inspector"))
        self.inspector_view.open_room(room)

    def refresh(self) -> None:
        if self.sections.currentWidget() is self.classrooms_view:
            self.classrooms_presenter.refresh()
        else:
            self.environments_view.refresh()

    def set_theme(self, choice: str) -> None:
        theme.apply(QApplication.instance(), choice)
        self.settings.setValue("view/theme", choice)
        self.theme_actions[theme.preference()].setChecked(True)

    def about(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Information,
            f"About {TITLE}",
            f"{TITLE} ships the real-time classroom messaging backend to AWS and operates it: "
            "deploy and update it, watch live classrooms, and inspect their messages.",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # Reactions

    def _after_start(self) -> None:
        """Start-up work that must not hold the first paint: profiles, and maybe the sandbox."""
        worker = FunctionWorker(self._list_profiles)
        worker.signals.returned.connect(self._profiles_loaded)
        start(worker)
        self.environments_view.check_others()

    def _profiles_loaded(self, profiles: Sequence) -> None:
        self.environments_view.set_profiles(profiles)
        if (
            self._autostart
            and not self._closing
            and not profiles
            and self.session.environment.is_sandbox
            and self.supervisor.state.phase in (Phase.STOPPED,)
        ):
            messages.info("No AWS profiles are set up, so the console started the local sandbox.")
            self.supervisor.start()

    def _current_changed(self, current: Current) -> None:
        self.environment_label.set_state(current.description, current.tone)
        for placeholder in self.placeholders.values():
            placeholder.show_current(current)
        self._update_actions()
        self._classrooms_environment()

    def _sandbox_state(self, _state: SandboxState) -> None:
        self._update_actions()
        self._classrooms_environment()

    def _classrooms_environment(self) -> None:
        """Point the Classrooms section at the current environment, when that changes."""
        environment = self.session.environment
        state = self.supervisor.state
        if environment.is_sandbox:
            key = (environment, state.admin_url if state.running else None)
        else:
            key = (environment, None)
        if key == getattr(self, "_classrooms_key", None):
            return
        self._classrooms_key = key
        admin_key = self.supervisor.admin_key
        if not environment.is_sandbox:
            try:
                engine = self._engine_factory(environment)
            except ConsoleError as error:
                self.classrooms_presenter.set_service(None, environment.name, str(error))
                self.inspector_view.set_service(None, environment.name, str(error))
                return
            service = classrooms.for_deployment(engine)
            self.classrooms_presenter.set_service(service, environment.name)
            self.inspector_view.set_service(service, environment.name)
        elif state.running and state.admin_url and admin_key:
            service = classrooms.for_sandbox(state.admin_url, admin_key, state.websocket_url)
            self.classrooms_presenter.set_service(service, environment.name)
            self.inspector_view.set_service(service, environment.name)
        else:
            why = (
                "The local sandbox is not running. Start it from Environments & Deploy (or "
                "the toolbar), and its classrooms show here."
            )
            self.classrooms_presenter.set_service(None, environment.name, why)
            self.inspector_view.set_service(None, environment.name, why)

    def _mode_changed(self, read_only: bool) -> None:
        self.allow_changes_action.setChecked(not read_only)
        if read_only:
            self.mode_label.set_state("Read-only", "muted")
            self.mode_label.setToolTip(
                "Read-only: nothing in a classroom can be changed. Allow Changes in the toolbar "
                "unlocks disconnect, close and prune."
            )
        else:
            self.mode_label.set_state("Changes allowed", "warn")
            self.mode_label.setToolTip(
                "Changes allowed: disconnect, close and prune are unlocked (each still asks)."
            )

    def _update_actions(self) -> None:
        state = self.supervisor.state
        self.start_sandbox_action.setEnabled(state.phase in (Phase.STOPPED, Phase.FAILED))
        self.stop_sandbox_action.setEnabled(state.phase is Phase.RUNNING)
        self.restart_sandbox_action.setEnabled(state.phase is Phase.RUNNING)
        aws = not self.session.environment.is_sandbox
        busy = self.deploy_view.busy
        self.deploy_action.setEnabled(aws and not busy)
        self.teardown_action.setEnabled(aws and not busy)
        self.edit_environment_action.setEnabled(aws)
        self.remove_environment_action.setEnabled(aws and not busy)

    def _show_message(self, message: messages.Message) -> None:
        colour = tone("bad").name() if message.level is messages.Level.ERROR else None
        self.message_label.setStyleSheet(f"color: {colour};" if colour else "")
        self.message_label.set_full_text(message.text)
        self._message_timer.start(MESSAGE_SECONDS * 1000 * (2 if colour else 1))
        if message.dialog and self.isVisible():
            box = QMessageBox(
                QMessageBox.Icon.Warning, TITLE, message.text, QMessageBox.StandardButton.Ok, self
            )
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    # Settings

    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        choice = str(self.settings.value("view/theme", "system"))
        self.theme_actions.get(choice, self.theme_actions["system"]).setChecked(True)
        section = self.settings.value("window/section", 0)
        try:
            section = int(section)
        except (TypeError, ValueError):
            section = 0
        self.show_section(section if 0 <= section < len(SECTION_TITLES) else 0)
        self.environments_view.select(self.store.current_name() or SANDBOX_NAME)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.PaletteChange:
            for owner, name in getattr(self, "_icons", ()):
                owner.setIcon(icons.icon(name, self))
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self._closing:
            self._closing = True
            self.settings.setValue("window/geometry", self.saveGeometry())
            self.settings.setValue("window/section", self.sidebar.currentRow())
            self.settings.sync()
            self.deploy_view.shutdown()
            self.inspector_view.shutdown()
            self.supervisor.stop()
            messages.bus().posted.disconnect(self._show_message)
        super().closeEvent(event)
