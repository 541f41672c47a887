"""The deploy view against moto's server: change set, confirm, progress, outputs, failures.

moto runs in this process (``moto_endpoint``); ``moto_cloudformation.install`` makes its
CloudFormation work in the background with one event per resource, as AWS does.
"""

from __future__ import annotations

import gc
import time
import uuid

import boto3
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from desktop.models.change_set import ChangeColumn
from desktop.models.outputs import OutputColumn
from desktop.services.deploy import DOES_NOT_EXIST, StackEvent
from desktop.views.deploy import Stage
from tests.desktop.services.deploy_support import TEMPLATES

DEPLOY_TIMEOUT = 90_000
TEMPLATE_RESOURCES = 6  # tests/desktop/services/templates/stack.yaml


class StallMeter:
    """Ticks every 10 ms on the GUI thread and keeps the longest gap between two ticks.

    The test process holds moto's whole in-memory AWS and every earlier test's objects; a full
    garbage collection scanning them pauses all threads for up to a second, whichever thread
    triggers it. ``start`` freezes what exists (as ``desktop.app`` freezes its start-up heap),
    so what is measured is the console's own work, not the test harness's heap.
    """

    def __init__(self, parent) -> None:
        self.timer = QTimer(parent)  # owned by Qt, so deleted on the GUI thread
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = time.monotonic()
        self.longest = 0.0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        self.last = time.monotonic()
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        gc.unfreeze()
        return self.longest

    def _tick(self) -> None:
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now


def open_on(open_window, qtbot, engine_factory, **options):
    window = open_window(engine_factory=engine_factory, **options)
    view = window.deploy_view
    assert window.session.environment.name == "Staging"
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)
    return window, view


def plan(qtbot, view) -> None:
    view.deploy_button.click()
    assert view.stage is Stage.PLANNING
    qtbot.waitUntil(lambda: view.stage is not Stage.PLANNING, timeout=DEPLOY_TIMEOUT)


def deploy(qtbot, view) -> None:
    plan(qtbot, view)
    assert view.stage is Stage.CONFIRMING, view.banner.label.text()
    view.confirm_button.click()
    assert view.stage is Stage.DEPLOYING
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)


def test_a_full_deploy_shows_changes_progress_and_outputs(
    qtbot, open_window, engine_factory, staging, posted
) -> None:
    window, view = open_on(open_window, qtbot, engine_factory)
    assert "Not deployed yet" in view.status_label.state
    assert not view.teardown_button.isEnabled()
    meter = StallMeter(window)
    meter.start()

    plan(qtbot, view)
    assert view.stage is Stage.CONFIRMING
    assert view.change_set_group.isVisible() and not view.progress_group.isVisible()
    model = view.change_set_model
    assert model.rowCount() == TEMPLATE_RESOURCES
    assert {model.data(model.index(r, ChangeColumn.ACTION)) for r in range(6)} == {"Add"}
    resources = {model.data(model.index(r, ChangeColumn.RESOURCE)) for r in range(6)}
    assert {"Uploads", "Inbox", "Function"} <= resources
    assert view.confirm_button.text() == f"Deploy {TEMPLATE_RESOURCES} changes"
    assert view.decline_button.text() == "Cancel"
    assert window.environments_view.list.isEnabled() is False  # locked until it is done

    seen_cancellable: list[bool] = []
    view.cancellable_changed.connect(seen_cancellable.append)
    with qtbot.waitSignal(view.deployed, timeout=DEPLOY_TIMEOUT) as deployed:
        view.confirm_button.click()
        assert view.progress_group.isVisible() and not view.change_set_group.isVisible()
        assert not view.cancel_button.isEnabled()  # a creation cannot be cancelled
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)
    longest = meter.stop()

    assert deployed.args[0] == "Staging"
    assert view.banner.kind == "success"
    assert view.banner.label.text() == f"Deployed: stack {staging.stack_name} is CREATE_COMPLETE."
    assert view.progress.value() == view.progress.maximum() == TEMPLATE_RESOURCES + 1
    assert (
        view.progress.format() == f"{TEMPLATE_RESOURCES + 1} of {TEMPLATE_RESOURCES + 1} resources"
    )
    events = view.events_model.rows
    assert all(isinstance(event, StackEvent) for event in events)
    assert events[-1].logical_id == staging.stack_name
    assert events[-1].status == "CREATE_COMPLETE"
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)  # newest last
    assert {"Function", "Uploads"} <= {e.logical_id for e in events}
    assert seen_cancellable == []
    assert "CREATE_COMPLETE" in view.status_label.state

    outputs = {row.name: row.value for row in view.outputs_model.rows}
    assert set(outputs) == {"UploadsBucket", "InboxUrl", "FunctionName", "Greeting"}
    assert view.outputs_table.isVisible()
    assert len(view.outputs_table.copy_buttons) == 4
    row = [row.name for row in view.outputs_model.rows].index("Greeting")
    button = view.outputs_table.indexWidget(view.outputs_model.index(row, OutputColumn.COPY))
    button.click()
    assert QGuiApplication.clipboard().text() == "hello"

    # The environment remembers its deploy, and the list and status bar show its state.
    assert window.store.get("Staging").last_deploy_time is not None
    assert "from this console" not in view.last_deploy_label.text()
    assert window.environments_view.model.state("Staging") == "CREATE_COMPLETE"
    assert "Staging · CREATE_COMPLETE" in window.environment_label.state
    assert window.environments_view.list.isEnabled()
    assert window.environments_view.list.currentIndex().row() == 1

    assert longest < 0.25, f"the GUI thread stalled for {longest * 1000:.0f} ms"


