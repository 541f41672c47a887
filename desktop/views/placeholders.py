"""Sections still to come; each says in a sentence what it will hold."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from desktop.models.session import Current
from desktop.views import icons
from desktop.views.widgets import heading, note

ICON_SIZE = 56
COLUMN_WIDTH = 560


class PlaceholderView(QWidget):
    """A section that is not built yet: its purpose, and where it will connect."""

    def __init__(self, title: str, purpose: str, icon: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self._icon_name = icon
        self.icon = QLabel()
        self.purpose = note(purpose)
        self.target = note()
        column = QWidget()
        column.setFixedWidth(COLUMN_WIDTH)
        inner = QVBoxLayout(column)
        inner.setSpacing(10)
        inner.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignHCenter)
        title_label = heading(title)
        title_label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        inner.addWidget(title_label)
        for label in (self.purpose, self.target):
            label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            inner.addWidget(label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(column)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(32, 28, 32, 28)
        layout.addStretch(2)
        layout.addLayout(row)
        layout.addStretch(3)
        self._paint_icon()

    def show_current(self, current: Current) -> None:
        where = current.websocket_url or "its WebSocket URL once it is running or deployed"
        self.target.setText(f"It will work on {current.environment.name}, at {where}.")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.PaletteChange:
            self._paint_icon()
        super().changeEvent(event)

    def _paint_icon(self) -> None:
        self.icon.setPixmap(
            icons.icon(self._icon_name, self, ICON_SIZE).pixmap(
                ICON_SIZE, ICON_SIZE, icons.QIcon.Mode.Disabled
            )
        )


SECTIONS = {
    "metrics": (
        "Metrics",
        "This section will graph connections, messages and fan-out latency of the current "
        "environment, from CloudWatch in AWS or from the sandbox's own counters.",
        "metrics",
    ),
}
