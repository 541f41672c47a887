"""The dialog that sets the template's parameters for one AWS environment's deploys."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.services.environments import Environment
from desktop.services.errors import ConfigurationError
from desktop.services.parameters import ParameterError, ParameterSpec, check
from desktop.views.widgets import Banner, note, plain_buttons


class ParametersDialog(QDialog):
    """One field per parameter; an empty field (or "Default") keeps the template's default, or
    the stack's current value on an update.

    ``save`` is called with the values set; a ``ConfigurationError`` (from the constraint
    check, or from ``save``) is shown in the dialog, which stays open until the values will do.
    """

    saved = Signal(object)  # Environment

    def __init__(
        self,
        specs: list[ParameterSpec],
        environment: Environment,
        save: Callable[[dict[str, str]], Environment],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._specs = specs
        self._save = save
        self.setWindowTitle(f"Template parameters: {environment.name}")
        self.setMinimumSize(640, 560)
        current = dict(environment.parameters)

        self.fields: dict[str, QComboBox | QLineEdit] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setVerticalSpacing(12)
        for spec in specs:
            field = self._field(spec, current.get(spec.name, ""))
            self.fields[spec.name] = field
            # The field with its description right under it, as one row.
            row = QWidget()
            column = QVBoxLayout(row)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            column.addWidget(field)
            if spec.description:
                explanation = note(spec.description)
                explanation.setWordWrap(True)
                column.addWidget(explanation)
            form.addRow(f"{spec.name}:", row)
        body = QWidget()
        body.setLayout(form)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(body)

        self.error = Banner()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            self.restore_defaults
        )

        layout = QVBoxLayout(self)
        layout.addWidget(
            note(
                f"What the next deploy of stack “{environment.stack_name}” uses. Leave a field "
                "empty for the template's default (on an update: the value the stack has now)."
            )
        )
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        plain_buttons(self.buttons)

    @staticmethod
    def _field(spec: ParameterSpec, value: str) -> QComboBox | QLineEdit:
        if spec.allowed_values:
            field = QComboBox()
            default = f"Default ({spec.default})" if spec.default is not None else "Not set"
            field.addItem(default, "")
            for allowed in spec.allowed_values:
                field.addItem(allowed, allowed)
            index = field.findData(value)
            if index < 0 and value:  # kept from before the template changed: shown, refused
                field.addItem(f"{value} (not allowed by the template)", value)
                index = field.count() - 1
            field.setCurrentIndex(max(index, 0))
            return field
        field = QLineEdit(value)
        if spec.default is not None:
            field.setPlaceholderText(
                f"Default: {spec.default}" if spec.default else "Default: empty"
            )
        else:
            field.setPlaceholderText("Needed for a new stack")
        if spec.secret:
            field.setEchoMode(QLineEdit.EchoMode.Password)
        return field

    def values(self) -> dict[str, str]:
        """What is set in each field ("" where the default is kept)."""
        return {
            name: field.currentData() if isinstance(field, QComboBox) else field.text()
            for name, field in self.fields.items()
        }

    def restore_defaults(self) -> None:
        for field in self.fields.values():
            if isinstance(field, QComboBox):
                field.setCurrentIndex(0)
            else:
                field.clear()
        self.error.hide()

    def accept(self) -> None:
        try:
            saved = self._save(check(self._specs, self.values()))
        except ParameterError as error:  # shown with the field it is about in view
            field = self.fields[error.name]
            self.scroll.ensureWidgetVisible(field)
            field.setFocus()
            self.error.show_message("error", str(error))
            return
        except ConfigurationError as error:
            self.error.show_message("error", str(error))
            return
        self.saved.emit(saved)
        super().accept()
