"""Environments are added, switched, edited, removed, and remembered by the next window."""

from __future__ import annotations

import hashlib
import json

import botocore.credentials
import botocore.tokens
import pytest
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox

from desktop.services.aws import AwsProfile
from desktop.services.environments import SANDBOX_NAME
from desktop.views.deploy import Stage
from desktop.views.environment_dialog import DEFAULT_CREDENTIALS
from tests.desktop.services.deploy_support import stack_name

PROFILES = [
    AwsProfile("default", "us-east-1", False),
    AwsProfile("school", "eu-central-1", True, "https://school.awsapps.com/start"),
]


def add_environment(
    qtbot,
    window,
    name: str,
    *,
    stack: str,
    endpoint: str = "",
    profile: str | None = None,
    region: str = "us-east-1",
) -> None:
    view = window.environments_view
    view.add()
    dialog = view.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.name.setText(name)
    if profile is not None:
        qtbot.waitUntil(lambda: dialog.profile.findData(profile) >= 0)
    dialog.profile.setCurrentIndex(max(dialog.profile.findData(profile), 0))
    dialog.region.setCurrentText(region)
    dialog.stack_name.setText(stack)
    dialog.endpoint_url.setText(endpoint)
    with qtbot.waitSignal(dialog.finished):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()


def names(window) -> list[str]:
    return [environment.name for environment in window.environments_view.model.environments()]


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.deploy_view.stage is Stage.IDLE, timeout=15_000)


def test_add_switch_remove_and_remember(
    qtbot, open_window, aws_environment, moto_endpoint, posted
) -> None:
    window = open_window()
    stack = stack_name()
    add_environment(qtbot, window, "Staging", stack=stack, endpoint=moto_endpoint)
    assert names(window) == [SANDBOX_NAME, "Staging"]
    # A new environment is selected at once: its page fetches the stack's state from AWS.
    assert window.session.environment.name == "Staging"
    assert window.environments_view.pages.currentWidget() is window.deploy_view
    wait_idle(qtbot, window)
    assert "Not deployed yet" in window.deploy_view.status_label.state
    assert window.environments_view.model.state("Staging") == "not deployed"
    qtbot.waitUntil(lambda: "Staging · not deployed" in window.environment_label.state)
    assert window.deploy_action.isEnabled()

    add_environment(qtbot, window, "Production", stack=stack_name(), endpoint=moto_endpoint)
    wait_idle(qtbot, window)
    window.environments_view.select("Staging")
    assert window.session.environment.name == "Staging"
    wait_idle(qtbot, window)

    # The next window lands on the last environment, with every environment still there.
    window.close()
    again = open_window()
    assert names(again) == [SANDBOX_NAME, "Staging", "Production"]
    assert again.session.environment.name == "Staging"
    assert again.environments_view.list.currentIndex().row() == 1
    wait_idle(qtbot, again)

    # Remove asks first; the sandbox cannot be removed.
    again.environments_view.remove()
    box = again.environments_view.confirmation
    assert "keeps running in AWS" in box.text()
    remove = next(b for b in box.buttons() if b.text() == "Remove")
    with qtbot.waitSignal(box.finished):
        remove.click()
    assert names(again) == [SANDBOX_NAME, "Production"]
    assert again.session.environment.name == SANDBOX_NAME
    assert not again.environments_view.remove_button.isEnabled()
    again.environments_view.remove()
    assert posted[-1].text == "The local sandbox is always available and cannot be removed."
    again.close()
    third = open_window()
    assert names(third) == [SANDBOX_NAME, "Production"]
    assert third.session.environment.name == SANDBOX_NAME


