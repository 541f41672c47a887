"""A table model over a list of dataclass rows, the shape every console table shares.

Subclasses name their columns with an ``IntEnum`` and say how a row shows in each one;
replacing the rows is one reset, appending is one insert range, so views stay cheap however
fast rows arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from enum import IntEnum
from typing import Any, ClassVar, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QGuiApplication

Row = TypeVar("Row")
Index = QModelIndex | QPersistentModelIndex
# Past this many separate runs of removed rows, a merge is cheaper as a reset.
MAX_REMOVED_BLOCKS = 32
# The roles as plain numbers: a paint compares a few thousand of them.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)


def _blocks(numbers: list[int]) -> list[tuple[int, int]]:
    """Ascending numbers as runs of consecutive ones: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


class RowTableModel(QAbstractTableModel, Generic[Row]):
    """Rows are dataclasses; ``columns`` is the module-level column enum."""

    columns: ClassVar[type[IntEnum]]
    headers: ClassVar[dict[int, str]]
    numeric: ClassVar[frozenset[int]] = frozenset()  # columns aligned right

    def __init__(self, rows: Iterable[Row] = (), parent=None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = list(rows)

    # What subclasses say about a row; ``None`` means nothing to show.
    def display(self, row: Row, column: int) -> Any:
        raise NotImplementedError

    def foreground(self, row: Row, column: int) -> Any:
        return None

    def tooltip(self, row: Row, column: int) -> Any:
        return None

    @property
    def rows(self) -> Sequence[Row]:
        return tuple(self._rows)

    def row(self, index: int) -> Row:
        return self._rows[index]

    def set_rows(self, rows: Iterable[Row]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def append_rows(self, rows: Iterable[Row]) -> None:
        rows = list(rows)
        if not rows:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()

    def clear(self) -> None:
        self.set_rows([])

    def merge_rows(self, rows: Iterable[Row], key: Callable[[Row], Hashable]) -> None:
        """Show ``rows`` (in their order) in place of the current ones, row identity by ``key``.

        Rows that stay keep their selection and the view its scroll position: rows that went
        are removed and new ones inserted at the end, the order then changes as one layout
        change and the values as one ``dataChanged``. A change that scatters many removals
        (a new filter) is one reset instead. The same rows in the same order (a refresh), or
        those followed by new ones (a walk's next page), skip the bookkeeping: the values
        change, and the new rows are one insert at the end.
        """
        rows = list(rows)
        if not self._rows:
            self.set_rows(rows)
            return
        keys = [key(row) for row in rows]
        shown = [key(row) for row in self._rows]
        if keys[: len(shown)] == shown:
            self.append_rows(rows[len(shown) :])
            self._rows = rows
            self._values_changed()
            return
        wanted = dict(zip(keys, range(len(keys)), strict=True))
        gone = [n for n, name in enumerate(shown) if name not in wanted]
        blocks = _blocks(gone)
        if len(blocks) > MAX_REMOVED_BLOCKS:
            self.set_rows(rows)
            return
        for first, last in reversed(blocks):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first : last + 1]
            self.endRemoveRows()
        kept = {key(row) for row in self._rows}
        self.append_rows(row for row, name in zip(rows, keys, strict=True) if name not in kept)
        order = [wanted[key(row)] for row in self._rows]
        if order != sorted(order):
            self.layoutAboutToBeChanged.emit()
            moved = self.persistentIndexList()
            self.changePersistentIndexList(
                moved,
                [self.index(order[index.row()], index.column()) for index in moved],
            )
            self._rows = rows
            self.layoutChanged.emit()
        else:
            self._rows = rows
        self._values_changed()

    def _values_changed(self) -> None:
        if self._rows:
            last = self.index(len(self._rows) - 1, len(self.columns) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        return self.cell(self._rows[index.row()], index.column(), role)

    def cell(self, row: Row, column: int, role: int) -> Any:
        """What ``role`` of ``row``'s cell in ``column`` is; subclasses with roles of their own
        add them here (``data`` and ``multiData`` both ask this)."""
        if role == _DISPLAY:
            return self.display(row, column)
        if role == _FOREGROUND:
            return self.foreground(row, column)
        if role == _ALIGNMENT:
            return _RIGHT if column in self.numeric else None
        if role == _TOOLTIP:
            return self.tooltip(row, column)
        return None

    def multiData(self, index: Index, roleDataSpan) -> None:  # noqa: N802, N803 - Qt's names
        """Every role a view asks of a cell in one call into Python, not one call each: a
        paint asks seven roles of each cell it shows, and each call from Qt into Python waits
        for the GIL, behind whatever worker thread holds it. The row is found once."""
        count = roleDataSpan.size()
        number = index.row()
        if not index.isValid() or number >= len(self._rows):
            for n in range(count):
                roleDataSpan[n].clearData()
            return
        row, column, cell = self._rows[number], index.column(), self.cell
        for n in range(count):
            role_data = roleDataSpan[n]
            value = cell(row, column, role_data.role())
            if value is None:
                role_data.clearData()
            else:
                role_data.setData(value)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.headers.get(section) if 0 <= section < len(self.columns) else None
        return str(section + 1) if 0 <= section < len(self._rows) else None


_TONES = {
    # name: (on a light background, on a dark background)
    "good": ("#1a7f37", "#3fb950"),
    "bad": ("#cf222e", "#f85149"),
    "warn": ("#9a6700", "#d29922"),
    "muted": ("#57606a", "#8b949e"),
}


def tone(name: str) -> QColor:
    """A text colour for a state (``good``, ``bad``, ``warn``, ``muted``) readable in both themes."""
    dark = QGuiApplication.palette().window().color().lightness() < 128
    light_colour, dark_colour = _TONES[name]
    return QColor(dark_colour if dark else light_colour)


def status_tone(status: str | None) -> str | None:
    """The tone of a CloudFormation status: failures bad, rollbacks warn, completions good."""
    if not status:
        return None
    if "FAILED" in status:
        return "bad"
    if "ROLLBACK" in status:
        return "warn"
    if status.startswith("DELETE"):
        return "muted"
    if status.endswith("COMPLETE"):
        return "good"
    return None


def local_time(when: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """``when`` in the user's time zone (AWS gives UTC), or "" for no time."""
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone()
    return when.strftime(pattern)
