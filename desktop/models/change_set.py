"""The change set a deploy would make, one row per resource, shown before the user confirms."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from desktop.models.base import RowTableModel, tone
from desktop.services.deploy import Change


class ChangeColumn(IntEnum):
    ACTION = 0
    RESOURCE = 1
    TYPE = 2
    REPLACEMENT = 3


_ACTION_TONES = {"Add": "good", "Remove": "bad", "Dynamic": "warn"}
_REPLACEMENT_TEXT = {"true": "Yes", "false": "No", "conditional": "Conditional"}


def replacement_text(replacement: object) -> str:
    """CloudFormation's ``Replacement`` (``True``/``False``/``Conditional`` or empty) in words."""
    if replacement is None or replacement == "":
        return "—"
    if isinstance(replacement, bool):
        return "Yes" if replacement else "No"
    return _REPLACEMENT_TEXT.get(str(replacement).lower(), str(replacement))


class ChangeSetModel(RowTableModel[Change]):
    columns = ChangeColumn
    headers = {
        ChangeColumn.ACTION: "Action",
        ChangeColumn.RESOURCE: "Resource",
        ChangeColumn.TYPE: "Type",
        ChangeColumn.REPLACEMENT: "Replacement",
    }

    def display(self, row: Change, column: int) -> Any:
        if column == ChangeColumn.ACTION:
            return row.action
        if column == ChangeColumn.RESOURCE:
            return row.logical_id
        if column == ChangeColumn.TYPE:
            return row.resource_type
        if column == ChangeColumn.REPLACEMENT:
            return replacement_text(row.replacement) if row.action == "Modify" else "—"
        return None

    def foreground(self, row: Change, column: int) -> Any:
        if column == ChangeColumn.ACTION and row.action in _ACTION_TONES:
            return tone(_ACTION_TONES[row.action])
        if column == ChangeColumn.REPLACEMENT and replacement_text(row.replacement) == "Yes":
            return tone("bad")
        return None

    def tooltip(self, row: Change, column: int) -> Any:
        if column == ChangeColumn.REPLACEMENT and replacement_text(row.replacement) == "Yes":
            return (
                "CloudFormation replaces this resource: a new one is created and the old deleted."
            )
        return None