def test_an_unchanged_stack_says_it_is_up_to_date_and_updates_can_be_cancelled(
    qtbot, open_window, engine_factory, staging
) -> None:
    parameters = {"Greeting": "hello"}
    window, view = open_on(
        open_window, qtbot, engine_factory, deploy_parameters=lambda _env: dict(parameters)
    )
    deploy(qtbot, view)
    assert view.banner.kind == "success"

    plan(qtbot, view)
    assert view.stage is Stage.IDLE
    assert view.banner.label.text() == "No changes: the stack is up to date."
    assert not view.change_set_group.isVisible()

    # An update can be cancelled while CloudFormation runs it (moto cannot cancel, so the
    # engine's cancel is recorded here rather than sent).
    cancelled: list[str] = []
    for engine in view._engines.values():
        engine.cancel = lambda: cancelled.append("cancel") or "Cancelling the update."
    parameters["Greeting"] = "bonjour"
    plan(qtbot, view)
    assert view.stage is Stage.CONFIRMING
    model = view.change_set_model
    count = model.rowCount()
    assert view.confirm_button.text() == f"Deploy {count} change{'s' if count > 1 else ''}"
    changed = {
        model.data(model.index(r, ChangeColumn.RESOURCE)): model.data(
            model.index(r, ChangeColumn.ACTION)
        )
        for r in range(count)
    }
    assert set(changed.values()) == {"Modify"}  # moto names the changed resources loosely

    def click_cancel(cancellable: bool) -> None:
        if cancellable:
            assert view.cancel_button.isEnabled()
            view.cancel_button.click()

    view.cancellable_changed.connect(click_cancel)
    view.confirm_button.click()
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)
    qtbot.waitUntil(lambda: cancelled == ["cancel"])
    assert not view.cancel_button.isEnabled()
    outputs = {row.name: row.value for row in view.outputs_model.rows}
    assert outputs["Greeting"] == "bonjour"


def test_a_declined_change_set_changes_nothing(qtbot, open_window, engine_factory, staging) -> None:
    window, view = open_on(open_window, qtbot, engine_factory)
    plan(qtbot, view)
    assert view.stage is Stage.CONFIRMING
    view.decline_button.click()
    assert view.stage is Stage.IDLE
    assert view.banner.label.text() == "Deploy cancelled; nothing was changed."
    assert not view.change_set_group.isVisible()
    # The change set, and the empty stack it made, are deleted; then the view looks again.
    cloudformation = boto3.client(
        "cloudformation", endpoint_url=staging.endpoint_url, region_name="us-east-1"
    )

    def stack_gone() -> bool:
        stacks = cloudformation.list_stacks()["StackSummaries"]
        return all(
            s["StackStatus"] == "DELETE_COMPLETE"
            for s in stacks
            if s["StackName"] == staging.stack_name
        )

    qtbot.waitUntil(stack_gone, timeout=DEPLOY_TIMEOUT)
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)
    view.refresh()
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)
    assert "Not deployed yet" in view.status_label.state


def test_a_failing_deploy_shows_its_reason(
    qtbot, open_window, engine_factory, staging, posted
) -> None:
    taken = f"taken-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=staging.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket=taken
    )
    engine_factory.template["path"] = TEMPLATES / "failing.yaml"
    window, view = open_on(
        open_window,
        qtbot,
        engine_factory,
        deploy_parameters=lambda _env: {"TakenBucketName": taken},
    )
    deploy(qtbot, view)
    assert view.banner.kind == "error"
    text = view.banner.label.text()
    assert text.startswith("The deploy failed. Resource Uploads (AWS::S3::Bucket) failed:")
    assert text.endswith("The stack rolled back (ROLLBACK_COMPLETE).")
    assert "Traceback" not in text
    assert view.banner.isVisible()
    assert "ROLLBACK_COMPLETE" in view.status_label.state
    statuses = [(e.logical_id, e.status) for e in view.events_model.rows]
    assert ("Uploads", "CREATE_FAILED") in statuses
    assert window.environments_view.model.state("Staging") == "ROLLBACK_COMPLETE"
    assert any(m.text.startswith("The deploy failed:") for m in posted)
    assert window.store.get("Staging").last_deploy_time is None


