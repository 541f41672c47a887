"""Table models of the Classrooms section: classrooms, a classroom's members, ghosts, audit.

Each model sorts its own rows (``sort`` is what a view's header click calls) and keeps that
order when new rows arrive, so a refresh every few seconds never scrambles what a support person
is reading. Rows arrive as whole lists (``show``) and are merged by identity: the selection and
the scroll position survive a refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import IntEnum
from typing import Any, ClassVar, Generic, TypeVar

from PySide6.QtCore import Qt

from desktop.models.base import RowTableModel, tone
from desktop.services.classrooms import AuditEntry, Classroom, Ghost, Member

Row = TypeVar("Row")

COPY_ROLE = Qt.ItemDataRole.UserRole + 1  # the id Ctrl+C takes from a cell
COPY_CHOICES_ROLE = Qt.ItemDataRole.UserRole + 2  # [(what, value)] a row's menu offers to copy
USER_ROLE = Qt.ItemDataRole.UserRole + 3  # the user id of a row that has one


def clock_time(epoch_ms: int | None) -> str:
    """A time today as HH:MM:SS, another day with its date; "" for none."""
    if not epoch_ms:
        return ""
    when = datetime.fromtimestamp(epoch_ms / 1000)
    if when.date() == datetime.now().date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%Y-%m-%d %H:%M")


def full_time(epoch_ms: int | None) -> str:
    if not epoch_ms:
        return ""
    return datetime.fromtimestamp(epoch_ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def age(epoch_ms: int | None, now_ms: int) -> str:
    """How long ago, in the largest unit that fits: "4 s ago", "12 min ago", "3 h ago"."""
    if not epoch_ms:
        return "never"
    seconds = max(0, (now_ms - epoch_ms) // 1000)
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


class SortedRowModel(RowTableModel[Row], Generic[Row]):
    """Rows kept in the order of the column last sorted by; ``key`` names a row."""

    sort_keys: ClassVar[dict[int, Callable[[Any], Any]]]

    def __init__(self, parent=None) -> None:
        super().__init__((), parent)
        self.sort_column = 0
        self.sort_order = Qt.SortOrder.AscendingOrder
        self.now_ms = int(time.time() * 1000)

    def key(self, row: Row) -> Any:
        raise NotImplementedError

    def show(self, rows: Iterable[Row], now_ms: int | None = None) -> None:
        """Show ``rows`` in the current sort order."""
        self.now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.merge_rows(self._sorted(rows), self.key)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if column not in self.sort_keys:
            return
        self.sort_column, self.sort_order = column, order
        self.merge_rows(self._sorted(self._rows), self.key)

    def _sorted(self, rows: Iterable[Row]) -> list[Row]:
        by = self.sort_keys.get(self.sort_column) or next(iter(self.sort_keys.values()))
        descending = self.sort_order == Qt.SortOrder.DescendingOrder
        # Ties keep a stable order by identity, so equal rows never swap between refreshes.
        ordered = sorted(rows, key=self.key)
        return sorted(ordered, key=by, reverse=descending)

    def cell(self, row: Row, column: int, role: int) -> Any:
        if role == COPY_ROLE:
            return self.copy_value(row, column)
        if role == COPY_CHOICES_ROLE:
            return [(w, v) for w, v in self.copy_choices(row) if v]
        if role == USER_ROLE:
            return getattr(row, "user_id", None)
        return super().cell(row, column, role)

    def copy_value(self, row: Row, column: int) -> str | None:
        value = self.display(row, column)
        return None if value is None else str(value)

    def copy_choices(self, row: Row) -> list[tuple[str, str]]:
        return []


class ClassroomColumn(IntEnum):
    ROOM = 0
    TEACHERS = 1
    STUDENTS = 2
    SUPPORT = 3
    CONNECTED_SINCE = 4
    LAST_ACTIVITY = 5
    MESSAGES = 6
    LATEST_SEQ = 7


class ClassroomsModel(SortedRowModel[Classroom]):
    columns = ClassroomColumn
    headers = {
        ClassroomColumn.ROOM: "Classroom",
        ClassroomColumn.TEACHERS: "Teachers",
        ClassroomColumn.STUDENTS: "Students",
        ClassroomColumn.SUPPORT: "Support",
        ClassroomColumn.CONNECTED_SINCE: "Connected since",
        ClassroomColumn.LAST_ACTIVITY: "Last activity",
        ClassroomColumn.MESSAGES: "Msgs/min",
        ClassroomColumn.LATEST_SEQ: "Latest seq",
    }
    sort_keys = {
        ClassroomColumn.ROOM: lambda c: c.room,
        ClassroomColumn.TEACHERS: lambda c: c.teachers,
        ClassroomColumn.STUDENTS: lambda c: c.students,
        ClassroomColumn.SUPPORT: lambda c: c.hidden,
        ClassroomColumn.CONNECTED_SINCE: lambda c: c.connected_since,
        ClassroomColumn.LAST_ACTIVITY: lambda c: c.last_activity,
        ClassroomColumn.MESSAGES: lambda c: c.messages_last_minute,
        ClassroomColumn.LATEST_SEQ: lambda c: c.latest_seq,
    }
    numeric = frozenset(
        {
            ClassroomColumn.TEACHERS,
            ClassroomColumn.STUDENTS,
            ClassroomColumn.SUPPORT,
            ClassroomColumn.MESSAGES,
            ClassroomColumn.LATEST_SEQ,
        }
    )

    def key(self, row: Classroom) -> str:
        return row.room

    def display(self, row: Classroom, column: int) -> Any:
        if column == ClassroomColumn.ROOM:
            return row.room
        if column == ClassroomColumn.TEACHERS:
            return row.teachers
        if column == ClassroomColumn.STUDENTS:
            return row.students
        if column == ClassroomColumn.SUPPORT:
            return row.hidden
        if column == ClassroomColumn.CONNECTED_SINCE:
            return clock_time(row.connected_since)
        if column == ClassroomColumn.LAST_ACTIVITY:
            return age(row.last_activity, self.now_ms)
        if column == ClassroomColumn.MESSAGES:
            return row.messages_last_minute
        if column == ClassroomColumn.LATEST_SEQ:
            return str(row.latest_seq) if row.latest_seq else ""
        return None

    def foreground(self, row: Classroom, column: int) -> Any:
        if column == ClassroomColumn.TEACHERS and row.teachers == 0:
            return tone("warn")  # a class with no teacher is worth a look
        if column == ClassroomColumn.LAST_ACTIVITY and not row.last_activity:
            return tone("muted")
        return None

    def tooltip(self, row: Classroom, column: int) -> Any:
        if column == ClassroomColumn.TEACHERS and row.teachers == 0:
            return "No teacher is connected to this classroom."
        if column == ClassroomColumn.SUPPORT:
            return "Hidden support members (the classroom does not see them)."
        if column == ClassroomColumn.CONNECTED_SINCE:
            return f"The oldest connection came at {full_time(row.connected_since)}."
        if column == ClassroomColumn.LAST_ACTIVITY:
            if not row.last_activity:
                return "Nothing has happened in this classroom yet."
            return f"The last join or message was at {full_time(row.last_activity)}."
        if column == ClassroomColumn.MESSAGES:
            return "Messages stored in the last minute (estimated from per-minute counts)."
        if column == ClassroomColumn.LATEST_SEQ:
            if not row.latest_seq:
                return "No message has been stored in this classroom."
            return "The seq of the latest message: what a member's sync catches up to."
        return None

    def copy_value(self, row: Classroom, column: int) -> str | None:
        return row.room

    def copy_choices(self, row: Classroom) -> list[tuple[str, str]]:
        return [("classroom id", row.room)]


class MemberColumn(IntEnum):
    USER = 0
    NAME = 1
    ROLE = 2
    CONNECTION = 3
    CONNECTED_SINCE = 4
    LAST_SEEN = 5
    SOURCE_IP = 6
    USER_AGENT = 7


class MembersModel(SortedRowModel[Member]):
    """A classroom's connections; hidden support members and ghosts are marked."""

    columns = MemberColumn
    headers = {
        MemberColumn.USER: "User id",
        MemberColumn.NAME: "Name",
        MemberColumn.ROLE: "Role",
        MemberColumn.CONNECTION: "Connection id",
        MemberColumn.CONNECTED_SINCE: "Connected since",
        MemberColumn.LAST_SEEN: "Last seen",
        MemberColumn.SOURCE_IP: "Source IP",
        MemberColumn.USER_AGENT: "User agent",
    }
    sort_keys = {
        MemberColumn.USER: lambda m: m.user_id,
        MemberColumn.NAME: lambda m: m.name,
        MemberColumn.ROLE: lambda m: (m.hidden, m.role),
        MemberColumn.CONNECTION: lambda m: m.connection_id,
        MemberColumn.CONNECTED_SINCE: lambda m: m.connected_at,
        MemberColumn.LAST_SEEN: lambda m: m.last_seen or 0,
        MemberColumn.SOURCE_IP: lambda m: m.source_ip,
        MemberColumn.USER_AGENT: lambda m: m.user_agent,
    }

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.ghosts: frozenset[str] = frozenset()
        self.highlighted_user: str | None = None

    def key(self, row: Member) -> str:
        return row.connection_id

    def mark(self, ghosts: Iterable[str] = (), highlighted_user: str | None = None) -> None:
        """Marks ghost connections and the user a search found, in one ``dataChanged``."""
        self.ghosts = frozenset(ghosts)
        self.highlighted_user = highlighted_user
        if self._rows:
            last = self.index(len(self._rows) - 1, len(self.columns) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def display(self, row: Member, column: int) -> Any:
        if column == MemberColumn.USER:
            return row.user_id
        if column == MemberColumn.NAME:
            return row.name
        if column == MemberColumn.ROLE:
            role = f"{row.role} (hidden)" if row.hidden else row.role
            return f"{role} · ghost" if row.connection_id in self.ghosts else role
        if column == MemberColumn.CONNECTION:
            return row.connection_id
        if column == MemberColumn.CONNECTED_SINCE:
            return clock_time(row.connected_at)
        if column == MemberColumn.LAST_SEEN:
            return age(row.last_seen, self.now_ms) if row.last_seen is not None else ""
        if column == MemberColumn.SOURCE_IP:
            return row.source_ip
        if column == MemberColumn.USER_AGENT:
            return row.user_agent
        return None

    def foreground(self, row: Member, column: int) -> Any:
        if row.connection_id in self.ghosts:
            return tone("bad")
        if row.hidden:
            return tone("muted")
        if self.highlighted_user is not None and row.user_id == self.highlighted_user:
            return tone("good")
        return None

    def tooltip(self, row: Member, column: int) -> Any:
        if row.connection_id in self.ghosts:
            return (
                "A ghost: registered in this classroom, but the gateway no longer has this "
                "connection. Prune ghosts removes it."
            )
        if row.hidden:
            return "A hidden support member: the classroom does not see it."
        if column == MemberColumn.CONNECTED_SINCE:
            return full_time(row.connected_at)
        if column == MemberColumn.LAST_SEEN and row.last_seen is not None:
            return f"Its last frame reached the backend at {full_time(row.last_seen)}."
        if column == MemberColumn.USER_AGENT:
            return row.user_agent or None
        return None

    def copy_value(self, row: Member, column: int) -> str | None:
        if column == MemberColumn.USER:
            return row.user_id
        if column in (MemberColumn.NAME, MemberColumn.SOURCE_IP, MemberColumn.USER_AGENT):
            return str(self.display(row, column))
        return row.connection_id

    def copy_choices(self, row: Member) -> list[tuple[str, str]]:
        return [
            ("user id", row.user_id),
            ("connection id", row.connection_id),
            ("source IP", row.source_ip),
            ("user agent", row.user_agent),
        ]


class GhostColumn(IntEnum):
    ROOM = 0
    USER = 1
    ROLE = 2
    CONNECTION = 3
    CONNECTED_SINCE = 4


class GhostsModel(SortedRowModel[Ghost]):
    """Ghosts found by a check of every classroom."""

    columns = GhostColumn
    headers = {
        GhostColumn.ROOM: "Classroom",
        GhostColumn.USER: "User id",
        GhostColumn.ROLE: "Role",
        GhostColumn.CONNECTION: "Connection id",
        GhostColumn.CONNECTED_SINCE: "Connected since",
    }
    sort_keys = {
        GhostColumn.ROOM: lambda g: g.room,
        GhostColumn.USER: lambda g: g.user_id,
        GhostColumn.ROLE: lambda g: g.role,
        GhostColumn.CONNECTION: lambda g: g.connection_id,
        GhostColumn.CONNECTED_SINCE: lambda g: g.connected_at,
    }

    def key(self, row: Ghost) -> tuple[str, str]:
        return (row.room, row.connection_id)

    def display(self, row: Ghost, column: int) -> Any:
        if column == GhostColumn.ROOM:
            return row.room
        if column == GhostColumn.USER:
            return row.user_id
        if column == GhostColumn.ROLE:
            return row.role
        if column == GhostColumn.CONNECTION:
            return row.connection_id
        if column == GhostColumn.CONNECTED_SINCE:
            return clock_time(row.connected_at)
        return None

    def copy_value(self, row: Ghost, column: int) -> str | None:
        if column == GhostColumn.ROOM:
            return row.room
        if column == GhostColumn.USER:
            return row.user_id
        return row.connection_id

    def copy_choices(self, row: Ghost) -> list[tuple[str, str]]:
        return [
            ("classroom id", row.room),
            ("user id", row.user_id),
            ("connection id", row.connection_id),
        ]


class AuditColumn(IntEnum):
    WHEN = 0
    STAFF = 1
    ACTION = 2
    ROOM = 3
    TARGET = 4
    OUTCOME = 5


ACTION_NAMES = {
    "disconnect": "Disconnect",
    "close_room": "Close classroom",
    "prune": "Prune ghosts",
    "inject": "Send message",
}


class AuditModel(SortedRowModel[AuditEntry]):
    """The newest support actions first."""

    columns = AuditColumn
    headers = {
        AuditColumn.WHEN: "When",
        AuditColumn.STAFF: "Staff",
        AuditColumn.ACTION: "Action",
        AuditColumn.ROOM: "Classroom",
        AuditColumn.TARGET: "Connection",
        AuditColumn.OUTCOME: "Outcome",
    }
    sort_keys = {
        AuditColumn.WHEN: lambda e: (e.when, e.audit_id),
        AuditColumn.STAFF: lambda e: e.staff,
        AuditColumn.ACTION: lambda e: e.action,
        AuditColumn.ROOM: lambda e: e.room,
        AuditColumn.TARGET: lambda e: e.target,
        AuditColumn.OUTCOME: lambda e: e.outcome,
    }

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.sort_order = Qt.SortOrder.DescendingOrder

    def key(self, row: AuditEntry) -> str:
        return row.audit_id

    def display(self, row: AuditEntry, column: int) -> Any:
        if column == AuditColumn.WHEN:
            return clock_time(row.when)
        if column == AuditColumn.STAFF:
            return row.staff
        if column == AuditColumn.ACTION:
            return ACTION_NAMES.get(row.action, row.action)
        if column == AuditColumn.ROOM:
            return row.room
        if column == AuditColumn.TARGET:
            return row.target
        if column == AuditColumn.OUTCOME:
            return row.outcome
        return None

    def copy_choices(self, row: AuditEntry) -> list[tuple[str, str]]:
        return [
            ("staff identity", row.staff),
            ("classroom id", row.room),
            ("connection id", row.target),
        ]

    def tooltip(self, row: AuditEntry, column: int) -> Any:
        if column == AuditColumn.WHEN:
            return full_time(row.when)
        if column == AuditColumn.STAFF:
            return row.staff
        return None