def test_dialog_lists_profiles_with_sso_marked_and_explains_mistakes(
    qtbot, open_window, aws_environment, moto_endpoint
) -> None:
    window = open_window(list_profiles=lambda: PROFILES)
    view = window.environments_view
    view.add()
    dialog = view.dialog
    qtbot.waitUntil(lambda: dialog.profile.count() == 3)
    items = [dialog.profile.itemText(i) for i in range(dialog.profile.count())]
    assert items == [DEFAULT_CREDENTIALS, "default", "school (SSO)"]
    dialog.name.setText("Broken")
    dialog.region.setCurrentText("Ireland")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert dialog.isVisible()
    assert "is not an AWS region" in dialog.error.label.text()
    dialog.region.setCurrentText("eu-west-1")
    dialog.profile.setCurrentIndex(dialog.profile.findData("school"))
    dialog.endpoint_url.setText(moto_endpoint)
    with qtbot.waitSignal(dialog.finished):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    environment = window.store.get("Broken")
    assert environment.profile == "school" and environment.region == "eu-west-1"
    wait_idle(qtbot, window)


def test_edit_changes_the_environment(qtbot, open_window, aws_environment, moto_endpoint) -> None:
    window = open_window()
    add_environment(qtbot, window, "Staging", stack=stack_name(), endpoint=moto_endpoint)
    wait_idle(qtbot, window)
    window.environments_view.edit()
    dialog = window.environments_view.dialog
    assert dialog.windowTitle() == "Edit AWS environment"
    assert dialog.name.text() == "Staging"
    dialog.name.setText("Staging EU")
    with qtbot.waitSignal(dialog.finished):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert names(window) == [SANDBOX_NAME, "Staging EU"]
    assert window.session.environment.name == "Staging EU"
    assert window.deploy_view.title.text() == "Staging EU"
    wait_idle(qtbot, window)


@pytest.fixture
def expired_sso(aws_environment, tmp_path, monkeypatch):
    """A profile whose SSO sign-in has expired."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / "aws-config").write_text(
        "[profile school]\nsso_start_url = https://school.awsapps.com/start\n"
        "sso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = Support\n"
        "region = eu-west-1\n"
    )
    cache = tmp_path / "sso-cache"
    cache.mkdir()
    monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(botocore.tokens.SSOTokenProvider, "_SSO_TOKEN_CACHE_DIR", str(cache))
    key = "https://school.awsapps.com/start"
    (cache / f"{hashlib.sha1(key.encode()).hexdigest()}.json").write_text(
        json.dumps(
            {
                "accessToken": "x",
                "region": "us-east-1",
                "expiresAt": "2020-01-01T00:00:00Z",
                "startUrl": key,
            }
        )
    )


def test_an_expired_sso_session_says_how_to_sign_in(
    qtbot, open_window, expired_sso, moto_endpoint, posted
) -> None:
    from desktop.services.aws import list_profiles

    window = open_window(list_profiles=list_profiles)
    add_environment(
        qtbot,
        window,
        "School",
        stack=stack_name(),
        endpoint=moto_endpoint,
        profile="school",
        region="eu-west-1",
    )
    wait_idle(qtbot, window)
    banner = window.deploy_view.banner
    assert banner.kind == "error", banner.label.text()
    assert banner.label.text() == (
        "Your AWS SSO session for profile school has expired. "
        "Run `aws sso login --profile school` and try again."
    )
    assert window.environments_view.model.state("School") == "sign-in needed"
    assert "School · sign-in needed" in window.environment_label.state
    qtbot.waitUntil(lambda: "aws sso login" in window.message_label.full_text())


def test_the_list_is_locked_while_a_deploy_waits_for_confirmation(qtbot, open_window):
    window = open_window()
    view = window.environments_view
    assert view.list.isEnabled()
    window.deploy_view.busy_changed.emit(True)
    assert not view.list.isEnabled() and not view.add_button.isEnabled()
    window.deploy_view.busy_changed.emit(False)
    assert view.list.isEnabled()


def test_remove_can_be_cancelled(qtbot, open_window, aws_environment, moto_endpoint) -> None:
    window = open_window()
    add_environment(qtbot, window, "Staging", stack=stack_name(), endpoint=moto_endpoint)
    wait_idle(qtbot, window)
    window.environments_view.remove()
    box = window.environments_view.confirmation
    with qtbot.waitSignal(box.finished):
        box.button(QMessageBox.StandardButton.Cancel).click()
    assert names(window) == [SANDBOX_NAME, "Staging"]
