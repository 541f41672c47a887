"""The bar of sections at the window's side: icons and names, or icons alone when it is narrow.

Below ``COMPACT_BELOW`` pixels of window width the bar becomes a rail of icons, as VS Code's
activity bar and Qt Creator's mode bar are: the same rows in the same order, one click or
Ctrl+1 … Ctrl+4 away, each named by its tooltip. A narrower list with cut names would make the
names guesses ("Environm…"); a rail keeps the section's page the width it needs.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolTip,
    QWidget,
)

FULL_WIDTH = 210
COMPACT_WIDTH = 48
COMPACT_BELOW = 1000  # window width, in device-independent pixels
ROW_HEIGHT = 36
ICON_SIZE = 18


class _SectionDelegate(QStyledItemDelegate):
    """Rows with icon and name, or in the rail a centred icon whose name is its tooltip."""

    def __init__(self, bar: SectionBar) -> None:
        super().__init__(bar)
        self._bar = bar

    def paint(self, painter, option: QStyleOptionViewItem, index) -> None:
        if not self._bar.compact:
            super().paint(painter, option, index)
            return
        option = QStyleOptionViewItem(option)
        self.initStyleOption(option, index)
        icon = QIcon(option.icon)  # a copy: the option's own is cleared below
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        # The row's background (selection, hover) without its text or icon...
        option.text = ""
        option.icon = QIcon()
        option.features &= ~(
            QStyleOptionViewItem.ViewItemFeature.HasDisplay
            | QStyleOptionViewItem.ViewItemFeature.HasDecoration
        )
        style = option.widget.style() if option.widget else self._bar.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        # ...then the icon in its middle.
        if option.state & QStyle.StateFlag.State_Enabled:
            mode = QIcon.Mode.Selected if selected else QIcon.Mode.Normal
        else:
            mode = QIcon.Mode.Disabled
        rect = QStyle.alignedRect(
            option.direction, Qt.AlignmentFlag.AlignCenter, self._bar.iconSize(), option.rect
        )
        icon.paint(painter, rect, Qt.AlignmentFlag.AlignCenter, mode)

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:  # noqa: N802
        if self._bar.compact:
            return QSize(COMPACT_WIDTH - 2 * self._bar.spacing(), ROW_HEIGHT + 4)
        return QSize(FULL_WIDTH - 2 * self._bar.spacing() - 16, ROW_HEIGHT)

    def helpEvent(self, event, view, option, index) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ToolTip and not self._bar.compact:
            QToolTip.hideText()  # the name is on screen already
            return True
        return super().helpEvent(event, view, option, index)


class SectionBar(QListWidget):
    """The sections as rows; follows its window's width between the full and the compact form.

    Rows are ``QListWidgetItem`` with an icon, the section's title as text and (for the rail)
    a tooltip; the text stays in the model in both forms, for accessibility and tests.
    """

    def __init__(self, parent: QWidget | None = None, *, compact_below: int = COMPACT_BELOW):
        super().__init__(parent)
        self.compact_below = compact_below
        self._compact = False
        self._watched: QWidget | None = None
        self.setObjectName("sections")
        self.setFixedWidth(FULL_WIDTH)
        self.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.setSpacing(2)
        self.setFrameShape(QListWidget.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setUniformItemSizes(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setItemDelegate(_SectionDelegate(self))

    @property
    def compact(self) -> bool:
        return self._compact

    def set_compact(self, compact: bool) -> None:
        if compact == self._compact:
            return
        self._compact = compact
        self.setFixedWidth(COMPACT_WIDTH if compact else FULL_WIDTH)
        self.scheduleDelayedItemsLayout()  # the rows' size hints changed
        self.viewport().update()

    def fit(self, window_width: int) -> None:
        self.set_compact(window_width < self.compact_below)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        window = self.window()
        if window is not self._watched:
            if self._watched is not None:
                self._watched.removeEventFilter(self)
            window.installEventFilter(self)
            self._watched = window
        self.fit(window.width())
        super().showEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self._watched and event.type() == QEvent.Type.Resize:
            self.fit(event.size().width())
        return super().eventFilter(watched, event)
