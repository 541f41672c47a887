"""Small widgets the views share: headings, a banner, a copyable field, a state dot, a page
that scrolls when the window is short."""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QFont, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QStyleOptionFrame,
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


class ElidedLineEdit(QLineEdit):
    """A read-only line whose text is elided in the middle ("ws://127.0…8765/local") when it
    does not fit; with the focus it holds the whole text, to select and copy. The whole text
    is also its tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setReadOnly(True)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._show()

    def full_text(self) -> str:
        return self._full

    def focusInEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._show(focused=True)  # before Qt selects the text on a Tab
        super().focusInEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().focusOutEvent(event)
        if event.reason() != Qt.FocusReason.PopupFocusReason:  # the context menu's Copy
            self._show()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._show()

    def _show(self, *, focused: bool | None = None) -> None:
        focused = self.hasFocus() if focused is None else focused
        text = self._full if focused else self._elided()
        if text != self.text():
            self.setText(text)
            self.setCursorPosition(0)

    def _elided(self) -> str:
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        contents = self.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, self)
        margins = self.textMargins()
        # QLineEdit keeps 2 pixels of its own on each side of the text.
        width = contents.width() - margins.left() - margins.right() - 4
        return self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, width)


class CopyField(QWidget):
    """A read-only value with a Copy button, for URLs and outputs; elided when it is long."""

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = ElidedLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setFrame(False)
        self.button = copy_button(self.edit.full_text)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)
        self.set_text("")

    def set_text(self, text: str | None) -> None:
        self.edit.set_full_text(text or "")
        self.button.setEnabled(bool(text))

    def text(self) -> str:
        return self.edit.full_text()


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
    """A coloured ● followed by a short state, e.g. "● running"; ``state`` is the plain text.

    A state longer than ``MAX_CHARS`` characters, or than the room it gets, ends in "…" (the
    whole state is the tooltip), so a long one, such as an AWS environment's WebSocket URL in
    the status bar, never sets the window's width.
    """

    MAX_CHARS = 64
    MIN_CHARS = 16

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.state = ""
        self._dot = "○"

    def set_state(self, text: str, health: str | None) -> None:
        self.state = text
        colour = tone(health).name() if health else None
        self._dot = f'<span style="color:{colour}">●</span>' if colour else "○"
        self.setToolTip(text)
        self._show()
        self.updateGeometry()

    def _full_width(self) -> int:
        margins = self.contentsMargins()
        return (
            self.fontMetrics().horizontalAdvance(f"● {self.state}")
            + margins.left()
            + margins.right()
            + 2 * self.margin()
            + 6  # rounding slack, so the whole state fits its own hint
        )

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        cap = self.fontMetrics().averageCharWidth() * self.MAX_CHARS
        return QSize(min(self._full_width(), cap), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        least = self.fontMetrics().averageCharWidth() * self.MIN_CHARS
        return QSize(min(self._full_width(), least), super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._show()

    def _show(self) -> None:
        metrics = self.fontMetrics()
        room = self.contentsRect().width() - 2 * self.margin() - metrics.horizontalAdvance("● ") - 2
        shown = metrics.elidedText(self.state, Qt.TextElideMode.ElideRight, max(room, 0))
        text = f"{self._dot}&nbsp;{html.escape(shown)}"
        if text != self.text():
            self.setText(text)


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


class _PageContent(QWidget):
    """A page's content, whose height for a width is the least it can take: wrapped text
    whole, tables at their fewest rows. The scroll area around it scrolls only below that."""

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt's name
        layout = self.layout()
        if layout is None:
            return super().heightForWidth(width)
        return layout.totalMinimumHeightForWidth(width)


class ScrollPage(QScrollArea):
    """A page that scrolls up and down when the window is shorter than it, never sideways.

    Lay the page out on ``content``. Its minimum width is the content's, so the layout around
    it keeps every label and button whole; its minimum height is small. While the window is
    tall enough the content fills it and its tables share the height as they would without a
    scroll area; only when even their fewest rows and the wrapped text do not fit does the
    page scroll.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.content = _PageContent()
        self.setWidget(self.content)
        self.content.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if watched is self.content and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the content's minimum width is this page's
        return super().eventFilter(watched, event)

    def _width(self, content: QSize) -> int:
        return content.width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        layout = self.content.layout()
        if not self.content.isVisible() and layout is not None:
            # A page not on screen (another page of a stack) re-measures only once shown: a
            # button hidden meanwhile would still count towards the width it asks for.
            layout.activate()
        content = self.content.minimumSizeHint()
        return QSize(self._width(content), min(content.height(), 120))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        content = self.content.sizeHint()
        return QSize(self._width(content), content.height() + 2 * self.frameWidth())


def plain_buttons(box: QDialogButtonBox) -> None:
    """Dialog buttons without icons, as on Windows and macOS (Fusion adds them elsewhere)."""
    for button in box.buttons():
        button.setIcon(QIcon())


def ask(
    parent: QWidget,
    title: str,
    text: str,
    detail: str | None,
    confirm: str,
    go_ahead: Callable[[], None],
    closed: Callable[[], None],
    *,
    icon: QMessageBox.Icon = QMessageBox.Icon.Warning,
) -> QMessageBox:
    """A question before a change, without blocking: Cancel is the default (Enter or Esc keeps
    things as they are); ``go_ahead()`` runs only if ``confirm`` is clicked, ``closed()`` once
    it is answered either way. With a ``detail``, the question is bold above it in one label
    (QMessageBox wraps an informative text to the width of a short question, three words a
    line)."""
    if detail is None:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Cancel, parent)
    else:
        box = QMessageBox(
            icon,
            title,
            f"<p><b>{html.escape(text)}</b></p><p>{html.escape(detail)}</p>",
            QMessageBox.StandardButton.Cancel,
            parent,
        )
        box.setTextFormat(Qt.TextFormat.RichText)
    button = box.addButton(confirm, QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)

    def answered() -> None:
        if box.clickedButton() is button:
            go_ahead()
        closed()
        box.deleteLater()

    box.finished.connect(answered)
    box.open()
    return box