def test_a_plan_that_cannot_start_says_why(qtbot, open_window, engine_factory, staging) -> None:
    engine_factory.template["path"] = TEMPLATES / "failing.yaml"  # needs TakenBucketName
    window, view = open_on(open_window, qtbot, engine_factory)
    plan(qtbot, view)
    assert view.stage is Stage.IDLE
    assert view.banner.kind == "error"
    assert view.banner.label.text().startswith("The template needs a value for TakenBucketName.")
    assert not view.progress_group.isVisible()


def test_teardown_asks_for_the_stack_name(qtbot, open_window, engine_factory, staging) -> None:
    window, view = open_on(open_window, qtbot, engine_factory)
    deploy(qtbot, view)
    assert view.teardown_button.isEnabled()

    view.teardown_button.click()
    dialog = view.teardown_dialog
    assert dialog is not None and dialog.isVisible()
    assert not dialog.ok_button.isEnabled()
    dialog.name.setText(staging.stack_name[:-1])
    assert not dialog.ok_button.isEnabled()
    dialog.name.setText(staging.stack_name + " ")
    assert not dialog.ok_button.isEnabled()
    dialog.name.setText(staging.stack_name)
    assert dialog.ok_button.isEnabled()
    dialog.ok_button.click()
    assert view.stage is Stage.DESTROYING
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)
    assert view.banner.kind == "success", view.banner.label.text()
    assert "torn down" in view.banner.label.text()
    assert any(e.status == "DELETE_COMPLETE" for e in view.events_model.rows)
    assert view.outputs_model.rowCount() == 0
    assert DOES_NOT_EXIST not in view.status_label.state
    view.refresh()
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)
    assert "Not deployed yet" in view.status_label.state


def test_teardown_can_be_called_off(qtbot, open_window, engine_factory, staging) -> None:
    window, view = open_on(open_window, qtbot, engine_factory)
    deploy(qtbot, view)
    window.teardown_action.trigger()
    dialog = view.teardown_dialog
    with qtbot.waitSignal(dialog.finished):
        dialog.reject()
    assert view.stage is Stage.IDLE
    assert "CREATE_COMPLETE" in view.status_label.state


def test_parameters_set_in_the_dialog_are_checked_kept_and_deployed(
    qtbot, open_window, engine_factory, staging
) -> None:
    from PySide6.QtWidgets import QDialogButtonBox

    from desktop.services.parameters import template_specs

    window, view = open_on(
        open_window,
        qtbot,
        engine_factory,
        # The test stack's parameter, and one of the backend's with bounds to be refused
        # (not in the test stack: it is refused before the deploy would see it).
        parameter_specs=lambda: (
            template_specs(TEMPLATES / "stack.yaml")
            + [spec for spec in template_specs() if spec.name == "ReplicasPerShard"]
        ),
    )
    view.parameters_button.click()
    dialog = window.environments_view.dialog
    assert dialog is not None and dialog.isVisible()
    assert list(dialog.fields) == ["Greeting", "ReplicasPerShard"]  # not the artifact ones
    assert dialog.fields["Greeting"].placeholderText() == "Default: hello"

    dialog.fields["Greeting"].setText("bonjour")
    dialog.fields["ReplicasPerShard"].setText("9")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert dialog.isVisible()  # refused, with what to change
    assert dialog.error.label.text() == "ReplicasPerShard must be from 1 to 5."

    dialog.fields["ReplicasPerShard"].setText("")
    with qtbot.waitSignal(dialog.finished):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert window.session.environment.parameters == (("Greeting", "bonjour"),)
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)

    deploy(qtbot, view)
    assert view.banner.kind == "success", view.banner.label.text()
    outputs = {row.name: row.value for row in view.outputs_model.rows}
    assert outputs["Greeting"] == "bonjour"

    # Editing the environment's other settings keeps them.
    window.environments_view.edit()
    editor = window.environments_view.dialog
    editor.name.setText("Staging EU")
    with qtbot.waitSignal(editor.finished):
        editor.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert window.session.environment.parameters == (("Greeting", "bonjour"),)
    qtbot.waitUntil(lambda: view.stage is Stage.IDLE, timeout=DEPLOY_TIMEOUT)

    # The dialog shows them next time, and Restore defaults clears every field.
    view.parameters_button.click()
    dialog = window.environments_view.dialog
    assert dialog.fields["Greeting"].text() == "bonjour"
    dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.values() == {"Greeting": "", "ReplicasPerShard": ""}
    with qtbot.waitSignal(dialog.finished):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert window.session.environment.parameters == ()
