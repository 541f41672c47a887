"""The dialog that adds or edits an AWS environment."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.services.environments import Environment, aws_environment
from desktop.services.errors import ConfigurationError
from desktop.views.widgets import Banner, note, plain_buttons

REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1",
    "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2",
    "me-south-1", "af-south-1",
)  # fmt: skip
DEFAULT_CREDENTIALS = "Default credentials (environment variables, instance role)"


class EnvironmentDialog(QDialog):
    """Name, AWS profile (SSO profiles marked), region, stack name and optional endpoint.

    ``save`` is called with the environment the user filled in; a ``ConfigurationError`` it
    raises is shown in the dialog, which stays open until the values are usable.
    """

    saved = Signal(object)  # Environment

    def __init__(
        self,
        save: Callable[[Environment], Environment],
        environment: Environment | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._save = save
        self._original = environment
        self.setWindowTitle("Edit AWS environment" if environment else "Add AWS environment")
        self.setMinimumWidth(520)

        self.name = QLineEdit(environment.name if environment else "")
        self.name.setPlaceholderText("e.g. Production, Staging")
        self.profile = QComboBox()
        self.profile.setEditable(False)
        self.profile.addItem(DEFAULT_CREDENTIALS, None)
        self._wanted_profile = environment.profile if environment else None
        self.region = QComboBox()
        self.region.setEditable(True)
        self.region.addItems(REGIONS)
        self.region.setCurrentText(environment.region if environment else "us-east-1")
        self.stack_name = QLineEdit(environment.stack_name if environment else "classroom")
        self.endpoint_url = QLineEdit((environment.endpoint_url or "") if environment else "")
        self.endpoint_url.setPlaceholderText("Empty for AWS itself; e.g. http://127.0.0.1:5000")
        self.error = Banner()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("&Name:", self.name)
        form.addRow("AWS &profile:", self.profile)
        form.addRow("&Region:", self.region)
        form.addRow("&Stack name:", self.stack_name)
        form.addRow("&Endpoint URL:", self.endpoint_url)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(
            note(
                "Credentials come from your AWS profiles or SSO sign-in; the console never "
                "stores them. Sign in with “aws sso login --profile NAME” for SSO profiles."
            )
        )
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        plain_buttons(self.buttons)
        self.set_profiles([])

    def set_profiles(self, profiles: Sequence) -> None:
        """Fill the profile list; each profile has ``name`` and ``sso`` (or is a name)."""
        current = self.profile.currentData() or self._wanted_profile
        self.profile.clear()
        self.profile.addItem(DEFAULT_CREDENTIALS, None)
        for profile in profiles:
            name = getattr(profile, "name", profile)
            sso = bool(getattr(profile, "sso", False))
            self.profile.addItem(f"{name} (SSO)" if sso else str(name), str(name))
        if not current and self._original is None and self.profile.findData("default") > 0:
            # An explicit profile: with none, a sandbox running in this process would lend
            # boto3 its stand-in keys through the environment.
            current = "default"
        if current and self.profile.findData(current) < 0:
            self.profile.addItem(f"{current} (not in your AWS config)", current)
        index = self.profile.findData(current) if current else 0
        self.profile.setCurrentIndex(max(index, 0))

    def environment(self) -> Environment:
        """The values as an environment; raises ``ConfigurationError`` naming what to fix."""
        return aws_environment(
            self.name.text(),
            profile=self.profile.currentData(),
            region=self.region.currentText(),
            stack_name=self.stack_name.text(),
            endpoint_url=self.endpoint_url.text(),
            last_deploy_time=self._original.last_deploy_time if self._original else None,
            parameters=self._original.parameters if self._original else (),
        )

    def accept(self) -> None:
        try:
            saved = self._save(self.environment())
        except ConfigurationError as error:
            self.error.show_message("error", str(error))
            return
        self.saved.emit(saved)
        super().accept()
