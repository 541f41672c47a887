"""Small widgets the views share: headings, a banner, a copyable field, a state dot."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from desktop.models.base import tone

BANNER_STYLES = {
    # kind: (tone of the border and text, background alpha)
    "error": "bad",
    "warning": "warn",
    "success": "good",
    "info": "muted",
}


def heading(text: str, *, size: float = 1.45) -> QLabel:
    label = QLabel(text)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * size)
    font.setBold(True)
    label.setFont(font)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def note(text: str = "") -> QLabel:
    """A secondary line of text that wraps."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class Banner(QFrame):
    """A visible line of text above a view's content: an error, a warning, a success."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self._kind = "info"
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 6, 8)
        layout.addWidget(self.label)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def text(self) -> str:
        return self.label.text() if self.isVisibleTo(self.parentWidget()) else ""

    def show_message(self, kind: str, text: str) -> None:
        self._kind = kind
        self.label.setText(text)
        self._restyle()
        self.show()

    def clear(self) -> None:
        self.label.clear()
        self.hide()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() == event.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)

    def _restyle(self) -> None:
        colour = tone(BANNER_STYLES.get(self._kind, "muted"))
        border = colour.name()
        sheet = (
            "QFrame#banner {"
            f" border: 1px solid {border}; border-left: 4px solid {border};"
            f" border-radius: 4px; background: rgba({colour.red()}, {colour.green()},"
            f" {colour.blue()}, 28); }}"
        )
        if sheet != self.styleSheet():  # a new style sheet is itself a palette change
            self.setStyleSheet(sheet)


class CopyField(QWidget):
    """A read-only value with a Copy button, for URLs and outputs."""

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setReadOnly(True)
        self.edit.setPlaceholderText(placeholder)
        self.edit.setFrame(False)
        self.button = copy_button(self.edit.text)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)
        self.set_text("")

    def set_text(self, text: str | None) -> None:
        self.edit.setText(text or "")
        self.edit.setCursorPosition(0)
        self.edit.setToolTip(text or "")
        self.button.setEnabled(bool(text))

    def text(self) -> str:
        return self.edit.text()


def copy_button(value, parent: QWidget | None = None) -> QToolButton:
    """A "Copy" button putting ``value()`` on the clipboard and saying so for a moment."""
    button = QToolButton(parent)
    button.setText("Copy")
    button.setToolTip("Copy to the clipboard")

    def copy() -> None:
        QGuiApplication.clipboard().setText(value())
        button.setText("Copied")
        QTimer.singleShot(1500, button, lambda: button.setText("Copy"))

    button.clicked.connect(copy)
    return button


class StateDot(QLabel):
    """A coloured ● followed by a short state, e.g. "● running"; ``state`` is the plain text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.state = ""

    def set_state(self, text: str, health: str | None) -> None:
        self.state = text
        colour = tone(health).name() if health else None
        dot = f'<span style="color:{colour}">●</span>' if colour else "○"
        self.setText(f"{dot}&nbsp;{html.escape(text)}")
        self.setToolTip(text)


class ElidedLabel(QLabel):
    """One line that ends in "…" when it does not fit; the whole text is its tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(
            self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, self.width())
        )


def plain_buttons(box: QDialogButtonBox) -> None:
    """Dialog buttons without icons, as on Windows and macOS (Fusion adds them elsewhere)."""
    for button in box.buttons():
        button.setIcon(QIcon())
