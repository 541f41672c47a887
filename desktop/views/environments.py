"""Environments & Deploy: the list of environments and the page of the selected one.

Selecting an environment switches the console to it (the status bar and the other sections
follow). The local sandbox's page starts and stops it; an AWS environment's page is the deploy
view. Adding, editing and removing AWS environments happen here; the store writes them through
to ``QSettings`` at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListView,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from desktop import messages
from desktop.models.base import tone
from desktop.models.environments import EnvironmentListModel, EnvironmentRole
from desktop.models.session import Session
from desktop.services.environments import SANDBOX_NAME, Environment, EnvironmentStore
from desktop.services.errors import ConfigurationError
from desktop.services.parameters import ParameterSpec, template_specs
from desktop.views.deploy import AwsHealth, DeployView
from desktop.views.environment_dialog import EnvironmentDialog
from desktop.views.parameters_dialog import ParametersDialog
from desktop.views.sandbox import SandboxPanel, sandbox_tone
from desktop.views.widgets import ask, heading, note
from desktop.workers import FunctionWorker, start
from desktop.workers.sandbox import SandboxState, SandboxSupervisor, StopQuestion


class EnvironmentDelegate(QStyledItemDelegate):
    """Two lines per environment: its name, and its state in the state's colour."""

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:  # noqa: N802
        height = option.fontMetrics.height()
        return QSize(200, 2 * height + 18)

    def paint(self, painter, option: QStyleOptionViewItem, index) -> None:
        self.initStyleOption(option, index)
        name = option.text
        option.text = ""
        style = option.widget.style() if option.widget else None
        if style is not None:
            style.drawControl(style.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        state = index.data(EnvironmentRole.STATE) or ""
        kind = index.data(EnvironmentRole.KIND)
        health = index.data(EnvironmentRole.HEALTH)
        selected = bool(option.state & style.StateFlag.State_Selected) if style else False
        rect = option.rect.adjusted(10, 6, -8, -6)
        height = option.fontMetrics.height()
        painter.save()
        font = option.font
        font.setBold(True)
        painter.setFont(font)
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(option.palette.color(text_role))
        top = rect.adjusted(0, 0, 0, -(rect.height() - height))
        painter.drawText(
            top,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            option.fontMetrics.elidedText(name, Qt.TextElideMode.ElideRight, rect.width()),
        )
        font.setBold(False)
        painter.setFont(font)
        subtitle = ("Sandbox" if kind == "sandbox" else "AWS") + (f" · {state}" if state else "")
        if not selected and health:
            painter.setPen(tone(health))
        bottom = rect.adjusted(0, height + 2, 0, 0)
        painter.drawText(
            bottom,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            option.fontMetrics.elidedText(subtitle, Qt.TextElideMode.ElideRight, rect.width()),
        )
        painter.restore()


class EnvironmentsView(QWidget):
    """The environments list beside the selected environment's page."""

    environment_selected = Signal(object)  # Environment

    def __init__(
        self,
        store: EnvironmentStore,
        supervisor: SandboxSupervisor,
        session: Session,
        deploy_view: DeployView,
        list_profiles: Callable[[], Sequence],
        parent: QWidget | None = None,
        *,
        parameter_specs: Callable[[], list[ParameterSpec]] = template_specs,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.supervisor = supervisor
        self.session = session
        self._list_profiles = list_profiles
        self._template_specs = parameter_specs
        self._profiles: list = []
        self.dialog: EnvironmentDialog | ParametersDialog | None = None
        self.confirmation: QMessageBox | None = None
        self._restoring = False  # re-selecting after the list was rebuilt: not a switch

        self.model = EnvironmentListModel(store.environments(), self)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setItemDelegate(EnvironmentDelegate(self.list))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setUniformItemSizes(True)
        self.list.selectionModel().currentChanged.connect(self._current_changed)
        self.list.doubleClicked.connect(lambda _index: self.edit())

        self.add_button = QPushButton("Add…")
        self.add_button.setToolTip("Add an AWS environment (a deployment of the backend)")
        self.edit_button = QPushButton("Edit…")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self.add)
        self.edit_button.clicked.connect(self.edit)
        self.remove_button.clicked.connect(self.remove)

        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.remove_button)

        sidebar = QWidget()
        sidebar_layout = QVBoxLayout(sidebar)
        sidebar_layout.setContentsMargins(16, 20, 8, 16)
        sidebar_layout.setSpacing(10)
        sidebar_layout.addWidget(heading("Environments", size=1.15))
        sidebar_layout.addWidget(self.list, 1)
        self.empty_note = note(
            "Add an AWS environment to deploy the backend to your AWS account and operate it."
        )
        sidebar_layout.addWidget(self.empty_note)
        sidebar_layout.addLayout(buttons)

        self.sandbox_panel = SandboxPanel()
        self.sandbox_panel.start_requested.connect(supervisor.start)
        self.sandbox_panel.stop_requested.connect(self.stop_sandbox)
        self.sandbox_panel.restart_requested.connect(self.restart_sandbox)
        self.deploy_view = deploy_view
        self.pages = QStackedWidget()
        self.pages.addWidget(self.sandbox_panel)
        self.pages.addWidget(deploy_view)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(sidebar)
        splitter.addWidget(self.pages)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 900])
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        self.empty_note.setVisible(self.model.rowCount() == 1)
        supervisor.state_changed.connect(self._sandbox_state)
        deploy_view.health_changed.connect(self._aws_health)
        deploy_view.deployed.connect(self._deployed)
        deploy_view.edit_requested.connect(self.edit)
        deploy_view.parameters_requested.connect(self.edit_parameters)
        deploy_view.busy_changed.connect(self._lock)
        self._sandbox_state(supervisor.state)

    # What the user can do here

    def select(self, name: str) -> None:
        """Switch to the environment called ``name`` (the sandbox if there is none)."""
        row = self.model.row_of(name)
        if row is None:
            row = self.model.row_of(SANDBOX_NAME) or 0
        index = self.model.index(row, 0)
        self.list.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self._show(self.model.environment(row))

    def current(self) -> Environment:
        return self.session.environment

    def add(self) -> None:
        self._open_dialog(EnvironmentDialog(self.store.add, None, self))

    def edit(self) -> None:
        environment = self.current()
        if environment.is_sandbox:
            messages.info("The local sandbox has no settings to edit.")
            return
        name = environment.name
        self._open_dialog(
            EnvironmentDialog(lambda changed: self.store.update(name, changed), environment, self)
        )

    def edit_parameters(self) -> None:
        """The template's parameters for the current AWS environment's deploys."""
        environment = self.current()
        if environment.is_sandbox:
            messages.info("The local sandbox runs the backend as it is; it has no parameters.")
            return
        try:
            specs = self._template_specs()
        except ConfigurationError as error:
            messages.error(str(error))
            return
        name = environment.name

        def save(values: dict[str, str]) -> Environment:
            changed = dataclasses.replace(environment, parameters=tuple(sorted(values.items())))
            return self.store.update(name, changed)

        dialog = ParametersDialog(specs, environment, save, self)
        dialog.saved.connect(self._parameters_saved)
        dialog.finished.connect(lambda _result: self._dialog_closed(dialog))
        self.dialog = dialog
        dialog.open()

    def _parameters_saved(self, environment: Environment) -> None:
        self._reload()
        self.select(environment.name)
        count = len(environment.parameters)
        messages.info(
            f"Saved the template parameters of “{environment.name}” "
            f"({count} set, the rest default)."
            if count
            else f"“{environment.name}” deploys with the template's defaults."
        )

    def remove(self) -> None:
        environment = self.current()
        if environment.is_sandbox:
            messages.error("The local sandbox is always available and cannot be removed.")
            return
        self.confirmation = ask(
            self,
            "Remove environment",
            f"Remove “{environment.name}” from the console? Its stack "
            f"“{environment.stack_name}” keeps running in AWS; use Tear down to delete it.",
            None,
            "Remove",
            lambda: self._remove(environment.name),
            self._answered,
            icon=QMessageBox.Icon.Question,
        )

    def _answered(self) -> None:
        self.confirmation = None

    def stop_sandbox(self) -> None:
        """Stop the local sandbox; when members are connected, only once the user says so."""
        self._ask_then(self.supervisor.stop_question(), self.supervisor.stop)

    def restart_sandbox(self) -> None:
        """Restart the local sandbox; when members are connected, only once the user says so."""
        self._ask_then(self.supervisor.stop_question(restart=True), self.supervisor.restart)

    def _ask_then(self, question: StopQuestion | None, go_ahead: Callable[[], None]) -> None:
        if question is None:
            go_ahead()
            return
        self.confirmation = ask(
            self,
            question.title,
            question.text,
            question.detail,
            question.confirm,
            go_ahead,
            self._answered,
        )

    def refresh(self) -> None:
        """Fetch every environment's state again: the current one's page, the others' states."""
        environment = self.current()
        if environment.is_sandbox:
            self._sandbox_state(self.supervisor.state)
        else:
            self.deploy_view.refresh()
        self.check_others()

    def check_others(self) -> None:
        """Fetch the stack status of every AWS environment but the current one (quietly)."""
        for environment in self.model.environments():
            if not environment.is_sandbox and environment.name != self.current().name:
                self.deploy_view.check(environment)

    def load_profiles(self) -> None:
        """Read the AWS profiles off the GUI thread (botocore reads the config files)."""
        worker = FunctionWorker(self._list_profiles)
        worker.signals.returned.connect(self.set_profiles)
        start(worker)

    @property
    def profiles(self) -> list:
        return list(self._profiles)

    # Reactions

    def _open_dialog(self, dialog: EnvironmentDialog) -> None:
        dialog.set_profiles(self._profiles)
        dialog.saved.connect(self._saved)
        dialog.finished.connect(lambda _result: self._dialog_closed(dialog))
        self.dialog = dialog
        dialog.open()
        self.load_profiles()

    def _dialog_closed(self, dialog: EnvironmentDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def set_profiles(self, profiles: Sequence) -> None:
        """The AWS profiles the add/edit dialog offers (read by a worker)."""
        self._profiles = list(profiles)
        if isinstance(self.dialog, EnvironmentDialog):
            self.dialog.set_profiles(self._profiles)

    def _saved(self, environment: Environment) -> None:
        self._reload()
        self.select(environment.name)
        messages.info(f"Saved the environment “{environment.name}”.")

    def _remove(self, name: str) -> None:
        try:
            self.store.remove(name)
        except ConfigurationError as error:
            messages.report_error(error)
            return
        self._reload()
        self.select(SANDBOX_NAME)
        messages.info(f"Removed the environment “{name}”; its stack was not touched.")

    def _reload(self) -> None:
        self.model.set_environments(self.store.environments())
        self.empty_note.setVisible(self.model.rowCount() == 1)
        self._sandbox_state(self.supervisor.state)

    def _current_changed(self, current, _previous) -> None:
        if current.isValid() and not self._restoring:
            self._show(self.model.environment(current.row()))

    def _restore_selection(self) -> None:
        """After the list was rebuilt: select the current environment again, quietly."""
        row = self.model.row_of(self.session.environment.name)
        if row is None:
            return
        self._restoring = True
        try:
            self.list.selectionModel().setCurrentIndex(
                self.model.index(row, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
            )
        finally:
            self._restoring = False

    def _lock(self, busy: bool) -> None:
        """While a deploy or teardown runs, the environment cannot change under it."""
        for widget in (self.list, self.add_button):
            widget.setEnabled(not busy)
        environment = self.session.environment
        self.edit_button.setEnabled(not busy and not environment.is_sandbox)
        self.remove_button.setEnabled(not busy and not environment.is_sandbox)
        self.list.setToolTip(
            "Switch environments once the deploy or teardown has finished." if busy else ""
        )

    def _show(self, environment: Environment) -> None:
        self.edit_button.setEnabled(not environment.is_sandbox)
        self.remove_button.setEnabled(not environment.is_sandbox)
        changed = environment != self.session.environment
        self.store.set_current(environment.name)
        self.session.switch(environment)
        if environment.is_sandbox:
            self.pages.setCurrentWidget(self.sandbox_panel)
            self._sandbox_state(self.supervisor.state)
        else:
            self.pages.setCurrentWidget(self.deploy_view)
            if changed or self.deploy_view.environment != environment:
                self.deploy_view.set_environment(environment)
        if changed:
            self.environment_selected.emit(environment)

    def _sandbox_state(self, state: SandboxState) -> None:
        self.sandbox_panel.show_state(state)
        self.model.set_state(SANDBOX_NAME, state.health, sandbox_tone(state))
        self.session.report(
            SANDBOX_NAME,
            health=state.health,
            tone=sandbox_tone(state),
            websocket_url=state.websocket_url,
        )

    def _aws_health(self, health: AwsHealth) -> None:
        self.model.set_state(health.name, health.health, health.tone)
        self.session.report(
            health.name, health=health.health, tone=health.tone, websocket_url=health.websocket_url
        )

    def _deployed(self, name: str, when) -> None:
        try:
            environment = self.store.record_deploy(name, when)
        except ConfigurationError:
            return  # removed while it deployed
        self.model.set_environments(self.store.environments())
        if self.session.environment.name == name:
            self.session.switch(environment)
            self.deploy_view.update_environment(environment)
        self._restore_selection()
