"""The local sandbox's page: whether it runs, where to reach it, where its Redis comes from."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from desktop.views.widgets import (
    Banner,
    CopyField,
    ScrollPage,
    StateDot,
    copy_button,
    heading,
    note,
)
from desktop.workers.sandbox import Phase, SandboxState

_HEALTH_TONES = {
    Phase.RUNNING: "good",
    Phase.STARTING: "warn",
    Phase.STOPPING: "warn",
    Phase.FAILED: "bad",
    Phase.STOPPED: "muted",
}


def sandbox_tone(state: SandboxState) -> str:
    return _HEALTH_TONES[state.phase]


class SandboxPanel(QWidget):
    """Shows a ``SandboxState``; its buttons forward the user's wish to start or stop."""

    start_requested = Signal()
    stop_requested = Signal()
    restart_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state_label = StateDot()
        self.start_button = QPushButton("Start sandbox")
        self.stop_button = QPushButton("Stop sandbox")
        self.start_button.clicked.connect(self.start_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.restart_button = QPushButton("Restart")
        self.restart_button.setToolTip("Stop the sandbox and start it again with a fresh Redis")
        self.restart_button.clicked.connect(self.restart_requested)
        self.banner = Banner()
        self.websocket_url = CopyField("Not running")
        self.management_url = CopyField("Not running")
        self.admin_url = CopyField("Not running")
        self.metrics_url = CopyField("Not running")
        self.redis = note()
        self.token_secret = note()
        self.admin_key = note()

        buttons = QHBoxLayout()
        buttons.addWidget(self.state_label)
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.restart_button)

        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(8)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("WebSocket URL:", self.websocket_url)
        form.addRow("Management API:", self.management_url)
        form.addRow("Admin endpoint:", self.admin_url)
        form.addRow("Metrics:", self.metrics_url)
        form.addRow("Redis:", self.redis)
        form.addRow("Token secret:", self.token_secret)
        form.addRow("Admin key:", self.admin_key)

        self.page = ScrollPage()
        layout = QVBoxLayout(self.page.content)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading("Local sandbox"))
        layout.addWidget(
            note(
                "The backend's own handlers behind a local gateway that behaves like API "
                "Gateway's WebSocket API, on this computer. No AWS account is needed."
            )
        )
        layout.addLayout(buttons)
        layout.addWidget(self.banner)
        layout.addLayout(form)
        self.try_it = QGroupBox("Try it")
        # Commands neither wrap (a break after "--" reads as two flags) nor set the page's
        # width: in a narrow window they scroll sideways.
        self.try_it_commands = QPlainTextEdit()
        self.try_it_commands.setReadOnly(True)
        self.try_it_commands.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.try_it_commands.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.try_it_commands.setFrameShape(QFrame.Shape.NoFrame)
        self.try_it_commands.viewport().setAutoFillBackground(False)
        self.try_it_commands.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.try_it_commands.setFixedHeight(
            2 * self.try_it_commands.fontMetrics().lineSpacing()
            + 2 * round(self.try_it_commands.document().documentMargin())
            + self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        )
        self.try_it_copy = copy_button(self.try_it_commands.toPlainText)
        try_it_layout = QVBoxLayout(self.try_it)
        try_it_layout.addWidget(
            note(
                "Join a classroom from a terminal: mint a token signed with the sandbox's secret, "
                "then connect any WebSocket client (wsdump, installed with the console, here) and send "
                '{"action": "send", "type": "chat.message", "data": "hi"}.'
            )
        )
        commands_row = QHBoxLayout()
        commands_row.addWidget(self.try_it_commands, 1)
        commands_row.addWidget(self.try_it_copy, 0, Qt.AlignmentFlag.AlignTop)
        try_it_layout.addLayout(commands_row)
        layout.addWidget(self.try_it)
        layout.addStretch(1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.page)
        self.show_state(SandboxState())

    def show_state(self, state: SandboxState) -> None:
        self.state_label.set_state(state.health.capitalize(), sandbox_tone(state))
        self.start_button.setEnabled(state.phase in (Phase.STOPPED, Phase.FAILED))
        self.stop_button.setEnabled(state.phase is Phase.RUNNING)
        self.restart_button.setEnabled(state.phase is Phase.RUNNING)
        placeholder = {
            Phase.STARTING: "Starting…",
            Phase.STOPPING: "Stopping…",
        }.get(state.phase, "Not running")
        for field, value in (
            (self.websocket_url, state.websocket_url),
            (self.management_url, state.management_url),
            (self.admin_url, state.admin_url),
            (self.metrics_url, state.metrics_url),
        ):
            field.edit.setPlaceholderText(placeholder)
            field.set_text(value)
        self.redis.setText(state.redis_description or "Chosen when the sandbox starts.")
        self.token_secret.setText(
            f"Kept in {state.token_secret_location}; never shown or logged."
            if state.token_secret_location
            else "Kept in your console settings folder; never shown or logged."
        )
        self.admin_key.setText(
            f"Kept in {state.admin_key_location}; the admin and metrics endpoints want it as "
            "Authorization: Bearer <key>."
            if state.admin_key_location
            else "Made when the sandbox first starts; the admin and metrics endpoints want it."
        )
        self.try_it.setVisible(state.running)
        if state.websocket_url:
            self.try_it_commands.setPlainText(
                "TOKEN=$(classroom-console token --sub alice --role teacher --room demo)\n"
                f'wsdump "{state.websocket_url}?room=demo&token=$TOKEN"'
            )
        if state.phase is Phase.FAILED and state.error:
            self.banner.show_message("error", state.error)
        elif state.phase is Phase.STOPPED and not state.error:
            self.banner.show_message(
                "info", "The sandbox is stopped. Start it to run classrooms on this computer."
            )
        else:
            self.banner.clear()
