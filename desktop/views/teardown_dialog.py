"""Tear-down confirmation: the user types the stack's name; only then can it go ahead."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.views.widgets import Banner, plain_buttons


class TeardownDialog(QDialog):
    """OK ("Tear down") is enabled only while the typed text is exactly the stack name."""

    def __init__(self, stack_name: str, environment_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.stack_name = stack_name
        self.setWindowTitle("Tear down stack")
        self.setMinimumWidth(480)
        warning = Banner()
        warning.close_button.hide()
        warning.show_message(
            "error",
            f"This deletes stack {stack_name} of “{environment_name}” and everything it owns: "
            "the WebSocket API, the Redis cluster and its classrooms, the functions, their logs "
            "and buckets. Connected classrooms are cut off. It cannot be undone.",
        )
        prompt = QLabel(f"Type <b>{stack_name}</b> to confirm:")
        self.name = QLineEdit()
        self.name.setPlaceholderText(stack_name)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.addButton(
            "Tear down", QDialogButtonBox.ButtonRole.DestructiveRole
        )
        self.ok_button.setEnabled(False)
        self.ok_button.clicked.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.name.textChanged.connect(self._typed)
        self.name.returnPressed.connect(self._return_pressed)

        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        layout.addWidget(warning)
        layout.addWidget(prompt)
        layout.addWidget(self.name)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        plain_buttons(self.buttons)

    def typed_name(self) -> str:
        return self.name.text()

    def _typed(self, text: str) -> None:
        self.ok_button.setEnabled(text == self.stack_name)

    def _return_pressed(self) -> None:
        if self.ok_button.isEnabled():
            self.accept()

    def accept(self) -> None:
        if self.name.text() != self.stack_name:
            return
        super().accept()
