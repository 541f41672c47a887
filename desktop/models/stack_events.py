"""A stack's events as they stream in during a deploy or teardown, oldest first."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from desktop.models.base import RowTableModel, local_time, status_tone, tone
from desktop.services.deploy import StackEvent


class EventColumn(IntEnum):
    TIME = 0
    RESOURCE = 1
    TYPE = 2
    STATUS = 3
    REASON = 4


class StackEventsModel(RowTableModel[StackEvent]):
    columns = EventColumn
    headers = {
        EventColumn.TIME: "Time",
        EventColumn.RESOURCE: "Resource",
        EventColumn.TYPE: "Type",
        EventColumn.STATUS: "Status",
        EventColumn.REASON: "Reason",
    }

    def display(self, row: StackEvent, column: int) -> Any:
        if column == EventColumn.TIME:
            return local_time(row.timestamp, "%H:%M:%S")
        if column == EventColumn.RESOURCE:
            return row.logical_id
        if column == EventColumn.TYPE:
            return row.resource_type
        if column == EventColumn.STATUS:
            return row.status
        if column == EventColumn.REASON:
            return row.reason or ""
        return None

    def foreground(self, row: StackEvent, column: int) -> Any:
        if column == EventColumn.STATUS:
            name = status_tone(row.status)
            return tone(name) if name else None
        return None

    def tooltip(self, row: StackEvent, column: int) -> Any:
        """The whole text, for columns too narrow to show it."""
        if column == EventColumn.TIME:
            return row.timestamp.isoformat() if row.timestamp is not None else None
        return self.display(row, column) or None
