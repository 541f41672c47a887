"""Classrooms: every live classroom of the current environment, its members, ghosts and audit.

The view shows what ``ClassroomsPresenter`` holds and forwards what the user asks for; each
change asks first, and is refused by the presenter in read-only mode. The classrooms list
fills page by page in the background, so its first rows show at once however many there are.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.models.classrooms import (
    COPY_CHOICES_ROLE,
    COPY_ROLE,
    USER_ROLE,
    AuditModel,
    ClassroomColumn,
    ClassroomsModel,
    GhostsModel,
    MemberColumn,
    MembersModel,
)
from desktop.services.classrooms import CheckResult, Ghost, Member
from desktop.views.widgets import Banner, ElidedLabel, ask, heading, note
from desktop.workers.classrooms import INTERVALS, ClassroomsPresenter, ListStatus


class IdTable(QTableView):
    """A table whose Copy (Ctrl+C, Cmd+C) takes the id of the current cell's row, and whose
    rows' menu copies their ids and, for a row with a user, asks for that user's classrooms."""

    find_user_requested = Signal(str)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.matches(QKeySequence.StandardKey.Copy):
            _copy(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)


def table(model, *, stretch: int | None = None) -> IdTable:
    """A sortable, row-selecting table with copy on Ctrl+C and a context menu."""
    view = IdTable()
    view.setModel(model)
    # Enabling sorting sorts by the header's indicator: set it to the model's order first.
    view.horizontalHeader().setSortIndicator(model.sort_column, model.sort_order)
    view.setSortingEnabled(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setHighlightSections(False)
    if stretch is not None:
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    else:
        header.setStretchLastSection(True)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    view.customContextMenuRequested.connect(lambda point: _copy_menu(view, point))
    return view


def _copy(index: QModelIndex) -> None:
    value = index.data(COPY_ROLE) if index.isValid() else None
    if value:
        QGuiApplication.clipboard().setText(str(value))


def _copy_menu(view: QTableView, point: QPoint) -> None:
    index = view.indexAt(point)
    if not index.isValid():
        return
    menu = QMenu(view)
    for what, value in index.data(COPY_CHOICES_ROLE) or []:
        menu.addAction(f"Copy {what}", lambda v=value: QGuiApplication.clipboard().setText(v))
    user_id = index.data(USER_ROLE)
    if user_id and isinstance(view, IdTable):
        menu.addSeparator()
        menu.addAction(
            f"Find {user_id}'s classrooms", lambda: view.find_user_requested.emit(user_id)
        )
    menu.exec(view.viewport().mapToGlobal(point))


def size_to(view: QTableView, samples: dict[int, str]) -> None:
    metrics = view.fontMetrics()
    for column, sample in samples.items():
        view.setColumnWidth(column, metrics.horizontalAdvance(sample) + 28)


class ClassroomsView(QWidget):
    """The section; ``presenter`` does the work and holds the state."""

    open_in_inspector = Signal(str)  # a classroom id

    def __init__(self, presenter: ClassroomsPresenter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.presenter = presenter
        self.confirmation: QMessageBox | None = None
        self._syncing = False
        self.classrooms = ClassroomsModel(self)
        self.members = MembersModel(self)
        self.ghosts = GhostsModel(self)
        self.audit = AuditModel(self)

        self.title = heading("Classrooms")
        self.status = ElidedLabel()
        self.room_filter = QLineEdit()
        self.room_filter.setPlaceholderText("Filter by classroom id")
        self.room_filter.setClearButtonEnabled(True)
        self.user_search = QLineEdit()
        self.user_search.setPlaceholderText("Find a user id, then Enter")
        self.user_search.setClearButtonEnabled(True)
        self.interval = QComboBox()
        for seconds in INTERVALS:
            self.interval.addItem(f"Every {seconds} s", seconds)
        self.interval.setToolTip("How often the list is read again")
        self.pause_button = QToolButton()
        self.pause_button.setText("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Stop refreshing the list (what is shown stays)")
        self.refresh_button = QPushButton("Refresh")
        self.check_all_button = QPushButton("Check All")
        self.check_all_button.setToolTip(
            "Ask the gateway about every connection of every classroom listed, a few "
            "classrooms a second, and list the ghosts found"
        )

        self.banner = Banner()
        # The last column takes what is left; the classroom's id never shrinks out of sight.
        self.rooms_table = table(self.classrooms)
        size_to(
            self.rooms_table,
            {
                ClassroomColumn.ROOM: "physics-101-year-9",
                ClassroomColumn.TEACHERS: "Teachers",
                ClassroomColumn.STUDENTS: "Students",
                ClassroomColumn.SUPPORT: "Support",
                ClassroomColumn.CONNECTED_SINCE: "Connected since",
                ClassroomColumn.LAST_ACTIVITY: "Last activity",
                ClassroomColumn.MESSAGES: "Msgs/min",
                ClassroomColumn.LATEST_SEQ: "1796183539904000",
            },
        )
        self.empty = note()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.rooms_pages = QStackedWidget()
        self.rooms_pages.addWidget(self.rooms_table)
        self.rooms_pages.addWidget(self.empty)

        self.room_title = QLabel()
        self.room_title.setTextFormat(Qt.TextFormat.RichText)
        self.room_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.check_button = QPushButton("Check Connections")
        self.check_button.setToolTip(
            "Ask the gateway about each connection of this classroom and mark the ghosts: "
            "registered here, but gone at the gateway (reads only)"
        )
        self.prune_button = QPushButton("Prune Ghosts…")
        self.disconnect_button = QPushButton("Disconnect…")
        self.close_button = QPushButton("Close Classroom…")
        self.inspector_button = QPushButton("Open in Inspector")
        self.inspector_button.setToolTip(
            "Join this classroom unseen in the Inspector: its stream, members and whiteboard"
        )
        self.members_table = table(self.members, stretch=MemberColumn.USER_AGENT)
        self.members_table.find_user_requested.connect(self.find_user)
        size_to(
            self.members_table,
            {
                MemberColumn.USER: "student-00000",
                MemberColumn.NAME: "Ms Name Surname",
                MemberColumn.ROLE: "support (hidden)",
                MemberColumn.CONNECTION: "AbCdEfGhIjKlMnO=",
                MemberColumn.CONNECTED_SINCE: "Connected since",
                MemberColumn.LAST_SEEN: "Last seen",
                MemberColumn.SOURCE_IP: "203.000.113.255",
            },
        )
        self.members_note = note()

        self.ghosts_note = note("Check All lists here the ghosts of every classroom.")
        self.stop_check_button = QPushButton("Stop")
        self.stop_check_button.setEnabled(False)
        self.prune_all_button = QPushButton("Prune All Found…")
        self.prune_all_button.setEnabled(False)
        self.ghosts_table = table(self.ghosts)
        self.ghosts_table.find_user_requested.connect(self.find_user)
        self.audit_table = table(self.audit)
        self.audit_note = note(
            "Recent support actions on this environment, newest first, with who did them."
        )
        self.audit_refresh = QPushButton("Reload")

        self._layout()
        self._connect()
        self._read_only(presenter.read_only)
        self.show_status(presenter.status())
        self._selection(None)

    # Building

    def _layout(self) -> None:
        filters = QHBoxLayout()
        filters.addWidget(self.room_filter, 2)
        filters.addWidget(self.user_search, 2)
        filters.addWidget(self.interval)
        filters.addWidget(self.pause_button)
        filters.addWidget(self.refresh_button)
        filters.addWidget(self.check_all_button)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.rooms_pages)

        member_actions = QHBoxLayout()
        member_actions.addWidget(self.check_button)
        member_actions.addWidget(self.prune_button)
        member_actions.addWidget(self.disconnect_button)
        member_actions.addWidget(self.close_button)
        member_actions.addStretch(1)
        member_actions.addWidget(self.inspector_button)
        members_page = QWidget()
        members_layout = QVBoxLayout(members_page)
        members_layout.addWidget(self.room_title)
        members_layout.addLayout(member_actions)
        members_layout.addWidget(self.members_table, 1)
        members_layout.addWidget(self.members_note)

        ghost_actions = QHBoxLayout()
        ghost_actions.addWidget(self.ghosts_note, 1)
        ghost_actions.addWidget(self.stop_check_button)
        ghost_actions.addWidget(self.prune_all_button)
        ghosts_page = QWidget()
        ghosts_layout = QVBoxLayout(ghosts_page)
        ghosts_layout.addLayout(ghost_actions)
        ghosts_layout.addWidget(self.ghosts_table, 1)

        audit_actions = QHBoxLayout()
        audit_actions.addWidget(self.audit_note, 1)
        audit_actions.addWidget(self.audit_refresh)
        audit_page = QWidget()
        audit_layout = QVBoxLayout(audit_page)
        audit_layout.addLayout(audit_actions)
        audit_layout.addWidget(self.audit_table, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(members_page, "Members")
        self.tabs.addTab(ghosts_page, "Ghosts")
        self.tabs.addTab(audit_page, "Audit")

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)

        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 12)
        layout.addLayout(header)
        layout.addLayout(filters)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)

    def _connect(self) -> None:
        p = self.presenter
        p.classrooms_changed.connect(self._show_classrooms)
        p.status_changed.connect(self.show_status)
        p.selection_changed.connect(self._selection)
        p.members_changed.connect(self._members)
        p.check_finished.connect(self._checked)
        p.check_all_progress.connect(self._check_all_progress)
        p.audit_changed.connect(self.audit.show)
        p.read_only_changed.connect(self._read_only)
        p.busy_changed.connect(lambda _busy: self._update_buttons())
        p.action_finished.connect(lambda text: self.banner.show_message("success", text))

        self.room_filter.textChanged.connect(p.set_room_filter)
        self.user_search.returnPressed.connect(lambda: p.find_user(self.user_search.text()))
        self.user_search.textChanged.connect(lambda text: p.find_user("") if not text else None)
        self.interval.setCurrentIndex(max(0, self.interval.findData(p.interval)))
        self.interval.currentIndexChanged.connect(
            lambda n: p.set_interval(int(self.interval.itemData(n)))
        )
        self.pause_button.toggled.connect(p.set_paused)
        self.refresh_button.clicked.connect(p.refresh)
        self.check_all_button.clicked.connect(p.check_all)
        self.stop_check_button.clicked.connect(p.abort_check_all)
        self.prune_all_button.clicked.connect(self.prune_all)
        self.check_button.clicked.connect(p.check)
        self.prune_button.clicked.connect(self.prune)
        self.disconnect_button.clicked.connect(self.disconnect_member)
        self.close_button.clicked.connect(self.close_classroom)
        self.audit_refresh.clicked.connect(p.load_audit)
        self.inspector_button.clicked.connect(
            lambda: self.open_in_inspector.emit(p.selected) if p.selected else None
        )
        self.rooms_table.selectionModel().currentRowChanged.connect(self._room_picked)
        self.members_table.selectionModel().selectionChanged.connect(
            lambda *_: self._update_buttons()
        )
        self.tabs.currentChanged.connect(lambda n: p.load_audit() if n == 2 else None)

    # What the user asks for

    def find_user(self, user_id: str) -> None:
        """Every classroom ``user_id`` is in (from a member's row: a student in two rooms)."""
        self.user_search.setText(user_id)
        self.presenter.find_user(user_id)

    def selected_member(self) -> Member | None:
        rows = self.members_table.selectionModel().selectedRows()
        return self.members.row(rows[0].row()) if rows else None

    def disconnect_member(self) -> None:
        member = self.selected_member()
        if member is None:
            return
        who = f"{member.name} ({member.user_id})" if member.name else member.user_id
        self.ask(
            "Disconnect",
            f"Disconnect {who} from {self.presenter.selected}?",
            f"Their connection {member.connection_id} is closed now. Their whiteboard client "
            "may join again by itself; the classroom hears that they left.",
            "Disconnect",
            lambda: self.presenter.disconnect(member),
        )

    def close_classroom(self) -> None:
        room = self.presenter.selected
        if room is None:
            return
        count = len(self.presenter.members)
        self.ask(
            "Close classroom",
            f"Close {room}?",
            f"All {count} connection{'s' if count != 1 else ''} of this classroom are closed "
            "now, teachers' and students' alike, in the middle of the lesson.",
            "Close Classroom",
            lambda: self.presenter.close(room),
        )

    def prune(self) -> None:
        room = self.presenter.selected
        if room is None:
            return
        ghosts = self.presenter.ghosts
        known = (
            f"The last check found {len(ghosts.ghosts)}."
            if ghosts is not None and ghosts.room == room
            else "The gateway is asked about each connection first."
        )
        self.ask(
            "Prune ghosts",
            f"Prune the ghost connections of {room}?",
            "Registrations whose connection the gateway no longer has are removed, and the "
            f"classroom hears that those members left. Live connections are kept. {known}",
            "Prune Ghosts",
            lambda: self.presenter.prune(room),
        )

    def prune_all(self) -> None:
        found: list[Ghost] = list(self.ghosts.rows)
        rooms = len({g.room for g in found})
        self.ask(
            "Prune ghosts",
            f"Prune the ghosts of {rooms} classroom{'s' if rooms != 1 else ''}?",
            f"{len(found)} ghost connection{'s' if len(found) != 1 else ''} were found. Each "
            "classroom is checked again as it is pruned, so only connections still gone are "
            "removed.",
            "Prune Ghosts",
            lambda: self.presenter.prune_found(found),
        )

    def ask(self, title: str, text: str, detail: str, confirm: str, go_ahead: Callable) -> None:
        """A question before a change; read-only mode refuses before anything is asked."""
        if not self.presenter.allowed(title.lower()):
            return
        self.confirmation = ask(self, title, text, detail, confirm, go_ahead, self._answered)

    def _answered(self) -> None:
        self.confirmation = None

    # What the presenter reports

    def show_status(self, status: ListStatus) -> None:
        if status.unavailable:
            self.status.set_full_text("")
            self.empty.setText(status.unavailable)
        elif status.error and not status.loaded:
            self.empty.setText(f"Could not read the classrooms: {status.error}")
        elif status.loading and not status.loaded:
            self.empty.setText(f"Reading the classrooms of {status.environment}…")
        elif not status.shown:
            self.empty.setText(
                "No classroom matches the filters."
                if status.loaded
                else f"No classroom is live on {status.environment} right now. Classrooms "
                "appear here as soon as a member connects."
            )
        has_rows = bool(status.shown) and not status.unavailable
        self.rooms_pages.setCurrentWidget(self.rooms_table if has_rows else self.empty)
        if status.error and status.loaded:
            self.banner.show_message("error", f"Could not refresh the classrooms: {status.error}")
        elif self.banner.kind == "error":
            self.banner.clear()
        if not status.unavailable:
            self.status.set_full_text(_status_line(status))
        enabled = not status.unavailable
        for widget in (self.refresh_button, self.check_all_button, self.user_search):
            widget.setEnabled(enabled)
        self.check_all_button.setEnabled(enabled and not self.presenter.checking_all)

    def _show_classrooms(self, rows) -> None:
        # Rows that go move Qt's current row to a neighbour: the selection follows the
        # presenter's classroom instead, so no action ever lands on a classroom nobody picked.
        self._syncing = True
        try:
            self.classrooms.show(rows)
            self._select_row(self.presenter.selected)
        finally:
            self._syncing = False

    def _room_picked(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and not self._syncing:
            self.presenter.select(self.classrooms.row(current.row()).room)

    def _selection(self, room: str | None) -> None:
        if room is None:
            self.room_title.setText("<b>No classroom selected</b>")
            self.members_note.setText("Select a classroom to see its members.")
        else:
            self.room_title.setText(f"<b>{html.escape(room)}</b>")
            self.members_note.setText("Reading its members…")
        self._syncing = True
        try:
            self._select_row(room)
        finally:
            self._syncing = False
        self.members.show([])
        self.members.mark()
        self._update_buttons()

    def _select_row(self, room: str | None) -> None:
        """Selects ``room``'s row, or none when it is not listed (it may have just emptied)."""
        table_selection = self.rooms_table.selectionModel()
        for n, row in enumerate(self.classrooms.rows):
            if row.room == room:
                index = self.classrooms.index(n, 0)
                if table_selection.currentIndex().row() != n or not table_selection.hasSelection():
                    table_selection.setCurrentIndex(
                        index,
                        QItemSelectionModel.SelectionFlag.ClearAndSelect
                        | QItemSelectionModel.SelectionFlag.Rows,
                    )
                    self.rooms_table.scrollTo(index)
                return
        table_selection.clear()

    def _members(self, room: str | None, members: list[Member]) -> None:
        if room != self.presenter.selected:
            return
        ghosts = self.presenter.ghosts
        chosen = self.selected_member()
        self.members.show(members)
        # The member picked stays picked; one that left leaves no neighbour picked instead.
        member_selection = self.members_table.selectionModel()
        kept = [
            n
            for n, m in enumerate(self.members.rows)
            if chosen and m.connection_id == chosen.connection_id
        ]
        if kept:
            member_selection.setCurrentIndex(
                self.members.index(kept[0], 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
        else:
            member_selection.clear()
        self.members.mark(
            ghosts=[g.connection_id for g in ghosts.ghosts] if ghosts else (),
            highlighted_user=self.presenter.user_filter,
        )
        if room is not None and members:
            teachers = sum(m.role == "teacher" for m in members)
            hidden = sum(m.hidden for m in members)
            students = sum(m.role == "student" for m in members)
            self.members_note.setText(
                f"{teachers} teacher{'s' if teachers != 1 else ''}, {students} "
                f"student{'s' if students != 1 else ''}, {hidden} hidden support. Right-click "
                "a row to copy an id."
            )
        elif room is not None and self.presenter.members_loaded:
            self.members_note.setText("No one is connected to this classroom now.")
        self._update_buttons()

    def _checked(self, result: CheckResult) -> None:
        if result.ghosts and result.pruned is None:  # the stuck-board case: worth a warning
            self.banner.show_message("warning", self.banner.label.text())
        self._members(self.presenter.selected, self.presenter.members)

    def _check_all_progress(self, checked: int, total: int, found: list[Ghost]) -> None:
        running = self.presenter.checking_all
        self.ghosts.show(found)
        if total:
            ghosts = len(found)
            state = "Checking" if running else "Checked"
            self.ghosts_note.setText(
                f"{state} {checked} of {total} classrooms: {ghosts} ghost "
                f"connection{'s' if ghosts != 1 else ''} found."
            )
        self.stop_check_button.setEnabled(running)
        self.check_all_button.setEnabled(not running and self.presenter.service is not None)
        self.prune_all_button.setEnabled(
            bool(found) and not running and not self.presenter.read_only
        )
        if running and checked == 0:
            self.tabs.setCurrentIndex(1)

    def _read_only(self, read_only: bool) -> None:
        tip = (
            "Read-only mode: unlock changes with Allow Changes in the toolbar" if read_only else ""
        )
        for button in (self.prune_button, self.disconnect_button, self.close_button):
            button.setToolTip(tip)
        self._update_buttons()
        self.prune_all_button.setEnabled(bool(self.ghosts.rows) and not read_only)

    def _update_buttons(self) -> None:
        p = self.presenter
        room = p.selected is not None and p.service is not None
        may_change = room and not p.read_only and not p.busy
        self.check_button.setEnabled(room and not p.busy)
        self.inspector_button.setEnabled(room)
        self.prune_button.setEnabled(may_change)
        self.close_button.setEnabled(may_change)
        self.disconnect_button.setEnabled(may_change and self.selected_member() is not None)

    # Visibility drives refreshing

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.presenter.set_active(True)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().hideEvent(event)
        self.presenter.set_active(False)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.PaletteChange:  # tones differ in the other theme
            for view in (self.rooms_table, self.members_table):
                view.viewport().update()
        super().changeEvent(event)


def _status_line(status: ListStatus) -> str:
    parts = [
        f"{status.total:,} classroom{'s' if status.total != 1 else ''}",
        f"{status.connections:,} connection{'s' if status.connections != 1 else ''}",
    ]
    if status.shown != status.loaded:
        parts.append(f"{status.shown:,} shown")
    if status.loading:
        parts.append(f"reading… {status.loaded:,} of {status.total:,}")
    if status.paused:
        parts.append("paused")
    if status.last_refresh is not None:
        parts.append(f"refreshed {status.last_refresh.strftime('%H:%M:%S')}")
    return " · ".join(parts)
