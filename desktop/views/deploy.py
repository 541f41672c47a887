"""An AWS environment's page: its stack's state and outputs, deploy, cancel and tear down.

Deploy is two steps, so nothing changes by surprise: "Deploy" plans (packages the backend and
asks CloudFormation for a change set) and shows the changes; "Deploy N changes" runs them and
streams the stack's events with a progress bar; the stack's outputs follow, each with a copy
button. A failure is shown in the banner as the engine's sentence (the failing resource, the
reason, where the rollback left the stack). Every call to AWS runs in a worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from PySide6.QtCore import QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop import messages
from desktop.models.base import local_time, status_tone, tone
from desktop.models.change_set import ChangeColumn, ChangeSetModel
from desktop.models.outputs import OutputColumn, OutputsModel, websocket_url
from desktop.models.stack_events import EventColumn, StackEventsModel
from desktop.services.deploy import (
    DOES_NOT_EXIST,
    DeployEngine,
    DeployResult,
    Plan,
    Progress,
    StackEvent,
    StackStatus,
)
from desktop.services.environments import Environment
from desktop.services.errors import ConsoleError, CredentialsError
from desktop.views.teardown_dialog import TeardownDialog
from desktop.views.widgets import (
    Banner,
    CopyField,
    ScrollPage,
    StateDot,
    copy_button,
    heading,
    note,
)
from desktop.workers import FunctionWorker, GeneratorWorker, start

log = logging.getLogger(__name__)

EngineFactory = Callable[[Environment], DeployEngine]
ParametersFor = Callable[[Environment], dict[str, str]]


def default_engine_factory(environment: Environment) -> DeployEngine:
    """The engine for an environment: its profile, region, endpoint and stack."""
    from desktop.services.aws import AwsTarget

    target = AwsTarget(environment.profile, environment.region, environment.endpoint_url)
    return DeployEngine(target, environment.stack_name or "")


def size_columns(
    table: RowsTable, stretch: int, samples: dict[int, str], padding: int, *, least: str
) -> None:
    """Columns wide enough for a typical value; ``stretch`` takes the rest of the width, but
    never less than ``least`` needs (in a narrow window the table scrolls sideways instead)."""
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    metrics = table.fontMetrics()
    for column, sample in samples.items():
        table.setColumnWidth(column, metrics.horizontalAdvance(sample) + padding)
    table.keep_stretch_width(stretch, metrics.horizontalAdvance(least) + padding)


@dataclass(frozen=True)
class AwsHealth:
    """What an AWS environment's page reports about it for the list and the status bar."""

    name: str
    health: str
    tone: str | None
    websocket_url: str | None = None


class Stage(Enum):
    IDLE = "idle"
    LOADING = "loading"  # fetching the stack's status
    PLANNING = "planning"
    CONFIRMING = "confirming"  # a change set waits for the user's yes
    DEPLOYING = "deploying"
    DESTROYING = "destroying"


BUSY = frozenset({Stage.PLANNING, Stage.CONFIRMING, Stage.DEPLOYING, Stage.DESTROYING})
RECOVERY_HINTS = {
    "ROLLBACK_COMPLETE": "It failed to create and rolled back; tear it down, then deploy again.",
    "ROLLBACK_FAILED": "Its creation failed and so did the rollback; tear it down.",
    "DELETE_FAILED": "A teardown failed part way; tear it down again.",
    "UPDATE_ROLLBACK_FAILED": "Its last update could not roll back; resume the rollback "
    "(aws cloudformation continue-update-rollback), then deploy again.",
    "UPDATE_ROLLBACK_COMPLETE": "Its last update failed and was rolled back; it runs the "
    "previous version.",
}


def changes(count: int) -> str:
    return f"{count} change" if count == 1 else f"{count} changes"


def health_of(status: str) -> tuple[str, str | None]:
    """A stack status as the phrase and tone the list and status bar show."""
    if status in (DOES_NOT_EXIST, "REVIEW_IN_PROGRESS"):  # a change set, but no stack yet
        return "not deployed", "muted"
    return status, status_tone(status)


