"""Every console model passes qtmodeltester and says what its rows hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PySide6.QtCore import QModelIndex, Qt

from desktop.models.change_set import ChangeColumn, ChangeSetModel, replacement_text
from desktop.models.environments import EnvironmentListModel, EnvironmentRole
from desktop.models.outputs import OutputColumn, OutputsModel, websocket_url
from desktop.models.stack_events import EventColumn, StackEventsModel
from desktop.services.deploy import Change, StackEvent
from desktop.services.environments import SANDBOX, aws_environment

DISPLAY = Qt.ItemDataRole.DisplayRole

CHANGES = [
    Change("Add", "Uploads", "AWS::S3::Bucket", None),
    Change("Modify", "Function", "AWS::Lambda::Function", "False"),
    Change("Modify", "Cache", "AWS::ElastiCache::ReplicationGroup", "True"),
    Change("Remove", "OldQueue", "AWS::SQS::Queue", None),
]


def event(logical_id: str, status: str, reason: str | None = None) -> StackEvent:
    return StackEvent(
        datetime(2024, 5, 1, 9, 30, tzinfo=UTC), logical_id, "AWS::SQS::Queue", status, reason
    )


def test_change_set_model(qtmodeltester) -> None:
    model = ChangeSetModel(CHANGES)
    qtmodeltester.check(model)
    assert model.rowCount() == 4 and model.columnCount() == len(ChangeColumn)
    assert model.headerData(ChangeColumn.REPLACEMENT, Qt.Orientation.Horizontal) == "Replacement"
    assert model.data(model.index(0, ChangeColumn.ACTION)) == "Add"
    assert model.data(model.index(1, ChangeColumn.RESOURCE)) == "Function"
    assert model.data(model.index(2, ChangeColumn.REPLACEMENT)) == "Yes"
    assert model.data(model.index(1, ChangeColumn.REPLACEMENT)) == "No"
    assert model.data(model.index(0, ChangeColumn.REPLACEMENT)) == "—"
    assert model.data(model.index(2, ChangeColumn.REPLACEMENT), Qt.ItemDataRole.ForegroundRole)
    assert model.data(model.index(0, 0), Qt.ItemDataRole.EditRole) is None
    assert model.data(QModelIndex()) is None
    model.clear()
    qtmodeltester.check(model)
    assert model.rowCount() == 0


@pytest.mark.parametrize(
    ("raw", "text"),
    [("True", "Yes"), ("False", "No"), ("Conditional", "Conditional"), (None, "—"), (True, "Yes")],
)
def test_replacement_text(raw, text) -> None:
    assert replacement_text(raw) == text


def test_stack_events_model_appends_in_one_insert(qtmodeltester, qtbot) -> None:
    model = StackEventsModel()
    qtmodeltester.check(model)
    model.append_rows([event("Inbox", "CREATE_IN_PROGRESS")])
    inserted = []
    model.rowsInserted.connect(lambda _parent, first, last: inserted.append((first, last)))
    model.append_rows(
        [event("Inbox", "CREATE_COMPLETE"), event("Uploads", "CREATE_FAILED", "Bucket exists")]
    )
    assert inserted == [(1, 2)]
    qtmodeltester.check(model)
    assert model.data(model.index(2, EventColumn.STATUS)) == "CREATE_FAILED"
    assert model.data(model.index(2, EventColumn.REASON)) == "Bucket exists"
    assert model.data(model.index(2, EventColumn.STATUS), Qt.ItemDataRole.ForegroundRole)
    assert model.data(model.index(0, EventColumn.STATUS), Qt.ItemDataRole.ForegroundRole) is None
    assert ":" in model.data(model.index(0, EventColumn.TIME))
    model.append_rows([])
    assert inserted == [(1, 2)]


def test_outputs_model_and_websocket_url(qtmodeltester) -> None:
    outputs = {
        "AdminFunction": "classroom-admin",
        "WebSocketUrl": "wss://abc.execute-api.eu-west-1.amazonaws.com/prod",
    }
    model = OutputsModel()
    model.set_outputs(outputs)
    qtmodeltester.check(model)
    assert model.rowCount() == 2 and model.columnCount() == 3
    assert model.data(model.index(1, OutputColumn.NAME)) == "WebSocketUrl"
    assert model.data(model.index(1, OutputColumn.VALUE)).startswith("wss://")
    assert model.data(model.index(1, OutputColumn.COPY)) is None
    assert model.data(model.index(1, OutputColumn.COPY), Qt.ItemDataRole.ToolTipRole)
    assert websocket_url(outputs) == outputs["WebSocketUrl"]
    assert websocket_url({"Other": "ws://x", "WebSocketEndpoint": "wss://y"}) == "wss://y"
    assert websocket_url({"InboxUrl": "https://sqs"}) is None


def test_environment_list_model(qtmodeltester, qtbot) -> None:
    staging = aws_environment(
        "Staging", profile="school", region="eu-west-1", stack_name="classroom-staging"
    )
    model = EnvironmentListModel([SANDBOX, staging])
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    assert model.data(model.index(0, 0)) == "Local sandbox"
    assert model.data(model.index(1, 0), EnvironmentRole.KIND) == "aws"
    assert model.data(model.index(1, 0), EnvironmentRole.ENVIRONMENT) == staging
    assert "eu-west-1" in model.data(model.index(1, 0), Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(model.dataChanged) as changed:
        model.set_state("Staging", "UPDATE_COMPLETE", "good")
    assert changed.args[0].row() == 1 == changed.args[1].row()
    assert model.data(model.index(1, 0), EnvironmentRole.STATE) == "UPDATE_COMPLETE"
    assert model.data(model.index(1, 0), EnvironmentRole.HEALTH) == "good"
    assert model.data(model.index(1, 0), Qt.ItemDataRole.DecorationRole) is None
    # A new list keeps the state of environments that did not move.
    model.set_environments([SANDBOX, staging])
    assert model.state("Staging") == "UPDATE_COMPLETE"
    qtmodeltester.check(model)
    assert b"environment" in model.roleNames().values()
