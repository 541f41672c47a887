"""Inspector: join a classroom unseen, watch its stream and its board, send a fix, export it.

Each open classroom is a tab over an ``InspectorSession`` (the state and the connection's
worker); the tab only shows and forwards. A session exported for a ticket opens again here,
offline, in a tab of its own.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyledItemDelegate,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop import messages
from desktop.models.base import tone
from desktop.models.inspector import StreamColumn, StreamModel
from desktop.services import composer
from desktop.services.classrooms import Classrooms, Member
from desktop.services.errors import ConsoleError
from desktop.services.room import Status
from desktop.views.whiteboard import WhiteboardPanel
from desktop.views.widgets import ElidedLabel, StateDot, heading, note
from desktop.workers import inspector
from desktop.workers.inspector import Filters, InspectorSession, SendOutcome

PHASE_TONES = {"live": "good", "connecting": "warn", "reconnecting": "warn", "closed": "muted"}
ALL_TYPES = "All types"


def status_text(status: Status, retry_in: float | None = None) -> str:
    """The connection's state in a phrase; ``retry_in`` counts down a reconnect's pause."""
    if status.phase == "live":
        return "Live: you are in the classroom, unseen"
    if status.phase == "connecting":
        return "Connecting…"
    if status.phase == "reconnecting":
        left = status.retry_in if retry_in is None else retry_in
        when = f" in {math.ceil(left)} s" if left and left > 0 else ""
        reason = f" ({status.detail})" if status.detail else ""
        return f"Reconnecting{when}{reason}"
    return f"Closed: {status.detail}" if status.detail else "Closed"


class SeqDelegate(QStyledItemDelegate):
    """Seqs are 16 digits and differ at the end: a narrow column keeps the end ("…436909"),
    and the whole seq is in the selected frame."""

    def initStyleOption(self, option, index) -> None:  # noqa: N802 - Qt's name
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideLeft


class InspectorTab(QWidget):
    """One classroom: the stream, the selected frame, the members, the board, the composer."""

    def __init__(self, session: InspectorSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = StreamModel(parent=self)
        self.state = StateDot()
        self.counts = ElidedLabel()
        self.pause_button = QToolButton()
        self.pause_button.setText("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold new frames back (they wait, counted) to read in peace")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Empty the table (an export still holds everything)")
        self.export_button = QPushButton("Export Session…")
        self.export_button.setToolTip(
            "Every frame received, with when it came, as JSON lines for a ticket"
        )
        self.type_filter = QComboBox()
        self.type_filter.addItem(ALL_TYPES)
        self.sender_filter = QLineEdit()
        self.sender_filter.setPlaceholderText("Sender")
        self.sender_filter.setClearButtonEnabled(True)
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("Text in the frame")
        self.text_filter.setClearButtonEnabled(True)
        self.regex = QCheckBox("Regex")
        self.regex.setToolTip("Read the text as a regular expression (Python's re)")

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.setItemDelegateForColumn(StreamColumn.SEQ, SeqDelegate(self.table))
        metrics = self.table.fontMetrics()
        for column, sample in {
            StreamColumn.SEQ: "…2047358",
            StreamColumn.TIME: "00:00:00.000",
            StreamColumn.SENDER: "student-0000",
            StreamColumn.ROLE: "teacher",
            StreamColumn.TYPE: "whiteboard.stroke",
            StreamColumn.SIZE: "000,000",
        }.items():
            self.table.setColumnWidth(column, metrics.horizontalAdvance(sample) + 20)

        self.detail = QPlainTextEdit()
        self.detail.setReadOnly(True)
        self.detail.setPlaceholderText("Select a row to see its frame.")
        self.copy_button = QPushButton("Copy JSON")
        self.members = QTableWidget(0, 3)
        self.members.setHorizontalHeaderLabels(["User id", "Name", "Role"])
        self.members.verticalHeader().hide()
        self.members.horizontalHeader().setStretchLastSection(True)
        self.members.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.members_note = note()
        self.board = WhiteboardPanel()

        self.template = QComboBox()
        self.templates = composer.templates()
        for template in self.templates:
            self.template.addItem(template.title, template.name)
        self.compose = QPlainTextEdit()
        self.compose.setPlaceholderText('{"action": "send", "type": "chat.message", "data": …}')
        self.send_button = QPushButton("Send")
        self.resend_button = QPushButton("Resend (same id)")
        self.resend_button.setEnabled(False)
        self.outcome = note()
        self._last_sent: dict | None = None
        self._retry_at: float | None = None
        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._tick_status)

        self._layout()
        self._connect()
        self.show_status(session.status)
        self._counts()
        self._template(0)

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.state)
        top.addWidget(self.counts, 1)
        top.addWidget(self.pause_button)
        top.addWidget(self.clear_button)
        top.addWidget(self.export_button)
        filters = QHBoxLayout()
        filters.addWidget(self.type_filter)
        filters.addWidget(self.sender_filter, 1)
        filters.addWidget(self.text_filter, 2)
        filters.addWidget(self.regex)

        frame_page = QWidget()
        frame_layout = QVBoxLayout(frame_page)
        frame_layout.addWidget(self.detail, 1)
        frame_layout.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignRight)
        members_page = QWidget()
        members_layout = QVBoxLayout(members_page)
        members_layout.addWidget(self.members, 1)
        members_layout.addWidget(self.members_note)
        send_page = QWidget()
        send_layout = QVBoxLayout(send_page)
        send_layout.addWidget(self.template)
        send_layout.addWidget(self.compose, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.outcome, 1)
        buttons.addWidget(self.resend_button)
        buttons.addWidget(self.send_button)
        send_layout.addLayout(buttons)
        self.side = QTabWidget()
        self.side.addTab(frame_page, "Frame")
        self.side.addTab(members_page, "Members")
        self.side.addTab(self.board, "Whiteboard")
        self.side.addTab(send_page, "Send")

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(self.side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([600, 400])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(split, 1)

    def _connect(self) -> None:
        s = self.session
        s.status_changed.connect(self.show_status)
        s.rows_added.connect(self._rows_added)
        s.rows_reset.connect(self._rows_reset)
        s.rows_dropped.connect(self._rows_dropped)
        s.counts_changed.connect(self._counts)
        s.members_changed.connect(self._members)
        s.types_changed.connect(self._types)
        s.board_read.connect(self.board.add_read)
        s.sent.connect(self._sent)
        self.pause_button.toggled.connect(s.set_paused)
        self.pause_button.toggled.connect(
            lambda paused: self.pause_button.setText("Resume" if paused else "Pause")
        )
        self.clear_button.clicked.connect(self._clear)
        self.export_button.clicked.connect(self.export)
        for field in (self.sender_filter, self.text_filter):
            field.textChanged.connect(lambda _text: self.apply_filters())
        self.regex.toggled.connect(lambda _on: self.apply_filters())
        self.type_filter.currentIndexChanged.connect(lambda _n: self.apply_filters())
        self.table.selectionModel().currentRowChanged.connect(self._picked)
        self.copy_button.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.detail.toPlainText())
        )
        self.template.currentIndexChanged.connect(self._template)
        self.send_button.clicked.connect(self.send)
        self.resend_button.clicked.connect(self.resend)

    # The stream

    def _at_bottom(self) -> bool:
        bar = self.table.verticalScrollBar()
        return bar.value() >= bar.maximum() - 2

    def _rows_added(self, rows: list) -> None:
        follow = self._at_bottom()
        self.model.append_rows(rows)
        if follow:
            self.table.scrollToBottom()

    def _rows_reset(self, rows: list) -> None:
        self.model.set_rows(rows)
        self.table.scrollToBottom()

    def _rows_dropped(self, count: int) -> None:
        """The cap let the oldest rows go: what the user reads stays where it is."""
        bar = self.table.verticalScrollBar()
        follow = self._at_bottom()
        value = bar.value()
        self.model.drop_first(count)
        if not follow:
            bar.setValue(max(0, value - count))

    def _clear(self) -> None:
        self.session.clear()
        self.detail.clear()

    def apply_filters(self) -> None:
        kind = self.type_filter.currentText()
        filters = Filters(
            type="" if kind == ALL_TYPES else kind,
            sender=self.sender_filter.text().strip(),
            text=self.text_filter.text(),
            regex=self.regex.isChecked(),
        )
        try:
            self.session.set_filters(filters)
        except re.error as error:
            self.text_filter.setStyleSheet(f"color: {tone('bad').name()};")
            self.text_filter.setToolTip(f"Not a regular expression: {error}")
            return
        self.text_filter.setStyleSheet("")
        self.text_filter.setToolTip("")

    def _types(self, types: list[str]) -> None:
        current = self.type_filter.currentText()
        self.type_filter.blockSignals(True)
        self.type_filter.clear()
        self.type_filter.addItems([ALL_TYPES, *types])
        self.type_filter.setCurrentText(current)
        self.type_filter.blockSignals(False)

    def _picked(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and current.row() < self.model.rowCount():
            row = self.model.row(current.row())
            self.detail.setPlainText(json.dumps(row.frame, indent=2, ensure_ascii=False))

    def _counts(self) -> None:
        s = self.session
        parts = [f"{len(s.rows):,} frames kept"]
        if s.dropped:
            parts.append(f"{s.dropped:,} older ones let go (at most {s.cap:,} are kept)")
        if s.paused:
            parts.append(f"paused: {len(s.waiting):,} waiting")
        self.counts.set_full_text(" · ".join(parts))

    def show_status(self, status: Status) -> None:
        self._retry_at = time.monotonic() + status.retry_in if status.retry_in else None
        self._tick_status()
        if self._retry_at is not None:
            self._countdown.start()
        self.show_mode()

    def _tick_status(self) -> None:
        status = self.session.status
        left = self._retry_at - time.monotonic() if self._retry_at is not None else None
        if left is not None and left <= 0:
            self._countdown.stop()
            left = None
        self.state.set_state(status_text(status, left), PHASE_TONES.get(status.phase))

    def show_mode(self) -> None:
        """Send is off in read-only mode and for a session opened from a file, and says why."""
        s = self.session
        self.send_button.setEnabled(not s.offline and not s.read_only)
        if s.offline:
            why = "This session was opened from a file: there is no classroom to send to."
        elif s.read_only:
            why = "Read-only mode: Allow Changes in the toolbar to send into the classroom."
        else:
            why = "Send the frame into the classroom as a support member (audited)"
        self.send_button.setToolTip(why)
        self.resend_button.setToolTip(why if self.send_button.isEnabled() else "")

    def _members(self, members: list[Member]) -> None:
        self.members.setRowCount(len(members))
        for n, member in enumerate(members):
            role = f"{member.role} (hidden)" if member.hidden else member.role
            for column, text in enumerate((member.user_id, member.name, role)):
                item = QTableWidgetItem(text)
                if member.hidden:
                    item.setForeground(tone("muted"))
                self.members.setItem(n, column, item)
        visible = sum(not m.hidden for m in members)
        self.members_note.setText(
            f"{visible} in the classroom, {len(members) - visible} hidden support "
            "(you among them). Updated as members join and leave."
        )

    # Sending

    def _template(self, index: int) -> None:
        if 0 <= index < len(self.templates):
            self.compose.setPlainText(self.templates[index].text)

    def send(self) -> None:
        sent = self.session.send(self.compose.toPlainText())
        if sent is not None:
            self._last_sent = sent
            self.outcome.setText(f"Sent as id {sent.get('id', '(none)')}; waiting for its answer…")
            self.resend_button.setEnabled(False)

    def resend(self) -> None:
        if self._last_sent is not None and self.session.resend(self._last_sent) is not None:
            self.outcome.setText(f"Sent again with the same id {self._last_sent.get('id')}…")
            self.resend_button.setEnabled(False)

    def _sent(self, outcome: SendOutcome) -> None:
        self.outcome.setText(outcome.text)
        self.outcome.setStyleSheet("" if outcome.ok else f"color: {tone('bad').name()};")
        self.resend_button.setEnabled(outcome.retry and self._last_sent is not None)

    # Export

    def export(self) -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        suggested = str(Path.home() / f"inspector-{self.session.room}-{stamp}.jsonl")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export session", suggested, "Inspector sessions (*.jsonl)"
        )
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        try:
            count = self.session.export(path)
        except ConsoleError as error:
            messages.report_error(error)
            return
        messages.info(f"Exported {count:,} frames of {self.session.room} to {path}.")


class InspectorView(QWidget):
    """The section: a classroom id to join, and a tab for each classroom open."""

    file_opened = Signal(object)  # the InspectorTab of a session file, once it is read

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service: Classrooms | None = None
        self.environment = ""
        self.unavailable = "No environment is selected."
        self.read_only = True
        self.title = heading("Inspector")
        self.room = QLineEdit()
        self.room.setPlaceholderText("Classroom id")
        self.join_button = QPushButton("Join Unseen")
        self.join_button.setToolTip(
            "Join as a hidden support member: the class does not see you, you see everything"
        )
        self.open_button = QPushButton("Open Session…")
        self.open_button.setToolTip("Open a session exported from the Inspector, offline")
        self.tabs = QTabWidget()
        self.tabs.setTabsClosable(True)
        self.tabs.setDocumentMode(True)
        self.empty = note()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(self.tabs)

        bar = QHBoxLayout()
        bar.addWidget(self.title)
        bar.addSpacing(12)
        bar.addWidget(self.room, 1)
        bar.addWidget(self.join_button)
        bar.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 12)
        layout.addLayout(bar)
        layout.addWidget(self.pages, 1)

        self.room.returnPressed.connect(self.join)
        self.join_button.clicked.connect(self.join)
        self.open_button.clicked.connect(self.open_session)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self._update()

    @property
    def open_tabs(self) -> list[InspectorTab]:
        return [self.tabs.widget(n) for n in range(self.tabs.count())]

    def set_service(self, service: Classrooms | None, environment: str, unavailable: str = ""):
        """Where new tabs join; tabs already open keep their classroom until closed."""
        self.service, self.environment = service, environment
        self.unavailable = unavailable or "Not available."
        self._update()

    def set_read_only(self, read_only: bool) -> None:
        self.read_only = read_only
        for tab in self.open_tabs:
            tab.session.read_only = read_only
            tab.show_mode()

    def join(self) -> None:
        self.open_room(self.room.text().strip())

    def open_room(self, room: str) -> InspectorTab | None:
        """A tab on ``room`` (the one already open, if it is)."""
        if not composer.valid_room(room):
            messages.error("A classroom id is 1-64 characters of A-Z a-z 0-9 _ - (no spaces).")
            return None
        for n, tab in enumerate(self.open_tabs):
            if tab.session.room == room and not tab.session.offline:
                self.tabs.setCurrentIndex(n)
                return tab
        if self.service is None:
            messages.error(f"Cannot join {room}: {self.unavailable}")
            return None
        session = InspectorSession(room, self.service, self.environment, parent=self)
        session.read_only = self.read_only
        tab = self._add(session, room)
        session.start()
        return tab

    def open_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open session", str(Path.home()), "Inspector sessions (*.jsonl)"
        )
        if path:
            self.open_file(Path(path))

    def open_file(self, path: Path) -> None:
        """Open a session file in a tab of its own; it is read in a worker, and the tab comes
        when it has been (a file that is not a session is a sentence instead)."""
        messages.info(f"Opening {path.name}…")
        self.open_button.setEnabled(False)  # one at a time
        inspector.open_file(path, self._opened, lambda: self.open_button.setEnabled(True))

    def _opened(self, opened: inspector.OpenedFile) -> None:
        loaded = opened.session
        session = InspectorSession(loaded.room, None, loaded.environment, parent=self)
        tab = self._add(session, f"{loaded.room} (file)")
        tab.session.load_offline(opened)
        if loaded.unreadable:
            messages.info(
                f"{opened.path.name}: {loaded.unreadable} lines were not frames and were skipped."
            )
        self.file_opened.emit(tab)

    def _add(self, session: InspectorSession, title: str) -> InspectorTab:
        tab = InspectorTab(session)
        index = self.tabs.addTab(tab, title)
        self.tabs.setTabToolTip(index, f"{session.room} on {session.environment}")
        self.tabs.setCurrentIndex(index)
        self._update()
        return tab

    def close_tab(self, index: int) -> None:
        tab = self.tabs.widget(index)
        if isinstance(tab, InspectorTab):
            tab.session.close()
        self.tabs.removeTab(index)
        if tab is not None:
            tab.deleteLater()
        self._update()

    def shutdown(self) -> None:
        for tab in self.open_tabs:
            tab.session.close()

    def _update(self) -> None:
        self.join_button.setEnabled(self.service is not None)
        if self.service is None:
            self.empty.setText(self.unavailable)
        else:
            self.empty.setText(
                f"Type a classroom id to join it on {self.environment} as a hidden support "
                "member, or open one from Classrooms (Open in Inspector). Its stream, members "
                "and whiteboard show here; the class does not see you."
            )
        self.pages.setCurrentWidget(self.tabs if self.tabs.count() else self.empty)