class RowsTable(QTableView):
    """A read-only table as tall as its rows (``min_rows`` to ``max_rows``), then it scrolls.

    Its size hint follows the model, so a page gives it the room its rows need and no more;
    when the page is short it shrinks to ``least_rows`` and scrolls.
    """

    def __init__(
        self, model, *, min_rows: int = 3, max_rows: int = 30, least_rows: int = 2
    ) -> None:
        super().__init__()
        self.min_rows = min_rows
        self.max_rows = max_rows
        self.least_rows = least_rows
        self.setModel(model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self._stretch: tuple[int, int] | None = None
        for signal in (model.modelReset, model.rowsInserted, model.rowsRemoved):
            signal.connect(self.updateGeometry)

    def keep_stretch_width(self, column: int, width: int) -> None:
        """``column`` stretches over the table's free width while that is ``width`` or more;
        below, it keeps ``width`` and the table scrolls sideways."""
        self._stretch = (column, width)
        self._fit_stretch()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_stretch()

    def _fit_stretch(self) -> None:
        if self._stretch is None:
            return
        column, width = self._stretch
        header = self.horizontalHeader()
        others = sum(
            header.sectionSize(other)
            for other in range(header.count())
            if other != column and not header.isSectionHidden(other)
        )
        fits = self.viewport().width() - others >= width
        mode = QHeaderView.ResizeMode.Stretch if fits else QHeaderView.ResizeMode.Interactive
        if header.sectionResizeMode(column) != mode:
            header.setSectionResizeMode(column, mode)
            self.updateGeometry()  # a sideways scroll bar takes height
        if not fits:
            header.resizeSection(column, width)

    def _height(self, rows: int) -> int:
        header = self.horizontalHeader()
        sideways = header.length() > self.viewport().width()  # in a narrow window
        return (
            header.sizeHint().height()
            + rows * self.verticalHeader().defaultSectionSize()
            + 2 * self.frameWidth()
            + 2
            + (self.horizontalScrollBar().sizeHint().height() if sideways else 0)
        )

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        rows = min(max(self.model().rowCount(), self.min_rows), self.max_rows)
        return QSize(super().sizeHint().width(), self._height(rows))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        rows = min(self.model().rowCount(), self.min_rows, self.least_rows) or 1
        return QSize(super().minimumSizeHint().width(), self._height(rows))


def failure_health(error: BaseException) -> str:
    """The state of an environment whose status could not be fetched."""
    if isinstance(error, CredentialsError):
        return "sign-in needed"
    return "unreachable" if isinstance(error, ConsoleError) else "error"


class OutputsTable(RowsTable):
    """The outputs model with a Copy button in each row."""

    def __init__(self, model: OutputsModel) -> None:
        super().__init__(model, min_rows=1, max_rows=8)
        header = self.horizontalHeader()
        header.setSectionResizeMode(OutputColumn.NAME, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(OutputColumn.VALUE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(OutputColumn.COPY, QHeaderView.ResizeMode.ResizeToContents)
        # The outputs are what a deploy is for: they keep their room, the events scroll.
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        model.modelReset.connect(self._rows_changed)
        model.rowsInserted.connect(self._rows_changed)
        self.copy_buttons: list = []
        self._rows_changed()

    def _rows_changed(self, *_args) -> None:
        model: OutputsModel = self.model()
        self.copy_buttons = []
        for row in range(model.rowCount()):
            value = model.row(row).value
            button = copy_button(lambda value=value: value)
            button.setToolTip(f"Copy {model.row(row).name} to the clipboard")
            self.setIndexWidget(model.index(row, OutputColumn.COPY), button)
            self.copy_buttons.append(button)
        if self.copy_buttons:
            self.verticalHeader().setDefaultSectionSize(
                max(
                    self.verticalHeader().defaultSectionSize(),
                    self.copy_buttons[0].sizeHint().height() + 4,
                )
            )
        self.updateGeometry()


class DeployView(QWidget):
    """The page of one AWS environment; ``set_environment`` shows another."""

    health_changed = Signal(object)  # AwsHealth
    deployed = Signal(str, object)  # environment name, when (UTC datetime)
    busy_changed = Signal(bool)
    cancellable_changed = Signal(bool)  # CloudFormation can cancel what runs now
    edit_requested = Signal()
    parameters_requested = Signal()

    def __init__(
        self,
        engine_factory: EngineFactory = default_engine_factory,
        parameters: ParametersFor | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._engine_factory = engine_factory
        self._parameters = parameters or (lambda _environment: {})
        self._engines: dict[tuple, DeployEngine] = {}
        self._engines_lock = threading.Lock()
        self.environment: Environment | None = None
        self._generation = 0
        self._stage = Stage.IDLE
        self._plan: Plan | None = None
        self._stack_status: str | None = None
        self._running: GeneratorWorker | None = None
        self._cancellable = False
        self.teardown_dialog: TeardownDialog | None = None

        self.change_set_model = ChangeSetModel(parent=self)
        self.events_model = StackEventsModel(parent=self)
        self.outputs_model = OutputsModel(parent=self)

        # Header: which environment, and a way to change it.
        self.title = heading("")
        self.title.setWordWrap(True)  # a long name wraps (at its hyphens) in a narrow window
        self.summary = note()
        self.edit_button = QPushButton("Edit…")
        self.edit_button.clicked.connect(self.edit_requested)
        self.parameters_button = QPushButton("Parameters…")
        self.parameters_button.setToolTip(
            "The template's parameters for this environment's deploys"
        )
        self.parameters_button.clicked.connect(self.parameters_requested)
        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(2)
        titles.addWidget(self.title)
        titles.addWidget(self.summary)
        header.addLayout(titles, 1)
        header.addWidget(self.parameters_button, 0, Qt.AlignmentFlag.AlignTop)
        header.addWidget(self.edit_button, 0, Qt.AlignmentFlag.AlignTop)

        # The stack's state.
        self.status_label = StateDot()
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.last_deploy_label = QLabel()
        self.websocket_field = CopyField("Known once the stack is deployed")
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(6)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Stack status:", self.status_label)
        form.addRow("Last deployed:", self.last_deploy_label)
        form.addRow("WebSocket URL:", self.websocket_field)

        # What the user can do.
        self.deploy_button = QPushButton("Deploy")
        self.deploy_button.setDefault(True)
        self.deploy_button.setToolTip(
            "Package the backend and show the changes CloudFormation would make"
        )
        self.cancel_button = QPushButton("Cancel deploy")
        self.refresh_button = QPushButton("Refresh")
        self.teardown_button = QPushButton("Tear down…")
        self.deploy_button.clicked.connect(self.deploy)
        self.cancel_button.clicked.connect(self.cancel)
        self.refresh_button.clicked.connect(self.refresh)
        self.teardown_button.clicked.connect(self.teardown)
        actions = QHBoxLayout()
        actions.addWidget(self.deploy_button)
        actions.addWidget(self.cancel_button)
        actions.addStretch(1)
        actions.addWidget(self.refresh_button)
        actions.addWidget(self.teardown_button)

        self.banner = Banner()

        # The change set, waiting for a yes.
        self.change_set_note = note()
        # The changes are what the user is asked to read: a short page keeps four in view.
        self.change_set_table = RowsTable(self.change_set_model, min_rows=4, least_rows=4)
        size_columns(
            self.change_set_table,
            ChangeColumn.TYPE,
            {
                ChangeColumn.ACTION: "Dynamic",
                ChangeColumn.RESOURCE: "AuthorizerFunctionLogs",
                ChangeColumn.REPLACEMENT: "Conditional",
            },
            padding=32,
            least="AWS::Lambda::Function",
        )
        self.confirm_button = QPushButton("Deploy")
        self.confirm_button.setDefault(True)
        self.decline_button = QPushButton("Cancel")
        self.confirm_button.clicked.connect(self.confirm)
        self.decline_button.clicked.connect(self.decline)
        confirm_row = QHBoxLayout()
        confirm_row.addStretch(1)
        confirm_row.addWidget(self.decline_button)
        confirm_row.addWidget(self.confirm_button)
        self.change_set_group = QGroupBox("Change set")
        change_layout = QVBoxLayout(self.change_set_group)
        change_layout.addWidget(self.change_set_note)
        change_layout.addWidget(self.change_set_table, 1)
        change_layout.addLayout(confirm_row)

        # A deploy or teardown as it runs.
        self.step_label = note()
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.events_table = RowsTable(self.events_model)
        size_columns(
            self.events_table,
            EventColumn.REASON,
            {
                EventColumn.TIME: "00:00:00",
                EventColumn.RESOURCE: "AuthorizerFunction",
                EventColumn.TYPE: "AWS::Lambda::Function",
                EventColumn.STATUS: "UPDATE_ROLLBACK_COMPLETE",
            },
            padding=16,
            least="Resource creation Initiated",
        )
        self.events_model.rowsAboutToBeInserted.connect(self._before_events)
        self.events_model.rowsInserted.connect(self._after_events)
        self._follow_events = True
        self.progress_group = QGroupBox("Progress")
        progress_layout = QVBoxLayout(self.progress_group)
        progress_layout.addWidget(self.step_label)
        progress_layout.addWidget(self.progress)
        progress_layout.addWidget(self.events_table, 1)

        # The stack's outputs.
        self.outputs_table = OutputsTable(self.outputs_model)
        self.no_outputs = note("No outputs yet: they appear once the stack is deployed.")
        self.outputs_group = QGroupBox("Outputs")
        outputs_layout = QVBoxLayout(self.outputs_group)
        outputs_layout.addWidget(self.no_outputs)
        outputs_layout.addWidget(self.outputs_table)
        self.outputs_model.modelReset.connect(self._outputs_changed)

        self.filler = QWidget()
        self.filler.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

        self.page = ScrollPage()
        layout = QVBoxLayout(self.page.content)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(12)
        layout.addLayout(header)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addWidget(self.banner)
        layout.addWidget(self.change_set_group)
        layout.addWidget(self.progress_group)
        layout.addWidget(self.outputs_group)
        layout.addWidget(self.filler, 1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.page)

        self.change_set_group.hide()
        self.progress_group.hide()
        self._outputs_changed()
        self._update()

    # What the user can do

    @property
    def busy(self) -> bool:
        return self._stage in BUSY

    @property
    def stage(self) -> Stage:
        return self._stage

    def set_environment(self, environment: Environment) -> None:
        """Show ``environment``: its stack's state is fetched at once."""
        if self.busy:
            messages.error("Wait for the current deploy to finish before switching environments.")
            return
        self.environment = environment
        self._generation += 1
        self._plan = None
        self._stack_status = None
        self.banner.clear()
        self.change_set_model.clear()
        self.events_model.clear()
        self.outputs_model.clear()
        self.change_set_group.hide()
        self.progress_group.hide()
        self.websocket_field.set_text(None)
        self._show_header()
        self.status_label.set_state("Checking…", None)
        self.refresh()

    def update_environment(self, environment: Environment) -> None:
        """The same environment with new details (e.g. its last deploy time)."""
        self.environment = environment
        self._show_header()

    def refresh(self) -> None:
        """Fetch the stack's status and outputs (in a worker)."""
        if self.environment is None or self.busy:
            return
        self._set_stage(Stage.LOADING)
        worker = FunctionWorker(self._fetch_status, self.environment)
        generation = self._generation
        worker.signals.returned.connect(lambda status: self._status_loaded(generation, status))
        worker.signals.errored.connect(lambda error: self._status_failed(generation, error))
        start(worker)

    def deploy(self) -> None:
        """Plan: package, upload, and show the change set (nothing changes yet)."""
        if self.environment is None or self.busy:
            return
        environment = self.environment
        self.banner.show_message(
            "info",
            f"Preparing the change set for stack {environment.stack_name}: packaging the "
            "backend, uploading it and asking CloudFormation what would change…",
        )
        self.change_set_group.hide()
        self.events_model.clear()
        self.progress_group.show()
        self.progress.setRange(0, 0)
        self.step_label.setText("Starting…")
        self._set_stage(Stage.PLANNING)
        worker = FunctionWorker(
            self._make_plan, environment, dict(self._parameters(environment)), with_report=True
        )
        generation = self._generation
        worker.signals.reported.connect(lambda step: self._planning_step(generation, step))
        worker.signals.returned.connect(lambda plan: self._planned(generation, plan))
        worker.signals.errored.connect(lambda error: self._failed(generation, error))
        start(worker)

    def confirm(self) -> None:
        """Run the change set the user has seen."""
        if self._stage is not Stage.CONFIRMING or self._plan is None:
            return
        plan = self._plan
        self.change_set_group.hide()
        self._start_run(
            Stage.DEPLOYING,
            self._execute,
            plan,
            step=f"Deploying {changes(len(plan.changes))} to stack {plan.stack_name}…",
        )

    def decline(self) -> None:
        """Drop the change set; CloudFormation forgets it (and a stack it would have created)."""
        if self._stage is not Stage.CONFIRMING or self._plan is None:
            return
        plan, self._plan = self._plan, None
        self.change_set_group.hide()
        self.progress_group.hide()
        self.change_set_model.clear()
        self._set_stage(Stage.IDLE)
        self.banner.show_message("info", "Deploy cancelled; nothing was changed.")
        worker = FunctionWorker(self._discard, self.environment, plan)
        generation = self._generation
        worker.signals.finished.connect(lambda: self._current(generation) and self.refresh())
        start(worker)

    def cancel(self) -> None:
        """Ask CloudFormation to cancel the update in progress (it rolls back)."""
        if self._stage is not Stage.DEPLOYING or not self._cancellable:
            return
        self._set_cancellable(False)
        worker = FunctionWorker(self._cancel, self.environment)
        generation = self._generation
        worker.signals.returned.connect(
            lambda text: self._current(generation) and self.banner.show_message("warning", text)
        )
        worker.signals.errored.connect(
            lambda error: (
                self._current(generation)
                and self.banner.show_message("error", messages.sentence(error))
            )
        )
        start(worker)

    def teardown(self) -> None:
        """Ask for the stack's name, then delete the stack and what it owns."""
        if self.environment is None or self.busy:
            return
        dialog = TeardownDialog(self.environment.stack_name or "", self.environment.name, self)
        dialog.accepted.connect(lambda: self._teardown_confirmed(dialog.typed_name()))
        dialog.finished.connect(lambda _result: self._teardown_closed(dialog))
        self.teardown_dialog = dialog
        dialog.open()

    def check(self, environment: Environment) -> None:
        """Fetch another environment's stack status quietly, for the environments list.

        A failure is logged and shown as that environment's state ("sign-in needed"), not as
        a message: nobody asked about that environment yet.
        """
        if self.environment is not None and environment.name == self.environment.name:
            return
        worker = FunctionWorker(self._fetch_status, environment)
        worker.signals.returned.connect(lambda status: self._checked(environment, status))
        worker.signals.errored.connect(lambda error: self._check_failed(environment, error))
        start(worker, report_errors=False)

    def shutdown(self) -> None:
        """At quit: stop watching (CloudFormation carries on with what it was doing)."""
        if self._running is not None:
            self._running.abort()

    # Work, run by workers off the GUI thread

    def _engine(self, environment: Environment) -> DeployEngine:
        key = (
            environment.profile,
            environment.region,
            environment.endpoint_url,
            environment.stack_name,
        )
        with self._engines_lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = self._engine_factory(environment)
            return engine

    def _fetch_status(self, environment: Environment) -> StackStatus:
        return self._engine(environment).status()

    def _make_plan(self, environment: Environment, parameters: dict, report) -> Plan:
        return self._engine(environment).plan(parameters or None, report=report)

    def _execute(self, environment: Environment, plan: Plan, abort: threading.Event) -> Iterator:
        return self._engine(environment).execute(plan, abort=abort)

    def _destroy(self, environment: Environment, name: str, abort: threading.Event) -> Iterator:
        return self._engine(environment).destroy(name, abort=abort)

    def _discard(self, environment: Environment, plan: Plan) -> None:
        self._engine(environment).discard(plan)

    def _cancel(self, environment: Environment) -> str:
        return self._engine(environment).cancel()

    # Reactions, on the GUI thread

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def _status_loaded(self, generation: int, status: StackStatus) -> None:
        if not self._current(generation):
            return
        self._set_stage(Stage.IDLE)
        self.outputs_model.set_outputs(status.outputs)
        self._show_stack_status(status.status)
        if self.environment and self.environment.last_deploy_time is None and status.last_updated:
            self.last_deploy_label.setText(f"{local_time(status.last_updated)} (last change)")
        hint = RECOVERY_HINTS.get(status.status)
        if hint:
            reason = f" ({status.reason.rstrip('.')})" if status.reason else ""
            self.banner.show_message(
                "warning", f"Stack {status.name} is {status.status}{reason}. {hint}"
            )
        elif not status.exists and self.banner.isHidden():
            self.banner.show_message(
                "info",
                f"Stack {status.name} does not exist yet in {self.environment.region}; "
                "Deploy creates it.",
            )

    def _status_failed(self, generation: int, error: BaseException) -> None:
        if not self._current(generation):
            return
        self._set_stage(Stage.IDLE)
        self.banner.show_message("error", messages.sentence(error))
        health = failure_health(error)
        self.status_label.set_state(f"Unknown: {health}", "bad")
        self.health_changed.emit(AwsHealth(self.environment.name, health, "bad"))

    def _checked(self, environment: Environment, status: StackStatus) -> None:
        if self.environment is None or environment.name != self.environment.name:
            phrase, tone = health_of(status.status)
            self.health_changed.emit(
                AwsHealth(environment.name, phrase, tone, websocket_url(status.outputs))
            )

    def _check_failed(self, environment: Environment, error: BaseException) -> None:
        log.info("status of %s not known: %s", environment.name, messages.sentence(error))
        if self.environment is None or environment.name != self.environment.name:
            self.health_changed.emit(AwsHealth(environment.name, failure_health(error), "bad"))

    def _planning_step(self, generation: int, step: str) -> None:
        if self._current(generation) and self._stage is Stage.PLANNING:
            self.step_label.setText(f"{step}…")

    def _planned(self, generation: int, plan: Plan) -> None:
        if not self._current(generation):
            return
        self.progress_group.hide()
        if plan.empty:
            self._set_stage(Stage.IDLE)
            self.banner.show_message("success", "No changes: the stack is up to date.")
            return
        self._plan = plan
        count = changes(len(plan.changes))
        self.change_set_model.set_rows(plan.changes)
        creating = plan.kind == "CREATE"
        self.change_set_note.setText(
            f"CloudFormation will {'create' if creating else 'update'} stack "
            f"{plan.stack_name} with these {count}. Nothing changes until you confirm."
        )
        replaced = sum(1 for change in plan.changes if str(change.replacement).lower() == "true")
        self.confirm_button.setText(f"Deploy {count}")
        self.change_set_group.setTitle(f"Change set {plan.change_set_name}")
        self.change_set_group.show()
        if replaced:
            self.banner.show_message(
                "warning",
                f"{replaced} of these changes replace a resource: CloudFormation creates a new "
                "one and deletes the old one, with its data.",
            )
        else:
            self.banner.clear()
        self._set_stage(Stage.CONFIRMING)
        self.confirm_button.setFocus()

    def _failed(self, generation: int, error: BaseException) -> None:
        """A plan, deploy or teardown that raised: its sentence in the banner."""
        if not self._current(generation):
            return
        self._running = None
        self.progress.setRange(0, max(self.progress.maximum(), 1))
        if not self.events_model.rowCount():
            self.progress_group.hide()
        self._set_stage(Stage.IDLE)
        self.banner.show_message("error", messages.sentence(error))

    def _teardown_confirmed(self, typed: str) -> None:
        if self.environment is None or self.busy:
            return
        self._start_run(
            Stage.DESTROYING,
            self._destroy,
            typed,
            step=f"Tearing down stack {self.environment.stack_name}…",
        )

    def _teardown_closed(self, dialog: TeardownDialog) -> None:
        if self.teardown_dialog is dialog:
            self.teardown_dialog = None
        dialog.deleteLater()

    def _start_run(self, stage: Stage, work, argument, *, step: str) -> None:
        environment = self.environment
        self.banner.clear()
        self.events_model.clear()
        self._follow_events = True
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Starting…")
        self.progress.setStyleSheet("")
        self.step_label.setText(step)
        self.progress_group.show()
        self._set_cancellable(False)
        self._set_stage(stage)
        worker = GeneratorWorker(work, environment, argument)
        generation = self._generation
        worker.signals.yielded.connect(lambda item: self._item(generation, stage, item))
        worker.signals.errored.connect(lambda error: self._failed(generation, error))
        worker.signals.finished.connect(lambda: self._run_finished(generation))
        self._running = worker
        start(worker)

    def _item(self, generation: int, stage: Stage, item) -> None:
        if not self._current(generation):
            return
        if isinstance(item, StackEvent):
            self.events_model.append_rows([item])
            if item.logical_id == (self.environment.stack_name or "") and (
                item.resource_type == "AWS::CloudFormation::Stack"
            ):
                self._show_stack_status(item.status)
                self._set_cancellable(
                    stage is Stage.DEPLOYING
                    and self._plan is not None
                    and self._plan.kind == "UPDATE"
                    and item.status == "UPDATE_IN_PROGRESS"
                )
        elif isinstance(item, Progress):
            self.progress.setRange(0, max(item.total, 1))
            self.progress.setValue(item.done)
            self.progress.setFormat(f"{item.done} of {item.total} resources")
        elif isinstance(item, DeployResult):
            self._result(stage, item)

    def _result(self, stage: Stage, result: DeployResult) -> None:
        environment = self.environment
        self._set_cancellable(False)
        self.outputs_model.set_outputs(result.outputs)
        self._show_stack_status(result.stack_status)
        if self._follow_events:  # the outputs took room from the events: keep the last in view
            QTimer.singleShot(0, self.events_table.scrollToBottom)
        if result.ok and stage is Stage.DEPLOYING:
            self.progress.setValue(self.progress.maximum())
            self.step_label.setText(f"Stack {environment.stack_name} is {result.stack_status}.")
            self.banner.show_message(
                "success",
                f"Deployed: stack {environment.stack_name} is {result.stack_status}.",
            )
            self.deployed.emit(environment.name, datetime.now(UTC))
        elif result.ok:
            self.step_label.setText(f"Stack {environment.stack_name} was deleted.")
            self.banner.show_message(
                "success",
                f"Stack {environment.stack_name} was torn down with everything it owned.",
            )
        else:
            sentence = (
                result.failure.sentence
                if result.failure is not None
                else f"Stack {environment.stack_name} ended as {result.stack_status}."
            )
            what = "The deploy failed" if stage is Stage.DEPLOYING else "The teardown failed"
            self.step_label.setText(f"{what}.")
            self.progress.setFormat(f"{self.progress.format()} · failed")
            border = self.palette().color(QPalette.ColorRole.Mid).name()
            self.progress.setStyleSheet(
                f"QProgressBar {{ border: 1px solid {border}; border-radius: 3px;"
                " text-align: center; }"
                f"QProgressBar::chunk {{ background-color: {tone('bad').name()}; }}"
            )
            self.banner.show_message("error", f"{what}. {sentence}")
            messages.error(f"{what}: {sentence}")

    def _run_finished(self, generation: int) -> None:
        if not self._current(generation):
            return
        self._running = None
        self._plan = None
        if self.busy:
            self._set_stage(Stage.IDLE)

    def _show_stack_status(self, status: str) -> None:
        self._stack_status = status
        phrase, tone = health_of(status)
        self.status_label.set_state(
            "Not deployed yet" if phrase == "not deployed" else status, tone
        )
        self._report_health()

    def _report_health(self) -> None:
        if self.environment is None or self._stack_status is None:
            return
        phrase, tone = health_of(self._stack_status)
        self.health_changed.emit(
            AwsHealth(self.environment.name, phrase, tone, self.websocket_field.text() or None)
        )

    def _outputs_changed(self) -> None:
        has_outputs = self.outputs_model.rowCount() > 0
        self.outputs_table.setVisible(has_outputs)
        self.no_outputs.setVisible(not has_outputs)
        url = websocket_url({row.name: row.value for row in self.outputs_model.rows})
        self.websocket_field.set_text(url)
        if not url:
            self.websocket_field.edit.setPlaceholderText(
                "No WebSocket URL among the outputs"
                if has_outputs
                else "Known once the stack is deployed"
            )

    def _show_header(self) -> None:
        environment = self.environment
        if environment is None:
            return
        self.title.setText(environment.name)
        self.summary.setText(f"AWS · {environment.summary}")
        self.last_deploy_label.setText(
            local_time(environment.last_deploy_time)
            if environment.last_deploy_time
            else "Not deployed from this console yet"
        )

    def _before_events(self, _parent: QModelIndex, _first: int, _last: int) -> None:
        bar = self.events_table.verticalScrollBar()
        self._follow_events = bar.value() >= bar.maximum() - 4

    def _after_events(self, _parent: QModelIndex, _first: int, _last: int) -> None:
        if self._follow_events:
            self.events_table.scrollToBottom()

    def _set_cancellable(self, cancellable: bool) -> None:
        if cancellable != self._cancellable:
            self._cancellable = cancellable
            self._update()
            self.cancellable_changed.emit(cancellable)

    def _set_stage(self, stage: Stage) -> None:
        was_busy = self.busy
        self._stage = stage
        self._update()
        if self.busy != was_busy:
            self.busy_changed.emit(self.busy)

    def _update(self) -> None:
        has_environment = self.environment is not None
        idle = self._stage in (Stage.IDLE, Stage.LOADING)
        self.deploy_button.setEnabled(has_environment and idle)
        self.refresh_button.setEnabled(has_environment and idle)
        self.teardown_button.setEnabled(
            has_environment and idle and self._stack_status not in (None, DOES_NOT_EXIST)
        )
        self.edit_button.setEnabled(has_environment and not self.busy)
        self.parameters_button.setEnabled(has_environment and not self.busy)
        self.cancel_button.setVisible(self._stage in (Stage.DEPLOYING,))
        self.cancel_button.setEnabled(self._stage is Stage.DEPLOYING and self._cancellable)
        self.cancel_button.setToolTip(
            "Cancel the update; CloudFormation rolls the stack back"
            if self._cancellable
            else "CloudFormation can cancel only an update in progress, not a new stack's creation"
        )
        self.confirm_button.setEnabled(self._stage is Stage.CONFIRMING)
        self.decline_button.setEnabled(self._stage is Stage.CONFIRMING)
